"""How the scheduler reaches workers: submit, cancel, collect completed outcomes.

Three executors share one small interface: a supervised process pool (pebble), a
thread pool (for processors that release the GIL), and inline execution in the
orchestrator (``--workers 0``, for debugging). A distributed executor (Dask) slots in
the same way. Failures of the worker itself (killed by a signal, exited) come back as
ClipOutcomes like any other failure. Every executor's shutdown closes the processors
its workers built (see engine/worker.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue as queue_module
import signal as signal_module
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from typing import Any

import pebble
import psutil

from midvbatch.engine import reaper, worker
from midvbatch.engine.workerref import WorkerRef
from midvbatch.errors import shortage
from midvbatch.pipeline.spec import ClipOutcome, TaskSpec


class Executor(ABC):
    """Runs tasks somewhere and hands back their clips' ClipOutcomes.

    A task is one clip, or several that one worker runs in order (a read-ahead and batches
    may then cross from one to the next); it comes back whole: an outcome for each of its
    clips, or, when its worker dies, a failed outcome for each.
    """

    capacity: int  # how many tasks it can run at once
    could_start: int | None = None  # workers it had started when it could start no more (the machine ran short)
    holds_task_timeout = True  # a task of one clip is held to --task-timeout by the executor itself
    resizable = False  # resize() can change its worker count

    @abstractmethod
    def submit(self, specs: list[TaskSpec]) -> None:
        """Start (or queue) a task: the clips of `specs`, in order."""

    @abstractmethod
    def cancel(self, task_id: int) -> None:
        """Stop the task holding clip `task_id` if it can; its outcomes then never come back."""

    @abstractmethod
    def completed(self, timeout: float) -> list[ClipOutcome]:
        """Wait up to `timeout` seconds for tasks to finish; return their outcomes."""

    def stages(self) -> list[tuple[int, str, WorkerRef | None]]:
        """Return (task id, stage, worker) messages received since the last call (worker None: not told)."""
        return []

    def warnings(self) -> list[str]:
        """Return what went wrong with the workers themselves since the last call, a line each, for the log."""
        return []

    def worker_memory(self) -> dict[WorkerRef, int]:
        """The resident memory of each worker (bytes) that can be read apart from the run's own: {} for threads."""
        return {}

    def device_memory(self) -> dict[WorkerRef, int]:
        """The device (GPU) memory each worker holds (bytes), where the driver tells it; {} otherwise."""
        return {}

    def kill_worker(self, ref: WorkerRef, task_ids: list[int]) -> None:  # noqa: B027 (none: nothing to kill)
        """Kill worker `ref` (a remote one: restart it), with what its processor started; the tasks holding
        `task_ids` come back failed. Threads and the orchestrator itself cannot be killed: nothing is done."""

    def end_leftovers(self, ref: WorkerRef) -> None:  # noqa: B027 (none: nothing to end)
        """A worker died or was killed: end what its processor started, where the executor can tell what that is."""

    def cancel_queued(self) -> list[int]:
        """Withdraw the tasks submitted but not started yet; return their clips' ids."""
        return []

    def resize(self, workers: int) -> bool:
        """Run `workers` workers from now on; False where this executor cannot (threads, inline, Dask). The tasks in
        flight then come back failed with class "resources" (the machine ran short, not the clips)."""
        return False

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the workers (in-flight tasks are abandoned) and close the processors they built."""

    @abstractmethod
    def in_flight(self) -> list[int]:
        """Return the ids of the clips submitted and not yet collected."""


def crash_outcome(task_id: int, exc: BaseException) -> ClipOutcome:
    """Turn a worker's death (a signal, an exit, a timeout) or an exception from the pool into a failed outcome."""
    if isinstance(exc, pebble.ProcessExpired):
        code = exc.exitcode
        if code is not None and code < 0:
            name = (
                signal_module.Signals(-code).name if -code in signal_module.Signals._value2member_map_ else str(-code)
            )
            return ClipOutcome(
                task_id,
                ok=False,
                error_class="crash",
                error=f"worker killed by {name}",
                signal=-code,
                exitcode=None,
                pid=exc.pid,
            )
        return ClipOutcome(
            task_id, ok=False, error_class="crash", error=f"worker exited with code {code}", exitcode=code, pid=exc.pid
        )
    if isinstance(exc, cf.TimeoutError):
        return ClipOutcome(task_id, ok=False, error_class="timeout", error="timeout")
    short = shortage(exc)
    if short is not None:  # the pool could not start a worker, or its threads: the machine's state
        cause = exc.__cause__ or exc
        return ClipOutcome(
            task_id,
            ok=False,
            error_class="resources",
            error=f"the pool could not start a worker or a thread: out of {short} ({getattr(cause, 'strerror', None) or cause})",
        )
    if isinstance(exc, BrokenProcessPool):
        return ClipOutcome(task_id, ok=False, error_class="crash", error=f"the worker pool broke ({exc})")
    return ClipOutcome(task_id, ok=False, error_class="error", error=f"{type(exc).__name__}: {exc}")


