"""A run's progress on the console: a rich live panel on a terminal, else a plain line every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from midvbatch.engine.progress import Snapshot


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


def worker_rows(s: Snapshot) -> list[list[str]]:
    """One row per running clip: worker (pid, or a Dask worker's address), clip, stage, for how long (the run's
    panel and `status` alike)."""
    return [
        [str(w.get("pid") or w.get("worker") or "-"), w["clip"], w.get("stage") or "", format_seconds(w.get("seconds"))]
        for w in s.workers
    ]


class RunView:
    """Shows a run's snapshots (an ``engine.progress.RunProgress``).

    On a terminal, a live panel (started at the first snapshot, so that nothing is drawn
    for a run refused before it starts); otherwise a plain line every `interval` seconds.
    """

    def __init__(self, console: Console, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.interval = interval
        self.clock = clock
        self._live: Live | None = None
        self._last_line = float("-inf")

    def _render(self, s: Snapshot):
        top = Table.grid(padding=(0, 1))
        top.add_row(
            ProgressBar(total=max(s.total, 1), completed=s.done + s.dead, width=40),
            Text(f"{s.percent:.1f}%  ETA {format_seconds(s.eta_seconds)}"),
        )
        head = Text(summary_line(s), overflow="fold")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("worker")
        table.add_column("clip")
        table.add_column("stage")
        table.add_column("for", justify="right")
        for pid, clip, stage, seconds in worker_rows(s):
            table.add_row(pid, Text(clip), Text(stage), seconds)
        return Group(top, head, table)

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Show the snapshot (plain mode: only every `interval` seconds unless forced)."""
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
            self._live.update(self._render(snapshot))
            return
        now = self.clock()
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(summary_line(snapshot), highlight=False, markup=False, soft_wrap=True)

    def close(self, snapshot: Snapshot | None = None) -> None:
        """Stop the live panel, leaving the last state on screen."""
        if self.console.is_terminal:
            if snapshot is not None:
                self.update(snapshot)
            if self._live is not None:
                self._live.stop()
                self._live = None
        elif snapshot is not None:
            self.update(snapshot, force=True)
