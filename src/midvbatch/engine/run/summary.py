"""How a run ended: what `run()` returns and `midvbatch run --json` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from midvbatch.engine.progress import Snapshot


@dataclass
class RunSummary:
    """How a run ended."""

    run_dir: Path
    state: str  # finished | interrupted
    counts: dict[str, int]
    seconds: float
    exit_code: int
    snapshot: Snapshot | None = None

    @property
    def left(self) -> int:
        """Clips not done and not dead: pending, failed (to retry) or still running."""
        return self.counts["pending"] + self.counts["failed"] + self.counts["running"]

    def to_dict(self) -> dict:
        """Return a JSON-ready record (what `midvbatch run --json` prints)."""
        return {
            "run_dir": str(self.run_dir),
            "state": self.state,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "done": self.counts["done"],
            "dead": self.counts["dead"],
            "left": self.left,
            "counts": self.counts,
        }
