"""The worker side: process set-up, one processor per worker, one clip per call.

Workers receive a TaskSpec and return a ClipOutcome; they never touch the ledger or
the screen. Stage changes go back through a queue given at start-up. A worker whose
parent (the orchestrator) dies exits by itself within half a second.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from midvbatch.pipeline.clip import ClipOutcome, TaskSpec, run_clip
from midvbatch.pipeline.processor import make_processor

PARENT_POLL_SECONDS = 0.5

_report: Callable[[int, str], None] = lambda task, stage: None
_local = threading.local()  # processors, one per worker thread (thread pool) or process


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(70)  # orphaned: the orchestrator is gone, nobody wants our result


def init_process(queue: Any, parent: int) -> None:
    """Set up a worker process: ignore Ctrl-C (the orchestrator decides), watch the parent, report stages."""
    global _report
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()
    pid = os.getpid()

    def report(task: int, stage: str) -> None:
        try:
            queue.put((task, stage, pid))
        except Exception:  # a closed queue only costs a display update
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
        processor = make_processor(spec.processor, spec.options)
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
    """Run one clip; never raises (a processor that cannot be built fails the clip)."""
    start = time.perf_counter()
    try:
        processor = _processor(spec)
    except Exception as exc:
        from midvbatch.errors import MidvBatchError

        return ClipOutcome(
            spec.task_id, ok=False, stage="setup", error_class="permanent" if isinstance(exc, MidvBatchError) else "error",
            error=str(exc) if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}",
            wall_seconds=time.perf_counter() - start, pid=os.getpid(),
        )
    outcome = run_clip(spec, processor, _report)
    outcome.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    outcome.pid = os.getpid()
    return outcome
