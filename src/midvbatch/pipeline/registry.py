"""Finding processors: the registry of names (built-in pipelines and entry points) and MODULE:FACTORY.

Factories are found by name in the registry (the built-in pipelines, and entry points of
group ``midvbatch.processors``) or as ``MODULE:FACTORY``. A run checks the processor and
its options (check_processor) before it creates anything; workers build it (make_processor).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from midvbatch.errors import MidvBatchError, ProcessorError
from midvbatch.plugins import (
    BUILT_IN,
    PROCESSORS,
    PluginLoadError,
    Registry,
    describe_failure,
    load_plugin,
)

ENTRY_POINT_GROUP = PROCESSORS

Factory = Callable[..., Any]


def _unknown(spec: str, known: list[str]) -> str:
    return f"unknown processor {spec!r} (known: {', '.join(sorted(known))}; or give MODULE:FACTORY)"


def new_processor_registry() -> Registry[Factory]:
    """Return a new registry of processor factories: the built-in pipelines, entry points of group
    midvbatch.processors, nothing registered; its errors are ProcessorError."""
    return Registry(PROCESSORS, "processor", error=ProcessorError, unknown=_unknown)


@functools.cache
def processor_registry() -> Registry[Factory]:
    """Return this process's registry of processor factories (made on first use; see new_processor_registry)."""
    return new_processor_registry()


@dataclass
class ProcessorInfo:
    """A registered processor as ``midvbatch processors`` lists it."""

    name: str
    source: str  # "built-in", or "entry point MODULE:ATTR"
    doc: str  # the first line of the factory's docstring
    options: list[dict[str, Any]] = field(default_factory=list)  # {"name", "default"} or {"name", "required": True}
    error: str | None = None  # why the plugin cannot be loaded

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)


def _json_ready(value: Any) -> Any:
    """`value` if JSON can hold it (a tuple becomes a list), else its repr."""
    if isinstance(value, tuple):
        value = list(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and all(_json_ready(v) == v for v in value):
        return value
    return repr(value)


def _options_of(factory: Factory) -> list[dict[str, Any]]:
    """The keyword options `factory` takes (what --option KEY=VALUE can give), with their defaults."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    options = []
    for p in signature.parameters.values():
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        options.append(
            {"name": p.name, "required": True}
            if p.default is p.empty
            else {"name": p.name, "default": _json_ready(p.default)}
        )
    return options


def describe_processors() -> list[ProcessorInfo]:
    """Describe every registered processor: built-in pipelines first, then entry points by name.

    Entry points are loaded to read their options and docstring; one that cannot be
    loaded is listed with the reason in `error`, never raised.
    """
    infos = []
    for entry in processor_registry().describe():
        factory = entry.value
        if factory is None:  # a plugin's import error, sys.exit included
            infos.append(ProcessorInfo(entry.name, entry.source, "", [], entry.error))
            continue
        doc = (inspect.getdoc(factory) or "").strip().splitlines()
        infos.append(ProcessorInfo(entry.name, entry.source, doc[0] if doc else "", _options_of(factory)))
    builtins = [i for i in infos if i.source == BUILT_IN]
    return builtins + sorted((i for i in infos if i.source != BUILT_IN), key=lambda i: i.name)


def load_processor_factory(spec: str, import_dir: str | None = None) -> Factory:
    """Return the factory named by `spec`: a registered name or MODULE:FACTORY.

    MODULE is imported from `import_dir` (default: the current directory) or PYTHONPATH.
    Raises ProcessorError with what went wrong.
    """
    if ":" not in spec:
        return processor_registry().get(spec)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ProcessorError(f"bad processor {spec!r}: expected MODULE:FACTORY")
    where = import_dir or os.getcwd()
    if where not in sys.path:
        sys.path.insert(0, where)
    try:
        module = load_plugin(functools.partial(importlib.import_module, module_name), f"module {module_name!r}")
    except PluginLoadError as exc:
        cause = exc.__context__
        if isinstance(cause, ImportError) and getattr(cause, "name", None) == module_name:
            raise ProcessorError(f"cannot import module {module_name!r} of processor {spec!r}: {cause}") from None
        raise ProcessorError(f"{exc.message} (processor {spec!r})") from None
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ProcessorError(f"module {module_name!r} has no {attr!r}")
    if not callable(factory):
        raise ProcessorError(f"{spec!r} is not callable")
    return factory


def check_processor(spec: str, options: dict[str, Any], import_dir: str | None = None) -> Factory:
    """Check, without building it, that the processor `spec` exists and takes `options`; return its factory.

    A run calls this before it creates anything, so a misspelt --processor or --option
    is one line, not a run folder full of dead clips. Raises ProcessorError.
    """
    factory = load_processor_factory(spec, import_dir)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return factory
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = [o["name"] for o in _options_of(factory)]
        hint = f" (it takes: {', '.join(accepted)})" if accepted else " (it takes no options)"
        raise ProcessorError(f"processor {spec!r} does not take these options: {exc}{hint}") from None
    _check_requirements(spec, factory, options)
    return factory


def _check_requirements(spec: str, factory: Factory, options: dict[str, Any]) -> None:
    """Run the factory's own `check(**options)`, if it has one: what the processor needs that is missing.

    A processor whose engine (a library, language data, a model file) is not installed says
    so here, in one line, before a run folder exists, instead of failing every clip at setup.
    """
    check = getattr(factory, "check", None)
    if not callable(check):
        return
    try:
        load_plugin(functools.partial(check, **options), f"processor {spec!r}")
    except PluginLoadError as exc:
        cause = exc.__context__
        # the check's own words (what is missing, how to install it), or what went wrong in it
        why = cause.message if isinstance(cause, MidvBatchError) else describe_failure(cause or exc)
        raise ProcessorError(f"processor {spec!r} cannot run here: {why}") from None


def make_processor(spec: str, options: dict[str, Any], import_dir: str | None = None) -> Any:
    """Build the processor named by `spec` with `options`; check it has a process method."""
    factory = load_processor_factory(spec, import_dir)
    try:
        processor = factory(**options)
    except TypeError as exc:
        raise ProcessorError(f"processor {spec!r} does not take these options: {exc}") from None
    if not any(hasattr(processor, m) for m in ("process_frame", "process_batch", "process_clip")):
        raise ProcessorError(f"processor {spec!r} has none of process_frame, process_batch, process_clip")
    return processor
