"""The options of a run, read from flags and a TOML file, resolved and validated in one place.

Precedence: flags given on the command line, then the TOML file (``--config``), then
defaults. Every option is one row of :data:`~midvbatch.config.options.OPTIONS`, which
makes the command line's flags, the TOML check, :class:`RunConfig`'s fields and the docs'
table. :class:`RunConfig` holds the options as asked; it is what is saved as
``RUN_DIR/config.toml`` (so a resume on a bigger machine honours more workers), and the
part of it that changes results (:meth:`RunConfig.result_fingerprint`) must match on
resume. :meth:`RunConfig.resolve` is the only place that turns those options into
values: each is checked by its row, then :mod:`~midvbatch.config.rules` applies what no
single option decides, and the result is :class:`Settings`, typed, in units (bytes,
seconds), bounded to the machine, with the pool decided (``--workers 0`` is the inline
pool, except with Dask). The engine reads Settings only.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import tomli_w

from midvbatch.config.machine import Machine, cpu_cores
from midvbatch.config.options import (
    ARTIFACTS,
    IMAGE_FORMATS,
    LOG_LEVELS,
    MAX_BATCH_SIZE,
    MAX_PREFETCH,
    MAX_RETRIES,
    MAX_RETRY_DELAY,
    MAX_TASK_TIMEOUT,
    ON_DISK_FULL,
    OPTION,
    OPTIONS,
    PIPELINES,
    POOLS,
    Option,
    PoolKind,
)
from midvbatch.config.rules import (
    MEMORY_PER_WORKER,
    MIN_WORKER_MEMORY,
    WORKER_MEMORY_SHARE,
    WORKERS_PER_CORE,
    check_options,
    default_worker_limit,
    disk_floor,
    memory_floor,
    settings_values,
)
from midvbatch.config.units import (
    MAX_PRIORITY,
    MAX_SIZE,
    SCHEDULER_SCHEMES,
    Floor,
    PriorityRule,
    check_finite,
    parse_count,
    parse_seconds,
    parse_size,
    scheduler_address,
)
from midvbatch.errors import ConfigError
from midvbatch.fileio import read_text, write_atomic

__all__ = [
    "ARTIFACTS",
    "IMAGE_FORMATS",
    "LOG_LEVELS",
    "MAX_BATCH_SIZE",
    "MAX_JOBS",
    "MAX_PREFETCH",
    "MAX_PRIORITY",
    "MAX_RETRIES",
    "MAX_RETRY_DELAY",
    "MAX_RETRY_WAIT",
    "MAX_SIZE",
    "MAX_TASK_TIMEOUT",
    "MEMORY_PER_WORKER",
    "MIN_WORKER_MEMORY",
    "ON_DISK_FULL",
    "OPTION",
    "OPTIONS",
    "PIPELINES",
    "POOLS",
    "SCHEDULER_SCHEMES",
    "WORKERS_PER_CORE",
    "WORKER_MEMORY_SHARE",
    "ConfigError",
    "Floor",
    "Machine",
    "Option",
    "PoolKind",
    "PriorityRule",
    "RunConfig",
    "Settings",
    "build_config",
    "check_finite",
    "cpu_cores",
    "load_toml",
    "parse_count",
    "parse_seconds",
    "parse_size",
    "scheduler_address",
]

MAX_RETRY_WAIT = 3600.0  # the exponential backoff never waits longer than this per retry
MAX_JOBS = 64  # --jobs of fetch and validate: archives or clips at once


_Class = TypeVar("_Class", bound=type)


def _settings_fields(cls: _Class) -> _Class:
    """Make `cls` a frozen dataclass with a field per row of OPTIONS, in the rows' order, then `notes` and
    `warnings`: the options resolved (each row's kind says its values)."""
    cls.__annotations__ = {option.name: "Any" for option in OPTIONS} | {"notes": "tuple", "warnings": "tuple"}
    return cast(_Class, dataclass(frozen=True)(cls))


@_settings_fields
class Settings:
    """A run's options resolved: typed, in units, bounded to the machine; what the engine reads.

    Made by :meth:`RunConfig.resolve` only, after every option was checked: a field per
    option of OPTIONS (paths absolute, sizes in bytes, durations in seconds, floors as
    Floor; None where a limit is off), plus `notes` (defaults derived from the machine,
    one line each, logged as info) and `warnings` (values capped to the machine, limits the
    pool cannot enforce). `pool` says what runs the clips:
    worker processes, threads, the orchestrator itself ('inline': ``--workers 0`` with any
    pool but Dask) or a Dask cluster; `workers` is how many clips run at once (1 inline;
    with Dask, the size of a local cluster). An option a pool cannot honour (its row's
    `applies_to`: the worker memory limit and the task timeout apply to worker processes,
    local or Dask workers; the clips per worker to local ones only) holds its default here,
    None for those limits; the first two with a warning saying so.
    """

    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    if TYPE_CHECKING:  # the fields are made from OPTIONS
        __dataclass_fields__: ClassVar[dict[str, Any]]

        def __init__(self, **options: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    def shared(self, record: type) -> dict[str, Any]:
        """This run's values of the options that the dataclass `record` has a field of the same name for.

        The engine's records (the run's policy, what every worker is asked) take their
        options from here by name, so that an option is not handed on field by field.
        """
        return {f.name: getattr(self, f.name) for f in fields(record) if f.name in OPTION}

    def memory_floor(self, total_memory: int) -> int:
        """Return the available memory below which no clip is dispatched, in bytes.

        Default: 1 GiB or 10% of the memory, whichever is smaller. Raises ConfigError for
        a floor of `total_memory` or more: available memory never reaches it, so the run
        would wait forever.
        """
        return memory_floor(self.min_free_memory, total_memory)

    def disk_floor(self, disk_size: int) -> int:
        """Return the free disk space below which no clip is dispatched, in bytes.

        Default: 1 GiB or 10% of the disk, whichever is smaller. Raises ConfigError for a
        floor of `disk_size` or more, which free space never reaches.
        """
        return disk_floor(self.min_free_disk, disk_size)

    def worker_memory_limit(self, total_memory: int) -> int | None:
        """Return the resident memory a worker may reach before it is killed, in bytes; None: no limit.

        'auto' is WORKER_MEMORY_SHARE of `total_memory` split among the workers, at least
        MIN_WORKER_MEMORY; a size is capped to `total_memory` (this machine's: not for Dask workers).
        """
        limit = self.worker_memory
        if limit is None:
            return None
        if limit == "auto":
            return default_worker_limit(total_memory, self.workers)
        return limit if self.pool == "dask" else min(limit, total_memory)


def _fields_from_options(cls: _Class) -> _Class:
    """Make `cls` a dataclass with a field per row of OPTIONS, its default the row's, in the rows' order."""
    cls.__annotations__ = {option.name: "Any" for option in OPTIONS}
    for option in OPTIONS:
        empty = type(option.default) if isinstance(option.default, (list, dict)) else None
        setattr(cls, option.name, field(default_factory=empty) if empty else option.default)
    return cast(_Class, dataclass(cls))


@_fields_from_options
class RunConfig:
    """Everything that defines a run, as asked (flags, TOML, defaults): a field per option of OPTIONS.

    :meth:`resolve` gives its Settings.
    """

    if TYPE_CHECKING:  # the fields are made from OPTIONS
        __dataclass_fields__: ClassVar[dict[str, Any]]

        def __init__(self, **options: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

    def __post_init__(self) -> None:
        # Not a field: neither saved in config.toml nor part of the fingerprint.
        self._resolved: tuple[str, Settings] | None = None  # (the options it was made from, the Settings)

    def validate(self, machine: Machine | None = None) -> RunConfig:
        """Check every option (see :meth:`resolve`); raise ConfigError naming the first bad one. Return self."""
        self._resolved = (self._key(), self.resolve(machine))
        return self

    def resolved(self) -> Settings:
        """Return the Settings of the last validate(), if the options have not changed since; else resolve()."""
        if self._resolved is not None and self._resolved[0] == self._key():
            return self._resolved[1]
        self.validate()
        assert self._resolved is not None
        return self._resolved[1]

    def _key(self) -> str:
        return repr(asdict(self))

    def absolute(self) -> RunConfig:
        """Return a copy whose dataset and out paths are absolute, resolved (validated) once: see :meth:`resolved`."""
        settings = self.resolved()
        copy = replace(self, dataset=settings.dataset, out=settings.out)
        copy._resolved = (copy._key(), settings)  # the same options: abspath of an absolute path is itself
        return copy

    def resolve(self, machine: Machine | None = None) -> Settings:
        """Check every option and return the Settings; raise ConfigError naming the first bad one.

        Options the machine cannot honour are capped (workers, decoding threads, the
        worker memory limit) or refused (floors it can never meet); the Settings' `warnings`
        and `notes` say in one line each what was capped and what default was derived
        from the machine. `machine` replaces this computer's figures (for tests).
        """
        return Settings(**settings_values(asdict(self), machine))

    def processor_spec(self) -> str:
        """Return what names the processor: the --processor value, else the pipeline."""
        return self.processor or self.pipeline

    def result_fingerprint(self) -> str:
        """Hash of the options that change results (their rows say so); a resumed run must have the same.

        The pipeline counts as the processor it names: the key is the processor's spec.
        """
        key = {option.name: getattr(self, option.name) for option in OPTIONS if option.fingerprint}
        key.pop("pipeline", None)
        key["processor"] = self.processor_spec()
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain data, None values left out (TOML has no null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def save(self, path: str | Path) -> None:
        """Write the configuration as TOML (a temporary file, renamed)."""
        write_atomic(path, tomli_w.dumps(self.to_dict()))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file; raise ConfigError naming it if unreadable, or for an unknown key or a
    bad value (checked by its option's row, as a flag is)."""
    path = Path(path)
    text = read_text(path, error=ConfigError, what="a regular file")  # a FIFO or a device refused, a size cap
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bad TOML: {exc}", path=path) from None
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(OPTION))
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}", path=path)
    try:
        check_options(data)
    except ConfigError as exc:
        raise ConfigError(str(exc), path=path) from None
    return data


def build_config(flags: dict[str, Any], config_file: str | Path | None = None) -> RunConfig:
    """Merge flags (None or empty means 'not given') over a TOML file over defaults, and validate."""
    values: dict[str, Any] = load_toml(config_file) if config_file else {}
    for key, value in flags.items():
        if value is None or value == () or value == []:
            continue
        values[key] = list(value) if isinstance(value, tuple) else value
    try:
        config = RunConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return config.validate()
