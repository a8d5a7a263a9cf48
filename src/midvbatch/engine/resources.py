"""Admission control and worker memory: the run waits when memory or disk runs short.

Readings are injectable functions so that pauses are tested deterministically: a
:class:`Resources` takes ``memory_reading() -> (available, total)`` and
``disk_reading(path) -> (free, total)``, by default psutil's and shutil's.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from midvbatch.config import Settings
from midvbatch.errors import LedgerError

MemoryReading = Callable[[], tuple[int, int]]
DiskReading = Callable[[Path], tuple[int, int]]


def system_memory() -> tuple[int, int]:
    """Return (available, total) bytes of system memory."""
    vm = psutil.virtual_memory()
    return vm.available, vm.total


def disk_space(path: Path) -> tuple[int, int]:
    """Return (free, total) bytes of the filesystem holding `path`."""
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


@dataclass
class Admission:
    """Whether a clip may be dispatched now, and if not, why."""

    ok: bool
    reason: str | None = None  # "memory" | "disk"
    detail: str = ""


READING_INTERVAL = 0.05  # seconds a memory or disk reading is used before it is taken again


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


class Resources:
    """Memory and disk floors of a run, and the worker memory limit.

    The figures come from the readings: floors the machine can never meet raise
    ConfigError, and the default worker memory limit is a share of the total memory read
    (see :meth:`Settings.worker_memory_limit`).
    """

    def __init__(
        self,
        settings: Settings,
        run_dir: Path,
        *,
        memory_reading: MemoryReading = system_memory,
        disk_reading: DiskReading = disk_space,
    ):
        self.run_dir = run_dir
        self.memory_reading = memory_reading
        self.disk_reading = disk_reading
        _, total_memory = memory_reading()
        _, disk_total = disk_reading(run_dir)
        self.memory_floor = settings.memory_floor(total_memory)
        self.disk_floor = settings.disk_floor(disk_total)
        self.worker_limit = settings.worker_memory_limit(total_memory)  # None: no limit
        self._read_at = -1e9  # when the cached readings were taken
        self._memory = self._disk = 0

    def admit(self, estimated_output: int, estimated_memory: int = 0) -> Admission:
        """Return whether more clips may start: writing about `estimated_output` bytes, their workers holding
        about `estimated_memory` bytes of frames (read ahead, batched) above the memory floor."""
        now = time.monotonic()
        if now - self._read_at >= READING_INTERVAL:  # a reading costs more than dispatching a clip
            self._memory, _ = self.memory_reading()
            try:
                self._disk, _ = self.disk_reading(self.run_dir)
            except OSError as exc:
                raise LedgerError(
                    f"cannot read the free space of the run folder ({exc.strerror or exc}): "
                    "was it moved or deleted while the run was running?",
                    path=self.run_dir,
                ) from None
            self._read_at = now
        available, free = self._memory, self._disk
        if available < self.memory_floor + estimated_memory:
            held = f" + {_mib(estimated_memory)} of frames read ahead and batched" if estimated_memory else ""
            return Admission(False, "memory", f"{_mib(available)} available, floor {_mib(self.memory_floor)}{held}")
        if free < self.disk_floor + estimated_output:
            return Admission(
                False,
                "disk",
                f"{_mib(free)} free on {self.run_dir}, floor {_mib(self.disk_floor)} "
                f"+ {_mib(estimated_output)} for the next clip",
            )
        return Admission(True)

    def over_limit(self, pid: int) -> int | None:
        """Return the worker's resident memory if it passes the limit, else None."""
        if self.worker_limit is None:
            return None
        try:
            rss = psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return rss if rss > self.worker_limit else None

    @staticmethod
    def kill(pid: int) -> None:
        """Kill a worker at once (SIGKILL): the pool replaces it."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
