"""Plugins: every extension point's registry, and importing another package's code without letting it end us.

A plugin module runs arbitrary code when it is imported. An argparse script at top level
calls ``sys.exit`` (and prints its usage), a module may raise anything, or print to the
terminal. :func:`load_plugin` runs such an import with standard output and standard error
captured, and turns whatever stops it, ``SystemExit`` included, into :class:`PluginLoadError`:
one line saying what the plugin did. Ctrl-C (``KeyboardInterrupt``) still stops the command.

:class:`Registry` is the one registry of every extension point (processors, dataset formats,
exports, report formats, executors): the built-ins of :data:`BUILTINS`, what the program
registers, and the entry points of the extension point's group, loaded when first used.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

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


def load_entry_point(ep: Any, what: str, make: Callable[[Any], Any] | None = None) -> Any:
    """Load the object an importlib.metadata EntryPoint names, through :func:`load_plugin`.

    With `make`, return `make(object)`, called under the same capture (a class or function
    that returns the plugin runs plugin code too).
    """
    if make is None:
        return load_plugin(ep.load, what)
    return load_plugin(lambda: make(ep.load()), what)


# ------------------------------------------------------------------------------- registries

# Each extension point: its entry-point group (a package adds a plugin with an entry point of it).
PROCESSORS = "midvbatch.processors"
DATASETS = "midvbatch.datasets"
EXPORTS = "midvbatch.exports"
REPORTS = "midvbatch.reports"
EXECUTORS = "midvbatch.executors"

# The built-ins, as entry points name them: (name, MODULE:ATTR), in the order they are listed
# and detected. They are declared here, in code (datasette's DEFAULT_PLUGINS), rather than in
# pyproject.toml's entry points: the installed metadata may be older than the code (an
# editable install made before a built-in was added, a checkout on PYTHONPATH), and then a
# built-in would be missing; metadata holds no order; and the bottom layer (config) reads the
# names without importing the layers that define them.
BUILTINS: dict[str, tuple[tuple[str, str], ...]] = {
    PROCESSORS: (
        ("localize", "midvbatch.pipeline.localize:make"),
        ("ocr", "midvbatch.pipeline.ocr:make"),
        ("ground-truth", "midvbatch.pipeline.builtin:GroundTruthProcessor"),
        ("frames", "midvbatch.pipeline.builtin:FramesProcessor"),
        ("extract", "midvbatch.pipeline.builtin:ExtractProcessor"),
        ("probe", "midvbatch.pipeline.builtin:ProbeProcessor"),
        ("replay", "midvbatch.pipeline.replay:ReplayProcessor"),
    ),
    DATASETS: (
        ("midv500", "midvbatch.dataset.formats.midv:MIDV500_FORMAT"),
        ("midv2019", "midvbatch.dataset.formats.midv:MIDV2019_FORMAT"),
        ("midv2020", "midvbatch.dataset.formats.midv2020:MIDV2020_FORMAT"),
        ("folder", "midvbatch.dataset.formats.folder:FOLDER_FORMAT"),
    ),
    EXPORTS: (
        ("jsonl", "midvbatch.results.exports:JSONL"),
        ("csv", "midvbatch.results.exports:CSV"),
        ("coco", "midvbatch.results.exports:COCO"),
        ("smartengines", "midvbatch.results.exports:SMARTENGINES"),
        ("parquet", "midvbatch.results.exports:PARQUET"),
    ),
    REPORTS: (
        ("md", "midvbatch.report:MARKDOWN"),
        ("html", "midvbatch.report:HTML"),
        ("json", "midvbatch.report:JSON"),
        ("csv", "midvbatch.report:CSV"),
    ),
    EXECUTORS: (
        ("process", "midvbatch.engine.pools:PROCESS"),
        ("thread", "midvbatch.engine.pools:THREAD"),
        ("dask", "midvbatch.engine.pools:DASK"),
        ("inline", "midvbatch.engine.pools:INLINE"),  # what --workers 0 resolves to; not a --pool choice
    ),
}

BUILT_IN = "built-in"
REGISTERED = "registered"


def builtin_names(group: str) -> tuple[str, ...]:
    """The built-in names of an extension point (`group`), in order; nothing is imported or scanned."""
    return tuple(name for name, _ in BUILTINS.get(group, ()))


@dataclass(frozen=True)
class Described(Generic[T]):
    """One entry of a registry, loaded: its value, or why it cannot be loaded."""

    name: str
    source: str  # "built-in", "registered", or "entry point MODULE:ATTR"
    value: T | None
    error: str | None = None  # the one line of a plugin that cannot be loaded; then value is None


@dataclass(frozen=True)
class _Entry:
    name: str
    source: str
    load: Callable[[], Any]


def _same(value: Any) -> Any:
    return value


def unknown_name(kind: str, lead: str = "known: ") -> Callable[[str, list[str]], str]:
    """The message of a name a registry does not know: "unknown KIND 'NAME' (LEAD a, b, c)"."""
    return lambda name, known: f"unknown {kind} {name!r} ({lead}{', '.join(known)})"


class Registry(Generic[T]):
    """The named plugins of one extension point: built-ins, those registered here, entry points.

    One name, one entry, in precedence order: the built-ins (:data:`BUILTINS`), then what
    :meth:`register` added in this process, then the entry points of `group` (listed
    without being loaded; loaded once, when first asked for, through
    :func:`load_entry_point`). Names are compared through `key` (a format's 'MIDV-2019' is
    'midv2019'). `make` turns what an entry point names into the plugin (under the same
    capture of output), `accept(name, origin, value)` checks it (and returns it) after.
    Every failure is one `error` (a MidvBatchError subclass): a plugin that cannot be loaded
    (``"<kind> 'NAME' (MODULE:ATTR) cannot be loaded: ..."``), an unknown name (`unknown`'s
    message, from the name and the known names).
    """

    def __init__(
        self,
        group: str,
        kind: str,
        *,
        builtins: Iterable[tuple[str, str]] | None = None,
        error: type[MidvBatchError] = PluginLoadError,
        key: Callable[[str], str] = str,
        make: Callable[[Any], Any] | None = None,
        accept: Callable[[str, str, Any], T] | None = None,
        unknown: Callable[[str, list[str]], str] | None = None,
    ):
        self.group = group
        self.kind = kind  # what messages call one: "dataset format", "processor"
        pairs = BUILTINS.get(group, ()) if builtins is None else tuple(builtins)
        self._builtins = [EntryPoint(name, value, group) for name, value in pairs]
        self._error = error
        self._key = key
        self._make = make or _same
        self._accept: Callable[[str, str, Any], T] = accept or (lambda name, origin, value: value)
        self._unknown = unknown or unknown_name(kind)
        self._registered: dict[str, tuple[str, T]] = {}  # key -> (name, value)
        self._found: dict[str, T] = {}  # key -> the value get() resolved it to, loaded once

    def register(self, name: str, value: T) -> T:
        """Add `value` as `name` for this process; return it. A built-in of that name keeps precedence.

        Entry points are the way for plugins that workers in other processes must find too.
        """
        key = self._key(name)
        self._registered[key] = (name, value)
        self._found.pop(key, None)  # it may have resolved to an entry point before
        return value

    def _entries(self) -> Iterator[_Entry]:
        seen: set[str] = set()
        listed: list[tuple[str, str, Callable[[], Any]]] = []
        listed += [(ep.name, BUILT_IN, functools.partial(self._load_builtin, ep)) for ep in self._builtins]
        listed += [(name, REGISTERED, functools.partial(_same, v)) for name, v in self._registered.values()]
        for name, source, load in listed:
            if self._key(name) not in seen:
                seen.add(self._key(name))
                yield _Entry(name, source, load)
        for ep in entry_points(group=self.group):  # scanned only when a name is not found before them
            if self._key(ep.name) not in seen:
                seen.add(self._key(ep.name))
                yield _Entry(ep.name, f"entry point {ep.value}", functools.partial(self._load_entry_point, ep))

    def _load_builtin(self, ep: EntryPoint) -> T:
        # midvbatch's own code: imported as any module of it is, output not captured
        return self._accept(ep.name, ep.value, self._make(ep.load()))

    def _load_entry_point(self, ep: EntryPoint) -> T:
        try:
            value = load_entry_point(ep, f"{self.kind} {ep.name!r} ({ep.value})", self._make)
        except PluginLoadError as exc:  # a plugin's import error, sys.exit included
            raise self._error(exc.message) from None
        return self._accept(ep.name, ep.value, value)

    def names(self) -> list[str]:
        """Every known name, in precedence order; entry points are listed, not loaded."""
        return [entry.name for entry in self._entries()]

    def builtin_names(self) -> list[str]:
        """The built-ins' names, in order."""
        return [ep.name for ep in self._builtins]

    def builtins(self) -> list[T]:
        """The built-ins, loaded."""
        return [self.get(ep.name) for ep in self._builtins]

    def get(self, name: str) -> T:
        """Return the plugin called `name`, loaded; raise `error` for an unknown name or one that cannot load."""
        key = self._key(str(name))
        if key in self._found:  # called per clip: no scan of the entry points once found
            return self._found[key]
        for entry in self._entries():
            if self._key(entry.name) == key:
                value = entry.load()
                self._found[key] = value
                return value
        raise self._error(self._unknown(str(name), self.names()))

    def describe(self) -> Iterator[Described[T]]:
        """Every entry in precedence order, each loaded as it is reached; a plugin that cannot be loaded
        comes with its one-line error instead of raising."""
        for entry in self._entries():
            key = self._key(entry.name)
            try:
                value = self._found[key] if key in self._found else entry.load()
            except MidvBatchError as exc:
                yield Described(entry.name, entry.source, None, exc.message)
                continue
            self._found[key] = value
            yield Described(entry.name, entry.source, value)


__all__ = [
    "BUILTINS",
    "BUILT_IN",
    "DATASETS",
    "EXECUTORS",
    "EXPORTS",
    "PROCESSORS",
    "REGISTERED",
    "REPORTS",
    "Described",
    "PluginLoadError",
    "Registry",
    "builtin_names",
    "describe_failure",
    "load_entry_point",
    "load_plugin",
    "unknown_name",
]
