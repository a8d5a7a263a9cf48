"""A clip's artifacts: from its attempt's temporary folder to their names in the run folder, and back out.

midvbatch overwrites or deletes only the files it can prove it wrote: each artifact is
claimed in the ledger before it is moved, with its size and modification time after,
and a file that is not one of those, as midvbatch left it, is never touched.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

from midvbatch.engine.ledger import Ledger
from midvbatch.errors import ErrorClass, LedgerError, shortage
from midvbatch.fileio import write_atomic
from midvbatch.pipeline.prediction import valid_text
from midvbatch.pipeline.spec import ClipOutcome
from midvbatch.runfolder import is_artifact_path


class ArtifactClash(Exception):
    """An artifact would overwrite a file of the run folder that midvbatch did not write."""


def move_artifacts(tmp: Path, run_dir: Path, ledger: Ledger, task_id: int) -> tuple[int, list[tuple[str, int, int]]]:
    """Rename every file under tmp to the same relative path under run_dir.

    The destinations are claimed in the ledger first, so that a run killed between the
    renames and the clip's commit knows on resume that those files are its own. A
    destination that exists and was not written by midvbatch is never overwritten.
    Return (bytes moved, [(path, bytes, mtime_ns)]).
    """
    if not tmp.is_dir():
        return 0, []
    files = []
    for dirpath, _, filenames in os.walk(tmp):
        for name in filenames:
            src = Path(dirpath) / name
            relative = src.relative_to(tmp).as_posix()
            if valid_text(relative) != relative:  # a name of bytes that are not UTF-8: the ledger cannot record it
                raise ArtifactClash(f"an artifact's name is not valid UTF-8: {relative!r}")
            dest = run_dir / relative
            if dest.exists() or dest.is_symlink():
                _check_overwrite(ledger, task_id, relative, dest)
            files.append((src, relative, dest))
    ledger.claim_artifacts(task_id, [relative for _, relative, _ in files])
    moved, recorded = 0, []
    for src, relative, dest in files:
        dest.parent.mkdir(parents=True, exist_ok=True)
        st = src.stat()
        os.replace(src, dest)  # atomic: the final name holds a whole file or nothing
        moved += st.st_size
        recorded.append((relative, st.st_size, st.st_mtime_ns))
    return moved, recorded


def write_returned(tmp: Path, files: dict[str, bytes]) -> None:
    """Write the artifacts a Dask worker sent back (--artifacts return) into an attempt's folder, each to a
    temporary name then renamed, as workers on a shared run folder would have written them."""
    for relative, data in files.items():
        if not is_artifact_path(relative):  # (the worker's ClipInfo.artifact checked it: the same rule, here too)
            raise ArtifactClash(f"a worker returned an artifact outside the run folder: {relative!r}")
        dest = tmp / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data)


def _as_written(st: os.stat_result, size: int, mtime_ns: int | None) -> bool:
    """True if a file's stat shows it as midvbatch recorded it (same size and modification time)."""
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


def _check_overwrite(ledger: Ledger, task_id: int, relative: str, dest: Path) -> None:
    """Raise ArtifactClash unless `dest` is this task's own artifact, as midvbatch left it."""
    record = ledger.artifact_record(relative)
    if record is None:
        raise ArtifactClash(
            f"its artifact {relative} would overwrite a file midvbatch did not write ({dest}); "
            "move that file away, then retry the clip"
        )
    owner, size, mtime = record
    if owner != task_id:
        raise ArtifactClash(
            f"its artifact {relative} would overwrite the same file of another clip "
            f"(task {owner}): artifact names must differ between clips"
        )
    if size is not None and not _as_written(dest.lstat(), size, mtime):
        raise ArtifactClash(
            f"its artifact {relative} was changed since midvbatch wrote it ({dest}); "
            "move that file away, then retry the clip"
        )


def remove_artifacts(ledger: Ledger, run_dir: Path) -> int:
    """Delete the artifacts the ledger records, only where the file is still the one midvbatch wrote; return how many."""
    removed = 0
    folders: set[Path] = set()
    for relative, size, mtime in ledger.artifacts():
        path = run_dir / relative
        try:
            st = path.lstat()
        except OSError:
            continue
        if size is not None and not _as_written(st, size, mtime):
            continue  # replaced since: not ours any more
        try:
            path.unlink()
            removed += 1
        except OSError:
            continue
        folders.update(p for p in path.parents if run_dir in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # only when empty: a user's file keeps its folder
        except OSError:
            pass
    return removed


def place(outcome: ClipOutcome, tmp: Path, run_dir: Path, ledger: Ledger) -> tuple[ClipOutcome, int, list]:
    """Move a successful clip's artifacts from its attempt folder `tmp` into the run folder (before its results
    are committed); return (its outcome, bytes moved, [(path, bytes, mtime_ns)]).

    A clash with a file midvbatch did not write, or a move that fails, turns the outcome
    into a failure of that clip (class permanent; resources when out of descriptors); a
    full disk raises LedgerError: the run stops.
    """
    try:
        write_returned(tmp, outcome.artifacts)
        moved, recorded = move_artifacts(tmp, run_dir, ledger, outcome.task_id)
    except ArtifactClash as exc:
        return _failed(outcome, ErrorClass.PERMANENT, str(exc)), 0, []
    except OSError as exc:  # e.g. a file where an artifact needs a folder: this clip's problem
        short = shortage(exc)
        if short is not None:  # out of descriptors (ulimit -n): the machine's state, retried
            error = f"cannot move its artifacts into the run folder: out of {short} ({exc.strerror})"
            return _failed(outcome, ErrorClass.RESOURCES, error), 0, []
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LedgerError(
                f"the disk is full ({exc.strerror}); the run stopped cleanly: free some "
                "space, then run the same command again to resume",
                path=run_dir,
            ) from None
        return _failed(outcome, ErrorClass.PERMANENT, f"cannot move its artifacts into the run folder: {exc}"), 0, []
    return outcome, moved, recorded


def _failed(outcome: ClipOutcome, error_class: str, error: str) -> ClipOutcome:
    return replace(outcome, ok=False, error_class=error_class, stage="artifacts", error=error)
