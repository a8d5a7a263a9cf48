"""Choosing the executor of a run: worker processes, threads, inline, or a Dask cluster.

Apart from engine/executor.py so that the executors do not import each other: the
Dask executor builds on executor.py's FutureExecutor, and this module knows them all.
Which pool, how many workers and which limits apply were decided by the configuration
(:class:`~midvbatch.config.Settings`); this module only builds what it says.
"""

from __future__ import annotations

import logging
import os

from midvbatch.config import Settings
from midvbatch.engine.executor import (
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)


def check_pool(settings: Settings) -> None:
    """Raise MidvBatchError, before anything is made, for a pool that cannot be reached: a Dask scheduler where
    nothing listens (ClusterError)."""
    if settings.pool == "dask":
        from midvbatch.engine.dask import probe

        probe(settings.scheduler)


def make_executor(
    settings: Settings,
    *,
    log_dir: str | os.PathLike | None = None,
    clips_per_task: int = 1,
    log: logging.Logger | None = None,
) -> Executor:
    """Return the executor of `settings.pool` with `settings.workers` workers.

    Worker processes get the task timeout, the recycling count (in tasks of up to
    `clips_per_task` clips: a worker is replaced once it has run at least
    --max-tasks-per-worker clips), their devices and `log_dir` (where their processors'
    output goes); with Dask, clips go to `settings.scheduler` ('local': a local cluster of
    `settings.workers` processes), and distributed's own log records to `log`'s file.
    """
    if settings.pool == "dask":
        from midvbatch.engine.dask import DaskExecutor

        return DaskExecutor(settings.scheduler, settings.workers, settings.artifacts, log=log)
    if settings.pool == "inline":
        return InlineExecutor()  # debugging: no timeout
    if settings.pool == "thread":
        return ThreadExecutor(settings.workers)  # threads cannot be killed: no timeout, no recycling
    return ProcessExecutor(
        settings.workers,
        max_tasks=-(-(settings.max_tasks_per_worker or 0) // clips_per_task),
        task_timeout=settings.task_timeout,
        log_dir=log_dir,
        devices=settings.devices,
    )
