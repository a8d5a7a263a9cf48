"""The worker side: process set-up, one processor per worker, one task (one clip or several) per call.

Workers receive a task (the TaskSpecs of one clip or of several, run in order) and return
a ClipOutcome per clip; they never touch the ledger or the screen. Stage changes go back as lines on a pipe given at start-up.

A worker process leads its own process group, so a Ctrl-C in the terminal reaches only
the orchestrator. It is a child subreaper (see engine/reaper.py): whatever a clip starts,
detached or not, stays below it; what a clip started is ended when the clip ends, and
what the processor's setup() started when the worker ends (stopped, recycled, orphaned).
The kernel tells it when the orchestrator dies (PR_SET_PDEATHSIG), and a watch thread
checks its parent every 0.1 s besides (where no thread can be started, the kernel alone,
and the thread is tried again at the next task). The processor's own output (print, warnings,
native libraries writing to descriptors 1 and 2) goes to RUN_DIR/logs/worker-PID.log,
capped in size (it starts over past 64 MiB), not to the terminal.

Every processor a worker builds is closed once (its ``close()``), whichever pool runs
it: when its executor shuts down (threads, inline, Dask), when the pool stops a worker
process that is between clips, and when a worker process is recycled. A processor in
use is closed when its clip ends. What cannot be closed: a worker killed in a clip
(timeout, memory, crash, a stop that does not wait) or orphaned by the orchestrator.

A clip's ``peak_rss`` is the highest resident memory of its worker's process while its
task ran (Linux: the process's high-water mark, reset when the task starts); the clips of
one task, and clips that run at the same time in one process (threads, a Dask worker's
threads), share it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midvbatch.engine import reaper

if TYPE_CHECKING:  # imported where used: a worker loads numpy and FFmpeg (which may complain, say of a thread
    # they could not start) only once its output goes to its log
    from midvbatch.pipeline.spec import ClipOutcome, TaskSpec

PARENT_POLL_SECONDS = 0.1
OUTPUT_LIMIT = 64 << 20  # bytes of processor output kept per worker log
_output_capped = False
_PR_SET_PDEATHSIG = 1
POOL_MARK = "MIDVBATCH_POOL"  # in a worker process's environment: its pool's mark, which what it starts inherits


def _report_nothing(task: int, stage: str) -> None:
    pass


_report: Callable[[int, str], None] = _report_nothing
_accelerator: str | None = None  # the device this worker process was given (--devices), as it sees it
_local = threading.local()  # processors, one per worker thread (thread pool) or process
_parent: int | None = None  # a worker process's orchestrator
_subreaper = False  # this is a worker process that adopts what its clips leave (see engine/reaper.py)
_watching = False  # the parent-watch thread runs
_lock = threading.RLock()  # reentrant: the SIGTERM handler may run while the main thread holds it
_built: list[_Built] = []  # every processor built in this process and not yet closed, all threads
_caches: weakref.WeakSet[_Cache] = weakref.WeakSet()  # every thread's processors by key (a thread's goes with it)
_clips_running = 0  # clips in progress in this process (threads: several)
_peak_resettable = True  # False once resetting the process's peak memory failed (not Linux 4.0+): peaks unknown


_ending = False  # _end_group has begun
_closing = 0  # close_processors() calls under way in this process
_end_asked = False  # a SIGTERM came during one of them: end the worker once it is done


def _end_group(*_args: Any) -> None:
    """Kill what this worker started (every process below it, and its process group), then exit.

    Stopped by its pool (SIGTERM, the orchestrator alive), a worker between clips closes
    its processors first; one in a clip (a timeout, a cancel) or orphaned does not.
    """
    global _ending, _end_asked
    if _args and _closing and threading.current_thread() is threading.main_thread():
        # a SIGTERM in the middle of close_processors() (a worker exiting normally closes them at exit):
        # ending now would cut a close() short; close_processors() ends the worker when it is done
        _end_asked = True
        return
    if _ending:  # a second SIGTERM while the first is handled: the first finishes the job
        return
    _ending = True
    if _args and _parent is not None and os.getppid() == _parent:
        close_processors()
    _kill_descendants()
    try:
        if os.getpgrp() == os.getpid():  # the group is this worker's own
            os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(70)


def _kill_descendants() -> None:
    """Kill every process below this worker (SIGKILL), detached ones included, and reap them."""
    reaper.end(reaper.children, grace=0)


def _end_descendants() -> None:
    """End every process below this worker (SIGTERM, then SIGKILL): a worker exiting normally (recycled)."""
    reaper.end(reaper.children)


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


def _take_device(devices: tuple[str, ...], slots: Any) -> None:
    """Give this worker one of `devices`: the slot of a worker that is gone (or a free one), and the device
    of that slot in turn. The worker's environment then shows it that device alone, before any processor
    loads a framework: CUDA_VISIBLE_DEVICES, and MIDVBATCH_DEVICE (the device as the run names it)."""
    global _accelerator
    pid = os.getpid()
    with slots.get_lock():
        chosen = 0
        for index, holder in enumerate(slots):
            if holder == 0 or not _alive(holder):
                chosen = index
                break
        slots[chosen] = pid
    device = devices[chosen % len(devices)]
    from midvbatch.accelerators import visible_index

    os.environ["CUDA_VISIBLE_DEVICES"] = visible_index(device)
    os.environ["MIDVBATCH_DEVICE"] = device
    _accelerator = "cuda:0"  # the one device it sees


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie has ended)."""
    import psutil  # here: only workers given a device ask

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _watch() -> None:
    """Start the parent-watch thread unless it runs; where no thread can be started now, the kernel's
    PR_SET_PDEATHSIG alone ends the worker with its orchestrator, until the next try (each task)."""
    global _watching
    if _watching or _parent is None:
        return
    try:
        threading.Thread(target=_watch_parent, args=(_parent,), daemon=True, name="parent-watch").start()
        _watching = True
    except RuntimeError:  # can't start new thread: the machine's threads ran out, not this worker's fault
        pass


