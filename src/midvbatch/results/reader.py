"""Read a run folder: its identity, its clips, its frames, where it stands, its report's figures.

The one reader of run folders (``status``, ``export`` and ``report`` read through it). It
opens the ledger read-only, as often and while the run goes on as one likes: the
orchestrator is the only writer. A folder we may not write (archived, shared) is read
from a private copy of its ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from midvbatch.config import RunConfig, load_toml
from midvbatch.engine.ledger import STATES, Ledger
from midvbatch.engine.progress import Snapshot
from midvbatch.errors import ConfigError, LedgerError, MidvBatchError
from midvbatch.results.figures import ReportFigures, compute_figures
from midvbatch.results.records import ClipResult, FrameResult, RunMeta, clip_kinds
from midvbatch.runfolder import CONFIG, read_marker


def _alive(owner: dict | None) -> bool:
    """Tell whether the orchestrator that recorded itself as `owner` still runs."""
    if not owner:
        return False
    try:
        proc = psutil.Process(owner["pid"])
        return abs(proc.create_time() - owner["create_time"]) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return False


class RunResults:
    """A run folder opened for reading. Use it as a context manager, or close() it.

    Every method reads the ledger as it is now: during a run, figures move on.
    Raises LedgerError (one line) if the ledger cannot be read.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir)
        if not self.path.is_dir():
            raise LedgerError("no such run folder", path=run_dir)
        self._ledger = Ledger(self.path, readonly=True)
        try:
            self.meta = self._read_meta()
            self._kind = clip_kinds(self.meta.format)
        except BaseException:
            self._ledger.close()
            raise

    def _read_meta(self) -> RunMeta:
        ledger = self._ledger
        try:
            marker = read_marker(self.path)
        except LedgerError:
            marker = None  # a damaged marker: its identity is unknown, the ledger is still readable
        run_id = ledger.get_meta("run_id") or (marker.run_id if marker else None)
        identity = ledger.get_meta("dataset_identity")
        fmt = identity.get("format") if isinstance(identity, dict) else None
        return RunMeta(
            str(self.path),
            run_id,
            ledger.get_meta("dataset"),
            ledger.get_meta("processor"),
            ledger.get_meta("fingerprint"),
            marker.created if marker else None,
            marker.version if marker else None,
            fmt if isinstance(fmt, str) else None,
        )

    # the run ---------------------------------------------------------------------------

    def config(self) -> RunConfig | None:
        """Return the run's configuration as it saved it (config.toml), None if it saved none.

        Not validated against this machine. Raises ConfigError if the file is damaged.
        """
        path = self.path / CONFIG
        if not path.is_file():
            return None
        try:
            return RunConfig(**load_toml(path))
        except TypeError as exc:
            raise ConfigError(str(exc), path=path) from None

    def counts(self) -> dict[str, int]:
        """Return the number of clips in each state (pending, running, done, failed, dead)."""
        return self._ledger.counts()

    def status(self) -> Snapshot:
        """Return where the run stands: live figures while its orchestrator lives, ledger counts otherwise.

        Clips left running by an orchestrator that died count as pending (a resume runs
        them again); the state is then 'interrupted', or 'finished' if nothing is left.
        """
        ledger = self._ledger
        counts = ledger.counts()
        live = ledger.get_meta("live") or {}
        errors = ledger.error_counts()
        running = _alive(ledger.get_meta("owner"))
        total = sum(counts.values())
        snap = Snapshot(
            state="finished", **{k: v for k, v in live.items() if k in Snapshot.__dataclass_fields__ and k != "state"}
        )
        snap.total = total
        snap.pending, snap.done, snap.failed, snap.dead = (
            counts["pending"],
            counts["done"],
            counts["failed"],
            counts["dead"],
        )
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

    # clips and frames ------------------------------------------------------------------

    def clips(self, states: str | Iterable[str] | None = None) -> Iterator[ClipResult]:
        """Yield the run's clips in queue order; only those in `states` ('done', or several) if given."""
        if isinstance(states, str):
            states = (states,)
        if states is not None:
            states = tuple(states)
            unknown = [s for s in states if s not in STATES]
            if unknown:
                raise LedgerError(f"unknown clip state {unknown[0]!r} (one of {', '.join(STATES)})")
        for row in self._ledger.clip_rows(states):
            yield ClipResult.from_row(row, self._kind(row["code"]))

    def clip(self, clip_id: str) -> ClipResult:
        """Return one clip by id; raise LedgerError if the run has no such clip."""
        for c in self.clips():
            if c.clip == clip_id:
                return c
        raise LedgerError(f"no clip {clip_id!r} in this run", path=self.path)

    def frames(self, clips: Iterable[str] | None = None, results: bool = True) -> Iterator[FrameResult]:
        """Yield the frames of every done clip (of `clips` only, when given), in queue order then frame order;
        without `results`, their processor's outputs are not read (``result`` None: the scores only, faster).

        Only done clips have frames: a clip's frames are recorded with its done mark.
        """
        for row in self._ledger.frame_results(clips):
            yield FrameResult.from_row(row, results)

    def figures(self, stops: Mapping[str, Sequence[float]] | None = None) -> ReportFigures:
        """Return the figures of the run's report: accuracy in every grouping, speed, worst clips; the video
        stream's stopping rules at the thresholds `stops` (rule -> thresholds; None: results.stopping's sweep)."""
        status = self.status()
        done = list(self.clips("done"))
        return compute_figures(str(self.path), self.meta, status, self.frames(), done, self.imported(), stops)

    def to_pandas(self, fields: bool = False) -> Any:
        """The run's results as a pandas DataFrame: one row per frame of its done clips, or with `fields` one per
        text field scored (columns: results.table.FRAME_COLUMNS, FIELD_COLUMNS; docs/api.md). Needs pandas
        (``pip install 'midvbatch[tables]'``)."""
        from midvbatch.results.table import to_pandas

        return to_pandas(self, fields)

    def dataset_identity(self) -> dict:
        """The dataset the run worked on as its ledger names it: ``path``, ``format``, ``fingerprint`` (of its clips
        and their files' sizes), ``clips``; an earlier midvbatch's run: its path only."""
        identity = self._ledger.get_meta("dataset_identity")
        return identity if isinstance(identity, dict) else {"path": self.meta.dataset}

    def imported(self) -> dict | None:
        """What a run of `midvbatch import` scored: the file it read (``source``, ``format``, ``sha256``); None
        for a run of a processor (or a configuration that cannot be read)."""
        if self.meta.processor != "replay":
            return None
        try:
            config = self.config()
        except MidvBatchError:
            return None
        options = config.options if config is not None else {}
        return {key: options.get(key) for key in ("source", "format", "sha256")}

    # lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the ledger (and drop its private copy, if one was made)."""
        self._ledger.close()

    def __enter__(self) -> RunResults:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunResults({str(self.path)!r})"


def open_run(run_dir: str | Path) -> RunResults:
    """Open a run folder for reading (read-only; also while the run goes on).

    Raises LedgerError if `run_dir` is not a run folder or its ledger cannot be read.
    """
    return RunResults(run_dir)


def recorded_dataset(run_dir: str | Path) -> str | None:
    """Return the dataset folder a run recorded, None when the run folder cannot be read (or recorded none)."""
    try:
        with open_run(run_dir) as run:
            return run.meta.dataset
    except MidvBatchError:
        return None
