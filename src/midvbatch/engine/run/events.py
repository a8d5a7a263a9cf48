"""What the run's policy is told (events) and what it answers (instructions): plain frozen records.

The shell (engine/run/shell.py) turns the world into events: clips read from the
ledger, outcomes and stages from the executor, workers' memory, a Ctrl-C. The state
(engine/run/state.py) answers each with instructions, which the shell carries out:
ledger writes, submissions, kills, log lines. Times are the shell's monotonic clock,
in seconds; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from midvbatch.engine.workerref import WorkerRef
from midvbatch.pipeline.spec import ClipOutcome


class StopReason(StrEnum):
    """Why a run stops before its queue is empty."""

    SIGNAL = "signal"  # Ctrl-C or SIGTERM
    MAX_FAILURES = "max-failures"  # --max-failures clips died in this run
    DISK = "disk"  # the disk is full, with --on-disk-full stop
    PLACEMENT = "placement"  # a Dask worker cannot see the dataset or the run folder


class Queued(Protocol):
    """A clip as the ledger queues it (engine.ledger.TaskRow): what the policy reads of it."""

    id: int
    clip: str
    attempts: int


# events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Clips read from the ledger's queue, in its order; `gone`: those whose clip discovery no longer finds.

    `memory` and `disk`: bytes of memory available and free on the run folder's disk, read now."""

    rows: tuple[Queued, ...]
    now: float
    memory: int
    disk: int
    gone: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Finished:
    """Clips whose outcomes came back (artifacts already placed); `could_start`: the executor's (see Executor)."""

    outcomes: tuple[ClipOutcome, ...]
    now: float
    could_start: int | None = None


@dataclass(frozen=True)
class StagesSeen:
    """(clip's task id, stage, worker) messages from the workers."""

    stages: tuple[tuple[int, str, WorkerRef | None], ...]
    now: float


@dataclass(frozen=True)
class Readings:
    """Workers' memory: resident (`rss`) and on a device (`device`), bytes by worker; absent: not read."""

    now: float
    rss: dict[WorkerRef, int] = field(default_factory=dict)
    device: dict[WorkerRef, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StopAsked:
    """Ctrl-C (finish what is in flight) or, `at_once`, a second one or SIGTERM (stop now)."""

    at_once: bool = False


@dataclass(frozen=True)
class Withdrawn:
    """Clips the executor took back before any worker started them (after CancelQueued)."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class Idle:
    """Nothing in flight and nothing ready: `next_retry` is when the first failed clip may run again (None: none)."""

    now: float
    next_retry: float | None


Event = Ready | Finished | StagesSeen | Readings | StopAsked | Withdrawn | Idle


# instructions -------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkRunning:
    """Mark these clips running in the ledger, counting their attempt."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class Submit:
    """Hand one task to the executor: these clips, in order, each with its attempt number."""

    clips: tuple[tuple[Queued, int], ...]


@dataclass(frozen=True)
class Complete:
    """Record a clip as done with its outcome's results."""

    outcome: ClipOutcome
    attempt: int


@dataclass(frozen=True)
class Fail:
    """Record a failed attempt: `state` "failed" (retried `retry_in` seconds from now) or "dead"."""

    task_id: int
    state: str
    error_class: str
    error: str
    stage: str | None = None
    exitcode: int | None = None
    signal: int | None = None
    traceback: str | None = None
    retry_in: float | None = None
    wall_seconds: float | None = None


@dataclass(frozen=True)
class Release:
    """Put these clips back in the queue, their attempt not counted."""

    ids: tuple[int, ...]


@dataclass(frozen=True)
class RemoveAttempt:
    """Remove an attempt's temporary folder (what it left, its artifacts placed or not)."""

    task_id: int
    attempt: int


@dataclass(frozen=True)
class KillWorker:
    """Kill (a Dask worker: restart) the worker `ref`; its clips `ids` fail as the state recorded."""

    ref: WorkerRef
    ids: tuple[int, ...]


@dataclass(frozen=True)
class EndLeftovers:
    """A worker died or was killed: end what its processor started (nothing where the executor cannot tell)."""

    ref: WorkerRef


@dataclass(frozen=True)
class CancelQueued:
    """Withdraw the tasks submitted that no worker has started; the executor's answer comes back as Withdrawn."""


@dataclass(frozen=True)
class Resize:
    """Run this many workers from now on (the machine ran short)."""

    workers: int


@dataclass(frozen=True)
class Log:
    """A line of the run's log: `level` a logging level name, `message` %-formatted with `args`."""

    level: str
    message: str
    args: tuple[Any, ...] = ()
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Wait:
    """Nothing to do for `seconds`: a paused run, or failed clips waiting for their retry."""

    seconds: float


@dataclass(frozen=True)
class Finish:
    """The run's loop ends: the queue is empty, or it stops (`reason`, None: the queue is done)."""

    reason: StopReason | None = None
    at_once: bool = False


LEDGER_INSTRUCTIONS = (MarkRunning, Complete, Fail, Release)  # run together in one transaction by the shell
Instruction = (
    MarkRunning
    | Submit
    | Complete
    | Fail
    | Release
    | RemoveAttempt
    | KillWorker
    | EndLeftovers
    | CancelQueued
    | Resize
    | Log
    | Wait
    | Finish
)