def init_process(
    stages: Any,
    parent: int,
    log_dir: str | None = None,
    devices: tuple[str, ...] = (),
    slots: Any = None,
    mark: str | None = None,
) -> None:
    """Set up a worker process: its own process group, die with the parent, quiet Ctrl-C, stage reports,
    and its accelerator when the run has `devices` (`slots`: a shared array, a worker's pid per slot).

    `stages` is the write end of the pipe (a multiprocessing Connection) that stage lines go to;
    `mark` goes into the environment (POOL_MARK), so that the orchestrator knows what the
    worker's processes started once they are handed to it (see ProcessExecutor).

    The orchestrator starts workers with SIGINT blocked, so a Ctrl-C during start-up is
    not a KeyboardInterrupt here; it is ignored, then unblocked.
    """
    global _report, _parent
    _parent = parent
    if devices and slots is not None:
        _take_device(devices, slots)
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
    global _subreaper
    _subreaper = reaper.become_subreaper()
    if mark:
        os.environ[POOL_MARK] = mark
    atexit.register(_end_descendants)
    atexit.register(close_processors)  # a worker recycled (--max-tasks-per-worker) exits normally: close first
    _watch()
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


def _reporter() -> Callable[[int, str], None]:
    """Where this thread's stage changes go: its own reporter (a Dask task's), else the process's."""
    return getattr(_local, "report", None) or _report


STAGE_EVENT_SECONDS = 0.5  # on Dask: at most one stage event per clip this often, besides each change of stage


RETURN_LIMIT = 64 << 20  # bytes of artifacts a clip may send back with its result (--artifacts return)


class TaskCancelled(Exception):
    """The orchestrator cancelled the Dask task this clip runs in: it stops at its next stage report."""


def run_task_on_dask(specs: list[TaskSpec], owner: str, topic: str, artifacts: str = "shared") -> list[ClipOutcome]:
    """run_task on a Dask worker.

    Its stage changes go to the client as events of `topic` on the scheduler ({"task",
    "stage", "pid"}, and Dask adds "worker"), each change of stage name at once, progress
    within one every STAGE_EVENT_SECONDS. A task whose future was cancelled stops at its
    next report. The worker must see the clips' files and (unless `artifacts` is
    "return") the run folder at the orchestrator's paths: when it does not, every clip
    comes back failed with class "placement" and the path it cannot see. With "return",
    artifacts are written to a local folder and come back in the outcome.
    """
    from distributed import get_worker

    from midvbatch.pipeline.spec import ClipOutcome

    dask_worker = get_worker()
    address = dask_worker.address
    key = dask_worker.get_current_task()
    unseen = _unseen(specs, returned=artifacts == "return")
    if unseen is not None:
        path, what = unseen
        return [
            ClipOutcome(
                s.task_id,
                ok=False,
                stage="placement",
                error_class="placement",
                error=f"worker {address}: cannot read {path}: {what}",
                missing=path,
                pid=os.getpid(),
            )
            for s in specs
        ]
    last: dict[int, tuple[float, str]] = {}
    pid = os.getpid()

    def report(task: int, stage: str) -> None:
        state = dask_worker.state.tasks.get(key) if key is not None else None
        if key is not None and (state is None or state.state in ("cancelled", "released", "forgotten")):
            raise TaskCancelled("the orchestrator cancelled this task")
        now, name = time.monotonic(), stage.split(" ", 1)[0]
        before = last.get(task)
        if before is not None and before[1] == name and now - before[0] < STAGE_EVENT_SECONDS:
            return
        last[task] = (now, name)
        try:
            dask_worker.log_event(topic, {"task": task, "stage": stage[:200], "pid": pid})
        except Exception:  # noqa: BLE001, S110 (a lost event costs a display update, never the clip)
            pass

    local: dict[int, str] = {}
    if artifacts == "return":
        import dataclasses
        import tempfile

        for i, spec in enumerate(specs):
            local[spec.task_id] = tempfile.mkdtemp(prefix=f"midvbatch-{spec.task_id}-")
            specs[i] = dataclasses.replace(spec, output_dir=local[spec.task_id])
    _local.report = report
    try:
        outcomes = run_task(specs, owner)
    except BaseException:  # cancelled before its clips began: their local folders go all the same
        for made in local.values():
            shutil.rmtree(made, ignore_errors=True)
        raise
    finally:
        _local.report = None
    for outcome in outcomes:
        folder = local.get(outcome.task_id)
        if folder is not None:
            collect_artifacts(outcome, folder)
    return outcomes


