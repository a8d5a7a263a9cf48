"""The run's policy: which clips go out, what becomes of each outcome, whom to kill, when to stop.

`RunState.handle(*events) -> instructions` holds every decision of a run and does
nothing else: no ledger, no executor, no processes, no clock (times come with the
events), no randomness of its own (the retry jitter is passed in). The shell
(engine/run/shell.py) feeds it and carries out what it answers; tests feed it a few
events and read the instructions (tests/test_run_state.py).

What it holds is the clips in flight only; the queue lives in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from midvbatch.config import MAX_RETRY_WAIT
from midvbatch.engine.run.events import (
    CancelQueued,
    Complete,
    EndLeftovers,
    Event,
    Fail,
    Finish,
    Finished,
    Idle,
    Instruction,
    KillWorker,
    Log,
    MarkRunning,
    Queued,
    Readings,
    Ready,
    Release,
    RemoveAttempt,
    Resize,
    StagesSeen,
    StopAsked,
    StopReason,
    Submit,
    Wait,
    Withdrawn,
)
from midvbatch.engine.shortage import Shortages, resource_named
from midvbatch.engine.workerref import WorkerRef
from midvbatch.errors import NEVER_RETRIED, ErrorClass
from midvbatch.pipeline.spec import ClipOutcome

DISPATCH_DEPTH = 2  # tasks submitted per worker: one running, the next waiting in the pool
SHORT_CLIP_DEPTH = 8  # ... when clips take less than SHORT_CLIP_SECONDS: the pool's own latency then matters
SHORT_CLIP_SECONDS = 0.05
PAUSED_WAIT = 0.2  # seconds between looks while paused with nothing in flight
MAX_NOTES = 10  # notes of a done clip (fields left unscored) logged one by one; the rest counted


@dataclass(frozen=True)
class Policy:
    """The run's limits, as numbers: what its options and the machine's readings came to."""

    retries: int = 0
    retry_delay: float = 1.0  # seconds before the first retry; doubled at each further attempt
    max_failures: int | None = None  # dead clips in this run that stop it; None or 0: none
    on_disk_full: str = "wait"  # "wait" | "stop"
    task_timeout: float | None = None
    pool_holds_timeout: bool = True  # the executor holds a task of one clip to task_timeout itself
    worker_limit: int | None = None  # bytes of resident memory a worker may hold
    device_limit: int | None = None  # bytes of device memory a worker may hold
    memory_floor: int = 0  # bytes of memory kept available: below, no clip starts
    disk_floor: int = 0  # bytes kept free on the run folder's disk
    frames_held: int = 0  # bytes of frames a worker holds beyond one (read-ahead, batches)
    task_clips: int = 1  # clips a task holds (read-ahead or batches across clips: a few)
    decode_threads: int = 0  # FFmpeg threads per worker (lowered when the machine runs short)
    resizable: bool = False  # the executor can change its worker count
    run_dir: str = ""  # for the lines that name it


@dataclass
class Flight:
    """A clip out with the executor: from its submission until its outcome is recorded."""

    row: Queued
    attempt: int
    started: float  # when it was submitted
    group: tuple[int, ...] = ()  # the clips of its task, itself included
    stage: str = "queued"
    worker: WorkerRef | None = None
    running_since: float | None = None  # its first stage: a worker took it up
    killed: tuple[str, str] | None = None  # (class, reason) of its worker killed by the run: memory, timeout

    @property
    def active(self) -> bool:
        """Its worker is on it now: taken up and not finished."""
        return self.stage not in ("queued", "finished")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


class RunState:
    """The clips in flight and every decision about them. `jitter(low, high)`: a random number in [low, high]."""

    def __init__(self, policy: Policy, capacity: int, jitter: Callable[[float, float], float]):
        self.policy = policy
        self.capacity = capacity  # tasks the executor runs at once
        self.jitter = jitter
        self.flights: dict[int, Flight] = {}
        self.clip_seconds = 1.0  # moving average of the clips' wall time, for the dispatch depth
        self.output_bytes = 0  # artifacts moved into place, to estimate the next clip's
        self.output_clips = 0
        self.paused: str | None = None  # "memory" | "disk" while the run waits for it
        self.stop_reason: StopReason | None = None
        self.stop_now = False
        self.withdrawn = False  # the queued clips were withdrawn after the stop was asked
        self.dead_this_run = 0
        self.shortages = Shortages(capacity, policy.decode_threads, resizable=policy.resizable)

    @property
    def stopping(self) -> bool:
        """A stop was asked: no clip starts any more."""
        return self.stop_reason is not None

    def wanted(self) -> int:
        """How many clips to read from the queue now: enough to keep every worker's next task waiting."""
        per_worker = DISPATCH_DEPTH if self.clip_seconds > SHORT_CLIP_SECONDS else SHORT_CLIP_DEPTH
        depth = self.capacity * per_worker if self.capacity > 1 else 1
        clips = self.policy.task_clips
        tasks = len({f.group for f in self.flights.values()}) if clips > 1 else len(self.flights)
        return max(0, depth - tasks) * clips

    def handle(self, *events: Event) -> list[Instruction]:
        """Take events in order; return what to do, in order."""
        out: list[Instruction] = []
        for event in events:
            match event:
                case Ready():
                    out += self._ready(event)
                case Finished():
                    out += self._finished(event)
                case StagesSeen():
                    self._stages(event)
                case Readings():
                    out += self._readings(event)
                case StopAsked():
                    self.stop_now = self.stop_now or event.at_once or self.stopping
                    self.stop_reason = StopReason.SIGNAL
                case Withdrawn():
                    out += self._withdrawn(event.ids)
                case Idle():
                    out += self._idle(event)
        return out + self._next()

    def _next(self) -> list[Instruction]:
        """What the loop does next, once the events are taken in."""
        if self.stop_now:
            return [Finish(self.stop_reason, at_once=True)]
        if not self.stopping:
            return []
        if not self.withdrawn:
            self.withdrawn = True
            return [CancelQueued()]  # no new clip starts: those submitted and not started go back
        return [] if self.flights else [Finish(self.stop_reason)]

    def _stop(self, reason: StopReason, over: bool = False) -> None:
        """Stop after the clips in flight, for `reason`; `over`: it replaces a reason given before."""
        if not self.stopping or over:
            self.stop_reason = reason

    # dispatch -----------------------------------------------------------------------------

    def _ready(self, event: Ready) -> list[Instruction]:
        rows = list(event.rows)
        if not rows:
            return self._pause(None, "")
        groups = self._groups(rows)
        estimate = self.output_bytes // self.output_clips if self.output_clips else 0
        held = self.policy.frames_held
        refusal = self._admit(estimate * len(rows), held * len(groups), event)
        if refusal is not None and len(groups) > 1:  # one task may still fit
            rows, groups = groups[0], groups[:1]
            refusal = self._admit(estimate * len(rows), held, event)
        if refusal is not None:
            reason, detail = refusal
            out = self._pause(reason, detail)
            if reason == "disk" and self.policy.on_disk_full == "stop":
                self._stop(StopReason.DISK)
                line = "disk full (%s): stopping after the clips in flight (--on-disk-full stop)"
                out.append(Log("error", line, (detail,)))
            elif not self.flights:
                out.append(Wait(PAUSED_WAIT))
            return out
        out = self._pause(None, "")
        out.append(MarkRunning(tuple(r.id for r in rows)))
        for row in rows:
            if row.id in event.gone:  # (its files moved away since it was queued: nothing to run it from)
                gone = "clip no longer found in the dataset"
                out.append(Fail(row.id, "dead", ErrorClass.PERMANENT, gone))
                line = "%s dead (%s: %s) after %d attempt(s)"
                out.append(
                    Log("error", line, (row.clip, ErrorClass.PERMANENT, gone, row.attempts + 1), {"clip": row.clip})
                )
        for group in groups:
            members = [row for row in group if row.id not in event.gone]
            if not members:
                continue
            ids = tuple(row.id for row in members)
            for row in members:
                self.flights[row.id] = Flight(row, row.attempts + 1, event.now, ids)
            out.append(Submit(tuple((row, row.attempts + 1) for row in members)))
        return out

    def _groups(self, rows: list[Queued]) -> list[list[Queued]]:
        """Cut the clips into tasks of task_clips clips, fewer each when there are too few for every worker."""
        size = self.policy.task_clips
        if len(rows) < size * self.capacity:
            size = max(1, -(-len(rows) // self.capacity))
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def _admit(self, output: int, memory: int, event: Ready) -> tuple[str, str] | None:
        """Why clips writing about `output` bytes, their workers holding `memory` bytes of frames, may not start
        now: ("memory" | "disk", detail); None: they may."""
        policy = self.policy
        if event.memory < policy.memory_floor + memory:
            frames = f" + {_mib(memory)} of frames read ahead and batched" if memory else ""
            return "memory", f"{_mib(event.memory)} available, floor {_mib(policy.memory_floor)}{frames}"
        if event.disk < policy.disk_floor + output:
            return (
                "disk",
                f"{_mib(event.disk)} free on {policy.run_dir}, floor {_mib(policy.disk_floor)} "
                f"+ {_mib(output)} for the next clip",
            )
        return None

    def _pause(self, reason: str | None, detail: str) -> list[Instruction]:
        if reason == self.paused:
            return []
        before, self.paused = self.paused, reason
        if reason:
            return [Log("warning", "paused (%s): %s; the run resumes by itself", (reason, detail))]
        return [Log("info", "resumed: %s is back above its floor", (before,))]

    def _idle(self, event: Idle) -> list[Instruction]:
        if self.flights or self.stopping:
            return []
        if event.next_retry is None:
            return [Finish()]
        return [Wait(min(max(event.next_retry - event.now, 0.01), PAUSED_WAIT))]

    def _withdrawn(self, ids: Iterable[int]) -> list[Instruction]:
        back = [self.flights.pop(i) for i in ids if i in self.flights]
        if not back:
            return []
        return [Release(tuple(f.row.id for f in back))]

    # supervision ------------------------------------------------------------------------

    def _stages(self, event: StagesSeen) -> None:
        for task_id, stage, worker in event.stages:
            flight = self.flights.get(task_id)
            if flight is not None:
                flight.stage, flight.worker = stage, worker if worker is not None else flight.worker
                if flight.running_since is None:
                    flight.running_since = event.now

    def _readings(self, event: Readings) -> list[Instruction]:
        """Kill workers past --worker-memory or --device-memory, and those on a clip past --task-timeout.

        The pool holds a task of one clip to the timeout itself (where it can); a task of
        several clips is held to it clip by clip here, from each clip's first stage.
        """
        policy, out = self.policy, []
        by_worker: dict[WorkerRef, list[Flight]] = {}
        for flight in self.flights.values():
            if flight.worker is not None and not flight.killed:
                by_worker.setdefault(flight.worker, []).append(flight)
        timeout = policy.task_timeout if policy.task_clips > 1 or not policy.pool_holds_timeout else None
        for ref, flights in by_worker.items():
            rss, held = event.rss.get(ref, 0), event.device.get(ref, 0)
            if policy.worker_limit and rss > policy.worker_limit:
                why = f"worker memory {_mib(rss)} passed the limit of {_mib(policy.worker_limit)}"
                out += self._kill(ref, flights, (ErrorClass.MEMORY, why))
            elif policy.device_limit and held > policy.device_limit:
                why = f"device memory {_mib(held)} passed the limit of {_mib(policy.device_limit)}"
                out += self._kill(ref, flights, (ErrorClass.OOM, why))
            elif timeout is not None and any(
                f.active and f.running_since is not None and event.now - f.running_since > timeout for f in flights
            ):
                out += self._kill(ref, flights, (ErrorClass.TIMEOUT, self._timed_out(ref)))
        return out

    def _timed_out(self, worker: WorkerRef | None = None) -> str:
        """The reason a clip killed for --task-timeout fails with."""
        stopped = worker.killed() if worker is not None else "worker killed"
        return f"still running after {self.policy.task_timeout or 0:g} s; {stopped}"

    def _kill(self, ref: WorkerRef, flights: list[Flight], why: tuple[str, str]) -> list[Instruction]:
        """Kill worker `ref` for `why` (class, reason), which the clips it is on take as their failure."""
        blamed = [f for f in flights if f.active] or [f for f in flights if f.stage != "finished"][:1]
        for flight in blamed:
            flight.killed = why
        first = (blamed or flights)[0]
        extra = {"clip": first.row.clip, "attempt": first.attempt, "stage": first.stage}
        line = Log("warning", "%s: %s; %s", (first.row.clip, why[1].split("; ")[0], ref.killing()), extra)
        return [line, KillWorker(ref, tuple(f.row.id for f in blamed or flights))]

    # outcomes ---------------------------------------------------------------------------

    def _finished(self, event: Finished) -> list[Instruction]:
        out: list[Instruction] = []
        outcomes = self._ran_short(list(event.outcomes), event, out)
        outcomes = self._misplaced(outcomes, out)
        outcomes = self._lost(outcomes, out)
        for outcome in outcomes:
            self.clip_seconds = 0.8 * self.clip_seconds + 0.2 * outcome.wall_seconds
        for outcome in outcomes:
            out += self._record(outcome)
        return out

    def note_output(self, moved: int) -> None:
        """A done clip's artifacts, `moved` bytes, were placed: the next clips' estimate."""
        self.output_bytes += moved
        self.output_clips += 1

    def _requeue(self, outcomes: list[ClipOutcome], workers_dead: bool) -> tuple[list[Flight], list[Instruction]]:
        """Put these clips back in the queue, their attempt not counted, their attempt folders removed (with
        `workers_dead`, after what their dead workers started, which might still write there)."""
        flights = [self.flights.pop(o.task_id) for o in outcomes]
        out: list[Instruction] = [Release(tuple(f.row.id for f in flights))]
        if workers_dead:
            out += [EndLeftovers(ref) for ref in dict.fromkeys(f.worker for f in flights if f.worker is not None)]
        out += [RemoveAttempt(f.row.id, f.attempt) for f in flights]
        return flights, out

    def _ran_short(self, outcomes: list[ClipOutcome], event: Finished, out: list[Instruction]) -> list[ClipOutcome]:
        """Clips that failed because the machine ran short (class "resources"): ask less of it (engine/shortage.py)
        and put them back in the queue, their attempt not counted, or, with nothing left to lower, let them fail
        as transient. Return the outcomes left to record."""
        back: list[ClipOutcome] = []
        for outcome in outcomes:
            flight = self.flights.get(outcome.task_id)
            if outcome.ok or outcome.error_class != ErrorClass.RESOURCES or flight is None:
                continue
            error = outcome.error or ""
            reaction = self.shortages.short(
                resource_named(error), f"{flight.row.clip}: {error}", flight.started, event.now, event.could_start
            )
            if reaction.line:
                out.append(Log("warning", "%s", (reaction.line,), {"clip": flight.row.clip, "stage": outcome.stage}))
            if reaction.workers:
                self.capacity = reaction.workers
                out.append(Resize(reaction.workers))  # the clips in flight come back: dispatched before the change
            if not reaction.counted:
                back.append(outcome)
        if not back:
            return outcomes
        out += self._requeue(back, workers_dead=False)[1]  # (their workers live on, or the pool's restart ended them)
        ids = {o.task_id for o in back}
        return [o for o in outcomes if o.task_id not in ids]

    def _misplaced(self, outcomes: list[ClipOutcome], out: list[Instruction]) -> list[ClipOutcome]:
        """Put back in the queue, their attempt not counted, the clips a Dask worker could not run because it
        does not see a file this machine sees, and stop the run: every clip would fail the same way. (A file
        this machine cannot read either is the clip's own problem: the shell made that outcome permanent.)"""
        misplaced = [o for o in outcomes if o.error_class == ErrorClass.PLACEMENT and o.task_id in self.flights]
        if not misplaced:
            return outcomes
        out += self._requeue(misplaced, workers_dead=True)[1]
        if self.stop_reason != StopReason.PLACEMENT:
            out.append(Log("error", "%s", (misplaced[0].error,)))
            out.append(
                Log(
                    "error",
                    "every Dask worker must see the dataset at the path it has here, and the run folder too "
                    "unless --artifacts return: stopping after the clips in flight",
                )
            )
            self._stop(StopReason.PLACEMENT, over=True)  # the run cannot go on, whatever stopped it before
        ids = {o.task_id for o in misplaced}
        return [o for o in outcomes if o.task_id not in ids]

    def _is_lost(self, outcome: ClipOutcome) -> bool:
        """Whether a failed outcome is a clip its task lost through no fault of its own: the task's worker died
        (or was killed) while on another of its clips, before this one started or after it finished."""
        flight = self.flights.get(outcome.task_id)
        if flight is None or len(flight.group) < 2 or outcome.ok:
            return False
        if outcome.error_class not in (ErrorClass.CRASH, ErrorClass.TIMEOUT) or flight.killed or flight.active:
            return False
        siblings = [self.flights[t] for t in flight.group if t in self.flights]
        if any(f.killed or f.active for f in siblings):
            return True
        unfinished = [f for f in siblings if f.stage != "finished"]  # none was on: the first unfinished is blamed
        return bool(unfinished) and unfinished[0] is not flight

    def _lost(self, outcomes: list[ClipOutcome], out: list[Instruction]) -> list[ClipOutcome]:
        """Put the clips a dead task lost through no fault of their own back in the queue (see _is_lost)."""
        lost = [o for o in outcomes if self._is_lost(o)]
        if not lost:
            return outcomes
        flights, requeued = self._requeue(lost, workers_dead=True)
        out += requeued
        for outcome, flight in zip(lost, flights, strict=True):
            out.append(
                Log(
                    "info",
                    "%s back in the queue: its worker died on another of the clips it held (%s)",
                    (flight.row.clip, outcome.error),
                    {"clip": flight.row.clip, "attempt": flight.attempt},
                )
            )
        ids = {o.task_id for o in lost}
        return [o for o in outcomes if o.task_id not in ids]

    def _record(self, outcome: ClipOutcome) -> list[Instruction]:
        """Record a clip's outcome: done, or failed (retried later) or dead."""
        flight = self.flights.pop(outcome.task_id, None)
        if flight is None:
            return []
        row, attempt = flight.row, flight.attempt
        out: list[Instruction] = []
        error_class, error, stage = outcome.error_class, outcome.error, outcome.stage
        if not outcome.ok and error_class in (ErrorClass.CRASH, ErrorClass.TIMEOUT) and flight.worker is not None:
            out.append(EndLeftovers(flight.worker))  # the worker is gone: so goes what its processor started
        if flight.killed and not outcome.ok:
            error_class, error = flight.killed
        elif error_class == ErrorClass.TIMEOUT:
            error = self._timed_out()
        if stage is None and not outcome.ok:
            stage = flight.stage.split(" ")[0] if flight.stage else None
        extra = {"clip": row.clip, "attempt": attempt, "stage": stage}
        if outcome.ok:
            out.append(Complete(outcome, attempt))
            out.append(Log("debug", "done %s in %.2f s", (row.clip, outcome.wall_seconds), extra))
            out += [Log("warning", "%s: %s", (row.clip, note), extra) for note in outcome.notes[:MAX_NOTES]]
            if len(outcome.notes) > MAX_NOTES:
                out.append(Log("warning", "%s: and %d more notes", (row.clip, len(outcome.notes) - MAX_NOTES), extra))
        else:
            out += self._failed(outcome, flight, error_class or ErrorClass.ERROR, error or "unknown error", stage)
        out.append(RemoveAttempt(row.id, attempt))
        return out

    def _failed(
        self, outcome: ClipOutcome, flight: Flight, error_class: str, error: str, stage: str | None
    ) -> list[Instruction]:
        """A failed attempt: retried after its backoff while retries are left, else dead; --max-failures."""
        policy, row, attempt = self.policy, flight.row, flight.attempt
        extra = {"clip": row.clip, "attempt": attempt, "stage": stage}
        retry = attempt <= policy.retries and error_class not in NEVER_RETRIED
        out: list[Instruction] = [
            Fail(
                row.id,
                "failed" if retry else "dead",
                error_class,
                error,
                stage,
                outcome.exitcode,
                outcome.signal,
                outcome.traceback,
                self.retry_delay(attempt) if retry else None,
                outcome.wall_seconds,
            )
        ]
        if retry:
            level = "debug" if error_class == ErrorClass.RESOURCES else "warning"  # (said once: _ran_short)
            line = "%s failed (%s: %s); retry %d of %d"
            out.append(Log(level, line, (row.clip, error_class, error, attempt, policy.retries), extra))
        else:
            line = "%s dead (%s: %s) after %d attempt(s)"
            out.append(Log("error", line, (row.clip, error_class, error, attempt), extra))
        if outcome.traceback:
            out.append(Log("debug", "%s traceback:\n%s", (row.clip, outcome.traceback), extra))
        if retry:
            return out
        self.dead_this_run += 1
        if policy.max_failures and self.dead_this_run >= policy.max_failures:
            if not self.stopping:
                out.append(
                    Log(
                        "error",
                        "%d clips died in this run (--max-failures %d): stopping after the clips in "
                        "flight; see midvbatch failures %s",
                        (self.dead_this_run, policy.max_failures, policy.run_dir),
                    )
                )
            self._stop(StopReason.MAX_FAILURES)
        return out

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt `attempt`: base * 2^(attempt-1), +-20% jitter,
        at most MAX_RETRY_WAIT."""
        base = self.policy.retry_delay
        return min(MAX_RETRY_WAIT, base * (2 ** min(attempt - 1, 64)) * self.jitter(0.8, 1.2))
