"""Where a run stands, read from its ledger: during the run, from another shell, or after it."""

from __future__ import annotations

from pathlib import Path

from midvbatch.engine.progress import Snapshot
from midvbatch.results.reader import open_run


def run_status(run_dir: str | Path) -> Snapshot:
    """Return the run's snapshot: live figures while its orchestrator lives, ledger counts otherwise.

    Raises LedgerError if `run_dir` is not a run folder. (RunResults.status() does the work.)
    """
    with open_run(run_dir) as run:
        return run.status()
