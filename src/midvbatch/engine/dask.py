"""Running clips on a Dask distributed cluster: the same Executor interface, beyond one machine.

The orchestrator, the ledger and the run folder stay on the machine that runs
``midvbatch run``; Dask workers receive the same small TaskSpecs and return the same
ClipOutcomes. Workers need midvbatch (and your processor's module) installed, and must
see the dataset at the same paths; the run folder too (they write artifacts to
RUN_DIR/tmp), unless artifacts come back with the results (``--artifacts return``).

What the scheduler tells the client, as events, is how the orchestrator watches the
workers as it watches local ones:

- each clip's stages (a topic of the run's own, sent by engine/worker.py), with the
  address of the worker that runs it;
- a worker leaving the cluster ("all": remove-worker), with the tasks it was processing:
  a clip that had started there fails with class crash, or memory when the worker's
  nanny restarted it for passing its memory limit ("worker-restart-memory"); one that
  had not started is left to Dask, which runs it elsewhere;
- the workers' memory, from the scheduler's heartbeats, for --worker-memory.

A clip held past --task-timeout or a worker past --worker-memory is stopped by
restarting its worker (through its nanny): a cancelled Dask task would keep running in
its thread. Cancelled tasks that are not stuck stop at their next stage report.

The connection to the scheduler lost, Dask cancels every task the client holds (a
scheduler that comes back has forgotten them): the executor then raises ClusterError, and
the orchestrator returns the clips in flight to the queue and ends the run; run again to
resume. distributed's own log records go to the run's log file while the executor lives,
not to the console.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from midvbatch.config import scheduler_address
from midvbatch.engine import worker
from midvbatch.engine.executor import FutureExecutor, crash_outcome
from midvbatch.engine.workerref import WorkerRef
from midvbatch.errors import ClusterError, ConfigError
from midvbatch.pipeline.spec import ClipOutcome, TaskSpec

MEMORY_READING_SECONDS = 1.0  # the workers' memory is asked of the scheduler at most this often
RESTART_TIMEOUT = 30.0  # seconds a worker's nanny has to restart it
RESTART_WAIT = 0.5  # seconds the run's end waits for a restart it asked for (the scheduler carries it through)
CANCEL_GRACE = 1.0  # seconds a cancelled task that had started has to stop (at its next frame) before its worker
# is restarted: a clip stuck in the processor never reaches its next frame
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
HANDSHAKE_TIMEOUT = 15.0  # seconds for the whole of the client's start, the scheduler's handshake included
CLOSE_TIMEOUT = 2.0  # seconds the client has to close once the scheduler is lost
_DASK_LOGGERS = ("distributed", "tornado", "bokeh")  # whose records go to the run's log file (and their children)


def probe(address: str | None) -> None:
    """Fail at once, in one line (ClusterError), when no Dask scheduler is at an address; 'local' (None) passes.

    Nothing listening: Dask's client would retry for CONNECT_TIMEOUT seconds before saying so. Over plain TCP a
    scheduler speaks first (its handshake) as soon as it accepts: a port where another service listens, or a
    frozen scheduler, stays silent, and Dask's client would wait for it forever. Raise ConfigError for an address
    that is not one (see config.scheduler_address); an in-process cluster's (inproc://, from Python) passes.
    """
    parsed = None if address is None or address.startswith("inproc://") else scheduler_address(address)
    if parsed is None:
        return
    scheme, host, port = parsed
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as connection:
            if scheme == "tcp" and not connection.recv(1):
                raise ClusterError(f"the service at {address} closed the connection: not a Dask scheduler?")
    except TimeoutError:
        raise ClusterError(
            f"no Dask scheduler answered at {address} within {CONNECT_TIMEOUT:g} s (another service on that "
            "port, or a scheduler that hangs?)"
        ) from None
    except OSError as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None


def _connect(client_class: Any, address: str) -> Any:
    """Return client_class(address) (distributed's Client), its whole start held to HANDSHAKE_TIMEOUT: Dask waits
    for the scheduler's handshake with no time limit, so that a port where another service listens, or a frozen
    scheduler, would hang the run. Raises TimeoutError past it."""

    class _Client(client_class):
        def start(self, **kwargs: Any) -> Any:
            # (distributed's sync() takes callback_timeout and cancels the start past it)
            return super().start(callback_timeout=HANDSHAKE_TIMEOUT, **kwargs)

    return _Client(address, timeout=CONNECT_TIMEOUT)


class _IntoRunLog(logging.Handler):
    """distributed's log records (and tornado's, bokeh's), into the run log's file: not onto the console."""

    def __init__(self, log: logging.Logger | None):
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        files = [h for h in (self._log.handlers if self._log else ()) if isinstance(h, logging.FileHandler)]
        if not files:
            return
        parts = [f"{record.name}:", record.getMessage()]
        if record.exc_info and record.exc_info[1] is not None:  # the exception's line, not its traceback
            exc = record.exc_info[1]
            parts.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        message = " ".join(p for p in parts if p)
        copy = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None, "exc_info": None})
        for handler in files:
            if copy.levelno >= handler.level:
                handler.handle(copy)


class _DaskLogs:
    """While held: the handlers of distributed's loggers replaced by one into the run's log file."""

    def __init__(self, log: logging.Logger | None):
        self._into = _IntoRunLog(log)
        self._saved: dict[str, list[logging.Handler]] = {}
        names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in _DASK_LOGGERS]
        for name in sorted({*names, *_DASK_LOGGERS}):
            logger = logging.getLogger(name)
            if logger.handlers or name in _DASK_LOGGERS:
                self._saved[name] = list(logger.handlers)
                for handler in self._saved[name]:
                    logger.removeHandler(handler)
                logger.addHandler(self._into)
                if name in _DASK_LOGGERS:
                    logger.propagate = False  # (distributed's config sets it so; tornado's, bokeh's: not to root)

    def release(self) -> None:
        """Put the loggers' own handlers back."""
        for name, handlers in self._saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self._into)
            for handler in handlers:
                logger.addHandler(handler)
        self._saved = {}