class FutureExecutor(Executor):
    """The bookkeeping of executors built on futures (pebble, threads, Dask): submit map, cancel, completed."""

    def __init__(self) -> None:
        # concurrent.futures futures here; DaskExecutor keeps distributed's, which are not cf.Future
        self._futures: dict[Any, tuple[int, ...]] = {}  # a task's future -> its clips' ids

    def in_flight(self) -> list[int]:
        return [tid for ids in self._futures.values() for tid in ids]

    def cancel(self, task_id: int) -> None:
        for future, ids in list(self._futures.items()):
            if task_id in ids:
                future.cancel()
                del self._futures[future]

    def cancel_queued(self) -> list[int]:
        withdrawn: list[int] = []
        for future, ids in list(self._futures.items()):
            if not future.running() and not future.done() and future.cancel():
                del self._futures[future]
                withdrawn.extend(ids)
        return withdrawn

    def completed(self, timeout: float) -> list[ClipOutcome]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        outcomes: list[ClipOutcome] = []
        for future in done:
            ids = self._futures.pop(future)
            if future.cancelled():
                continue
            exc = future.exception()
            outcomes.extend(future.result() if exc is None else self._failed(ids, exc))
        return outcomes

    def _failed(self, ids: tuple[int, ...], exc: BaseException) -> list[ClipOutcome]:
        """The outcomes of a task whose future failed with `exc` (its worker died or timed out, the pool broke)."""
        return [crash_outcome(tid, exc) for tid in ids]


