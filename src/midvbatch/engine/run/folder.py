"""The run folder as a run holds it: claimed under its lock, marked, and its attempts' temporary folders.

midvbatch deletes or overwrites only what it can prove it created: a folder that is not
empty and holds no run marker is refused before anything is written in it, and the
only temporary folders removed are TASK-ATTEMPT-SESSION ones, which only midvbatch makes.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import psutil

from midvbatch.engine.ledger import check_written_by_midvbatch
from midvbatch.engine.lock import RunLock
from midvbatch.errors import LedgerError
from midvbatch.runfolder import TMP, has_lock_file, kind_of_folder, read_marker, write_marker

_ATTEMPT_FOLDER = re.compile(r"^\d+-\d+(-[0-9a-f]+)?$")  # TASK-ATTEMPT-SESSION


def owner() -> dict:
    """This process as the ledger's `owner` meta names it: pid, start time, host."""
    proc = psutil.Process()
    return {"pid": proc.pid, "create_time": proc.create_time(), "host": os.uname().nodename}


class RunFolder:
    """A run's folder: `claim()` it, then name its attempts' folders (this session's own)."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path / TMP
        self.session = uuid.uuid4().hex[:8]  # this orchestrator's mark on its attempt folders
        self.run_id = ""

    def claim(self) -> RunLock:
        """Make sure the folder is ours, take its lock, and mark it; return the lock (self.run_id is set).

        A folder with a lock file is judged under its lock only, and the marker is written
        under the lock: of two runs started at once on one folder, whatever the moment they
        meet (one making the folder, taking the lock, writing the marker or the ledger), one
        runs and the other is told that another run (its pid) is using it.
        """
        foreign = kind_of_folder(self.path) == "foreign"
        if foreign and not has_lock_file(self.path):
            raise self._foreign()
        try:
            self.path.mkdir(parents=True, exist_ok=True)  # (another run may make it at the same moment)
        except PermissionError as exc:
            raise LedgerError(f"cannot write the run folder: {exc.strerror or exc}", path=self.path) from None
        except OSError as exc:
            raise LedgerError(f"cannot create the run folder: {exc.strerror or exc}", path=self.path) from None
        lock = RunLock(self.path)
        # the lock file gets this run's pid once the folder is marked
        lock.acquire(check=lambda: self._mark(untouched=foreign))
        return lock

    def _foreign(self, untouched: bool = True) -> LedgerError:
        """The refusal of a folder that is not a run folder; `untouched`: found so before this run made
        anything in it (a file of the user's named lock is opened and locked, never written)."""
        if untouched:
            return LedgerError(
                "exists, is not empty and is not a midvbatch run folder (no midvbatch-run.json); "
                "give --out a new or empty folder: nothing here was touched",
                path=self.path,
            )
        return LedgerError(
            "is not a midvbatch run folder (files appeared in it as the run started); give --out a new or empty folder",
            path=self.path,
        )

    def _mark(self, untouched: bool) -> None:
        """Judge the locked folder again, now that it is ours alone, and set self.run_id: its marker's, or a new
        one's if it has none yet. `untouched`: see _foreign."""
        kind = kind_of_folder(self.path)
        if kind == "foreign":
            raise self._foreign(untouched)
        if kind == "run":
            marker = read_marker(self.path)
            assert marker is not None
            self.run_id = marker.run_id
            return
        if kind == "legacy":  # a run folder of an earlier midvbatch: adopt it if its ledger is one
            check_written_by_midvbatch(self.path)
        try:
            self.run_id = write_marker(self.path).run_id
        except OSError as exc:
            raise LedgerError(f"cannot write the run folder: {exc.strerror or exc}", path=self.path) from None

    def attempt_dir(self, task_id: int, attempt: int) -> Path:
        """An attempt's folder: tmp/TASK-ATTEMPT-SESSION.

        The session part makes it this orchestrator's own: a worker of a killed one that
        still writes into its folder cannot mix its files into this attempt's.
        """
        return self.tmp / f"{task_id}-{attempt}-{self.session}"

    def remove_attempt(self, task_id: int, attempt: int) -> None:
        """Remove an attempt's folder and what is left in it."""
        path = self.attempt_dir(task_id, attempt)
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)

    def clear_tmp(self) -> None:
        """Remove what attempts left in tmp/ (folders TASK-ATTEMPT-SESSION, which only midvbatch writes)."""
        if not self.tmp.is_dir() or self.tmp.is_symlink():
            return
        for entry in os.scandir(self.tmp):
            if _ATTEMPT_FOLDER.match(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
