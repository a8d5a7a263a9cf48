"""Choosing the executor of a run: worker processes, threads, inline, or a Dask cluster.

Apart from engine/executor.py so that the executors do not import each other: the
Dask executor builds on executor.py's FutureExecutor, and this module knows them all.
Which pool, how many workers and which limits apply were decided by the configuration
(:class:`~midvbatch.config.Settings`); this module only builds what it says. The pools are
a registry (:func:`pool_registry`): process, thread, dask, inline (what ``--workers 0``
resolves to), and entry points of group ``midvbatch.executors``, each a :class:`Pool`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from midvbatch.config import Settings
from midvbatch.engine.executor import (
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from midvbatch.errors import ConfigError
from midvbatch.plugins import EXECUTORS, Registry


@dataclass(frozen=True)
class PoolContext:
    """What an executor is given beside the settings: where worker output goes, clips per task, the run's log."""

    log_dir: str | os.PathLike | None = None  # where processors' output goes
    clips_per_task: int = 1
    log: logging.Logger | None = None  # whose file a pool's own log records go to


@dataclass(frozen=True)
class Pool:
    """A kind of executor: `make(settings, context)` builds it; `check(settings)`, if given, raises
    MidvBatchError before anything is made for a pool that cannot be reached."""

    make: Callable[[Settings, PoolContext], Executor]
    check: Callable[[Settings], None] | None = None


def _process(settings: Settings, context: PoolContext) -> Executor:
    return ProcessExecutor(
        settings.workers,
        max_tasks=-(-(settings.max_tasks_per_worker or 0) // context.clips_per_task),
        task_timeout=settings.task_timeout,
        log_dir=context.log_dir,
        devices=settings.devices,
    )


def _thread(settings: Settings, context: PoolContext) -> Executor:
    return ThreadExecutor(settings.workers)  # threads cannot be killed: no timeout, no recycling


def _inline(settings: Settings, context: PoolContext) -> Executor:
    return InlineExecutor()  # debugging: no timeout


def _dask(settings: Settings, context: PoolContext) -> Executor:
    from midvbatch.engine.dask import DaskExecutor

    return DaskExecutor(settings.scheduler, settings.workers, settings.artifacts, log=context.log)


def _probe_dask(settings: Settings) -> None:
    from midvbatch.engine.dask import probe

    probe(settings.scheduler)  # a Dask scheduler where nothing listens: ClusterError


PROCESS = Pool(_process)
THREAD = Pool(_thread)
INLINE = Pool(_inline)
DASK = Pool(_dask, check=_probe_dask)


def new_pool_registry() -> Registry[Pool]:
    """Return a new registry of pools: the built-ins, entry points of group midvbatch.executors, nothing
    registered; its errors are ConfigError."""
    return Registry(EXECUTORS, "pool", error=ConfigError)


@functools.cache
def pool_registry() -> Registry[Pool]:
    """Return this process's registry of pools (made on first use; see new_pool_registry)."""
    return new_pool_registry()


def check_pool(settings: Settings) -> None:
    """Raise MidvBatchError, before anything is made, for a pool that cannot be reached: a Dask scheduler where
    nothing listens (ClusterError)."""
    pool = pool_registry().get(settings.pool)
    if pool.check is not None:
        pool.check(settings)


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
    return pool_registry().get(settings.pool).make(settings, PoolContext(log_dir, clips_per_task, log))