_PEBBLE_WORKER = "pebble_pool_worker"  # the name pebble gives its worker processes


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold back Ctrl-C while workers may be started: they inherit the blocked signal.

    A worker killed by a Ctrl-C while still importing would break the pool; blocked, the
    signal waits, the orchestrator gets it when this block ends, and workers ignore it.
    """
    # multiprocessing's resource tracker, started with the first worker, unblocks SIGINT in
    # the thread that starts it: start it first, so the block holds while workers start
    from multiprocessing import resource_tracker

    try:
        resource_tracker.ensure_running()
    except OSError:  # the machine ran short (processes, descriptors): starting a worker will say so
        pass
    try:
        old = signal_module.pthread_sigmask(signal_module.SIG_BLOCK, {signal_module.SIGINT})
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal_module.pthread_sigmask(signal_module.SIG_SETMASK, old)


def process_start(pid: int) -> float | None:
    """Return when process `pid` started (psutil's create_time), None if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def kill_group(pid: int, started: float | None = None) -> None:
    """Kill the process group a worker led (the worker and whatever its processor started).

    `started` is the worker's start time: if a process with that pid exists and started
    at another time, the pid was reused and the group is someone else's: left alone. (The
    kernel does not hand out a pid still in use as a process group id, so while the
    worker's processes live, its group id is theirs.)
    """
    if started is not None:
        now = process_start(pid)
        if now is not None and abs(now - started) > 0.01:
            return
    try:
        os.killpg(pid, signal_module.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessExecutor(FutureExecutor):
    """A supervised pool of worker processes (pebble), started with 'spawn'.

    Spawned workers inherit no descriptors, so the run lock stays with the orchestrator,
    and they watch their parent so that none outlives it. Each leads its own process
    group and adopts what its clips leave (see engine/reaper.py); the orchestrator is a
    subreaper too, so what a worker killed outright leaves is handed to it, and ended
    when the worker's death is seen: nothing a processor started outlives the run.
    Processor output goes to `log_dir`.

    A pool that cannot start a worker (or its own threads: the machine ran short) is
    started again at the next task; the tasks it lost come back failed with class
    "resources", as do those in flight when the pool is resized.
    """

    def __init__(
        self,
        workers: int,
        *,
        max_tasks: int = 0,
        task_timeout: float | None = None,
        log_dir: str | os.PathLike | None = None,
        devices: tuple[str, ...] = (),
    ):
        super().__init__()
        self._context = multiprocessing.get_context("spawn")
        slots = self._context.Array("i", workers) if devices else None  # a worker's pid per slot: slot i, device i
        # Stages come back as lines on one pipe: a write of less than PIPE_BUF bytes is atomic,
        # so workers share it without a lock or pickling, and a worker that dies right after
        # reporting a stage has still reported it (no feeder thread).
        self._stage_reader, stage_writer = self._context.Pipe(duplex=False)
        os.set_blocking(self._stage_reader.fileno(), False)
        self._partial = b""
        self._timeout = task_timeout
        self._max_tasks = max_tasks
        self.capacity = workers
        self.resizable = True
        self.worker_pids: dict[int, float | None] = {}  # pid -> start time, of every worker seen
        self._mark = uuid.uuid4().hex  # in the environment of what this pool's workers start (worker.POOL_MARK)
        self._since = reaper.now_ticks()  # what this process started before the pool is none of its business
        self._subreaper = reaper.become_subreaper()
        self._held: list[ClipOutcome] = []  # outcomes for the next completed(): tasks a broken or resized pool lost
        self._broken = False  # the pool cannot take tasks: started again at the next submit
        self._deaths = False  # a worker died since the last look: what it started is swept
        self._initargs = (stage_writer, os.getpid(), str(log_dir) if log_dir is not None else None, devices, slots)
        self._pool = self._new_pool(workers)
        self._stage_writer = stage_writer  # kept open: workers started later receive it

    def _new_pool(self, workers: int) -> pebble.ProcessPool:
        self._scheduled = False  # (see submit)
        with _sigint_blocked():
            return pebble.ProcessPool(
                max_workers=workers,
                max_tasks=self._max_tasks,
                initializer=worker.init_process,
                initargs=(*self._initargs, self._mark),
                context=self._context,
            )

    def submit(self, specs: list[TaskSpec]) -> None:
        # the orchestrator holds each clip of a task to the timeout; the pool holds the task to its clips' sum
        timeout = self._timeout * len(specs) if self._timeout is not None else None
        ids = tuple(s.task_id for s in specs)
        for again in (True, False):
            try:
                if self._broken:
                    self._restart(self.capacity)
                # the first schedule starts the pool's workers and threads (which start later workers, the mask
                # inherited): only it needs Ctrl-C held back, and probing the resource tracker costs a write
                with nullcontext() if self._scheduled else _sigint_blocked():
                    future = self._pool.schedule(worker.run_task, args=(specs,), timeout=timeout)
                self._scheduled = True
            except (OSError, RuntimeError) as exc:  # (BrokenProcessPool included) its threads, workers or pipes
                self._break()
                if again and shortage(exc) is None:
                    continue  # a pool that broke earlier (a worker lost while idle): once more, on a fresh one
                self._held.extend(crash_outcome(tid, exc) for tid in ids)
                return
            self._futures[future] = ids
            return

    def resize(self, workers: int) -> bool:
        if workers != self.capacity or self._broken:
            self._restart(workers)
        return True

    def _restart(self, workers: int) -> None:
        """Stop the pool and start another of `workers` workers (they start with its first task).

        Outcomes already in are kept; the tasks still in flight come back failed with class
        "resources": they were not at fault.
        """
        for future, ids in list(self._futures.items()):
            if future.done() and not future.cancelled():
                exc = future.exception()
                self._held.extend(future.result() if exc is None else self._failed(ids, exc))
            else:
                future.cancel()
                self._held.extend(
                    ClipOutcome(
                        tid, ok=False, error_class="resources", error=f"withdrawn: the pool restarts with {workers}"
                    )
                    for tid in ids
                )
        self._futures.clear()
        self._stop_pool()
        self.capacity = workers
        self._pool = self._new_pool(workers)
        self._broken, self.could_start = False, None

    def in_flight(self) -> list[int]:
        return super().in_flight() + [o.task_id for o in self._held]

    def cancel(self, task_id: int) -> None:
        super().cancel(task_id)
        self._held = [o for o in self._held if o.task_id != task_id]

    def completed(self, timeout: float) -> list[ClipOutcome]:
        held, self._held = self._held, []
        outcomes = held + super().completed(0 if held else timeout)
        if self._deaths:
            self._deaths = False
            self._sweep()
        return outcomes

    def _failed(self, ids: tuple[int, ...], exc: BaseException) -> list[ClipOutcome]:
        self._deaths = True  # its worker died (or the pool broke): what it started is handed to this process
        if isinstance(exc, BrokenProcessPool):
            self._break()
        return super()._failed(ids, exc)

    def _break(self) -> None:
        """The pool cannot go on: note how many workers it had started (could_start); start it again later."""
        if not self._broken:
            self._broken = True
            self.could_start = sum(1 for c in multiprocessing.active_children() if c.name == _PEBBLE_WORKER)

    def _sweep(self) -> None:
        """End what dead workers left: processes handed to this process (a subreaper) that this pool's workers
        started, detached or not, and reap them."""
        if self._subreaper:
            reaper.end(self._orphans)

    def _orphans(self) -> reaper.Procs:
        """This process's children that this pool's workers started: marked by the pool's mark in their
        environment, or copies of a worker (forked, not run anew) out of this process's group; and zombies
        that are no worker (their marks went with them). Never a worker, nor what this process started before
        the pool (a caller's own subprocesses)."""
        workers = {p.pid for p in multiprocessing.active_children()}
        mark = f"{worker.POOL_MARK}={self._mark}"
        group = os.getpgrp()
        found: reaper.Procs = {}
        for pid, started in reaper.children().items():
            if pid in workers or started < self._since:
                continue
            info = reaper.stat(pid)
            if info is None:
                continue
            copy = info.pgid != group and b"--multiprocessing-fork" in reaper.command_line(pid)
            if info.state == "Z" or copy or reaper.environment_has(pid, mark):
                found[pid] = started
        return found

    def stages(self) -> list[tuple[int, str, WorkerRef | None]]:
        chunks = [self._partial]
        while True:
            try:
                chunk = os.read(self._stage_reader.fileno(), 1 << 16)
            except (OSError, ValueError):  # nothing more to read now (BlockingIOError), or closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out: list[tuple[int, str, WorkerRef | None]] = []
        for line in lines:
            try:
                task, pid_text, stage = line.decode("utf-8", "replace").split("\t", 2)
                pid = int(pid_text)
                out.append((int(task), stage, WorkerRef("process", pid)))
            except ValueError:
                continue
            if pid not in self.worker_pids:
                self.worker_pids[pid] = process_start(pid)
        return out

    def _live_workers(self) -> list[int]:
        """The pids of the pool's workers alive now (of those heard from)."""
        alive = {c.pid for c in multiprocessing.active_children() if c.name == _PEBBLE_WORKER}
        return [pid for pid in self.worker_pids if pid in alive]

    def worker_memory(self) -> dict[WorkerRef, int]:
        found = {}
        for pid in self._live_workers():
            try:
                found[WorkerRef("process", pid)] = psutil.Process(pid).memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def device_memory(self) -> dict[WorkerRef, int]:
        from midvbatch.accelerators import device_memory

        held = device_memory() or {}
        return {WorkerRef("process", pid): held[pid] for pid in self._live_workers() if pid in held}

    def kill_worker(self, ref: WorkerRef, task_ids: list[int]) -> None:  # noqa: B027 (none: nothing to kill)
        """SIGKILL the worker (the pool replaces it) and its process group: what its processor started."""
        if ref.pid is None:
            return
        try:
            os.kill(ref.pid, signal_module.SIGKILL)
        except ProcessLookupError:
            pass
        self.end_leftovers(ref)

    def end_leftovers(self, ref: WorkerRef) -> None:  # noqa: B027 (none: nothing to end)
        """Kill the worker's process group, unless its pid now belongs to another process."""
        if ref.pid is not None:
            kill_group(ref.pid, self.worker_pids.get(ref.pid))

    def shutdown(self) -> None:
        self._stop_pool()
        self._stage_reader.close()
        self._stage_writer.close()
        if self._subreaper:
            reaper.become_subreaper(False)

    def _stop_pool(self) -> None:
        """Stop the pool's workers, kill their groups, end what they left."""
        # pebble stops each worker with SIGTERM: one between clips closes its processors first (worker._end_group)
        self._pool.stop()
        self._stop_unheard_workers()
        try:
            self._pool.join(timeout=10)
        except (OSError, RuntimeError):  # a pool that broke while starting: what it started is killed below
            if not self._broken:
                raise
        for pid, started in self.worker_pids.items():
            kill_group(pid, started)
        self._sweep()

    def _stop_unheard_workers(self) -> None:
        """SIGTERM, all at once, the pool's workers that never reported a stage (starting, or idle).

        pebble's join closes the pool's channels, unlinking their semaphores, and then stops the
        workers one at a time, waiting for each: a worker still starting (slow under load) meanwhile
        fails to attach to the semaphores and prints a traceback on the run's stderr. A worker
        not heard from has run no clip far enough to report; SIGTERM ends it as pebble would.
        """
        self.stages()  # the pids of workers heard from since the last poll
        for child in multiprocessing.active_children():
            if child.name == _PEBBLE_WORKER and child.pid is not None and child.pid not in self.worker_pids:
                try:
                    os.kill(child.pid, signal_module.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass


class ThreadExecutor(FutureExecutor):
    """A pool of threads in the orchestrator's process; each thread has its own processor."""

    def __init__(self, workers: int):
        super().__init__()
        self.capacity = workers
        self._owner = f"threads-{uuid.uuid4().hex}"  # its processors, among others this process may hold
        self._messages: queue_module.SimpleQueue = queue_module.SimpleQueue()
        worker.set_reporter(lambda task, stage: self._messages.put((task, stage, None)))
        self._pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="midvbatch-worker")

    def submit(self, specs: list[TaskSpec]) -> None:
        self._futures[self._pool.submit(worker.run_task, specs, self._owner)] = tuple(s.task_id for s in specs)

    def stages(self) -> list[tuple[int, str, WorkerRef | None]]:
        out = []
        while not self._messages.empty():
            out.append(self._messages.get())
        return out

    def shutdown(self) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            worker.close_processors(self._owner)  # every thread's (a clip still running: when it ends)


class InlineExecutor(Executor):
    """Runs each task in the orchestrator itself, one at a time: breakpoints work."""

    capacity = 1

    def __init__(self, on_stage: Callable[[int, str], None] | None = None):
        self._pending: list[list[TaskSpec]] = []
        self._owner = f"inline-{uuid.uuid4().hex}"
        worker.set_reporter(on_stage or (lambda task, stage: None))

    def in_flight(self) -> list[int]:
        return [s.task_id for specs in self._pending for s in specs]

    def submit(self, specs: list[TaskSpec]) -> None:
        self._pending.append(specs)

    def cancel(self, task_id: int) -> None:
        self._pending = [specs for specs in self._pending if all(s.task_id != task_id for s in specs)]

    def cancel_queued(self) -> list[int]:
        withdrawn = self.in_flight()  # inline: nothing runs between calls
        self._pending = []
        return withdrawn

    def completed(self, timeout: float) -> list[ClipOutcome]:
        if not self._pending:
            return []
        return worker.run_task(self._pending.pop(0), self._owner)

    def shutdown(self) -> None:
        worker.close_processors(self._owner)
