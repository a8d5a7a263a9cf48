"""The orchestrator: put every selected clip of a dataset through a processor, durably.

The orchestrator alone writes the ledger and the screen. Each clip is one task of the
ledger (a worker may be handed a few at a time: see _plan_tasks); its
results and its ``done`` mark are committed in one transaction, after its artifacts
were moved from a temporary folder to their final names. Running the same command on
the same run folder resumes: done clips are never run again, clips that were in flight
when the previous orchestrator died are run again.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from midvbatch.config import MAX_RETRY_WAIT, RunConfig
from midvbatch.dataset.formats import discover
from midvbatch.dataset.model import ERROR, Clip, FrameRule, Problem
from midvbatch.engine.executor import Executor, kill_group
from midvbatch.engine.ledger import Completion, Ledger, NewTask, TaskRow
from midvbatch.engine.lock import RunLock
from midvbatch.engine.pools import check_pool, make_executor
from midvbatch.engine.progress import NoProgress, RateMeter, RunProgress, Snapshot, estimate_eta
from midvbatch.engine.resources import DiskReading, MemoryReading, Resources, disk_space, system_memory
from midvbatch.engine.runlog import close_run_log, flush_run_log, open_run_log
from midvbatch.engine.scheduler import plan
from midvbatch.engine.shortage import Shortages, resource_named
from midvbatch.errors import EXIT_INTERRUPTED, ConfigError, DatasetError, LedgerError, shortage
from midvbatch.fileio import write_atomic
from midvbatch.pipeline.clip import ClipOutcome, TaskSpec
from midvbatch.pipeline.prediction import valid_text
from midvbatch.runfolder import (
    CONFIG,
    LOGS,
    TMP,
    has_lock_file,
    is_artifact_path,
    kind_of_folder,
    read_marker,
    write_marker,
)

SNAPSHOT_INTERVAL = 0.5  # seconds between stored snapshots
DISPATCH_DEPTH = 2  # tasks submitted per worker: one running, the next waiting in the pool
# with read-ahead or batches across clips a worker is handed clips a few at a time, a task of about
# TASK_FRAMES annotated frames (4 MIDV-500 clips), at most MAX_TASK_CLIPS clips
TASK_FRAMES = 120
MAX_TASK_CLIPS = 64
SHORT_CLIP_DEPTH = 8  # ... when clips take less than SHORT_CLIP_SECONDS: the pool's own latency then matters
SHORT_CLIP_SECONDS = 0.05
GATHER_SECONDS = 0.002  # extra wait for more finished clips while workers have queued ones
CHECK_CHUNK = 2000  # clips checked, and their findings held, at a time
WATCH_INTERVAL = 0.2  # seconds between checks of the workers' memory
DEVICE_WATCH_INTERVAL = 1.0  # seconds between readings of the devices' memory (a driver tool run)
PERMANENT = ("permanent",)
MAX_NOTES = 10  # notes of a done clip (fields left unscored) logged one by one; the rest counted


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


@dataclass
class _InFlight:
    row: TaskRow
    attempt: int
    started: float
    group: tuple[int, ...] = ()  # the clips of its task, itself included (one: a task of one clip)
    stage: str = "queued"
    worker: int | str | None = None  # a local worker process's pid, or a Dask worker's address
    running_since: float | None = None  # time.monotonic() of its first stage: its worker took it up
    killed: tuple[str, str] | None = None  # (class, reason) of the orchestrator killing its worker: memory, timeout

    @property
    def active(self) -> bool:
        """Its worker is on it now: taken up and not finished."""
        return self.stage not in ("queued", "finished")


class _Stop:
    """Ctrl-C once: finish what is in flight, dispatch nothing new. Twice (or SIGTERM): stop now.

    The run also stops itself (finishing what is in flight) when --max-failures clips are
    dead or the disk is full with --on-disk-full stop; `reason` says which.
    """

    def __init__(self) -> None:
        self.requested = False
        self.now = False
        self.reason: str | None = None  # "signal" | "max-failures" | "disk"

    def handle(self, signum, _frame) -> None:
        if self.requested or signum == signal.SIGTERM:
            self.now = True
        self.requested = True
        self.reason = "signal"

    def request(self, reason: str, over: bool = False) -> None:
        """Stop after the clips in flight, for `reason`; `over`: this reason replaces one given before."""
        if not self.requested or over:
            self.requested, self.reason = True, reason


def _owner() -> dict:
    proc = psutil.Process()
    return {"pid": proc.pid, "create_time": proc.create_time(), "host": os.uname().nodename}


def _tmp_root(run_dir: Path) -> Path:
    return run_dir / TMP


_ATTEMPT_FOLDER = re.compile(r"^\d+-\d+(-[0-9a-f]+)?$")  # TASK-ATTEMPT-SESSION


def _clear_tmp(run_dir: Path) -> None:
    """Remove what attempts left in RUN_DIR/tmp (folders TASK-ATTEMPT-SESSION, which only midvbatch writes)."""
    tmp = _tmp_root(run_dir)
    if not tmp.is_dir() or tmp.is_symlink():
        return
    for entry in os.scandir(tmp):
        if _ATTEMPT_FOLDER.match(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


class ArtifactClash(Exception):
    """An artifact would overwrite a file of the run folder that midvbatch did not write."""


def _move_artifacts(tmp: Path, run_dir: Path, ledger: Ledger, task_id: int) -> tuple[int, list[tuple[str, int, int]]]:
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


def _write_returned(tmp: Path, files: dict[str, bytes]) -> None:
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


def _remove_artifacts(ledger: Ledger, run_dir: Path) -> int:
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


def _dataset_identity(dataset) -> dict:
    """The dataset a run works on: its absolute root, its format, and a fingerprint of the clips found and their files' sizes."""
    digest = hashlib.sha256()
    for clip in sorted(dataset.clips, key=lambda c: c.id):
        try:
            size = clip.video.stat().st_size if clip.video is not None else -1
        except OSError:
            size = -1
        name = clip.video.name if clip.video is not None else ""
        digest.update(f"{clip.id}\t{name}\t{size}\t{len(clip.ground_truth)}\n".encode())
    return {
        "path": str(Path(dataset.root).resolve()),
        "format": dataset.format,
        "fingerprint": digest.hexdigest()[:24],
        "clips": len(dataset.clips),
    }


def retry_delay(attempt: int, base: float) -> float:
    """Seconds to wait before retrying after failed attempt `attempt`: base * 2^(attempt-1), +-20% jitter, at most an hour."""
    return min(MAX_RETRY_WAIT, base * (2 ** min(attempt - 1, 64)) * random.uniform(0.8, 1.2))


