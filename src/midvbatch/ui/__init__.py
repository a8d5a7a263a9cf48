"""Presentation: what the command line draws on the screen, between ``cli`` and the library.

The library reports progress as data (``engine.progress.Snapshot``, ``dataset.fetch.FetchMeter``)
to the progress objects and logging handler it is handed, and prints nothing itself; this
package builds those for a console: rich bars and panels on a terminal, plain lines
otherwise. ``rich`` is imported here and nowhere below.
"""

from midvbatch.ui.console import echo_table, stderr_console
from midvbatch.ui.fetchview import FetchView
from midvbatch.ui.log import console_log_handler
from midvbatch.ui.runview import RunView, format_seconds, summary_line, worker_rows

__all__ = [
    "FetchView",
    "RunView",
    "console_log_handler",
    "echo_table",
    "format_seconds",
    "stderr_console",
    "summary_line",
    "worker_rows",
]
