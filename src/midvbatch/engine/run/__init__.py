"""A run: put every selected clip of a dataset through a processor, durably.

Running the same command on the same run folder resumes: done clips are never run
again, clips that were in flight when the previous orchestrator died are run again.
The run is a policy that does no I/O (state.py, fed the events of events.py) inside a
shell that does all of it (shell.py); the folder, the ledger's checks on resume, the
clips' checks, their artifacts and the specs workers receive have a module each.
"""

from __future__ import annotations

import logging

from midvbatch.config import RunConfig
from midvbatch.engine.progress import RunProgress
from midvbatch.engine.resources import DiskReading, MemoryReading, disk_space, system_memory
from midvbatch.engine.run.shell import Orchestrator
from midvbatch.engine.run.summary import RunSummary

__all__ = ["Orchestrator", "RunSummary", "run"]


def run(
    config: RunConfig,
    *,
    restart: bool = False,
    progress: RunProgress | None = None,
    log_handler: logging.Handler | None = None,
    install_signals: bool = True,
    memory_reading: MemoryReading = system_memory,
    disk_reading: DiskReading = disk_space,
) -> RunSummary:
    """Run (or resume) `config` and return how it ended. Raises MidvBatchError for bad input.

    Paths are made absolute first, so a processor that changes the working directory
    cannot send results elsewhere; the processor and its options are checked before
    anything is created. `progress` is shown a snapshot about twice a second and
    `log_handler` gets the log's records from the configured level up; without them the
    run prints nothing (its log still goes to RUN_DIR/logs). `memory_reading` and
    `disk_reading` replace the system's readings (for tests).
    """
    from midvbatch.pipeline.registry import check_processor

    config = config.absolute()  # resolved and validated here, once: the Orchestrator reads config.resolved()
    check_processor(config.processor_spec(), config.options)
    return Orchestrator(
        config,
        restart=restart,
        progress=progress,
        log_handler=log_handler,
        install_signals=install_signals,
        memory_reading=memory_reading,
        disk_reading=disk_reading,
    ).run()