def executing_keys(dask_worker: Any) -> list[str]:
    """The keys of the tasks a Dask worker's threads are running now, cancelled ones included (Client.run)."""
    return [str(task.key) for task in list(dask_worker.state.executing)]


def _unseen(specs: list[TaskSpec], returned: bool) -> tuple[str, str] | None:
    """The first path of a task this machine does not see as the orchestrator does, and why; None if all are.

    A clip's video (or first picture) and first ground-truth file stand for the dataset;
    the attempt's folder, which the orchestrator made, for the run folder.
    """
    for spec in specs:
        files: list[str | None] = [spec.video] if spec.video else [next(iter(spec.images.values()), None)]
        files.append(next(iter(spec.ground_truth.values()), None))
        for path in files:
            if path and not os.access(path, os.R_OK):
                return path, "not mounted there?"
        if spec.output_dir and not returned and not os.path.isdir(spec.output_dir):
            return (
                os.path.dirname(spec.output_dir),
                "the run folder is not shared with it (mount it at the same path, or use --artifacts return)",
            )
    return None


def collect_artifacts(outcome: ClipOutcome, folder: str, limit: int = RETURN_LIMIT) -> None:
    """Put the artifacts a clip wrote into `folder` into its outcome (relative path -> bytes), then remove it.

    More than `limit` bytes fail the clip: results this large belong in a shared run folder.
    """
    try:
        if outcome.ok:
            files: dict[str, bytes] = {}
            total = 0
            root = Path(folder)
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not path.is_file():
                    continue
                total += path.stat().st_size
                if total > limit:
                    outcome.ok, outcome.stage, outcome.error_class = False, "artifacts", "permanent"
                    outcome.error = (
                        f"its artifacts pass the {limit / 2**20:g} MiB a clip may return (--artifacts return): "
                        "share the run folder with the workers instead"
                    )
                    outcome.frames = []
                    return
                files[path.relative_to(root).as_posix()] = path.read_bytes()
            outcome.artifacts = files
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def set_reporter(report: Callable[[int, str], None]) -> None:
    """Set where stage changes go (threads and inline runs share the orchestrator's process)."""
    global _report
    _report = report


class _Cache(dict):
    """One thread's processors by (processor, options, owner); a dict that can be weakly referenced."""

    # dict declares __hash__ = None (unhashable); this subclass is hashable on purpose.
    def __hash__(self) -> int:  # type: ignore[override]  # by identity, as a WeakSet needs
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


class _Built:
    """A processor a worker built: closed once, by close_processors() or, if a clip was using it, when that clip ends."""

    __slots__ = ("busy", "capabilities", "closed", "closing", "owner", "processor")

    def __init__(self, processor: Any, owner: str | None):
        from midvbatch.pipeline.processor import Capabilities

        self.processor = processor
        self.capabilities = Capabilities.of(processor)  # what it defines, read once
        self.owner = owner  # the executor that built it (threads, inline, Dask); None in worker processes
        self.busy = 0  # clips using it now
        self.closing = False  # close asked for: no new clip takes it
        self.closed = False


