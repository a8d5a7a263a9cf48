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
from contextlib import contextmanager
from typing import Any

import pebble
import psutil

from midvbatch.engine import worker
from midvbatch.pipeline.clip import ClipOutcome, TaskSpec


class Executor(ABC):
    """Runs tasks somewhere and hands back their clips' ClipOutcomes.

    A task is one clip, or several that one worker runs in order (a read-ahead and batches
    may then cross from one to the next); it comes back whole: an outcome for each of its
    clips, or, when its worker dies, a failed outcome for each.
    """

    capacity: int  # how many tasks it can run at once

    @abstractmethod
    def submit(self, specs: list[TaskSpec]) -> None:
        """Start (or queue) a task: the clips of `specs`, in order."""

    @abstractmethod
    def cancel(self, task_id: int) -> None:
        """Stop the task holding clip `task_id` if it can; its outcomes then never come back."""

    @abstractmethod
    def completed(self, timeout: float) -> list[ClipOutcome]:
        """Wait up to `timeout` seconds for tasks to finish; return their outcomes."""

    def stages(self) -> list[tuple[int, str, int | str | None]]:
        """Return (task id, stage, worker) messages received since the last call.

        The worker is a local worker process's pid, a Dask worker's address, or None (threads, inline).
        """
        return []

    def warnings(self) -> list[str]:
        """Return what went wrong with the workers themselves since the last call, a line each, for the log."""
        return []

    def worker_memory(self) -> dict[str, int]:
        """The resident memory of each remote worker (address -> bytes); local workers are read by pid."""
        return {}

    def kill_worker(self, address: str, task_ids: list[int]) -> None:
        """Stop the tasks holding `task_ids` by restarting the remote worker `address`; their clips come back
        failed. Local workers are killed by pid instead."""
        raise NotImplementedError("only remote (Dask) workers are restarted by address")

    def cancel_queued(self) -> list[int]:
        """Withdraw the tasks submitted but not started yet; return their clips' ids."""
        return []

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the workers (in-flight tasks are abandoned) and close the processors they built."""

    def __len__(self) -> int:
        return len(self.in_flight())

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
            outcomes.extend(future.result() if exc is None else [crash_outcome(tid, exc) for tid in ids])
        return outcomes


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

    resource_tracker.ensure_running()
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
    group; the groups of every worker seen are killed at shutdown, so nothing a
    processor started outlives the run. Processor output goes to `log_dir`.
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
        context = multiprocessing.get_context("spawn")
        slots = context.Array("i", workers) if devices else None  # a worker's pid per slot: slot i, device i
        # Stages come back as lines on one pipe: a write of less than PIPE_BUF bytes is atomic,
        # so workers share it without a lock or pickling, and a worker that dies right after
        # reporting a stage has still reported it (no feeder thread).
        self._stage_reader, stage_writer = context.Pipe(duplex=False)
        os.set_blocking(self._stage_reader.fileno(), False)
        self._partial = b""
        self._timeout = task_timeout
        self.capacity = workers
        self.worker_pids: dict[int, float | None] = {}  # pid -> start time, of every worker seen
        with _sigint_blocked():
            self._pool = pebble.ProcessPool(
                max_workers=workers,
                max_tasks=max_tasks,
                initializer=worker.init_process,
                initargs=(stage_writer, os.getpid(), str(log_dir) if log_dir is not None else None, devices, slots),
                context=context,
            )
        self._stage_writer = stage_writer  # kept open: workers started later receive it

    def submit(self, specs: list[TaskSpec]) -> None:
        # the orchestrator holds each clip of a task to the timeout; the pool holds the task to its clips' sum
        timeout = self._timeout * len(specs) if self._timeout is not None else None
        with _sigint_blocked():  # the first schedule starts the pool's workers and threads
            future = self._pool.schedule(worker.run_task, args=(specs,), timeout=timeout)
        self._futures[future] = tuple(s.task_id for s in specs)

    def stages(self) -> list[tuple[int, str, int | str | None]]:
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
        out: list[tuple[int, str, int | str | None]] = []
        for line in lines:
            try:
                task, pid, stage = line.decode("utf-8", "replace").split("\t", 2)
                message = (int(task), stage, int(pid))
            except ValueError:
                continue
            out.append(message)
            if message[2] not in self.worker_pids:
                self.worker_pids[message[2]] = process_start(message[2])
        return out

    def shutdown(self) -> None:
        # pebble stops each worker with SIGTERM: one between clips closes its processors first (worker._end_group)
        self._pool.stop()
        self._stop_unheard_workers()
        self._pool.join(timeout=10)
        self._stage_reader.close()
        self._stage_writer.close()
        for pid, started in self.worker_pids.items():
            kill_group(pid, started)

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

    def stages(self) -> list[tuple[int, str, int | str | None]]:
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
