"""Whether a run folder's ledger may go on with this run: its run id, its configuration, its dataset.

Running the same command on the same run folder resumes it. Anything else that would
mix results (another configuration, another dataset, a ledger copied in from another
run folder) is refused with the way out, unless --restart discards the old results.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from midvbatch.config import RunConfig
from midvbatch.dataset.model import Clip
from midvbatch.engine.ledger import Ledger
from midvbatch.engine.run.artifacts import remove_artifacts
from midvbatch.errors import LedgerError


def identity_line(clip: Clip, size: int) -> str:
    """A clip's line of the dataset's fingerprint: its id, its video's name and size (`size`), its ground truth."""
    name = clip.video.name if clip.video is not None else ""
    return f"{clip.id}\t{name}\t{size}\t{len(clip.ground_truth)}\n"


def identity(root: str | Path, format: str, lines: Iterable[str], clips: int) -> dict:
    """The dataset a run works on: its absolute root (`root`), its format, and a fingerprint of the clips found
    and their files' sizes: their `lines` (identity_line) in the order of their ids (`clips` of them). A run
    reads them from its discovery's file (engine/run/discovery.py)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
    return {"path": str(Path(root).resolve()), "format": format, "fingerprint": digest.hexdigest()[:24], "clips": clips}


def prepare_ledger(
    ledger: Ledger,
    *,
    run_id: str,
    identity: dict,
    config: RunConfig,
    run_dir: Path,
    restart: bool,
    log: logging.Logger,
) -> None:
    """Check that the ledger may take this run (see the module), discard its results on `restart`, and record
    the run's id, configuration fingerprint and dataset."""
    stored_id = ledger.get_meta("run_id")
    if stored_id is not None and stored_id != run_id:
        raise LedgerError(
            "the ledger is not this run folder's own (its run id differs from midvbatch-run.json: "
            "copied in from another run?); use the run folder it came from",
            path=ledger.path,
        )
    counts = ledger.counts()
    stored = ledger.get_meta("fingerprint")
    if stored_id is None and any(counts.values()) and stored is None:
        raise LedgerError("the ledger holds tasks but no run configuration: not a midvbatch ledger", path=ledger.path)
    fingerprint = config.result_fingerprint()
    done = counts["done"]
    clips_done = f"{done} clip{'' if done == 1 else 's'} done"
    if stored is not None and stored != fingerprint and not restart:
        before = ledger.get_meta("processor", "?")
        raise LedgerError(
            f"this run folder holds results of another configuration (processor {before}, {clips_done}); "
            "give --restart to discard them, or choose another --out",
            path=run_dir,
        )
    if stored is not None and not restart:
        _check_dataset(ledger, identity, clips_done, run_dir, log)
    if restart and stored is not None:
        ledger.restart()  # no clip is done any more; then its files go; then their records
        removed = remove_artifacts(ledger, run_dir)
        ledger.forget_artifacts()
        log.warning("restart: previous results discarded (%d clips were done, %d artifacts removed)", done, removed)
    ledger.set_meta("run_id", run_id)
    ledger.set_meta("fingerprint", fingerprint)
    ledger.set_meta("processor", config.processor_spec())
    ledger.set_meta("dataset", identity["path"])
    ledger.set_meta("dataset_identity", identity)


def _check_dataset(ledger: Ledger, identity: dict, clips_done: str, run_dir: Path, log: logging.Logger) -> None:
    """Refuse results of another dataset, or of this one read as another format; a dataset moved is said."""
    before = ledger.get_meta("dataset_identity")
    if before is None and ledger.get_meta("dataset") is not None:  # a run of an earlier midvbatch: its path only
        before = {"path": ledger.get_meta("dataset"), "fingerprint": None}
    if before and before["path"] != identity["path"]:
        if before.get("fingerprint") != identity["fingerprint"]:
            raise LedgerError(
                f"this run folder holds results of the dataset {before['path']} ({clips_done}), not of "
                f"{identity['path']}: point at the original dataset, give --restart to discard those "
                "results, or choose another --out",
                path=run_dir,
            )
        log.warning(
            "the dataset moved from %s to %s (same clips, same file sizes): going on with it",
            before["path"],
            identity["path"],
        )
    before_format = (before or {}).get("format")
    if before_format and before_format != identity["format"]:
        raise LedgerError(
            f"this run folder holds results of {before['path']} read as dataset format {before_format} "
            f"({clips_done}), now read as {identity['format']}: give --catalog {before_format}, "
            "give --restart to discard those results, or choose another --out",
            path=run_dir,
        )
