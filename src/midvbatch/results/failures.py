"""What went wrong in a run: its failed and dead clips, read through the run folder's one reader."""

from __future__ import annotations

from pathlib import Path

from midvbatch.results.reader import open_run


def failures(run_dir: str | Path) -> list[dict]:
    """Return every failed or dead clip: attempts, error class, message, signal or exit code, stage, traceback tail."""
    with open_run(run_dir) as run:
        return [
            {
                "clip": c.clip,
                "document": c.document,
                "state": c.state,
                "attempts": c.attempts,
                "error_class": c.error_class,
                "error": c.error,
                "signal": c.signal,
                "exitcode": c.exitcode,
                "stage": c.stage,
                "not_before": c.not_before,
                "traceback": _tail(c.traceback),
            }
            for c in run.clips(("failed", "dead"))
        ]


def _tail(traceback: str | None, lines: int = 6) -> str | None:
    if not traceback:
        return None
    return "\n".join(traceback.rstrip().splitlines()[-lines:])
