"""What a run does when the machine runs short of threads, processes, file descriptors or memory.

A clip that fails because the machine ran short (class "resources": a worker or a thread
that could not start, a decoder without its threads, a file that could not be opened
for want of descriptors) is not at fault, and neither is its worker. The run asks less
of the machine: decoding on one thread per worker first (a decoder starts threads per
core otherwise), then half the workers (or as many as the pool could start, when it could
not start them all), down to one; the clips that ran short go back
to the queue, their attempt not counted. With nothing left to lower, such a clip fails
as a transient failure does: retried after its backoff wait, its attempts counted.

Policy as a state machine: :meth:`Shortages.short` takes what happened and returns a
:class:`Reaction`; it does no I/O and reads no clock (times come with the events).
"""

from __future__ import annotations

from dataclasses import dataclass

RESOURCES = ("threads", "processes", "file descriptors", "memory")


def resource_named(error: str) -> str:
    """The resource a "resources" failure's message names (see errors.shortage); "resources" if none."""
    return next((name for name in RESOURCES if f"out of {name}" in error), "resources")


@dataclass(frozen=True)
class Reaction:
    """What the run does about one clip that ran short."""

    workers: int | None = None  # run this many workers from now on
    threads: int | None = None  # decode on this many FFmpeg threads per worker from now on
    counted: bool = False  # the clip fails as transient (attempt counted, backoff): nothing was left to lower
    line: str | None = None  # what the run says (a warning), once per change


class Shortages:
    """The workers and decoding threads a run asks of the machine, lowered as it runs short.

    `resizable`: whether the executor can change its worker count (a local process pool can).
    """

    def __init__(self, workers: int, threads: int, resizable: bool):
        self.workers = max(1, workers)
        self.threads = threads  # FFmpeg threads per worker
        self.resizable = resizable
        self.changed_at = float("-inf")  # when the last change was made
        self._said_floor = False

    def short(
        self, resource: str, detail: str, dispatched: float, now: float, could_start: int | None = None
    ) -> Reaction:
        """A clip dispatched at `dispatched` ran short of `resource` (`detail`: the clip and its error) at `now`;
        `could_start`: the workers the pool had started when it could start no more (None: it started them all)."""
        if dispatched < self.changed_at:
            return Reaction()  # it ran under what the run asked before its last change: back in the queue
        what = f"the machine ran out of {resource} ({detail})"
        if could_start is None and resource != "file descriptors" and self.threads > 1:
            self.threads, self.changed_at = 1, now
            return Reaction(
                threads=1,
                line=f"{what}: decoding on 1 thread per worker from now on; the clips that ran short go back "
                "to the queue",
            )
        if self.resizable and self.workers > 1:
            fewer = self.workers // 2 if could_start is None else min(self.workers // 2, could_start)
            self.workers, self.changed_at = max(1, fewer), now
            return Reaction(
                workers=self.workers,
                line=f"{what}: going on with {self.workers} worker{'s' if self.workers > 1 else ''}; the clips "
                "that ran short go back to the queue",
            )
        line = None
        if not self._said_floor:
            self._said_floor = True
            line = (
                f"{what}: nothing left to lower ({self.workers} worker{'s' if self.workers > 1 else ''}); clips that "
                "run short wait and are retried, each try counted as an attempt"
            )
        return Reaction(counted=True, line=line)
