"""The run folder: the names of its own files, and the marker that proves midvbatch made it.

midvbatch deletes or overwrites only what it can prove it created. A run folder proves
itself by its marker, ``midvbatch-run.json``, holding the run's identity (a random id,
also stored in the ledger): ``run`` refuses an existing non-empty folder without one, and
readers refuse a ledger whose id is not the marker's (a ledger copied or swapped in).
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from midvbatch.errors import LedgerError
from midvbatch.fileio import is_temporary_of, parse_json, read_bytes, write_atomic

MARKER = "midvbatch-run.json"
LEDGER = "ledger.sqlite"
CONFIG = "config.toml"
LOCK = "lock"
LOGS = "logs"
TMP = "tmp"
RUN_LOG = "run.jsonl"
IMPORTED = "imported"  # the predictions `midvbatch import` read, clip by clip, for the run that scores them
REPORT_CACHE = "report-cache"  # the HTML report's drill-down thumbnails, kept for the next report
OUTPUTS = "outputs.json"  # the files report and export wrote from this run: the only ones they replace unasked
# the run folder's own files and folders: no artifact and no output may take these names
RESERVED = (
    MARKER,
    LEDGER,
    f"{LEDGER}-wal",
    f"{LEDGER}-shm",
    f"{LEDGER}-journal",
    CONFIG,
    LOCK,
    LOGS,
    TMP,
    OUTPUTS,
    IMPORTED,
)
OUTPUTS_KEPT = 1000  # outputs remembered per run (the newest)


@dataclass(frozen=True)
class Marker:
    """The identity of a run folder."""

    run_id: str
    created: float
    version: str

    def to_dict(self) -> dict:
        """Return the marker as JSON-ready data."""
        return {"midvbatch_run": self.run_id, "created": self.created, "version": self.version}


def read_marker(run_dir: str | Path) -> Marker | None:
    """Return the run folder's marker, None if it has none; raise LedgerError if it is damaged."""
    path = Path(run_dir) / MARKER
    if not path.exists() and not path.is_symlink():
        return None
    data = parse_json(read_bytes(path, 1 << 16, LedgerError, "a run marker"), path, LedgerError)
    if not isinstance(data, dict) or not isinstance(data.get("midvbatch_run"), str):
        raise LedgerError("damaged run marker (no midvbatch_run id)", path=path)
    created = data.get("created")
    return Marker(
        data["midvbatch_run"],
        float(created) if isinstance(created, (int, float)) else 0.0,
        str(data.get("version", "")),
    )


def write_marker(run_dir: str | Path) -> Marker:
    """Mark `run_dir` as a run folder with a new identity; return it."""
    from midvbatch.version import __version__

    marker = Marker(uuid.uuid4().hex, time.time(), __version__)
    write_atomic(Path(run_dir) / MARKER, json.dumps(marker.to_dict(), indent=1) + "\n")
    return marker


def kind_of_folder(run_dir: str | Path) -> str:
    """Say what `run_dir` is: 'missing', 'empty', 'run' (has a marker), 'legacy' (a run folder of a
    midvbatch that wrote no marker: ledger and config, nothing foreign), or 'foreign'.

    Raises LedgerError if it is not a folder or cannot be listed.
    """
    path = Path(run_dir)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        raise LedgerError("not a folder", path=path)
    try:
        names = {name for name in os.listdir(path) if not is_temporary_of(name, MARKER)}  # a marker on its way in
    except OSError as exc:
        raise LedgerError(f"cannot list the folder: {exc.strerror or exc}", path=path) from None
    if not names or names == {LOCK}:  # (the lock alone: a run that took it and stopped before its marker)
        return "empty"
    if MARKER in names:
        return "run"
    if LEDGER in names and CONFIG in names:
        return "legacy"
    return "foreign"


def has_lock_file(run_dir: str | Path) -> bool:
    """True if the folder holds a lock file (a regular file): a run took the folder, or is taking it now.

    Such a folder is judged only under its lock: what it holds may be another run's
    marker half-written.
    """
    try:
        return stat.S_ISREG(os.lstat(Path(run_dir) / LOCK).st_mode)
    except OSError:
        return False


def is_reserved(relative: str | Path) -> bool:
    """True if a path relative to a run folder names one of the run folder's own files."""
    parts = Path(relative).parts
    return bool(parts) and (parts[0] in RESERVED or parts[0].startswith(LEDGER))


