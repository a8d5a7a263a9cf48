"""One orchestrator per run folder: an exclusive flock on RUN_DIR/lock.

The descriptor is close-on-exec and workers are spawned, not forked, so no worker holds
the lock; the kernel releases it when the orchestrator dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from midvbatch.errors import LedgerError
from midvbatch.runfolder import LOCK


class RunLock:
    """The exclusive lock of a run folder, held while the orchestrator lives."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LedgerError naming the process that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot take the run folder's lock: {exc.strerror or exc}", path=self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LedgerError(
                f"another midvbatch run (pid {holder}) is using this run folder; wait for it, or stop it with Ctrl-C",
                path=self.path.parent,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
