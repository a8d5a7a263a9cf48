"""The computer a run's options are checked against: its cores, its memory, the run folder's disk."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


def cpu_cores() -> int:
    """Return the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class Machine:
    """What the computer can honour: cores, total memory and the run folder's disk size, in bytes."""

    cores: int
    memory: int
    disk: int | None = None  # None: unknown (the disk floor is checked against the run's own reading)

    @classmethod
    def current(cls, path: str | Path | None = None) -> Machine:
        """Read this machine; `disk` is the size of the filesystem that holds (or will hold) `path`."""
        import psutil  # here, not at import time: the CLI imports this package for its bounds

        return cls(cpu_cores(), psutil.virtual_memory().total, disk_size(path) if path else None)


def disk_size(path: str | Path) -> int | None:
    """Return the size of the filesystem of `path` or of its nearest existing parent, None if unreadable."""
    try:
        where = Path(path).absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        return shutil.disk_usage(where).total
    except (OSError, ValueError, TypeError):
        return None
