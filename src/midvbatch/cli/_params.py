"""The command line's parameter types, and the flags of the run options made from their table (OPTIONS).

Each type checks a flag's value as the configuration checks the same value in a TOML
file, and makes a bad one a usage error (exit status 2).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

import click

from midvbatch.config import (
    OPTION,
    OPTIONS,
    ConfigError,
    Option,
    check_finite,
    parse_count,
    parse_seconds,
    scheduler_address,
)
from midvbatch.config import options as kinds
from midvbatch.errors import shown
from midvbatch.fileio import name_too_long


class SecondsType(click.ParamType):
    """Finite seconds from `low` (excluded when `above`) to `high`: nan, inf and 1e309 are usage errors."""

    name = "seconds"

    def __init__(self, low: float, high: float, *, above: bool = False):
        self.low, self.high, self.above = low, high, above

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{shown(value)} is not a number of seconds", param, ctx)
        try:  # the bounds as the configuration checks them (TOML too)
            return parse_seconds(number, param.name.replace("_", " "), self.low, self.high, above=self.above)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class PathType(click.Path):
    """click.Path that refuses, as a usage error, a name longer than the system can hold (255 bytes, 4096 in all)."""

    def convert(self, value, param, ctx):
        if name_too_long(value):
            self.fail(f"{shown(os.fsdecode(value))} is too long for a file name", param, ctx)
        return super().convert(value, param, ctx)


class CountType(click.ParamType):
    """A whole number of at least `minimum`, or 'auto'; capped to the machine later, by the configuration."""

    name = "count"

    def __init__(self, minimum: int):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        try:
            return parse_count(value.strip() if isinstance(value, str) else value, param.name, minimum=self.minimum)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class SchedulerType(click.ParamType):
    """'local' or a Dask scheduler's address, checked as the configuration checks it (TOML too)."""

    name = "address"

    def convert(self, value, param, ctx):
        try:
            scheduler_address(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        return value


class LazyChoice(click.Choice):
    """click.Choice of a list another module holds (`module`.`name`), imported when the choices are first read."""

    def __init__(self, module: str, name: str):
        self._where = (module, name)
        self.case_sensitive = True

    @functools.cached_property
    def choices(self):
        module, name = self._where
        return tuple(getattr(importlib.import_module(module), name))


def alias(old: str, new: str, target: str, **attrs):
    """Add a hidden option `old`: the former name of `new` (parameter `target`), for old command lines.

    A repeatable option adds its values to the target's; a single value fills the target,
    and giving both names different values is a usage error.
    """
    key = f"alias_{target}"

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(key)
            if attrs.get("multiple"):
                kwargs[target] = tuple(kwargs.get(target) or ()) + tuple(value)
            elif value is not None:
                if kwargs.get(target) not in (None, value):
                    raise click.UsageError(
                        f"{old} is the former name of {new}: give one of them", ctx=click.get_current_context()
                    )
                kwargs[target] = value
            return func(*args, **kwargs)

        return click.option(old, key, hidden=True, **attrs)(wrapper)

    return decorate


def processor_options(ctx, param, values) -> dict[str, Any] | None:
    """Read --option KEY=VALUE flags: VALUE as JSON when it parses, else as text; numbers must be finite."""
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except ValueError:  # JSONDecodeError, or an integer of 4300+ digits
            options[key] = raw
        try:
            check_finite(options[key], key)  # NaN, Infinity, 1e999: as the configuration checks them
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    return options or None


def _flag_attrs(option: Option) -> dict[str, Any]:
    """click.option's arguments for the kind of `option`: its type, or how it is repeated or set."""
    kind = option.kind
    if isinstance(kind, kinds.Flag):  # None when not given: the TOML file or the default decides
        return {"is_flag": True, "default": None} | ({"flag_value": not option.default} if option.flag else {})
    if isinstance(kind, kinds.Patterns):
        return {"multiple": True}
    if isinstance(kind, kinds.Table):
        return {"multiple": True, "callback": processor_options}
    types: dict[type, Callable[[Any], click.ParamType]] = {
        kinds.Folder: lambda k: PathType(path_type=str),
        kinds.Choice: lambda k: click.Choice(k.choices),
        kinds.Address: lambda k: SchedulerType(),
        kinds.Whole: lambda k: click.IntRange(k.low, k.high),
        kinds.Count: lambda k: CountType(k.minimum),
        kinds.Seconds: lambda k: SecondsType(k.low, k.high, above=k.above),
    }
    make = types.get(type(kind))
    return {"type": make(kind)} if make else {}


def option_flag(name: str) -> Callable:
    """The click option of the run option `name`, as its row in OPTIONS says."""
    option = OPTION[name]
    attrs: dict[str, Any] = {"metavar": option.metavar} if option.metavar else {}
    return click.option(option.cli_flag, option.name, help=option.describe(), **attrs, **_flag_attrs(option))


def _options_of(where: str, func: Callable) -> Callable:
    for option in reversed([o for o in OPTIONS if o.where == where]):
        func = option_flag(option.name)(func)
    return func


def run_options(func: Callable) -> Callable:
    """Add the flags of every run option (OPTIONS' rows of the `run` group), in the table's order."""
    return _options_of("run", func)


def selection_options(func: Callable) -> Callable:
    """Add the flags that select and order clips (OPTIONS' `selection` rows), then --config."""
    func = click.option(
        "--config",
        "config_file",
        type=PathType(dir_okay=False, path_type=str),
        metavar="FILE.toml",
        help="Read options from a TOML file; flags given here win.",
    )(func)
    return _options_of("selection", func)
