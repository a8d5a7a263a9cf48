"""One orchestrator per run folder: an exclusive flock on RUN_DIR/lock.

The descriptor is close-on-exec and workers are spawned, not forked, so no worker holds
the lock; the kernel releases it when the orchestrator dies, however it dies.

The holder writes its pid into the lock file, but only once it has taken the lock and
judged the folder; a run refused the lock names the holder as the kernel knows it
(``/proc/locks``), so that the pid is the holder's even in the moment between another
run's taking the lock and writing its pid (or while the file still holds a dead run's).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from midvbatch.errors import LedgerError
from midvbatch.runfolder import LOCK

_STAMP_WAIT = 1.0  # seconds to wait for a holder's pid where /proc/locks cannot say it


class RunLock:
    """The exclusive lock of a run folder, held while the orchestrator lives."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self, check: Callable[[], None] | None = None) -> None:
        """Take the lock, run `check`, then write this process's pid into the lock file.

        Raises LedgerError naming the process that holds the lock. What `check` raises
        releases the lock, the file left as it was (a folder found not to be a run
        folder is not written in).
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise LedgerError(f"cannot take the run folder's lock: {exc.strerror or exc}", path=self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LedgerError(
                f"another midvbatch run (pid {holder}) is using this run folder; wait for it, or stop it with Ctrl-C",
                path=self.path.parent,
            ) from None
        try:
            if check is not None:
                check()
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
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


def _holder(fd: int) -> str:
    """Return the pid of the process holding the flock on `fd`'s file, '?' if it cannot be told."""
    st = os.fstat(fd)
    pid = _kernel_holder(st.st_dev, st.st_ino)
    if pid is not None:
        return pid
    # No /proc/locks (or a file system it does not show): the pid the holder wrote, once it is a live one.
    deadline = time.monotonic() + _STAMP_WAIT
    while True:
        stamp = os.pread(fd, 32, 0).decode(errors="replace")
        if (
            stamp.endswith("\n")
            and stamp.strip().isascii()
            and stamp.strip().isdecimal()
            and _alive(int(stamp))
            and int(stamp) > 0
        ):
            return stamp.strip()
        if time.monotonic() > deadline:
            return stamp.strip() or "?"
        time.sleep(0.02)


def _kernel_holder(dev: int, ino: int) -> str | None:
    """The pid /proc/locks gives for the flock on file (dev, ino); None where it has no such line."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    for line in lines:
        # "3: FLOCK  ADVISORY  WRITE 1234 fe:00:5308636 0 EOF"; a waiter's line reads "3: -> FLOCK ..."
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if int(inode) == ino and os.makedev(int(major, 16), int(minor, 16)) == dev:
                return fields[4]
        except ValueError:
            continue
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    except (OverflowError, OSError):
        return False
    return True
