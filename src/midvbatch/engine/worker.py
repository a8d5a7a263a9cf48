"""The worker side: process set-up, one processor per worker, one clip per call.

Workers receive a TaskSpec and return a ClipOutcome; they never touch the ledger or
the screen. Stage changes go back as lines on a pipe given at start-up.

A worker process leads its own process group, so a Ctrl-C in the terminal reaches only
the orchestrator, and whatever the processor starts (subprocesses, and theirs) goes
with the worker: when the worker ends (stopped, recycled, orphaned) it kills its group.
The kernel tells it when the orchestrator dies (PR_SET_PDEATHSIG), and a watch thread
checks its parent every 0.1 s besides. The processor's own output (print, warnings,
native libraries writing to descriptors 1 and 2) goes to RUN_DIR/logs/worker-PID.log,
capped in size (it starts over past 64 MiB), not to the terminal.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from midvbatch.pipeline.clip import ClipOutcome, TaskSpec, run_clip
from midvbatch.pipeline.registry import make_processor

PARENT_POLL_SECONDS = 0.1
OUTPUT_LIMIT = 64 << 20  # bytes of processor output kept per worker log
_output_capped = False
_PR_SET_PDEATHSIG = 1

_report: Callable[[int, str], None] = lambda task, stage: None
_local = threading.local()  # processors, one per worker thread (thread pool) or process


def _end_group(*_args: Any) -> None:
    """Kill this worker's process group (the worker and what its processor started), then exit."""
    _kill_children()
    try:
        if os.getpgrp() == os.getpid():  # the group is this worker's own
            os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(70)


def _kill_children() -> None:
    """Kill the processes this worker is parent of (their own children share the worker's process group)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                children = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            _end_group()  # orphaned: the orchestrator is gone, nobody wants our result
        _cap_output()


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watch thread alone
        pass


def _capture_output(log_file: Path) -> None:
    """Send descriptors 1 and 2 (Python's prints and native libraries' alike) to `log_file`.

    Straight to the file, not through a pipe: a native library writing a lot while it
    holds the GIL cannot block on a pipe nobody can empty. The size is kept in bounds by
    _watch_parent (see _cap_output).
    """
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    global _output_capped
    _output_capped = True


def _cap_output(limit: int = OUTPUT_LIMIT) -> None:
    """Start the worker's log over (with a note) once it passes `limit` bytes."""
    if not _output_capped:
        return
    try:
        if os.fstat(1).st_size > limit:
            os.ftruncate(1, 0)
            os.write(1, f"[midvbatch: this log passed {limit:,} bytes; what came before is discarded]\n".encode())
    except OSError:
        pass


def init_process(stages: Any, parent: int, log_dir: str | None = None) -> None:
    """Set up a worker process: its own process group, die with the parent, quiet Ctrl-C, stage reports.

    `stages` is the write end of the pipe (a multiprocessing Connection) that stage lines go to.

    The orchestrator starts workers with SIGINT blocked, so a Ctrl-C during start-up is
    not a KeyboardInterrupt here; it is ignored, then unblocked.
    """
    global _report
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGTERM, _end_group)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the orchestrator died before the kernel was told to tell us
        _end_group()
    atexit.register(_kill_children)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()
    if log_dir is not None:
        try:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            _capture_output(Path(log_dir) / f"worker-{os.getpid()}.log")
        except OSError:
            pass
    pid = os.getpid()
    fd = stages.fileno()

    def report(task: int, stage: str) -> None:
        line = f"{task}\t{pid}\t{stage.replace(chr(10), ' ')[:200]}\n".encode()  # < PIPE_BUF: one atomic write
        try:
            os.write(fd, line)
        except OSError:  # a closed pipe only costs a display update
            pass

    _report = report


def set_reporter(report: Callable[[int, str], None]) -> None:
    """Set where stage changes go (threads and inline runs share the orchestrator's process)."""
    global _report
    _report = report


def _processor(spec: TaskSpec) -> Any:
    cache = getattr(_local, "processors", None)
    if cache is None:
        cache = _local.processors = {}
    key = (spec.processor, repr(sorted(spec.options.items())))
    if key not in cache:
        processor = make_processor(spec.processor, spec.options, import_dir=spec.working_dir)
        if hasattr(processor, "setup"):
            _report(spec.task_id, "setup")
            processor.setup()
        cache[key] = processor
    return cache[key]


def close_processors() -> None:
    """Call close() on this worker's processors."""
    for processor in getattr(_local, "processors", {}).values():
        if hasattr(processor, "close"):
            processor.close()
    _local.processors = {}


def run_task(spec: TaskSpec) -> ClipOutcome:
    """Run one clip; never raises (a processor that cannot be built fails the clip).

    The working directory is put back after the clip: a processor that changes it
    affects neither the next clip nor (inline) the orchestrator.
    """
    start = time.perf_counter()
    cwd = spec.working_dir or os.getcwd()
    try:
        try:
            processor = _processor(spec)
        except BaseException as exc:  # SystemExit from a plugin's import included
            if isinstance(exc, KeyboardInterrupt):
                raise
            from midvbatch.errors import MidvBatchError

            return ClipOutcome(
                spec.task_id, ok=False, stage="setup",
                error_class="permanent" if isinstance(exc, MidvBatchError) else "error",
                error=str(exc) if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}",
                wall_seconds=time.perf_counter() - start, pid=os.getpid(),
            )
        outcome = run_clip(spec, processor, _report)
        outcome.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        outcome.pid = os.getpid()
        return outcome
    finally:
        try:
            if os.getcwd() != cwd:
                os.chdir(cwd)
        except OSError:
            try:
                os.chdir(cwd)
            except OSError:
                pass
        try:
            sys.stdout.flush()  # the processor's prints reach its log now, not at exit
        except (AttributeError, OSError, ValueError):
            pass
