"""Where a run stands, read from its ledger: during the run, from another shell, or after it."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from midvbatch.engine.ledger import Ledger
from midvbatch.engine.progress import Snapshot
from midvbatch.errors import LedgerError


def _alive(owner: dict | None) -> bool:
    if not owner:
        return False
    try:
        proc = psutil.Process(owner["pid"])
        return abs(proc.create_time() - owner["create_time"]) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return False


def run_status(run_dir: str | Path) -> Snapshot:
    """Return the run's snapshot: live figures while its orchestrator lives, ledger counts otherwise.

    Raises LedgerError if `run_dir` is not a run folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LedgerError("no such run folder", path=run_dir)
    ledger = Ledger(run_dir, readonly=True)
    try:
        counts = ledger.counts()
        live = ledger.get_meta("live") or {}
        errors = ledger.error_counts()
        running = _alive(ledger.get_meta("owner"))
    finally:
        ledger.close()
    total = sum(counts.values())
    snap = Snapshot(state="finished", **{k: v for k, v in live.items() if k in Snapshot.__dataclass_fields__ and k != "state"})
    snap.total = total
    snap.pending, snap.done, snap.failed, snap.dead = counts["pending"], counts["done"], counts["failed"], counts["dead"]
    snap.errors = errors
    snap.percent = round(100.0 * (counts["done"] + counts["dead"]) / total, 2) if total else 100.0
    if running:
        snap.state = "paused" if live.get("paused_reason") else "running"
        snap.running = counts["running"]
        # the live ETA was computed at updated_at; count the time since
        if snap.eta_seconds is not None and snap.updated_at:
            snap.eta_seconds = max(0.0, snap.eta_seconds - (time.time() - snap.updated_at))
    else:
        snap.running = 0
        snap.pending += counts["running"]  # left running by a dead orchestrator: pending on resume
        snap.workers = []
        snap.paused_reason = None
        unfinished = snap.pending + counts["failed"]
        snap.state = "interrupted" if unfinished else "finished"
        snap.eta_seconds = 0.0 if not unfinished else None
        snap.pid = None
    return snap
