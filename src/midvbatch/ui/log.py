"""The console's view of the run log: rich lines on a terminal, timestamped plain lines otherwise."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


class _QuietStreamHandler(logging.StreamHandler):
    """Console lines; a closed terminal loses them quietly."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def console_log_handler(console: Console) -> logging.Handler:
    """Return a logging handler writing to `console`: rich on a terminal, 'HH:MM:SS LEVEL message' otherwise."""
    if console.is_terminal:
        return RichHandler(console=console, show_path=False, markup=False)
    handler = _QuietStreamHandler(console.file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    return handler
