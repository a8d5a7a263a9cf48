"""Running clips on a Dask distributed cluster: the same Executor interface, beyond one machine.

The orchestrator, the ledger and the run folder stay on the machine that runs
``midvbatch run``; Dask workers receive the same small TaskSpecs and return the same
ClipOutcomes. Workers need midvbatch (and your processor's module) installed, and must
see the dataset and the run folder at the same paths (a shared filesystem), since they
read the videos and write artifacts to RUN_DIR/tmp.
"""

from __future__ import annotations

import queue
import time
import uuid

from midvbatch.engine import worker
from midvbatch.engine.executor import FutureExecutor, crash_outcome
from midvbatch.errors import ConfigError
from midvbatch.pipeline.clip import ClipOutcome, TaskSpec


class DaskExecutor(FutureExecutor):
    """Submit clips to a Dask scheduler (`address`), or ('local') to a local cluster of `workers` processes.

    Dask workers outlive a run and may serve several: the processors they build for this
    one are kept under its own name, and closed on every worker at shutdown.
    """

    def __init__(self, address: str | None, workers: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "the dask executor needs the distributed package: pip install 'midvbatch[dask]'"
            ) from None
        super().__init__()
        self._cluster = None
        self._owner = f"dask-{uuid.uuid4().hex}"
        try:
            if address in (None, "local"):
                self._cluster = LocalCluster(
                    n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                self.client = Client(self._cluster)
            else:
                self.client = Client(address, timeout=10)
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.capacity = max(1, sum(self.client.nthreads().values()))
        # stage changes come back as the scheduler's events of a topic of this run's own
        self._topic = f"midvbatch-stages-{self._owner}"
        self._messages: queue.SimpleQueue = queue.SimpleQueue()
        self.client.subscribe_topic(self._topic, self._messages.put)

    def stages(self) -> list[tuple[int, str, int | None]]:
        # no pid: a Dask worker's process is on another machine, nothing the orchestrator may signal
        out: list[tuple[int, str, int | None]] = []
        while not self._messages.empty():
            _, message = self._messages.get()
            try:
                out.append((int(message["task"]), str(message["stage"]), None))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def submit(self, specs: list[TaskSpec]) -> None:
        first = specs[0]
        key = f"midvbatch-{first.clip}-{first.task_id}-{first.attempt}" + (f"-{len(specs)}" if len(specs) > 1 else "")
        future = self.client.submit(
            worker.run_task_on_dask, specs, self._owner, self._topic, key=key, pure=False, retries=0
        )
        self._futures[future] = tuple(s.task_id for s in specs)

    def cancel_queued(self) -> list[int]:
        return []  # Dask does not say whether a pending task has started: let them all finish

    def completed(self, timeout: float) -> list[ClipOutcome]:
        deadline = time.monotonic() + timeout
        while True:
            done = [f for f in self._futures if f.done()]
            if done or time.monotonic() >= deadline or not self._futures:
                break
            time.sleep(0.02)
        outcomes: list[ClipOutcome] = []
        for future in done:
            ids = self._futures.pop(future)
            if future.status == "finished":
                outcomes.extend(future.result())
            elif future.status != "cancelled":
                exc = future.exception()
                for task_id in ids:
                    outcome = crash_outcome(task_id, exc)
                    if type(exc).__name__ == "KilledWorker":
                        outcome.error_class, outcome.error = "crash", f"Dask worker died running it ({exc})"
                    outcomes.append(outcome)
        return outcomes

    def shutdown(self) -> None:
        for future in self._futures:
            future.cancel()
        try:
            self.client.run(
                worker.close_processors, self._owner
            )  # on every worker (a clip still running: when it ends)
        except Exception:  # noqa: BLE001, S110 (a scheduler or workers gone: nothing left to close there)
            pass
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
