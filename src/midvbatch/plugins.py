"""Plugins: importing another package's code (an entry point, a MODULE:ATTR) without letting it end us.

A plugin module runs arbitrary code when it is imported. An argparse script at top level
calls ``sys.exit`` (and prints its usage), a module may raise anything, or print to the
terminal. :func:`load_plugin` runs such an import with standard output and standard error
captured, and turns whatever stops it, ``SystemExit`` included, into :class:`PluginLoadError`:
one line saying what the plugin did. Ctrl-C (``KeyboardInterrupt``) still stops the command.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from midvbatch.errors import MidvBatchError

T = TypeVar("T")

_SHOWN = 200  # characters of what a failing plugin printed, kept in the error


class PluginLoadError(MidvBatchError):
    """A plugin's code could not be imported or loaded (it raised, or called sys.exit)."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:_SHOWN] if lines else ""


def describe_failure(exc: BaseException, printed: str = "") -> str:
    """One line for an exception a plugin's import raised (SystemExit included), with the last line it printed."""
    if isinstance(exc, SystemExit):
        what = f"it called sys.exit({exc.code!r})" if exc.code is not None else "it called sys.exit()"
    else:
        what = f"{type(exc).__name__}: {exc}".splitlines()[0][:_SHOWN] if str(exc) else type(exc).__name__
    said = _last_line(printed)
    return f"{what} (it printed: {said})" if said else what


def load_plugin(load: Callable[[], T], what: str) -> T:
    """Return `load()`, run with stdout and stderr captured; raise PluginLoadError naming `what` if it fails.

    `what` names the plugin in the message ("dataset format 'x' (pkg.mod:fmt)"). What a
    plugin prints while it loads successfully is passed on to standard error afterwards.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            result = load()
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's import: whatever it does is one line
        raise PluginLoadError(f"{what} cannot be loaded: {describe_failure(exc, captured.getvalue())}") from None
    printed = captured.getvalue()
    if printed:
        sys.stderr.write(printed)
    return result


def load_entry_point(ep: Any, what: str) -> Any:
    """Load the object an importlib.metadata EntryPoint names, through :func:`load_plugin`."""
    return load_plugin(ep.load, what)


__all__ = ["PluginLoadError", "describe_failure", "load_entry_point", "load_plugin"]
