"""The run's log: JSON lines in RUN_DIR/logs/run.jsonl, and whatever handler the caller passes.

Every record carries timestamp, level, clip, attempt, stage and message; the file gets
every level, the caller's handler (the command line passes one writing to the console,
see ``midvbatch.ui``) what ``--log-level`` asks for.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from midvbatch.errors import LedgerError
from midvbatch.runfolder import LOGS, RUN_LOG

LOGGER_NAME = "midvbatch.run"


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": round(record.created, 6),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)),
                "level": record.levelname.lower(),
                "clip": getattr(record, "clip", None),
                "attempt": getattr(record, "attempt", None),
                "stage": getattr(record, "stage", None),
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


class _QuietFileHandler(logging.FileHandler):
    """The JSON-lines file: flushed at warnings and errors and when the run says so (twice a second),
    not at every debug line (a flush per clip cost more than the clip); a full disk silences it
    instead of printing a traceback per record.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:  # noqa: BLE001 - logging must never stop the run
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def open_run_log(run_dir: Path, level: str, handler: logging.Handler | None = None) -> logging.Logger:
    """Return the run logger, writing JSON lines under run_dir/logs and, from `level` up, to `handler`.

    Without a handler, the file is the only output. The handler is closed with the log.
    """
    logs = run_dir / LOGS
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot create the log folder: {exc.strerror or exc}", path=logs) from None
    logger = logging.getLogger(LOGGER_NAME)
    close_run_log(logger)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        file_handler = _QuietFileHandler(logs / RUN_LOG, encoding="utf-8")
    except OSError as exc:
        raise LedgerError(f"cannot write the log: {exc.strerror or exc}", path=logs / RUN_LOG) from None
    file_handler.setFormatter(JsonLinesFormatter())
    file_handler.setLevel(logging.DEBUG)
    logger.addHandler(file_handler)
    if handler is not None:
        handler.setLevel(level.upper())
        logger.addHandler(handler)
    return logger


def flush_run_log(logger: logging.Logger) -> None:
    """Write out what the run log holds in its buffers."""
    for handler in logger.handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - a full disk: the ledger holds what matters
            pass


def close_run_log(logger: logging.Logger) -> None:
    """Detach and close the handlers of the run logger."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