def _close(built: _Built) -> None:
    """Call the processor's close() if it has one, once; an error in it is printed, not raised."""
    with _lock:
        if built.closed:
            return
        built.closed = True
    close = getattr(built.processor, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:  # noqa: BLE001 (a failing close() must fail neither the run nor the other closes)
        print(
            f"midvbatch: {type(built.processor).__name__}.close() failed: {type(exc).__name__}: {exc}", file=sys.stderr
        )


def _acquire(spec: TaskSpec, owner: str | None) -> _Built:
    """Return this thread's processor for `spec` (built and set up on first use), marked busy."""
    cache = getattr(_local, "processors", None)
    if cache is None:
        cache = _local.processors = _Cache()
        with _lock:
            _caches.add(cache)
    key = (spec.run.processor, repr(sorted(spec.run.options.items())), owner)
    built = cache.get(key)
    if built is None or built.closing:
        from midvbatch.pipeline.registry import make_processor

        built = _Built(make_processor(spec.run.processor, spec.run.options, import_dir=spec.run.working_dir), owner)
        with _lock:
            _built.append(built)
        if built.capabilities.setup:
            _reporter()(spec.task_id, "setup")
            try:
                built.processor.setup()
            except BaseException:
                with _lock:
                    _built.remove(built)
                _close(built)  # what setup() took before it failed
                raise
        cache[key] = built
    with _lock:
        built.busy += 1
    return built


def _release(built: _Built) -> None:
    """Mark a clip's processor free; close it now if close_processors() was asked while the clip ran."""
    with _lock:
        built.busy -= 1
        late = built.closing and not built.busy
    if late:
        _close(built)


def close_processors(owner: str | None = None) -> None:
    """Call close() once on the processors this process built (all threads'), or those built for `owner`.

    A processor in use is closed when its clip ends; none is used again after this. A
    SIGTERM that arrives meanwhile waits for the closes to finish (see _end_group).
    """
    global _closing
    with _lock:
        _closing += 1
    try:
        with _lock:
            chosen = [b for b in _built if owner is None or b.owner == owner]
            for built in chosen:
                _built.remove(built)
                built.closing = True
            for cache in list(_caches):  # forgotten by every thread: a closed processor's memory can go
                for key in [k for k, b in cache.items() if b.closing]:
                    del cache[key]
            idle = [b for b in chosen if not b.busy]
        for built in idle:
            _close(built)
    finally:
        with _lock:
            _closing -= 1
            end = _end_asked and not _closing
    if end:
        _end_group(signal.SIGTERM, None)


def _clip_started() -> None:
    """Reset the process's peak resident memory, unless another clip runs in it now (threads)."""
    global _clips_running, _peak_resettable
    with _lock:
        _clips_running += 1
        alone = _clips_running == 1
    if alone and _peak_resettable:
        try:
            with open("/proc/self/clear_refs", "w") as f:  # Linux 4.0+: 5 resets VmHWM to the current RSS
                f.write("5")
        except OSError:
            _peak_resettable = False  # the high-water mark would be the process's, not the clip's


def _clip_peak_rss() -> int | None:
    """Return the process's peak resident memory since the last reset, in bytes; None where unknown."""
    global _clips_running
    with _lock:
        _clips_running -= 1
    if not _peak_resettable:
        return None
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_task(specs: list[TaskSpec], owner: str | None = None) -> list[ClipOutcome]:
    """Run a task, one clip or several in order on one processor; never raises (a processor that cannot be
    built fails every clip of the task).

    `owner` names the executor (threads, inline, Dask): processors are kept per owner,
    and close_processors(owner) closes its own. The working directory is put back after
    the task: a processor that changes it affects neither the next task nor (inline) the
    orchestrator. The clips of a task share its peak memory.
    """
    from midvbatch.pipeline.clip import ClipOutcome, run_clips

    start = time.perf_counter()
    spec = specs[0]
    cwd = spec.run.working_dir or os.getcwd()
    _watch()
    try:
        try:
            built = _acquire(spec, owner)
        except BaseException as exc:  # SystemExit from a plugin's import included
            if isinstance(exc, KeyboardInterrupt):
                raise
            from midvbatch.errors import MidvBatchError

            known = isinstance(exc, MidvBatchError)
            return [
                ClipOutcome(
                    s.task_id,
                    ok=False,
                    stage="setup",
                    error_class="permanent" if known else "error",
                    error=str(exc) if known else f"{type(exc).__name__}: {exc}",
                    wall_seconds=time.perf_counter() - start,
                    pid=os.getpid(),
                )
                for s in specs
            ]
        _clip_started()
        # what the worker started before: its processor's setup() (most workers start nothing: no /proc walk)
        kept = reaper.children() if _subreaper and reaper.has_children() else {}
        try:
            outcomes = run_clips(
                specs, built.processor, _reporter(), accelerator=_accelerator, capabilities=built.capabilities
            )
        finally:
            peak = _clip_peak_rss()
            _release(built)
            # what the clips started ends with them, however it detached
            if _subreaper and (kept or reaper.has_children()):
                reaper.end(lambda: {p: t for p, t in reaper.children().items() if kept.get(p) != t})
        if any(o.error_class == "oom" for o in outcomes):
            close_processors(owner)  # its device memory may be spoken for: the next clip starts a fresh one
        for outcome in outcomes:
            outcome.peak_rss = peak
            outcome.pid = os.getpid()
        return outcomes
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
