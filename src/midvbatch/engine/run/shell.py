"""The run's shell: the world turned into events for the run's policy, and its instructions carried out.

`Orchestrator` does the I/O of a run and decides nothing: it claims the folder
(engine/run/folder.py), checks the ledger may go on (resume.py), checks the clips
(preflight.py), then loops: outcomes, stages and workers' memory from the executor, a
Ctrl-C from the signal handler, clips from the ledger's queue go to the `RunState`
(state.py); the ledger writes, submissions, kills and log lines it answers are done
here. Each clip is one row of the ledger; its results and its ``done`` mark are
committed in one transaction, after its artifacts were moved into place (artifacts.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from midvbatch.config import RunConfig, Settings
from midvbatch.dataset.model import ERROR, Clip, Problem
from midvbatch.engine.executor import Executor
from midvbatch.engine.ledger import Completion, Ledger
from midvbatch.engine.pools import check_pool, make_executor
from midvbatch.engine.progress import NoProgress, RateMeter, RunProgress, Snapshot, estimate_eta
from midvbatch.engine.resources import DiskReading, MemoryReading, Resources, disk_space, system_memory
from midvbatch.engine.run import events
from midvbatch.engine.run.artifacts import place as place_artifacts
from midvbatch.engine.run.discovery import Discovered
from midvbatch.engine.run.folder import RunFolder, owner
from midvbatch.engine.run.preflight import Checking, start_checks
from midvbatch.engine.run.resume import prepare_ledger
from midvbatch.engine.run.specs import Specs
from midvbatch.engine.run.state import Flight, Policy, RunState
from midvbatch.engine.run.summary import RunSummary
from midvbatch.engine.runlog import close_run_log, flush_run_log, open_run_log
from midvbatch.errors import EXIT_INTERRUPTED, DatasetError, ErrorClass, LedgerError
from midvbatch.pipeline.spec import ClipOutcome
from midvbatch.runfolder import CONFIG, LOGS

SNAPSHOT_INTERVAL = 0.5  # seconds between stored snapshots
GATHER_SECONDS = 0.002  # extra wait for more finished clips while workers have queued ones
WATCH_INTERVAL = 0.2  # seconds between readings of the workers' memory
CHECK_WAIT = 0.02  # seconds the loop waits, with nothing to do, for the checks beside it to pass more clips
DEVICE_WATCH_INTERVAL = 1.0  # seconds between readings of the devices' memory (a driver tool run)


class Orchestrator:
    """One run of a configuration over a run folder. Use :func:`midvbatch.engine.run.run`."""

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
        self.folder = RunFolder(Path(os.path.abspath(config.out)))
        self.run_dir = self.folder.path
        self.memory_reading, self.disk_reading = memory_reading, disk_reading
        self.meter = RateMeter()
        self.findings: list[Problem] = []  # discovery's: links not followed, second copies, clips set aside
        self.signals: list[bool] = []  # Ctrl-Cs and SIGTERMs not yet told to the state (True: SIGTERM)
        self._last_snapshot = self._last_watch = self._last_device_watch = float("-inf")
        self._placed: dict[int, list] = {}  # artifacts placed for the clips being recorded
        self._records: dict[int, str] = {}  # the records of the clips read from the queue, until submitted
        self.final: events.Finish | None = None
        self.checking: Checking | None = None  # the clips' checks beside the run (without --strict)

    # set-up ------------------------------------------------------------------------------

    def _discover(self) -> Discovered:
        """Find the clips, choose and plan them (kept in a file of discovery's own: see discovery.py); bad input
        fails here, before the run folder exists."""
        found = Discovered.read(self.settings)
        try:
            self.dataset_identity = found.identity()
            self.specs = Specs(self.settings, found.documents, os.getcwd())
            self.findings = found.findings
            set_aside = [f for f in self.findings if f.severity == ERROR]
            if set_aside and self.settings.strict:
                raise DatasetError(
                    f"{len(set_aside)} clip(s) set aside, first: {set_aside[0]}; `midvbatch validate` lists them "
                    "all (or run without --strict to set them aside)",
                    path=self.settings.dataset,
                )
            self.specs.plan_tasks(found.typical_frames(), found.largest_frame(), self.memory_reading()[1])
        except BaseException:
            found.close()
            raise
        return found

    # carrying out ------------------------------------------------------------------------

    def _feed(self, *happened: events.Event) -> None:
        """Tell the state what happened and carry out what it answers: its ledger writes in one transaction, first."""
        instructions = self.state.handle(*happened)
        ledger_part = [i for i in instructions if isinstance(i, events.LEDGER_INSTRUCTIONS)]
        if ledger_part:
            self._write(ledger_part)
        for instruction in instructions:
            if not isinstance(instruction, events.LEDGER_INSTRUCTIONS):
                self._carry_out(instruction)

    def _write(self, instructions: list) -> None:
        ledger, now = self.ledger, self.clock()
        done: list[Completion] = []
        with ledger.transaction():  # (every clip finished since the last look, in one commit)
            for i in instructions:
                match i:
                    case events.MarkRunning():
                        ledger.mark_running_many(list(i.ids), now)
                    case events.Release():
                        ledger.release(i.ids)
                    case events.Fail():
                        ledger.fail(
                            i.task_id,
                            now=now,
                            state=i.state,
                            error_class=i.error_class,
                            error=i.error,
                            stage=i.stage,
                            exitcode=i.exitcode,
                            signal=i.signal,
                            traceback=i.traceback,
                            not_before=now + i.retry_in if i.retry_in is not None else None,
                            wall_seconds=i.wall_seconds,
                        )
                    case events.Complete():
                        done.append(self._completion(i.outcome, now))
            ledger.complete_many(done)

    def _completion(self, o: ClipOutcome, now: float) -> Completion:
        self.meter.add(len(o.frames))
        placed = self._placed.pop(o.task_id, [])
        return Completion(
            o.task_id,
            now,
            o.frames,
            o.clip_result,
            o.clip_scores,
            o.wall_seconds,
            o.stage_seconds,
            o.cpu_seconds,
            o.peak_rss,
            placed,
        )

    def _carry_out(self, i: events.Instruction) -> None:
        executor = self.executor
        match i:
            case events.Submit():
                threads = self.state.shortages.threads  # (lowered when the machine runs short of threads)
                specs = [
                    self.specs.spec(
                        row,
                        Clip.from_record(json.loads(self._records.pop(row.id))),
                        attempt,
                        self.folder.attempt_dir(row.id, attempt),
                        threads,
                    )
                    for row, attempt in i.clips
                ]
                executor.submit(specs)
            case events.KillWorker():
                executor.kill_worker(i.ref, list(i.ids))
            case events.EndLeftovers():
                executor.end_leftovers(i.ref)
            case events.RemoveAttempt():
                self.folder.remove_attempt(i.task_id, i.attempt)
            case events.CancelQueued():
                self._feed(events.Withdrawn(tuple(executor.cancel_queued())))
            case events.Resize():
                executor.resize(i.workers)  # the clips in flight come back: dispatched before the change
            case events.Log():
                self.log.log(logging.getLevelName(i.level.upper()), i.message, *i.args, extra=i.extra)
            case events.Wait():
                time.sleep(i.seconds)
            case events.Finish():
                self.final = i

    # the loop ----------------------------------------------------------------------------

    def _placed_outcomes(self, outcomes: list[ClipOutcome]) -> list[ClipOutcome]:
        """What the files say of the outcomes: a done clip's artifacts moved into place (or its failure to), and a
        file a Dask worker could not see that this machine cannot read either (the clip's own problem)."""
        out = []
        for outcome in outcomes:
            flight = self.state.flights.get(outcome.task_id)
            if outcome.ok and flight is not None:
                tmp = self.folder.attempt_dir(outcome.task_id, flight.attempt)
                outcome, moved, placed = place_artifacts(outcome, tmp, self.run_dir, self.ledger)
                if outcome.ok:
                    self.state.note_output(moved)
                    self._placed[outcome.task_id] = placed
            elif outcome.error_class == ErrorClass.PLACEMENT and outcome.missing:
                if not os.access(outcome.missing, os.R_OK):
                    outcome = replace(outcome, error_class=ErrorClass.PERMANENT, error=f"cannot read {outcome.missing}")
            out.append(outcome)
        return out

    def _dispatch(self) -> int:
        """Read the clips the state wants from the queue and tell it; return how many were read."""
        wanted = self.state.wanted()
        if wanted <= 0:
            return 0
        through = self.checking.through if self.checking is not None else None
        rows = self.ledger.next_ready(wanted, self.clock(), exclude=set(self.state.flights), through=through)
        memory, disk = self.resources.read() if rows else (0, 0)
        self._records = self.ledger.records((r.id for r in rows), self.folder.session) if rows else {}
        gone = frozenset(r.id for r in rows if r.id not in self._records)  # (a clip this run's discovery did not find)
        self._feed(events.Ready(tuple(rows), time.monotonic(), memory, disk, gone))
        return len(rows)

    def _watch(self) -> None:
        """Tell the state the workers' memory, every WATCH_INTERVAL (the devices': every DEVICE_WATCH_INTERVAL)."""
        now = time.monotonic()
        if now - self._last_watch < WATCH_INTERVAL or not self.state.flights:
            return
        self._last_watch = now
        rss = self.executor.worker_memory() if self.state.policy.worker_limit else {}
        device = {}
        if self.state.policy.device_limit and now - self._last_device_watch >= DEVICE_WATCH_INTERVAL:
            self._last_device_watch = now
            device = self.executor.device_memory()
        self._feed(events.Readings(now, rss, device))

    def _loop(self, view: RunProgress) -> None:
        executor, state = self.executor, self.state
        while self.final is None:
            outcomes = executor.completed(timeout=0.1 if state.flights else 0)
            if outcomes and len(outcomes) < executor.capacity and len(state.flights) > 2 * executor.capacity:
                # the workers have clips queued: gather a few more outcomes, so that the ledger's
                # commit and the next dispatch serve a batch (short clips run at pool speed)
                time.sleep(GATHER_SECONDS)
                outcomes += executor.completed(timeout=0)
            # stages after outcomes: a worker that died has written its last stage before dying
            self._feed(events.StagesSeen(tuple(executor.stages()), time.monotonic()))
            for line in executor.warnings():
                self.log.warning("%s", line)
            if outcomes:
                placed = self._placed_outcomes(outcomes)
                self._feed(events.Finished(tuple(placed), time.monotonic(), executor.could_start))
            self._watch()
            while self.signals:
                self._feed(events.StopAsked(self.signals.pop(0)))
            if self.final is None and not state.stopping:
                fetched = self._dispatch()
                if not state.flights and not fetched and self.final is None:
                    if self.checking is not None and self.checking.waiting():
                        time.sleep(CHECK_WAIT)  # (the next clips are being checked)
                    else:
                        self._feed(events.Idle(self.clock(), self.ledger.next_retry_time()))
            self._publish(view)

    def _on_signal(self, signum, _frame) -> None:
        self.signals.append(signum == signal.SIGTERM)

    # progress ----------------------------------------------------------------------------

    def snapshot(self, ledger: Ledger, state: str) -> Snapshot:
        """Build the current snapshot from the ledger and what is in flight."""
        run = getattr(self, "state", None)
        flights = run.flights if run is not None else {}
        paused = run.paused if run is not None else None
        return build_snapshot(ledger, state, flights, paused, self.meter, self.clock())

    def _publish(self, view: RunProgress, state: str = "running", force: bool = False) -> Snapshot | None:
        now = time.monotonic()
        if not force and now - self._last_snapshot < SNAPSHOT_INTERVAL:
            return None
        self._last_snapshot = now
        ledger = self.ledger
        ledger.check_identity()  # a deleted or replaced ledger would swallow every result from here on
        flush_run_log(self.log)
        snap = self.snapshot(ledger, "paused" if self.state.paused else state)
        ledger.set_meta("live", snap.to_dict())
        view.update(snap, force=force)
        return snap

    # the run -----------------------------------------------------------------------------

    def _open(self, found: Discovered) -> None:
        """Take the run folder's ledger: check it may go on, enqueue the clips `found` (every clip found keeps its
        record there, marked as found by this run), recover, check them."""
        self.log = open_run_log(self.run_dir, self.settings.log_level, self.log_handler)
        for finding in self.findings:  # what discovery could not use as it found it: one line each
            (self.log.error if finding.severity == ERROR else self.log.warning)("%s", finding)
        self.ledger = ledger = Ledger(self.run_dir, check=True)
        prepare_ledger(
            ledger,
            run_id=self.folder.run_id,
            identity=self.dataset_identity,
            config=self.config,
            run_dir=self.run_dir,
            restart=self.restart,
            log=self.log,
        )
        self.config.save(self.run_dir / CONFIG)  # (its paths are absolute already: see run())
        found.enter(ledger, self.folder.session)
        found.close()  # the queue is in the ledger now, each clip's record with it: none is held here
        recovered = ledger.recover()
        self.folder.clear_tmp()
        opener = functools.partial(Ledger, self.run_dir)  # (the checks' own connection, for their thread)
        self.checking = start_checks(ledger, self.settings, self.folder.session, opener, self.clock, self.log)
        ledger.set_meta("owner", owner())
        self.recovered = recovered

    def _start_executor(self) -> None:
        self.resources = Resources(
            self.settings, self.run_dir, memory_reading=self.memory_reading, disk_reading=self.disk_reading
        )
        self.executor = make_executor(
            self.settings, log_dir=self.run_dir / LOGS, clips_per_task=self.specs.task_clips, log=self.log
        )
        self.state = RunState(
            policy_of(self.settings, self.resources, self.executor, self.specs, self.run_dir),
            self.executor.capacity,
            random.Random().uniform,
        )

    def run(self) -> RunSummary:
        """Run to the end, or until stopped; return the summary."""
        started = time.monotonic()
        found = self._discover()  # bad input fails here, before the run folder exists
        try:
            check_pool(self.settings)  # and a Dask scheduler where nothing listens
            lock = self.folder.claim()
        except BaseException:
            found.close()
            raise
        previous: dict = {}
        try:
            try:
                self._open(found)
            finally:
                found.close()
            say_start(self)
            if self.install_signals:
                # from here a Ctrl-C is a request to stop, handled by the loop: never a KeyboardInterrupt
                previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
            self._start_executor()
            say_placement(self)
            failure: BaseException | None = None
            try:
                self._loop(self.progress)
                self.ledger.check_identity()
            except BaseException as exc:  # the ledger gone or failing (disk full): stop, say why, lose nothing
                failure = exc
                raise
            finally:
                self._shut_down(self.progress, failure)
            return self._summary(started)
        finally:
            self._close(lock, previous)

    def _summary(self, started: float) -> RunSummary:
        """Say how the run ended; its summary."""
        counts, snap = self.ledger.counts(), self._final_snapshot
        reason = self.final.reason if self.final is not None else None
        done, total = counts["done"], sum(counts.values())
        if reason == events.StopReason.SIGNAL:
            exit_code = EXIT_INTERRUPTED
            self.log.warning("interrupted: %d of %d clips done; run the same command again to resume", done, total)
        elif reason is not None:
            exit_code = 1
            self.log.error(
                "stopped because %s: %d of %d clips done; fix it, then run the same command "
                "again (midvbatch retry for dead clips)",
                STOPPED_BECAUSE[reason],
                done,
                total,
            )
        else:
            exit_code = 1 if counts["dead"] else 0
            self.log.info("finished: %d done, %d dead in %.1f s", done, counts["dead"], time.monotonic() - started)
        state = snap.state if snap else "interrupted"
        return RunSummary(self.run_dir, state, counts, time.monotonic() - started, exit_code, snap)

    def _close(self, lock, previous: dict) -> None:
        """Release what the run holds: the ledger (finished when nothing is left running), its log, the lock, the
        signal handlers."""
        if self.checking is not None:
            self.checking.stop()
        ledger: Ledger | None = getattr(self, "ledger", None)
        if ledger is not None:
            try:
                ledger.set_meta("owner", None)
                flights = self.state.flights if hasattr(self, "state") else {}
                if not (flights or ledger.counts()["running"]):
                    ledger.finish()
            except LedgerError:
                pass  # the error that stopped the run is the one to report
            ledger.close()
        if hasattr(self, "log"):
            close_run_log(self.log)
        lock.release()
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _shut_down(self, view: RunProgress, failure: BaseException | None) -> None:
        """Stop the workers, return what was in flight to pending, store the last snapshot.

        After a ledger failure (deleted, disk full) only what still works is done.
        """
        self._final_snapshot: Snapshot | None = None
        if self.checking is not None:
            self.checking.stop()
        ledger, executor = self.ledger, self.executor
        in_flight = list(self.state.flights)
        for task_id in in_flight:
            executor.cancel(task_id)
        executor.shutdown()
        for line in executor.warnings():  # (what its shut-down waited for: a Dask worker's restart)
            self.log.warning("%s", line)
        try:
            if in_flight:
                ledger.release(in_flight)
                self.log.warning("stopped: %d clips in flight returned to pending", len(in_flight))
            self.state.flights.clear()
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


STOPPED_BECAUSE = {
    events.StopReason.MAX_FAILURES: "too many dead clips",
    events.StopReason.PLACEMENT: "a Dask worker cannot see the dataset or the run folder",
    events.StopReason.DISK: "the disk is full",
}


def build_snapshot(
    ledger: Ledger, state: str, flights: dict[int, Flight], paused: str | None, meter: RateMeter, wall: float
) -> Snapshot:
    """Where the run stands: the ledger's counts, the clips in flight, rates and ETA; `wall`: the time now."""
    counts = ledger.counts()
    total = sum(counts.values())
    clips_rate, frames_rate = meter.rates()
    remaining = total - counts["done"] - counts["dead"]
    now = time.monotonic()
    workers = [
        {
            "clip": f.row.clip,
            "stage": f.stage,
            "pid": f.worker.pid if f.worker is not None else None,
            "worker": f.worker.address if f.worker is not None else None,
            "attempt": f.attempt,
            "seconds": round(now - f.started, 1),
        }
        for f in flights.values()
    ]
    return Snapshot(
        state=state,
        total=total,
        pending=counts["pending"],
        running=len(flights),
        done=counts["done"],
        failed=counts["failed"],
        dead=counts["dead"],
        percent=round(100.0 * (counts["done"] + counts["dead"]) / total, 2) if total else 100.0,
        eta_seconds=estimate_eta(remaining, ledger.remaining_frames(), clips_rate, frames_rate),
        clips_per_second=round(clips_rate, 3),
        frames_per_second=round(frames_rate, 2),
        workers=workers,
        elapsed_seconds=round(now - meter.started, 1),
        updated_at=wall,
        pid=os.getpid(),
        paused_reason=paused if state in ("running", "paused") else None,
        errors=ledger.error_counts(),
    )


def say_start(orchestrator: Orchestrator) -> None:
    """The run's first lines: what it resumes, its devices, its derived settings, its clips and workers."""
    ledger, settings, log = orchestrator.ledger, orchestrator.settings, orchestrator.log
    counts = ledger.counts()
    if orchestrator.recovered or counts["done"]:
        log.info("resuming: %d clips done, %d were in flight and run again", counts["done"], orchestrator.recovered)
    if settings.devices:
        log.info(
            "devices %s, one per worker in turn: each worker sees its own alone (CUDA_VISIBLE_DEVICES)",
            ", ".join(settings.devices),
        )
    for note in settings.notes:  # defaults derived from the machine
        log.info("%s", note)
    for warning in settings.warnings:  # values capped to the machine, limits the pool cannot enforce
        log.warning("%s", warning)
    total = sum(counts.values())
    ledger.log_event(
        "info",
        f"run started by pid {os.getpid()}: {total} clips, {counts['done']} done, {orchestrator.recovered} recovered",
    )
    if settings.pool == "inline":
        workers = "inline"
    elif settings.pool == "dask":
        workers = f"Dask scheduler {settings.scheduler}"
    else:
        workers = f"{settings.workers} {settings.pool} workers"
    log.info(
        "run %s: %d clip%s, processor %s, %s%s",
        orchestrator.run_dir,
        total,
        "" if total == 1 else "s",
        orchestrator.config.processor_spec(),
        workers,
        orchestrator.specs.task_line(),
    )


def say_placement(orchestrator: Orchestrator) -> None:
    """What Dask workers must see, on a cluster of other machines."""
    settings = orchestrator.settings
    if settings.pool != "dask" or settings.scheduler == "local":
        return
    if settings.artifacts == "shared":
        orchestrator.log.info(
            "Dask workers must see the dataset (%s) and the run folder (%s) at these paths: they read "
            "the videos and write artifacts into %s",
            settings.dataset,
            orchestrator.run_dir,
            orchestrator.folder.tmp,
        )
    else:
        orchestrator.log.info(
            "Dask workers must see the dataset (%s) at this path; their artifacts come back with the "
            "results (--artifacts return)",
            settings.dataset,
        )


def policy_of(settings: Settings, resources: Resources, executor: Executor, specs: Specs, run_dir: Path) -> Policy:
    """The run's policy, as numbers: its settings, the floors the machine came to, its executor's abilities."""
    return Policy(
        **settings.shared(Policy),
        pool_holds_timeout=executor.holds_task_timeout,
        worker_limit=resources.worker_limit,
        device_limit=settings.device_memory or None,
        memory_floor=resources.memory_floor,
        disk_floor=resources.disk_floor,
        frames_held=specs.frames_held,
        task_clips=specs.task_clips,
        resizable=executor.resizable,
        run_dir=str(run_dir),
    )