def is_artifact_path(relative: str | Path) -> bool:
    """True if `relative` may name an artifact: relative, inside the run folder, not one of its own files."""
    rel = Path(relative)
    return bool(rel.parts) and not rel.is_absolute() and ".." not in rel.parts and not is_reserved(rel)


def run_folder_of(path: str | Path) -> Path | None:
    """Return the run folder that holds `path` (the nearest folder above it with a marker), or None."""
    here = Path(os.path.abspath(path)).parent
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file() or (folder / LEDGER).is_file() and (folder / CONFIG).is_file():
            return folder
    return None


def check_output_path(out: str | Path) -> Path:
    """Refuse an output file that would overwrite a run folder's own files or a folder; return it absolute.

    Raises LedgerError naming the path.
    """
    target = Path(os.path.abspath(out))
    if target.is_dir():
        raise LedgerError("is a folder; give a file name for the output", path=out)
    folder = run_folder_of(target)
    if folder is not None:
        relative = target.relative_to(folder)
        if is_reserved(relative):
            raise LedgerError(
                f"is one of the run folder's own files ({relative.parts[0]}); write the output elsewhere", path=out
            )
    return target


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _written_outputs(run_dir: str | Path) -> dict[str, list[int]]:
    """The outputs recorded in `run_dir` (path -> identity); empty when none or unreadable."""
    try:
        data = parse_json(
            read_bytes(Path(run_dir) / OUTPUTS, 1 << 20, LedgerError, "a list of outputs"),
            Path(run_dir) / OUTPUTS,
            LedgerError,
        )
    except LedgerError:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
        return {}
    return {k: v for k, v in data["outputs"].items() if isinstance(v, list) and len(v) == 4}


def _inside(target: Path, folder: str | Path) -> bool:
    """True if `target` (absolute) lies in `folder`, links resolved on both sides."""
    real = Path(os.path.realpath(target.parent)) / target.name
    try:
        real.relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


def claim_output(
    out: str | Path, run_dir: str | Path, *, force: bool = False, dataset: str | Path | None = None
) -> Path:
    """Check that report or export of `run_dir` may write `out`; return it absolute.

    midvbatch replaces only what it can prove it wrote: an existing file at `out` is
    refused unless this run's report or export wrote it and nobody changed it since (its
    device, inode, size and modification time are recorded, see :func:`record_output`),
    or `force`. A FIFO or device (/dev/stdout) is written into, never replaced, and so is
    allowed. A path inside the run's `dataset` is refused even with `force`, and so are the
    run folder's own files. Raises LedgerError naming the path.
    """
    target = check_output_path(out)
    if dataset is not None and _inside(target, dataset):
        raise LedgerError(
            f"is inside the run's dataset ({dataset}): midvbatch never writes there, even with --force; "
            "write the output elsewhere",
            path=out,
        )
    if force or not os.path.lexists(target):
        return target
    try:
        st = os.stat(target)
    except OSError:
        st = None  # a dangling link: replacing it loses the link
    if st is not None and not stat.S_ISREG(st.st_mode):
        return target  # a FIFO, a device: written into as it is
    if st is not None and not target.is_symlink() and _written_outputs(run_dir).get(str(target)) == _identity(st):
        return target
    raise LedgerError(
        "already exists and was not written by a report or export of this run: give --force to replace it, "
        "or another --out",
        path=out,
    )


def record_output(run_dir: str | Path, written: str | Path) -> None:
    """Remember in `run_dir` that report or export wrote the regular file `written` (see claim_output).

    Best effort: a run folder that cannot be written (read-only media) records nothing,
    and the next write over that file asks for --force.
    """
    target = Path(os.path.abspath(written))
    try:
        st = os.stat(target)
        if not stat.S_ISREG(st.st_mode) or kind_of_folder(run_dir) != "run":
            return
        outputs = _written_outputs(run_dir)
        outputs.pop(str(target), None)
        outputs[str(target)] = _identity(st)
        kept = dict(list(outputs.items())[-OUTPUTS_KEPT:])
        write_atomic(Path(run_dir) / OUTPUTS, json.dumps({"version": 1, "outputs": kept}, indent=1) + "\n")
    except (OSError, LedgerError):
        return
