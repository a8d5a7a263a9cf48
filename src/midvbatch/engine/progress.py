"""Where a run stands: the snapshot, the rate meter, and the live or plain display.

The orchestrator builds a :class:`Snapshot` about twice a second, shows it, and stores
it in the ledger so that ``midvbatch status`` can read it from another shell. With a
terminal the display is a rich live panel; without one (CI, nohup, a pipe), a plain
line every few seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


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
    """Clips and frames per second over a sliding window of recent completions."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self.started = clock()
        self._events: deque[tuple[float, int]] = deque()  # (time, frames)

    def add(self, frames: int) -> None:
        """Count one finished clip with its frames."""
        self._events.append((self.clock(), frames))

    def rates(self) -> tuple[float, float]:
        """Return (clips/s, frames/s) over the window, or since the start if shorter."""
        now = self.clock()
        while self._events and self._events[0][0] < now - self.window:
            self._events.popleft()
        span = min(self.window, now - self.started)
        if span <= 0 or not self._events:
            return 0.0, 0.0
        clips = len(self._events)
        frames = sum(f for _, f in self._events)
        return clips / span, frames / span


def estimate_eta(remaining_clips: int, remaining_frames: int, clips_per_second: float,
                 frames_per_second: float) -> float | None:
    """Seconds left: by frames when frames are being counted, else by clips; None if unknown."""
    if remaining_clips == 0:
        return 0.0
    if frames_per_second > 0 and remaining_frames > 0:
        return remaining_frames / frames_per_second
    if clips_per_second > 0:
        return remaining_clips / clips_per_second
    return None


def format_seconds(seconds: float | None) -> str:
    """Render a duration as 1h02m, 3m05s or 12s; '?' when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def summary_line(s: Snapshot) -> str:
    """One line saying where the run stands."""
    state = f"paused ({s.paused_reason})" if s.paused_reason and s.state in ("running", "paused") else s.state
    return (
        f"{state}: {s.done}/{s.total} done, {s.dead} dead ({s.percent:.1f}%), {s.running} running, "
        f"{s.pending} pending, {s.failed} failed | {s.clips_per_second:.2f} clips/s, "
        f"{s.frames_per_second:.1f} frames/s | ETA {format_seconds(s.eta_seconds)}"
    )


class ProgressView:
    """Shows snapshots: a rich live panel on a terminal, else a plain line every `interval` seconds."""

    def __init__(self, console: Console, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.interval = interval
        self.clock = clock
        self._live: Live | None = None
        self._last_line = float("-inf")
        if console.is_terminal:
            self._live = Live(console=console, refresh_per_second=4, transient=False)
            self._live.start()

    def _render(self, s: Snapshot):
        top = Table.grid(padding=(0, 1))
        top.add_row(ProgressBar(total=max(s.total, 1), completed=s.done + s.dead, width=40),
                    Text(f"{s.percent:.1f}%  ETA {format_seconds(s.eta_seconds)}"))
        head = Text(summary_line(s), overflow="fold")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("worker")
        table.add_column("clip")
        table.add_column("stage")
        table.add_column("for", justify="right")
        for w in s.workers:
            table.add_row(str(w.get("pid") or "-"), w["clip"], w.get("stage") or "", format_seconds(w.get("seconds")))
        return Group(top, head, table)

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Show the snapshot (plain mode: only every `interval` seconds unless forced)."""
        if self._live is not None:
            self._live.update(self._render(snapshot))
            return
        now = self.clock()
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(summary_line(snapshot), highlight=False, soft_wrap=True)

    def close(self, snapshot: Snapshot | None = None) -> None:
        """Stop the live panel, leaving the last state on screen."""
        if self._live is not None:
            if snapshot is not None:
                self._live.update(self._render(snapshot))
            self._live.stop()
            self._live = None
        elif snapshot is not None:
            self.update(snapshot, force=True)
