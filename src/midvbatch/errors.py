"""The one error hierarchy of midvbatch.

Every error a user can cause derives from :class:`MidvBatchError`; its ``str()`` is one
line that names the file (when there is one) and the problem, ready to print as is.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from pathlib import Path

EXIT_INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (or SIGTERM): run it again to go on


def shown(value: object, width: int = 40) -> str:
    """Show a user's value in a message, cut short: a 5,000-character option or a huge
    value from a file keeps the message one short line (an integer too long for Python to
    write out, inside `value` too, is "a very long integer")."""
    try:
        text = repr(value)
    except ValueError:  # int() of more than 4,300 digits refuses to be written out
        return "a very long integer"
    return text if len(text) <= width else f"{text[: width - 4]}...{text[-1]}"


class ErrorClass(StrEnum):
    """Why a clip failed, as the ledger records it (its `error_class`) and retries read it."""

    CRASH = "crash"  # its worker died: a signal, an exit
    TIMEOUT = "timeout"  # still running after --task-timeout
    MEMORY = "memory"  # its worker passed --worker-memory
    OOM = "oom"  # its device ran out of memory, or its worker passed --device-memory
    RESOURCES = "resources"  # the machine ran short of threads, processes, descriptors: not the clip's fault
    TRANSIENT = "transient"  # a TransientError: worth retrying
    PERMANENT = "permanent"  # a PermanentError, or artifacts that cannot be placed: never retried
    PLACEMENT = "placement"  # a Dask worker cannot see the dataset or the run folder
    INVALID = "invalid"  # set aside by the run's checks before it started
    ERROR = "error"  # any other exception of the processor


NEVER_RETRIED = frozenset({ErrorClass.PERMANENT})  # a failure of these classes makes the clip dead at once


class MidvBatchError(Exception):
    """Base of every error midvbatch raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{self.path}: {self.message}"


class TransientError(MidvBatchError):
    """A failure worth retrying: an I/O hiccup, the network, a resource running short."""


class ResourceShortage(TransientError):
    """The machine ran short of threads, processes, file descriptors or memory: the clip is not at fault.

    `resource` says which: "threads", "processes", "file descriptors" or "memory".
    """

    def __init__(self, message: str, *, resource: str, path: str | Path | None = None):
        self.resource = resource
        super().__init__(message, path=path)


SHORT_ERRNOS = {errno.EMFILE: "file descriptors", errno.ENFILE: "file descriptors", errno.ENOMEM: "memory"}
_STARTING = {"_execute_child", "spawnv_passfds", "_launch"}  # where subprocess and multiprocessing start processes


def shortage(exc: BaseException | None) -> str | None:
    """What the machine ran short of, if `exc` (or the exception it came from) says so; None if it does not.

    Threads ("can't start new thread"), processes (EAGAIN while one is being started),
    file descriptors (EMFILE, ENFILE) or memory maps (ENOMEM). EAGAIN elsewhere is
    non-blocking I/O that would block, not a shortage.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ResourceShortage):
            return exc.resource
        if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
            return "threads"
        if isinstance(exc, OSError):
            if exc.errno in SHORT_ERRNOS:
                return SHORT_ERRNOS[exc.errno]
            if exc.errno == errno.EAGAIN and _raised_in(exc, _STARTING):
                return "processes"
        exc = exc.__cause__ or exc.__context__
    return None


def _raised_in(exc: BaseException, functions: set[str]) -> bool:
    """Whether `exc` passed through a function named in `functions` on its way up."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in functions:
            return True
        tb = tb.tb_next
    return False


class PermanentError(MidvBatchError):
    """A failure that will happen again on retry: bad input, corrupt file, bad output."""


class DatasetError(PermanentError):
    """A dataset folder that cannot be read as one (missing, not a folder, bad selection)."""


class GroundTruthError(PermanentError):
    """A ground-truth JSON file that is unreadable or has the wrong shape."""


class VideoError(PermanentError):
    """A video file that cannot be opened, probed or decoded."""


class SynthError(MidvBatchError):
    """Synthesis options that cannot be honoured (bad size, pattern matching nothing)."""


class ConfigError(MidvBatchError):
    """Run options that cannot be honoured: a bad flag value, a bad TOML file."""


class PredictionsError(MidvBatchError):
    """A file of predictions made elsewhere that `midvbatch import` cannot read: not JSON or CSV, a bad record."""


class LedgerError(MidvBatchError):
    """A run folder whose ledger cannot be used: locked, changed configuration, damaged."""


class ClusterError(MidvBatchError):
    """A Dask cluster the run cannot use or lost: its scheduler unreachable, gone, or dropping the run's tasks."""


class ProcessorError(PermanentError):
    """A processor that cannot be loaded or returns something that cannot be stored."""
