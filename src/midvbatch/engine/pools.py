"""Choosing the executor of a run: worker processes, threads, inline, or a Dask cluster.

Apart from engine/executor.py so that the executors do not import each other: the
Dask executor builds on executor.py's FutureExecutor, and this module knows them all.
"""

from __future__ import annotations

from midvbatch.engine.executor import Executor, InlineExecutor, ProcessExecutor, ThreadExecutor


def make_executor(workers: int, pool: str, *, scheduler: str | None = None, **options) -> Executor:
    """Return the executor for `workers` (0: inline) and `pool` ('process', 'thread' or 'dask').

    With pool 'dask', clips go to the Dask scheduler at `scheduler` ('local' or None: a
    local cluster of `workers` processes).
    """
    if pool == "dask":
        from midvbatch.engine.dask import DaskExecutor

        return DaskExecutor(scheduler, workers or 1)
    if workers == 0:
        return InlineExecutor()  # debugging: no timeout
    if pool == "thread":
        return ThreadExecutor(workers)  # threads cannot be killed: no timeout, no recycling
    return ProcessExecutor(workers, **options)