class DaskExecutor(FutureExecutor):
    """Submit clips to a Dask scheduler (`address`), or ('local') to a local cluster of `workers` processes.

    Dask workers outlive a run and may serve several: the processors they build for this
    one are kept under its own name, and closed on every worker at shutdown.
    `artifacts` is "shared" (workers write into the run folder) or "return". distributed's
    log records go to `log`'s file handlers (None: nowhere) until shutdown. Raises
    ConfigError for an address that is not one, ClusterError for a scheduler that cannot
    be reached (or a local cluster that cannot start); completed() raises ClusterError once
    the scheduler is lost.
    """

    def __init__(
        self, address: str | None, workers: int = 2, artifacts: str = "shared", log: logging.Logger | None = None
    ):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "the dask executor needs the distributed package: pip install 'midvbatch[dask]'"
            ) from None
        super().__init__()
        self._cluster = None
        self._owner = f"dask-{uuid.uuid4().hex}"
        self._artifacts = artifacts
        self._lost: str | None = None  # why the run's tasks are gone (the scheduler lost), once it is known
        probe(address)
        self._logs = _DaskLogs(log)
        try:
            if address in (None, "local"):
                self._cluster = LocalCluster(
                    n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                self.client = Client(self._cluster)
            else:
                self.client = _connect(Client, address)
        except Exception as exc:  # noqa: BLE001 (Dask's errors for an address: OSError, ValueError, TypeError...)
            self._logs.release()
            if self._cluster is not None:
                self._cluster.close()
            if address in (None, "local"):
                raise ClusterError(f"cannot start a local Dask cluster: {type(exc).__name__}: {exc}") from None
            if isinstance(exc, TimeoutError):
                raise ClusterError(
                    f"no Dask scheduler answered at {address} within {HANDSHAKE_TIMEOUT:g} s (another service on "
                    "that port, or a scheduler that hangs?)"
                ) from None
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {type(exc).__name__}: {exc}") from None
        self._address = str(address) if address not in (None, "local") else self.client.scheduler.address
        self.capacity = max(1, sum(self.client.nthreads().values()))
        self.holds_task_timeout = False  # nothing holds a Dask task to --task-timeout but the run's policy
        self._wake = threading.Event()  # a future finished or an event came
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._stages: list[tuple[int, str, WorkerRef | None]] = []
        self._where: dict[int, str] = {}  # clip id -> the worker its last stage came from
        self._ready: list[ClipOutcome] = []  # outcomes of tasks failed here (their worker left or was restarted)
        self._restarted: set[str] = set()  # workers restarted by this run: their other tasks are Dask's to move
        self._memory_restarts: dict[str, int] = {}  # worker -> its memory when its nanny restarted it
        self._memory: dict[WorkerRef, int] = {}
        self._memory_read = -1e9
        self._restarts: list[threading.Thread] = []
        self._closing = False
        self._cancelled: dict[str, str] = {}  # key of a started task cancelled -> the worker it ran on
        self._warnings: queue.SimpleQueue = queue.SimpleQueue()  # lines for the run's log, from restart threads
        # stage changes come as the scheduler's events of a topic of this run's own; workers leaving, as "all"
        self._topic = f"midvbatch-stages-{self._owner}"
        for topic in (self._topic, "all", "worker-restart-memory"):
            self.client.subscribe_topic(topic, lambda event, topic=topic: self._event(topic, event))

    def _event(self, topic: str, event: tuple[float, Any]) -> None:
        self._events.put((topic, event[1]))
        self._wake.set()

    def _drain(self) -> None:
        """Take in the events received: stages, workers restarted for memory, workers gone."""
        while not self._events.empty():
            topic, message = self._events.get()
            if not isinstance(message, dict):
                continue
            if topic == self._topic:
                try:
                    task, stage, where = int(message["task"]), str(message["stage"]), message.get("worker")
                except (KeyError, TypeError, ValueError):
                    continue
                if where:
                    self._where[task] = str(where)
                self._stages.append((task, stage, WorkerRef("dask", str(where)) if where else None))
            elif topic == "worker-restart-memory" and message.get("worker"):
                self._memory_restarts[str(message["worker"])] = int(message.get("rss") or 0)
            elif topic == "all" and message.get("action") == "remove-worker":
                self._worker_gone(str(message.get("worker")), set(message.get("processing-tasks") or ()))

    def _worker_gone(self, address: str, processing: set) -> None:
        """Fail the tasks that had started on a worker that left the cluster (Dask would run them again)."""
        if address in self._restarted:
            return  # this run restarted it: its own clip failed already, the others Dask runs again
        rss = self._memory_restarts.pop(address, None)
        for future, ids in list(self._futures.items()):
            if future.key not in processing or not any(self._where.get(t) == address for t in ids):
                continue  # not there, or not started yet: Dask runs it elsewhere
            future.cancel()
            del self._futures[future]
            for task_id in ids:
                if rss is not None:
                    outcome = ClipOutcome(
                        task_id,
                        ok=False,
                        error_class="memory",
                        error=f"Dask worker {address} reached {rss / 2**20:,.0f} MiB, past its memory limit; "
                        "its nanny restarted it",
                    )
                else:
                    outcome = ClipOutcome(
                        task_id, ok=False, error_class="crash", error=f"Dask worker {address} died running it"
                    )
                self._ready.append(outcome)

    def stages(self) -> list[tuple[int, str, WorkerRef | None]]:
        # the worker is its address: a process on another machine, nothing the orchestrator may signal
        self._drain()
        out, self._stages = self._stages, []
        return out

    def submit(self, specs: list[TaskSpec]) -> None:
        if self._artifacts == "shared":
            for spec in specs:  # a worker that does not see an attempt's folder does not share the run folder
                if spec.output_dir:
                    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
        first = specs[0]
        key = f"midvbatch-{first.clip}-{first.task_id}-{first.attempt}" + (f"-{len(specs)}" if len(specs) > 1 else "")
        future = self.client.submit(
            worker.run_task_on_dask,
            specs,
            self._owner,
            self._topic,
            self._artifacts,
            key=key,
            pure=False,
            retries=0,
        )
        future.add_done_callback(lambda _: self._wake.set())
        self._futures[future] = tuple(s.task_id for s in specs)

    def cancel_queued(self) -> list[int]:
        return []  # Dask does not say whether a pending task has started: let them all finish

    def _check_scheduler(self) -> None:
        """Raise ClusterError once the run's tasks are gone: the connection to the scheduler lost (Dask cancelled
        them all and tries to reconnect, to a scheduler that would not know them), or a task cancelled that this
        run did not cancel (the scheduler restarted)."""
        if self._lost is None and not self._closing:
            if self.client.status != "running":
                self._lost = f"lost the Dask scheduler at {self._address}"
            elif any(f.status == "cancelled" for f in self._futures):
                self._lost = f"the Dask scheduler at {self._address} dropped the run's tasks (restarted?)"
        if self._lost is not None:
            raise ClusterError(f"{self._lost}; run the same command again to resume")

    def cancel(self, task_id: int) -> None:
        if self._lost is not None:  # nothing to tell a scheduler that is gone (it would wait to reconnect)
            for future, ids in list(self._futures.items()):
                if task_id in ids:
                    del self._futures[future]
            return
        for future, ids in list(self._futures.items()):
            if task_id in ids:
                started = [t for t in ids if t in self._where]
                if started and not future.done():  # it runs somewhere: shutdown() makes sure it stops
                    self._cancelled[str(future.key)] = self._where[started[-1]]
        super().cancel(task_id)

    def completed(self, timeout: float) -> list[ClipOutcome]:
        self._wake.clear()  # (before looking: what comes after wakes the wait)
        self._drain()
        self._check_scheduler()
        if not self._ready and not any(f.done() for f in self._futures) and self._futures and timeout > 0:
            self._wake.wait(timeout)  # woken by a future done (or cancelled: the scheduler lost) or an event
            self._drain()
            self._check_scheduler()
        outcomes, self._ready = self._ready, []
        for future in [f for f in self._futures if f.done()]:
            ids = self._futures.pop(future)
            if future.status == "finished":
                outcomes.extend(future.result())
            elif future.status != "cancelled":
                exc = future.exception()
                for task_id in ids:
                    outcome = crash_outcome(task_id, exc)
                    if type(exc).__name__ == "KilledWorker":
                        outcome.error_class, outcome.error = "crash", f"Dask workers died running it ({exc})"
                    outcomes.append(outcome)
        return outcomes

    def worker_memory(self) -> dict[WorkerRef, int]:
        """The resident memory of each worker, from the scheduler's heartbeats, at most MEMORY_READING_SECONDS old."""
        now = time.monotonic()
        if now - self._memory_read >= MEMORY_READING_SECONDS and self.client.status == "running":
            self._memory_read = now
            try:
                info = self.client.scheduler_info(n_workers=-1)["workers"]
                self._memory = {
                    WorkerRef("dask", a): int(w.get("metrics", {}).get("memory") or 0) for a, w in info.items()
                }
            except Exception:  # noqa: BLE001 (the scheduler unreachable for a moment: the last reading stands)
                pass
        return self._memory

    def kill_worker(self, ref: WorkerRef, task_ids: list[int]) -> None:
        """Stop the tasks holding `task_ids` and restart the worker `ref` they run on, so that a stuck
        or swollen clip stops using it; those tasks' clips come back failed (class crash: the orchestrator
        says why). Other tasks on that worker are Dask's to run again elsewhere."""
        address = str(ref.id)
        for future, ids in list(self._futures.items()):
            if any(t in ids for t in task_ids) and not future.done():  # (one done comes back as it is)
                future.cancel()
                del self._futures[future]
                self._ready.extend(
                    ClipOutcome(t, ok=False, error_class="crash", error=f"Dask worker {address} restarted") for t in ids
                )
        self._restart_soon(address)
        self._wake.set()

    def _restart_soon(self, address: str) -> None:
        """Restart worker `address` in a thread (it takes seconds: the run goes on meanwhile); the tasks of this
        run it held are failed or cancelled already, the others are Dask's to move."""
        self._restarted.add(address)
        restart = threading.Thread(target=self._restart, args=(address,), daemon=True, name=f"restart {address}")
        restart.start()
        self._restarts.append(restart)

    def _restart(self, address: str) -> None:
        try:
            answers = self.client.restart_workers([address], timeout=RESTART_TIMEOUT, raise_for_error=False)
            problem = next((str(a) for a in (answers or {}).values() if a != "OK"), None)
            if problem is not None and address not in self.client.nthreads():
                problem = None  # gone already: nothing left running
        except Exception as exc:  # noqa: BLE001 (no nanny, or the scheduler gone: said, and the run goes on)
            problem = None if self._closing else str(exc)  # (the client closed: the scheduler restarts it)
        if problem is not None:
            self._warnings.put(
                f"cannot restart Dask worker {address} ({problem}): the clip it was running goes on in its "
                "thread until it ends; start workers with a nanny (the default) for --task-timeout and "
                "--worker-memory to free them"
            )

    def warnings(self) -> list[str]:
        out = []
        while not self._warnings.empty():
            out.append(self._warnings.get())
        return out

    def _free_stuck_workers(self) -> None:
        """Restart the workers still running a task this run cancelled CANCEL_GRACE seconds later (stuck in the
        processor: a cancelled task that runs stops at its next frame), so that they do not go on with it."""
        cancelled = dict(self._cancelled)
        if not cancelled:
            return
        addresses = sorted(set(cancelled.values()))
        deadline = time.monotonic() + CANCEL_GRACE
        stuck: set[str] = set()
        while True:
            try:
                running = self.client.run(worker.executing_keys, workers=addresses, on_error="return")
            except Exception:  # noqa: BLE001 (the scheduler gone: nothing to restart through)
                return
            stuck = {a for a, keys in running.items() if isinstance(keys, list) and set(keys) & set(cancelled)}
            if not stuck or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        for address in sorted(stuck):
            self._warnings.put(
                f"Dask worker {address} still ran a cancelled clip {CANCEL_GRACE:g} s later (stuck in the "
                "processor): restarting it"
            )
            self._restart_soon(address)

    def shutdown(self) -> None:
        """Cancel what is left, free stuck workers, close this run's processors on every worker, then leave: the
        topics first (the scheduler would tell a leaving client that it leaves), the client, the local cluster.
        The scheduler lost, only the client is closed, without waiting for it."""
        lost = self._lost is not None or self.client.status != "running"
        try:
            if not lost:
                self._leave()
            self._closing = True
            try:
                self.client.close(**({"timeout": CLOSE_TIMEOUT} if lost else {}))
            except Exception:  # noqa: BLE001, S110 (the scheduler gone: the run's own error says so)
                pass
            if self._cluster is not None:
                self._cluster.close()
        finally:
            self._logs.release()

    def _leave(self) -> None:
        for future in self._futures:
            future.cancel()
        self._free_stuck_workers()
        for restart in self._restarts:
            restart.join(RESTART_WAIT)  # what fails at once is said; the scheduler finishes a slow restart itself
        self._closing = True
        try:
            self.client.run(
                worker.close_processors, self._owner
            )  # on every worker (a clip still running: when it ends)
            for topic in (self._topic, "all", "worker-restart-memory"):
                self.client.unsubscribe_topic(topic)
        except Exception:  # noqa: BLE001, S110 (a scheduler or workers gone: nothing left to close there)
            pass
