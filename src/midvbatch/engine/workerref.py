"""A worker named the same way whatever runs it: a local process, a thread, the orchestrator, a Dask worker.

Executors hand out `WorkerRef`s with each stage a clip reaches, and take them back to read
a worker's memory or to kill it; the run's policy (engine/run/state.py) compares and
stores them and never asks which kind of worker stands behind one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerRef:
    """One worker of an executor: `kind` is "process", "thread", "inline" or "dask"; `id` its pid or address."""

    kind: str
    id: int | str

    @property
    def pid(self) -> int | None:
        """The process id of a local worker process; None for any other worker."""
        return self.id if self.kind == "process" and isinstance(self.id, int) else None

    @property
    def address(self) -> str | None:
        """The address of a remote (Dask) worker; None for a local one."""
        return self.id if self.kind == "dask" and isinstance(self.id, str) else None

    def killing(self) -> str:
        """What killing it is called in the run's log."""
        return f"restarting Dask worker {self.id}" if self.kind == "dask" else f"killing worker {self.id}"

    def killed(self) -> str:
        """What became of it once killed, as the failure of a clip past --task-timeout says it."""
        return f"Dask worker {self.id} restarted" if self.kind == "dask" else "worker killed"

    def __str__(self) -> str:
        return str(self.id)
