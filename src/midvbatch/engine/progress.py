"""Where a run stands, as data: the snapshot, the rate meter, the ETA, and the progress protocol.

The orchestrator builds a :class:`Snapshot` about twice a second, hands it to the
:class:`RunProgress` it was given, and stores it in the ledger so that ``midvbatch
status`` can read it from another shell. Drawing it (a live panel, plain lines) is the
command line's business: see ``midvbatch.ui``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass
class Snapshot:
    """Everything `status` reports about a run at one moment."""

    state: str  # running | paused | finished | interrupted
    total: int = 0
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    percent: float = 0.0
    eta_seconds: float | None = None
    clips_per_second: float = 0.0
    frames_per_second: float = 0.0
    workers: list[dict] = field(default_factory=list)  # {"clip", "stage", "pid", "seconds"}
    paused_reason: str | None = None
    errors: dict[str, int] = field(default_factory=dict)  # failed and dead clips per error class
    elapsed_seconds: float = 0.0
    updated_at: float = 0.0
    pid: int | None = None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)


class RateMeter:
    """Clips and frames per second over a sliding window of recent completions.

    Completions are counted in buckets of `BUCKET` seconds, so that a run finishing thousands of
    clips a second holds a few hundred buckets, not a record per clip.
    """

    BUCKET = 0.25  # seconds

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self.started = clock()
        self._buckets: deque[list] = deque()  # [bucket start, clips, frames]

    def add(self, frames: int) -> None:
        """Count one finished clip with its frames."""
        now = self.clock()
        if self._buckets and now - self._buckets[-1][0] < self.BUCKET:
            last = self._buckets[-1]
            last[1] += 1
            last[2] += frames
        else:
            self._buckets.append([now, 1, frames])

    def rates(self) -> tuple[float, float]:
        """Return (clips/s, frames/s) over the window, or since the start if shorter."""
        now = self.clock()
        while self._buckets and self._buckets[0][0] < now - self.window:
            self._buckets.popleft()
        span = min(self.window, now - self.started)
        if span <= 0 or not self._buckets:
            return 0.0, 0.0
        clips = sum(b[1] for b in self._buckets)
        frames = sum(b[2] for b in self._buckets)
        return clips / span, frames / span


def estimate_eta(
    remaining_clips: int, remaining_frames: int, clips_per_second: float, frames_per_second: float
) -> float | None:
    """Seconds left: by frames when frames are being counted, else by clips; None if unknown."""
    if remaining_clips == 0:
        return 0.0
    if frames_per_second > 0 and remaining_frames > 0:
        return remaining_frames / frames_per_second
    if clips_per_second > 0:
        return remaining_clips / clips_per_second
    return None


class RunProgress(Protocol):
    """What the orchestrator shows its snapshots to (the command line passes a live panel)."""

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Take the latest snapshot; `force` asks that it be shown now."""

    def close(self, snapshot: Snapshot | None = None) -> None:
        """The run is over; `snapshot` is its last state, if it could be read."""


class NoProgress:
    """Shows nothing: what a library caller who passes no progress gets."""

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Ignore the snapshot."""

    def close(self, snapshot: Snapshot | None = None) -> None:
        """Nothing to close."""