class Orchestrator:
    """One run of a configuration over a run folder. Use :func:`run`."""

    def __init__(
        self,
        config: RunConfig,
        *,
        restart: bool = False,
        progress: RunProgress | None = None,
        log_handler: logging.Handler | None = None,
        clock: Callable[[], float] = time.time,
        install_signals: bool = True,
        memory_reading: MemoryReading = system_memory,
        disk_reading: DiskReading = disk_space,
    ):
        self.config = config  # the options as asked: saved as config.toml, fingerprinted
        self.settings = config.resolved()  # the options as values (resolved once, in run()): what the engine reads
        self.restart = restart
        self.progress = progress if progress is not None else NoProgress()
        self.log_handler = log_handler
        self.clock = clock
        self.install_signals = install_signals and threading.current_thread() is threading.main_thread()
        self.run_dir = Path(os.path.abspath(config.out))
        self.working_dir = os.getcwd()  # where MODULE of --processor MODULE:FACTORY was found
        self.session = uuid.uuid4().hex[:8]  # this orchestrator's mark on its attempt folders
        self.stop = _Stop()
        self.in_flight: dict[int, _InFlight] = {}
        self.clips: dict[str, Clip] = {}
        self.meter = RateMeter()
        self._last_snapshot = 0.0
        self._last_watch = 0.0
        self._last_device_watch = 0.0
        self.memory_reading, self.disk_reading = memory_reading, disk_reading
        self.paused: str | None = None
        self._withdrawn = False  # queued clips withdrawn after a stop was asked
        self.dead_this_run = 0  # clips that died in this session, for --max-failures
        self._templates: dict[str, tuple[int, int]] = {}
        self.template_images: dict[str, Path] = {}
        self.findings: list[Problem] = []  # discovery's: links not followed, second copies, clips set aside
        self.output_bytes = 0  # artifacts moved into place, to estimate the next clip's
        self.output_clips = 0
        self._executor: Executor | None = None
        self._clip_seconds = 1.0  # moving average of the clips' wall time, for the dispatch depth
        self.task_clips = 1  # clips per task (see _plan_tasks)
        self.frames_held = 0  # bytes of frames a worker holds beyond one: its read-ahead and batch
        self.shortages = Shortages(1, self.settings.decode_threads, resizable=False)  # (for its executor: run())

    # set-up ------------------------------------------------------------------------------

    def _claim_folder(self) -> RunLock:
        """Make sure RUN_DIR is ours, take its lock, and mark it; return the lock (self.run_id is set).

        An existing folder that is not empty and holds no run marker is refused, before
        anything is written in it: midvbatch deletes or overwrites only what it can prove it
        created. A folder with a lock file is judged under its lock only, and the marker is
        written under the lock: of two runs started at once on one folder, whatever the
        moment they meet (one making the folder, taking the lock, writing the marker or
        the ledger), one runs and the other is told that another run (its pid) is using it.
        """
        foreign = kind_of_folder(self.run_dir) == "foreign"
        if foreign and not has_lock_file(self.run_dir):
            raise self._foreign()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)  # (another run may make it at the same moment)
        except PermissionError as exc:
            raise LedgerError(f"cannot write the run folder: {exc.strerror or exc}", path=self.run_dir) from None
        except OSError as exc:
            raise LedgerError(f"cannot create the run folder: {exc.strerror or exc}", path=self.run_dir) from None
        lock = RunLock(self.run_dir)
        # the lock file gets this run's pid once the folder is marked
        lock.acquire(check=lambda: self._mark_folder(untouched=foreign))
        return lock

    def _foreign(self, untouched: bool = True) -> LedgerError:
        """The refusal of a folder that is not a run folder; `untouched`: found so before this run made
        anything in it (a file of the user's named lock is opened and locked, never written)."""
        if untouched:
            return LedgerError(
                "exists, is not empty and is not a midvbatch run folder (no midvbatch-run.json); "
                "give --out a new or empty folder: nothing here was touched",
                path=self.run_dir,
            )
        return LedgerError(
            "is not a midvbatch run folder (files appeared in it as the run started); give --out a new or empty folder",
            path=self.run_dir,
        )

    def _mark_folder(self, untouched: bool) -> None:
        """Judge the locked run folder again, now that it is ours alone, and set self.run_id: its
        marker's, or a new one's if it has none yet. `untouched`: see _foreign."""
        kind = kind_of_folder(self.run_dir)
        if kind == "foreign":
            raise self._foreign(untouched)
        if kind == "run":
            marker = read_marker(self.run_dir)
            assert marker is not None
            self.run_id = marker.run_id
            return
        if kind == "legacy":  # a run folder of an earlier midvbatch: adopt it if its ledger is one
            Ledger.check_written_by_midvbatch(self.run_dir)
        try:
            self.run_id = write_marker(self.run_dir).run_id
        except OSError as exc:
            raise LedgerError(f"cannot write the run folder: {exc.strerror or exc}", path=self.run_dir) from None

    def _prepare_ledger(self, ledger: Ledger, run_id: str, dataset_identity: dict) -> None:
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
            raise LedgerError(
                "the ledger holds tasks but no run configuration: not a midvbatch ledger", path=ledger.path
            )
        fingerprint = self.config.result_fingerprint()
        done = counts["done"]
        clips_done = f"{done} clip{'' if done == 1 else 's'} done"
        if stored is not None and stored != fingerprint and not self.restart:
            before = ledger.get_meta("processor", "?")
            raise LedgerError(
                f"this run folder holds results of another configuration (processor {before}, {clips_done}); "
                "give --restart to discard them, or choose another --out",
                path=self.run_dir,
            )
        before_ds = ledger.get_meta("dataset_identity")
        if before_ds is None and ledger.get_meta("dataset") is not None:  # a run of an earlier midvbatch: its path only
            before_ds = {"path": ledger.get_meta("dataset"), "fingerprint": None}
        if stored is not None and before_ds and not self.restart and before_ds["path"] != dataset_identity["path"]:
            if before_ds.get("fingerprint") != dataset_identity["fingerprint"]:
                raise LedgerError(
                    f"this run folder holds results of the dataset {before_ds['path']} ({clips_done}), not of "
                    f"{dataset_identity['path']}: point at the original dataset, give --restart to discard those "
                    "results, or choose another --out",
                    path=self.run_dir,
                )
            self.log.warning(
                "the dataset moved from %s to %s (same clips, same file sizes): going on with it",
                before_ds["path"],
                dataset_identity["path"],
            )
        before_format = (before_ds or {}).get("format")
        if stored is not None and before_format and not self.restart and before_format != dataset_identity["format"]:
            raise LedgerError(
                f"this run folder holds results of {before_ds['path']} read as dataset format {before_format} "
                f"({clips_done}), now read as {dataset_identity['format']}: give --catalog {before_format}, "
                "give --restart to discard those results, or choose another --out",
                path=self.run_dir,
            )
        if self.restart and stored is not None:
            ledger.restart()  # no clip is done any more; then its files go; then their records
            removed = _remove_artifacts(ledger, self.run_dir)
            ledger.forget_artifacts()
            self.log.warning(
                "restart: previous results discarded (%d clips were done, %d artifacts removed)", done, removed
            )
        ledger.set_meta("run_id", run_id)
        ledger.set_meta("fingerprint", fingerprint)
        ledger.set_meta("processor", self.config.processor_spec())
        ledger.set_meta("dataset", dataset_identity["path"])
        ledger.set_meta("dataset_identity", dataset_identity)

    def _discover(self) -> list:
        dataset = discover(self.config.dataset, self.config.catalog)
        self.dataset_identity = _dataset_identity(dataset)
        self.clips = {c.id: c for c in dataset.clips}
        self.template_images = {d.name: d.template_image for d in dataset.documents if d.template_image}
        planned = plan(dataset, self.settings)
        self.clips.update((p.clip.id, p.clip) for p in planned)  # a second copy --docs chose
        self.findings = dataset.findings(p.clip for p in planned)
        set_aside = [f for f in self.findings if f.severity == ERROR]
        if set_aside and self.config.strict:
            raise DatasetError(
                f"{len(set_aside)} clip(s) set aside, first: {set_aside[0]}; `midvbatch validate` lists them all "
                "(or run without --strict to set them aside)",
                path=self.config.dataset,
            )
        if not planned:
            raise DatasetError("no clips to run", path=self.config.dataset)
        self._plan_tasks()
        return planned

    def _enqueue(self, ledger: Ledger, planned: list) -> None:
        ledger.add_tasks(
            NewTask(
                p.clip.id,
                p.clip.document,
                p.clip.code,
                str(p.clip.video) if p.clip.video else None,
                p.frames,
                p.priority,
                p.cost,
            )
            for p in planned
        )

    def _check_clips(self, ledger: Ledger) -> None:
        """Validate the clips still to run (fast checks, cached by file size and time); set invalid ones aside.

        Clips go through in chunks, so a run of a million clips holds one chunk's findings at a time.
        """
        from midvbatch.dataset.validate import check_clips, clip_signature

        candidates = [
            (task_id, clip, state) for task_id, clip, state in ledger.check_candidates() if clip in self.clips
        ]
        cache = ledger.validation_cache()
        invalid: dict[str, list[str]] = {}
        unchecked: set[str] = set()  # clips left unchecked: the machine ran short (threads, descriptors)
        checked, started = 0, time.monotonic()
        for first in range(0, len(candidates), CHECK_CHUNK):
            fresh = []
            for _, clip_id, _ in candidates[first : first + CHECK_CHUNK]:
                clip = self.clips[clip_id]
                signature = clip_signature(clip)
                known = cache.pop(clip_id, None)
                if known is not None and known[0] == signature:
                    if known[1]:
                        invalid[clip_id] = known[1]
                else:
                    fresh.append((clip, signature))
            if not fresh:
                continue
            if unchecked:  # the machine ran short on an earlier chunk
                unchecked.update(c.id for c, _ in fresh)
                continue
            try:
                found = check_clips([c for c, _ in fresh], jobs=max(2, self.settings.workers))
            except Exception as exc:
                short = shortage(exc)
                if short is None:
                    raise
                self.log.warning(
                    "the machine ran out of %s checking the clips (%s): the rest run unchecked", short, exc
                )
                unchecked.update(c.id for c, _ in fresh)
                continue
            ledger.store_validation((c.id, sig, [str(p) for p in found.get(c.id, ())]) for c, sig in fresh)
            invalid.update({clip_id: [str(p) for p in problems] for clip_id, problems in found.items()})
            checked += len(fresh)
        del cache
        if checked:
            self.log.info("checked %d clips in %.1f s", checked, time.monotonic() - started)
        if invalid and self.config.strict:
            first_error = next(iter(invalid.values()))[0]
            raise DatasetError(
                f"{len(invalid)} selected clip(s) invalid, first: {first_error}; `midvbatch validate` "
                "lists them all (or run without --strict to set them aside)",
                path=self.config.dataset,
            )
        with ledger.transaction():
            for task_id, clip_id, state in candidates:
                msgs = invalid.get(clip_id)
                if clip_id in unchecked:
                    continue
                if msgs and state != "dead":
                    more = f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else ""
                    ledger.fail(
                        task_id,
                        now=self.clock(),
                        state="dead",
                        error_class="invalid",
                        error=f"invalid: {msgs[0]}{more}",
                        stage="check",
                    )
                    self.log.error(
                        "%s invalid: %s%s", clip_id, msgs[0], more, extra={"clip": clip_id, "stage": "check"}
                    )
                elif not msgs and state == "dead":
                    ledger.revive([task_id])  # its files were fixed since
                    self.log.info("%s valid again: back in the queue", clip_id, extra={"clip": clip_id})

    def _spec(self, row: TaskRow, attempt: int) -> TaskSpec:
        clip = self.clips.get(row.clip)
        output_dir = self._attempt_dir(row.id, attempt)
        if self.settings.pool == "dask" and self.settings.artifacts == "shared":
            output_dir.mkdir(parents=True, exist_ok=True)  # a Dask worker that does not see it: no shared run folder
        rule = clip.frame_rule if clip is not None else FrameRule()
        return TaskSpec(
            task_id=row.id,
            attempt=attempt,
            clip=row.clip,
            document=row.document,
            code=row.code,
            condition=clip.condition if clip else None,
            device=clip.device if clip else None,
            video=str(clip.video) if clip is not None and clip.video else row.video,
            ground_truth={k: str(p) for k, p in clip.ground_truth.items()} if clip else {},
            frames=rule.count,
            fps=float(rule.fps),
            frame_numbers=rule.numbers,
            frame_digits=clip.frame_digits if clip is not None else 2,
            template=clip.template if clip is not None else None,
            images={k: str(p) for k, p in clip.images.items()} if clip is not None and clip.runs_from_pictures else {},
            dataset_format=clip.format if clip is not None else "midv500",
            processor=self.settings.processor,
            options=dict(self.settings.options),
            output_dir=str(output_dir),
            decode_threads=self.shortages.decode_threads,  # (lowered when the machine runs short of threads)
            batch_size=self.settings.batch_size,
            prefetch=self.settings.prefetch,
            batch_across_clips=self.settings.batch_across_clips,
            template_size=self._template_size(row.document),
            working_dir=self.working_dir,
        )

    def _template_size(self, document: str) -> tuple[int, int]:
        """The template rectangle of a document for scoring, cached per document."""
        if document not in self._templates:
            from midvbatch.scoring import document_template_size

            self._templates[document] = document_template_size(document, self.template_images.get(document))
        return self._templates[document]

    # the loop ----------------------------------------------------------------------------

    def _dispatch(self, ledger: Ledger, executor: Executor) -> int:
        per_worker = DISPATCH_DEPTH if self._clip_seconds > SHORT_CLIP_SECONDS else SHORT_CLIP_DEPTH
        depth = executor.capacity * per_worker if executor.capacity > 1 else 1
        tasks = len({f.group for f in self.in_flight.values()}) if self.task_clips > 1 else len(self.in_flight)
        free = depth - tasks
        if free <= 0:
            return 0
        rows = ledger.next_ready(free * self.task_clips, self.clock(), exclude=set(self.in_flight))
        if not rows:
            self._set_paused(None, "")
            return 0
        groups = self._groups(rows, executor.capacity)
        estimate = self.output_bytes // self.output_clips if self.output_clips else 0
        held = self.frames_held  # a worker's frames in memory: its read-ahead and its batch
        admission = self.resources.admit(estimate * len(rows), held * len(groups))  # one reading for the whole batch
        if not admission.ok and len(groups) > 1:
            rows = groups[0]
            groups = groups[:1]
            admission = self.resources.admit(estimate * len(rows), held)
        if not admission.ok:
            self._set_paused(admission.reason, admission.detail)
            if admission.reason == "disk" and self.config.on_disk_full == "stop":
                self.stop.request("disk")
                self.log.error(
                    "disk full (%s): stopping after the clips in flight (--on-disk-full stop)", admission.detail
                )
            return len(rows)
        self._set_paused(None, "")
        now = self.clock()
        gone = {r.id for r in rows if r.clip not in self.clips and r.video is None}
        with ledger.transaction():  # every clip of the batch marked running in one commit
            attempts = ledger.mark_running_many([r.id for r in rows], now)
            for task_id in gone:
                ledger.fail(
                    task_id,
                    now=now,
                    state="dead",
                    error_class="permanent",
                    error="clip no longer found in the dataset",
                )
        for group in groups:
            members = [row for row in group if row.id not in gone]
            if not members:
                continue
            ids = tuple(row.id for row in members)
            for row in members:
                self.in_flight[row.id] = _InFlight(row, attempts[row.id], now, ids)
            # (their start is in the ledger: started_at, attempts)
            executor.submit([self._spec(row, attempts[row.id]) for row in members])
        return len(rows)

    def _groups(self, rows: list[TaskRow], workers: int) -> list[list[TaskRow]]:
        """Cut the clips to dispatch into tasks of self.task_clips clips, fewer each when there are too few
        clips for every worker to get a whole task."""
        size = self.task_clips
        if len(rows) < size * workers:
            size = max(1, -(-len(rows) // workers))
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def _task_line(self) -> str:
        """How workers take their clips, for the run's first line: batches, read-ahead, clips per task."""
        settings, parts = self.settings, []
        if settings.batch_size > 1:
            across = " across clips" if settings.batch_across_clips else ""
            parts.append(f"batches of up to {settings.batch_size} frames{across}")
        if settings.prefetch:
            parts.append(f"{settings.prefetch} frames read ahead")
        if self.task_clips > 1:
            parts.append(f"workers take up to {self.task_clips} clips at a time")
        return "".join(f", {part}" for part in parts)

    def _plan_tasks(self) -> None:
        """How many clips a task holds (self.task_clips) and the frames a worker holds in memory (self.frames_held).

        A task holds one clip, unless workers read ahead or batch across clips: then about
        TASK_FRAMES annotated frames (twice the batch size when batches cross clips), so that
        the read-ahead and the batches go on from one clip to the next.
        """
        settings = self.settings
        counts = sorted(c.frame_rule.count for c in self.clips.values()) or [1]
        typical = max(1, counts[len(counts) // 2])
        if settings.prefetch or settings.batch_across_clips:
            frames = max(TASK_FRAMES, 2 * settings.batch_size if settings.batch_across_clips else 0)
            self.task_clips = min(MAX_TASK_CLIPS, max(2, -(-frames // typical)))
        else:
            self.task_clips = 1
        sizes = [c.frame_size for c in self.clips.values() if c.frame_size]
        largest = max((w * h for w, h in sizes), default=1920 * 1080)
        # beyond the frame every worker holds: BGR bytes
        self.frames_held = (settings.prefetch + settings.batch_size - 1) * largest * 3
        total = self.memory_reading()[1]
        limit = settings.worker_memory_limit(total)
        if self.frames_held and self.frames_held >= min(limit or total, total):
            raise ConfigError(
                f"--prefetch {settings.prefetch} and --batch-size {settings.batch_size} hold about "
                f"{self.frames_held / 2**20:,.0f} MiB of frames per worker, more than "
                + (f"the worker memory limit of {limit / 2**20:,.0f} MiB" if limit else "the machine's memory")
                + ": lower them"
                + (" or raise --worker-memory" if limit else "")
            )

    def _attempt_dir(self, task_id: int, attempt: int) -> Path:
        """An attempt's folder: tmp/TASK-ATTEMPT-SESSION.

        The session part makes it this orchestrator's own: a worker of a killed one that
        still writes into its folder cannot mix its files into this attempt's.
        """
        return _tmp_root(self.run_dir) / f"{task_id}-{attempt}-{self.session}"

    def _kill_worker_group(self, pid: int) -> None:
        """Kill a worker's process group, unless its pid now belongs to another process."""
        kill_group(pid, getattr(self._executor, "worker_pids", {}).get(pid))

    def _set_paused(self, reason: str | None, detail: str) -> None:
        if reason == self.paused:
            return
        if reason:
            self.log.warning("paused (%s): %s; the run resumes by itself", reason, detail)
        else:
            self.log.info("resumed: %s is back above its floor", self.paused)
        self.paused = reason

    def _watch_workers(self) -> None:
        """Kill workers whose resident memory passes --worker-memory, and those on a clip past --task-timeout.

        The pool holds a task of one clip to the timeout itself; a task of several clips is held
        to it clip by clip here, from each clip's first stage.
        """
        now = time.monotonic()
        executor = self._executor
        if now - self._last_watch < WATCH_INTERVAL or executor is None:
            return
        self._last_watch = now
        by_worker: dict[int | str, list[_InFlight]] = {}
        for flight in self.in_flight.values():
            if flight.worker is not None and not flight.killed:
                by_worker.setdefault(flight.worker, []).append(flight)
        limit = self.resources.worker_limit
        remote = executor.worker_memory() if limit and any(isinstance(w, str) for w in by_worker) else {}
        on_device = self._device_memory(now) if by_worker else {}
        for pid, flights in by_worker.items():
            if isinstance(pid, str):  # a Dask worker: its memory as the scheduler last heard it
                rss = remote.get(pid) if limit and remote.get(pid, 0) > limit else None
            else:
                rss = self.resources.over_limit(pid)
            if rss is not None:
                self._kill_worker(
                    pid,
                    flights,
                    (
                        "memory",
                        f"worker memory {rss / 2**20:,.0f} MiB passed the limit of {(limit or 0) / 2**20:,.0f} MiB",
                    ),
                )
                continue
            # the pool holds a local task of one clip to the timeout itself; nothing holds a Dask task but this
            timeout = self.settings.task_timeout if self.task_clips > 1 or isinstance(pid, str) else None
            held = on_device.get(pid, 0) if isinstance(pid, int) else 0
            device_limit = self.settings.device_memory or 0
            if device_limit and held > device_limit:
                self._kill_worker(
                    pid,
                    flights,
                    (
                        "oom",
                        f"device memory {held / 2**20:,.0f} MiB passed the limit of {device_limit / 2**20:,.0f} MiB",
                    ),
                )
                continue
            if timeout is None:
                continue
            late = [f for f in flights if f.active and f.running_since is not None and now - f.running_since > timeout]
            if late:
                self._kill_worker(pid, flights, ("timeout", self._timed_out(pid)))

    def _timed_out(self, worker: int | str | None = None) -> str:
        """The reason a clip killed for --task-timeout fails with."""
        stopped = f"Dask worker {worker} restarted" if isinstance(worker, str) else "worker killed"
        return f"still running after {self.settings.task_timeout:g} s; {stopped}"

    def _device_memory(self, now: float) -> dict[int, int]:
        """The device memory of each process (pid -> bytes), read from the driver every DEVICE_WATCH_INTERVAL
        when a --device-memory limit applies; {} otherwise or where the driver does not tell."""
        if not self.settings.device_memory or now - self._last_device_watch < DEVICE_WATCH_INTERVAL:
            return {}
        self._last_device_watch = now
        from midvbatch.accelerators import device_memory

        return device_memory() or {}

    def _kill_worker(self, pid: int | str, flights: list[_InFlight], why: tuple[str, str]) -> None:
        """Kill worker `pid` (a Dask worker: restart it) for `why` (class, reason), which the clips it is on take
        as their failure."""
        blamed = [f for f in flights if f.active] or [f for f in flights if f.stage != "finished"][:1]
        for flight in blamed:
            flight.killed = why
        first = (blamed or flights)[0]
        self.log.warning(
            "%s: %s; %s",
            first.row.clip,
            why[1].split("; ")[0],
            f"restarting Dask worker {pid}" if isinstance(pid, str) else f"killing worker {pid}",
            extra={"clip": first.row.clip, "attempt": first.attempt, "stage": first.stage},
        )
        if isinstance(pid, str):
            if self._executor is not None:
                self._executor.kill_worker(pid, [f.row.id for f in blamed or flights])
            return
        self.resources.kill(pid)
        self._kill_worker_group(pid)  # and what its processor started

    def _lost(self, outcome: ClipOutcome) -> bool:
        """Whether a failed outcome is a clip its task lost through no fault of its own: the task's worker died
        (or was killed) while on another of its clips, before this one started or after it finished."""
        flight = self.in_flight.get(outcome.task_id)
        if flight is None or len(flight.group) < 2 or outcome.ok or outcome.error_class not in ("crash", "timeout"):
            return False
        if flight.killed or flight.active:
            return False
        siblings = [self.in_flight[t] for t in flight.group if t in self.in_flight]
        if any(f.killed or f.active for f in siblings):
            return True
        unfinished = [f for f in siblings if f.stage != "finished"]  # none was on: the first unfinished is blamed
        return bool(unfinished) and unfinished[0] is not flight

    def _place_artifacts(self, ledger: Ledger, outcome: ClipOutcome) -> list[tuple[str, int, int]]:
        """Move a successful clip's artifacts into the run folder (before its results are committed).

        A clash with a file midvbatch did not write, or a move that fails, turns the
        outcome into a failure of that clip; a full disk stops the run.
        """
        flight = self.in_flight.get(outcome.task_id)
        if flight is None or not outcome.ok:
            return []
        tmp = self._attempt_dir(flight.row.id, flight.attempt)
        try:
            _write_returned(tmp, outcome.artifacts)
            moved, artifacts = _move_artifacts(tmp, self.run_dir, ledger, flight.row.id)
        except ArtifactClash as exc:
            outcome.ok, outcome.error_class, outcome.stage = False, "permanent", "artifacts"
            outcome.error = str(exc)
            return []
        except OSError as exc:  # e.g. a file where an artifact needs a folder: this clip's problem
            short = shortage(exc)
            if short is not None:  # out of descriptors (ulimit -n): the machine's state, retried
                outcome.ok, outcome.error_class, outcome.stage = False, "resources", "artifacts"
                outcome.error = f"cannot move its artifacts into the run folder: out of {short} ({exc.strerror})"
                return []
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LedgerError(
                    f"the disk is full ({exc.strerror}); the run stopped cleanly: free some "
                    "space, then run the same command again to resume",
                    path=self.run_dir,
                ) from None
            outcome.ok, outcome.error_class, outcome.stage = False, "permanent", "artifacts"
            outcome.error = f"cannot move its artifacts into the run folder: {exc}"
            return []
        self.output_bytes += moved
        self.output_clips += 1
        return artifacts

    def _finish(self, ledger: Ledger, outcome: ClipOutcome, artifacts: list[tuple[str, int, int]]) -> Completion | None:
        """Record a clip's outcome (inside the caller's transaction); artifacts are in place already.

        A failure is written at once; a success is returned, for the caller to write with
        the others of its batch.
        """
        flight = self.in_flight.pop(outcome.task_id, None)
        if flight is None:
            return None
        row, attempt = flight.row, flight.attempt
        tmp = self._attempt_dir(row.id, attempt)
        now = self.clock()
        if not outcome.ok and outcome.error_class in ("crash", "timeout") and isinstance(flight.worker, int):
            self._kill_worker_group(flight.worker)  # the worker is gone: so goes what its processor started
        if flight.killed and not outcome.ok:
            outcome.error_class, outcome.error = flight.killed
        elif outcome.error_class == "timeout":
            outcome.error = self._timed_out()
        if outcome.stage is None and not outcome.ok:
            outcome.stage = flight.stage.split(" ")[0] if flight.stage else None
        extra = {"clip": row.clip, "attempt": attempt, "stage": outcome.stage}
        completion = None
        if outcome.ok:
            completion = Completion(
                row.id,
                now,
                outcome.frames,
                outcome.clip_result,
                outcome.clip_scores,
                outcome.wall_seconds,
                outcome.stage_seconds,
                outcome.cpu_seconds,
                outcome.peak_rss,
                artifacts,
            )
            self.meter.add(len(outcome.frames))
            self.log.debug("done %s in %.2f s", row.clip, outcome.wall_seconds, extra=extra)
            for note in outcome.notes[:MAX_NOTES]:
                self.log.warning("%s: %s", row.clip, note, extra=extra)
            if len(outcome.notes) > MAX_NOTES:
                self.log.warning("%s: and %d more notes", row.clip, len(outcome.notes) - MAX_NOTES, extra=extra)
        else:
            retries_left = attempt <= self.config.retries
            permanent = outcome.error_class in PERMANENT
            state = "failed" if retries_left and not permanent else "dead"
            not_before = now + retry_delay(attempt, self.config.retry_delay) if state == "failed" else None
            ledger.fail(
                row.id,
                now=now,
                state=state,
                error_class=outcome.error_class or "error",
                error=outcome.error or "unknown error",
                stage=outcome.stage,
                exitcode=outcome.exitcode,
                signal=outcome.signal,
                traceback=outcome.traceback,
                not_before=not_before,
                wall_seconds=outcome.wall_seconds,
            )
            if state == "failed":
                self.log.log(
                    logging.DEBUG if outcome.error_class == "resources" else logging.WARNING,  # (said once: _ran_short)
                    "%s failed (%s: %s); retry %d of %d",
                    row.clip,
                    outcome.error_class,
                    outcome.error,
                    attempt,
                    self.config.retries,
                    extra=extra,
                )
            else:
                self.log.error(
                    "%s dead (%s: %s) after %d attempt(s)",
                    row.clip,
                    outcome.error_class,
                    outcome.error,
                    attempt,
                    extra=extra,
                )
            if outcome.traceback:
                self.log.debug("%s traceback:\n%s", row.clip, outcome.traceback, extra=extra)
            if state == "dead":
                self.dead_this_run += 1
            if state == "dead" and self.config.max_failures and self.dead_this_run >= self.config.max_failures:
                if not self.stop.requested:
                    self.log.error(
                        "%d clips died in this run (--max-failures %d): stopping after the clips in "
                        "flight; see midvbatch failures %s",
                        self.dead_this_run,
                        self.config.max_failures,
                        self.run_dir,
                    )
                self.stop.request("max-failures")
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        return completion

    def _return_lost(self, ledger: Ledger, outcomes: list[ClipOutcome]) -> list[ClipOutcome]:
        """Put the clips a dead task lost through no fault of their own back in the queue, their attempt not
        counted (see _lost); return the other outcomes."""
        lost = [o for o in outcomes if self._lost(o)]
        if not lost:
            return outcomes
        for outcome, flight in zip(lost, self._requeue(ledger, lost), strict=True):
            self.log.info(
                "%s back in the queue: its worker died on another of the clips it held (%s)",
                flight.row.clip,
                outcome.error,
                extra={"clip": flight.row.clip, "attempt": flight.attempt},
            )
        ids = {o.task_id for o in lost}
        return [o for o in outcomes if o.task_id not in ids]

    def _ran_short(self, ledger: Ledger, outcomes: list[ClipOutcome]) -> list[ClipOutcome]:
        """Clips that failed because the machine ran short (class "resources"): ask less of it (engine/shortage.py)
        and put them back in the queue, their attempt not counted, or, with nothing left to lower, let them fail
        as transient. Return the outcomes left to record."""
        back: list[ClipOutcome] = []
        for outcome in outcomes:
            flight = self.in_flight.get(outcome.task_id)
            if outcome.ok or outcome.error_class != "resources" or flight is None:
                continue
            error = outcome.error or ""
            started = self._executor.could_start if self._executor is not None else None
            reaction = self.shortages.short(
                resource_named(error), f"{flight.row.clip}: {error}", flight.started, self.clock(), started
            )
            if reaction.line:
                self.log.warning("%s", reaction.line, extra={"clip": flight.row.clip, "stage": outcome.stage})
            if reaction.workers and self._executor is not None:
                self._executor.resize(reaction.workers)  # the clips in flight come back: dispatched before the change
            if not reaction.counted:
                back.append(outcome)
        if not back:
            return outcomes
        self._requeue(ledger, back, workers_dead=False)  # (their workers live on, or the pool's restart stopped them)
        ids = {o.task_id for o in back}
        return [o for o in outcomes if o.task_id not in ids]

    def _requeue(self, ledger: Ledger, outcomes: list[ClipOutcome], workers_dead: bool = True) -> list[_InFlight]:
        """Put the clips of `outcomes` back in the queue, their attempt not counted, their attempt folders
        removed (with `workers_dead`, after what a dead local worker's processor started, which might still
        write there; a worker that lives on is left alone); return their flights, in the same order."""
        ledger.release([o.task_id for o in outcomes])
        flights = [self.in_flight.pop(o.task_id) for o in outcomes]
        for flight in flights:
            if workers_dead and isinstance(flight.worker, int):
                self._kill_worker_group(flight.worker)
            shutil.rmtree(self._attempt_dir(flight.row.id, flight.attempt), ignore_errors=True)
        return flights

    def _return_misplaced(self, ledger: Ledger, outcomes: list[ClipOutcome]) -> list[ClipOutcome]:
        """Put back in the queue, their attempt not counted, the clips a Dask worker could not run because it
        does not see a file this machine sees (the dataset or the run folder not mounted there), and stop the
        run: every clip would fail the same way. Return the other outcomes.

        A file this machine cannot read either is the clip's own problem: its outcome says so.
        """
        misplaced = []
        for outcome in outcomes:
            if outcome.error_class != "placement":
                continue
            if outcome.missing and not os.access(outcome.missing, os.R_OK):
                outcome.error_class, outcome.error = "permanent", f"cannot read {outcome.missing}"
                continue
            misplaced.append(outcome)
        if not misplaced:
            return outcomes
        self._requeue(ledger, misplaced)
        if self.stop.reason != "placement":
            self.log.error("%s", misplaced[0].error)
            self.log.error(
                "every Dask worker must see the dataset at the path it has here, and the run folder too "
                "unless --artifacts return: stopping after the clips in flight"
            )
            self.stop.request("placement", over=True)  # the run cannot go on, whatever stopped it before
        ids = {o.task_id for o in misplaced}
        return [o for o in outcomes if o.task_id not in ids]

    def snapshot(self, ledger: Ledger, state: str) -> Snapshot:
        """Build the current snapshot from the ledger and what is in flight."""
        counts = ledger.counts()
        total = sum(counts.values())
        clips_rate, frames_rate = self.meter.rates()
        remaining = total - counts["done"] - counts["dead"]
        now = self.clock()
        workers = [
            {
                "clip": f.row.clip,
                "stage": f.stage,
                "pid": f.worker if isinstance(f.worker, int) else None,
                "worker": f.worker if isinstance(f.worker, str) else None,
                "attempt": f.attempt,
                "seconds": round(now - f.started, 1),
            }
            for f in self.in_flight.values()
        ]
        return Snapshot(
            state=state,
            total=total,
            pending=counts["pending"],
            running=len(self.in_flight),
            done=counts["done"],
            failed=counts["failed"],
            dead=counts["dead"],
            percent=round(100.0 * (counts["done"] + counts["dead"]) / total, 2) if total else 100.0,
            eta_seconds=estimate_eta(remaining, ledger.remaining_frames(), clips_rate, frames_rate),
            clips_per_second=round(clips_rate, 3),
            frames_per_second=round(frames_rate, 2),
            workers=workers,
            elapsed_seconds=round(time.monotonic() - self.meter.started, 1),
            updated_at=now,
            pid=os.getpid(),
            paused_reason=self.paused if state in ("running", "paused") else None,
            errors=ledger.error_counts(),
        )

    def _publish(
        self, ledger: Ledger, view: RunProgress, state: str = "running", force: bool = False
    ) -> Snapshot | None:
        now = time.monotonic()
        if not force and now - self._last_snapshot < SNAPSHOT_INTERVAL:
            return None
        self._last_snapshot = now
        ledger.check_identity()  # a deleted or replaced ledger would swallow every result from here on
        flush_run_log(self.log)
        snap = self.snapshot(ledger, "paused" if self.paused else state)
        ledger.set_meta("live", snap.to_dict())
        view.update(snap, force=force)
        return snap

    def _loop(self, ledger: Ledger, executor: Executor, view: RunProgress) -> None:
        while True:
            outcomes = executor.completed(timeout=0.1 if self.in_flight else 0)
            if outcomes and len(outcomes) < executor.capacity and len(self.in_flight) > 2 * executor.capacity:
                # the workers have clips queued: gather a few more outcomes, so that the ledger's
                # commit and the next dispatch serve a batch (short clips run at pool speed)
                time.sleep(GATHER_SECONDS)
                outcomes += executor.completed(timeout=0)
            # stages after outcomes: a worker that died has written its last stage before dying
            for task_id, stage, where in executor.stages():
                flight = self.in_flight.get(task_id)
                if flight is not None:
                    flight.stage, flight.worker = stage, where if where is not None else flight.worker
                    if flight.running_since is None:
                        flight.running_since = time.monotonic()
            for line in executor.warnings():
                self.log.warning("%s", line)
            if outcomes:
                outcomes = self._return_lost(ledger, self._return_misplaced(ledger, self._ran_short(ledger, outcomes)))
            if outcomes:
                for o in outcomes:
                    self._clip_seconds = 0.8 * self._clip_seconds + 0.2 * o.wall_seconds
                placed = {o.task_id: self._place_artifacts(ledger, o) for o in outcomes}
                with ledger.transaction():  # every clip finished since the last look, in one commit
                    done = [self._finish(ledger, o, placed[o.task_id]) for o in outcomes]
                    ledger.complete_many([c for c in done if c is not None])
            self._watch_workers()
            if self.stop.now:
                return
            if self.stop.requested:
                if not self._withdrawn:
                    # no new clip starts: those submitted but not started go back to pending
                    self._withdrawn = True
                    queued = [t for t in executor.cancel_queued() if t in self.in_flight]
                    if queued:
                        ledger.release(queued)
                        for task_id in queued:
                            del self.in_flight[task_id]
                if not self.in_flight:
                    return
            else:
                fetched = self._dispatch(ledger, executor)
                if not self.in_flight and self.paused:
                    time.sleep(0.2)
                elif not self.in_flight and not fetched:  # (fetched rows may all have been set aside)
                    waiting = ledger.next_retry_time()
                    if waiting is None:
                        return
                    time.sleep(min(max(waiting - self.clock(), 0.01), 0.2))
            self._publish(ledger, view)

    def run(self) -> RunSummary:
        """Run to the end, or until stopped; return the summary."""
        started = time.monotonic()
        planned = self._discover()  # bad input fails here, before the run folder exists
        check_pool(self.settings)  # and a Dask scheduler where nothing listens
        lock = self._claim_folder()
        run_id = self.run_id
        previous: dict = {}
        ledger: Ledger | None = None
        try:
            self.log = open_run_log(self.run_dir, self.config.log_level, self.log_handler)
            for finding in self.findings:  # what discovery could not use as it found it: one line each
                (self.log.error if finding.severity == ERROR else self.log.warning)("%s", finding)
            ledger = Ledger(self.run_dir, check=True)
            self._prepare_ledger(ledger, run_id, self.dataset_identity)
            self.config.save(self.run_dir / CONFIG)  # (its paths are absolute already: see run())
            self._enqueue(ledger, planned)
            del planned  # the queue is in the ledger now; a million clips need not stay in memory twice
            recovered = ledger.recover()
            _clear_tmp(self.run_dir)
            if self.config.check:
                self._check_clips(ledger)
            ledger.set_meta("owner", _owner())
            counts = ledger.counts()
            if recovered or counts["done"]:
                self.log.info("resuming: %d clips done, %d were in flight and run again", counts["done"], recovered)
            if self.settings.devices:
                self.log.info(
                    "devices %s, one per worker in turn: each worker sees its own alone (CUDA_VISIBLE_DEVICES)",
                    ", ".join(self.settings.devices),
                )
            for note in self.settings.notes:  # defaults derived from the machine
                self.log.info("%s", note)
            for warning in self.settings.warnings:  # values capped to the machine, limits the pool cannot enforce
                self.log.warning("%s", warning)
            workers = self.settings.workers
            ledger.log_event(
                "info",
                f"run started by pid {os.getpid()}: {sum(counts.values())} clips, "
                f"{counts['done']} done, {recovered} recovered",
            )
            total = sum(counts.values())
            self.log.info(
                "run %s: %d clip%s, processor %s, %s%s",
                self.run_dir,
                total,
                "" if total == 1 else "s",
                self.config.processor_spec(),
                "inline"
                if self.settings.pool == "inline"
                else f"Dask scheduler {self.settings.scheduler}"
                if self.settings.pool == "dask"
                else f"{workers} {self.settings.pool} workers",
                self._task_line(),
            )
            if self.install_signals:
                # from here a Ctrl-C is a request to stop, handled by the loop: never a KeyboardInterrupt
                previous = {s: signal.signal(s, self.stop.handle) for s in (signal.SIGINT, signal.SIGTERM)}
            self.resources = Resources(
                self.settings, self.run_dir, memory_reading=self.memory_reading, disk_reading=self.disk_reading
            )
            executor = make_executor(
                self.settings, log_dir=self.run_dir / LOGS, clips_per_task=self.task_clips, log=self.log
            )
            self._executor = executor
            self.shortages = Shortages(
                executor.capacity, self.settings.decode_threads, resizable=self.settings.pool == "process"
            )
            if self.settings.pool == "dask" and self.settings.scheduler != "local":
                if self.settings.artifacts == "shared":
                    self.log.info(
                        "Dask workers must see the dataset (%s) and the run folder (%s) at these paths: they read "
                        "the videos and write artifacts into %s",
                        self.settings.dataset,
                        self.run_dir,
                        _tmp_root(self.run_dir),
                    )
                else:
                    self.log.info(
                        "Dask workers must see the dataset (%s) at this path; their artifacts come back with the "
                        "results (--artifacts return)",
                        self.settings.dataset,
                    )
            view = self.progress
            failure: BaseException | None = None
            try:
                self._loop(ledger, executor, view)
                ledger.check_identity()
            except BaseException as exc:  # the ledger gone or failing (disk full): stop, say why, lose nothing
                failure = exc
                raise
            finally:
                self._shut_down(ledger, executor, view, failure)
            counts = ledger.counts()
            snap = self._final_snapshot
            if self.stop.reason == "signal":
                exit_code = EXIT_INTERRUPTED
                self.log.warning(
                    "interrupted: %d of %d clips done; run the same command again to resume",
                    counts["done"],
                    sum(counts.values()),
                )
            elif self.stop.requested:
                exit_code = 1
                why = {
                    "max-failures": "too many dead clips",
                    "placement": "a Dask worker cannot see the dataset or the run folder",
                }.get(self.stop.reason or "", "the disk is full")
                self.log.error(
                    "stopped because %s: %d of %d clips done; fix it, then run the same command "
                    "again (midvbatch retry for dead clips)",
                    why,
                    counts["done"],
                    sum(counts.values()),
                )
            else:
                exit_code = 1 if counts["dead"] else 0
                self.log.info(
                    "finished: %d done, %d dead in %.1f s", counts["done"], counts["dead"], time.monotonic() - started
                )
            return RunSummary(
                self.run_dir, snap.state if snap else "interrupted", counts, time.monotonic() - started, exit_code, snap
            )
        finally:
            if ledger is not None:
                try:
                    ledger.set_meta("owner", None)
                    if not (self.in_flight or ledger.counts()["running"]):
                        ledger.finish()
                except LedgerError:
                    pass  # the error that stopped the run is the one to report
                ledger.close()
            if hasattr(self, "log"):
                close_run_log(self.log)
            lock.release()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _shut_down(self, ledger: Ledger, executor: Executor, view: RunProgress, failure: BaseException | None) -> None:
        """Stop the workers, return what was in flight to pending, store the last snapshot.

        After a ledger failure (deleted, disk full) only what still works is done.
        """
        self._final_snapshot: Snapshot | None = None
        in_flight = list(self.in_flight)
        for task_id in in_flight:
            executor.cancel(task_id)
        executor.shutdown()
        for line in executor.warnings():  # (what its shut-down waited for: a Dask worker's restart)
            self.log.warning("%s", line)
        try:
            if in_flight:
                ledger.release(in_flight)
                self.log.warning("stopped: %d clips in flight returned to pending", len(in_flight))
            self.in_flight.clear()
            counts = ledger.counts()
            unfinished = counts["pending"] + counts["running"] + counts["failed"]
            state = "interrupted" if unfinished or failure is not None else "finished"
            snap = self.snapshot(ledger, state)
            ledger.set_meta("live", snap.to_dict())
            ledger.log_event("info", f"run {state}: {counts['done']} done, {counts['dead']} dead")
            self._final_snapshot = snap
            view.close(snap)
        except LedgerError:
            if failure is None:
                raise
            view.close(None)


def run(
    config: RunConfig,
    *,
    restart: bool = False,
    progress: RunProgress | None = None,
    log_handler: logging.Handler | None = None,
    install_signals: bool = True,
    memory_reading: MemoryReading = system_memory,
    disk_reading: DiskReading = disk_space,
) -> RunSummary:
    """Run (or resume) `config` and return how it ended. Raises MidvBatchError for bad input.

    Paths are made absolute first, so a processor that changes the working directory
    cannot send results elsewhere; the processor and its options are checked before
    anything is created. `progress` is shown a snapshot about twice a second and
    `log_handler` gets the log's records from the configured level up; without them the
    run prints nothing (its log still goes to RUN_DIR/logs). `memory_reading` and
    `disk_reading` replace the system's readings (for tests).
    """
    from midvbatch.pipeline.registry import check_processor

    config = config.absolute()  # resolved and validated here, once: the Orchestrator reads config.resolved()
    check_processor(config.processor_spec(), config.options)
    return Orchestrator(
        config,
        restart=restart,
        progress=progress,
        log_handler=log_handler,
        install_signals=install_signals,
        memory_reading=memory_reading,
        disk_reading=disk_reading,
    ).run()
