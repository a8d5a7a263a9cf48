"""The one error hierarchy of midvbatch.

Every error a user can cause derives from :class:`MidvBatchError`; its ``str()`` is one
line that names the file (when there is one) and the problem, ready to print as is.
"""

from __future__ import annotations

from pathlib import Path

EXIT_INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (or SIGTERM): run it again to go on


def shown(value: object, width: int = 40) -> str:
    """Show a user's value in a message, cut short: a 5,000-character option or a huge
    value from a file keeps the message one short line."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 4]}...{text[-1]}"


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


class LedgerError(MidvBatchError):
    """A run folder whose ledger cannot be used: locked, changed configuration, damaged."""


class ProcessorError(PermanentError):
    """A processor that cannot be loaded or returns something that cannot be stored."""
