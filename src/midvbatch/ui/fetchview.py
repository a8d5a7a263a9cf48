"""A fetch's progress on the console: rich bars with ETA on a terminal, else plain lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from midvbatch.dataset.fetch import FetchMeter, megabytes
from midvbatch.ui.console import stderr_console
from midvbatch.ui.runview import format_seconds


class FetchView:
    """Shows a fetch's progress (a ``dataset.fetch.FetchProgress``).

    Download threads call it, so every method takes a lock. Without a terminal, a
    summary line is printed every `interval` seconds and one line per finished archive.
    `console` defaults to standard error; `clock` is injectable for tests.
    """

    def __init__(
        self, console: Console | None = None, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self.console = console if console is not None else stderr_console()
        self.interval, self.clock = interval, clock
        self.meter = FetchMeter(clock)
        self._lock = threading.RLock()
        self._last_line = clock()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def begin(self, names: Iterable[str]) -> None:
        """Start showing a fetch of these documents."""
        with self._lock:
            self.meter.begin(names)
            self._last_line = self.meter.started
            if self.console.is_terminal and self.meter.names:
                self._bars = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    get_time=self.clock,
                )
                self._tasks[""] = self._bars.add_task(f"all {len(self.meter.names)} archives", total=None)
                self._bars.start()

    def start(self, name: str, total: int | None, have: int) -> None:
        """Note that a transfer of `total` bytes (None: unknown) begins with `have` on disk."""
        with self._lock:
            self.meter.start(name, total, have)
            if self._bars is not None:
                if name in self._tasks:
                    self._bars.reset(self._tasks[name], total=total, completed=have)
                else:
                    self._tasks[name] = self._bars.add_task(name, total=total, completed=have)
            self._refresh()

    def advance(self, name: str, n: int) -> None:
        """Count `n` more bytes received for `name`."""
        with self._lock:
            self.meter.advance(name, n)
            if self._bars is not None:
                self._bars.advance(self._tasks[name], n)
            self._refresh()

    def stage(self, name: str, text: str) -> None:
        """Show what is being done to a document now ('verifying', 'extracting')."""
        with self._lock:
            self.meter.stage(name, text)
            if self._bars is not None:
                if name not in self._tasks:
                    self._tasks[name] = self._bars.add_task(name, total=None)
                self._bars.update(self._tasks[name], description=f"{name} ({text})")

    def end(self, name: str, text: str) -> None:
        """Show that a document is finished, with its outcome."""
        with self._lock:
            self.meter.end(name)
            if self._bars is not None:
                if name in self._tasks:
                    self._bars.remove_task(self._tasks.pop(name))
                self._bars.console.print(f"{name}: {text}", highlight=False, markup=False)
            else:
                self.console.print(f"{name}: {text}", highlight=False, markup=False, soft_wrap=True)
            self._refresh()

    def close(self) -> None:
        """Stop the bars, leaving the last state on screen."""
        with self._lock:
            if self._bars is not None:
                self._bars.stop()
                self._bars = None

    def line(self) -> str:
        """One line: archives finished, bytes, rate, ETA, what each active archive is at."""
        m = self.meter
        rate = m.rate()
        active = [f"{name} {where}" for name, where in m.active()]
        return (
            f"fetch: {len(m.ended)}/{len(m.names)} archives done, {megabytes(m.downloaded)} downloaded, "
            f"{rate / 1e6:.1f} MB/s, ETA {format_seconds(m.eta(rate))}" + (" | " + ", ".join(active) if active else "")
        )

    def _refresh(self) -> None:
        if self._bars is not None:
            remaining = self.meter.remaining()
            total = None if remaining is None else self.meter.downloaded + remaining
            self._bars.update(self._tasks[""], completed=self.meter.downloaded, total=total)
            return
        now = self.clock()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(self.line(), highlight=False, markup=False, soft_wrap=True)
