"""The run's floors of memory and disk, and the worker memory limit, with the readings they are held to.

The run's policy (engine/run/state.py) compares the readings with the floors: below
one, no clip starts and the run waits.

Readings are injectable functions so that pauses are tested deterministically: a
:class:`Resources` takes ``memory_reading() -> (available, total)`` and
``disk_reading(path) -> (free, total)``, by default psutil's and shutil's.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
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


READING_INTERVAL = 0.05  # seconds a memory or disk reading is used before it is taken again


class Resources:
    """Memory and disk floors of a run, the worker memory limit, and the readings of memory and disk.

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

    def read(self) -> tuple[int, int]:
        """Return (bytes of memory available, bytes free on the run folder's disk), read at most every
        READING_INTERVAL (a reading costs more than dispatching a clip). Raises LedgerError when the run
        folder's disk cannot be read (the folder moved or deleted)."""
        now = time.monotonic()
        if now - self._read_at >= READING_INTERVAL:
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
        return self._memory, self._disk
