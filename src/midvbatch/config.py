"""The options of a run, read from flags and a TOML file, resolved and validated in one place.

Precedence: flags given on the command line, then the TOML file (``--config``), then
defaults. :class:`RunConfig` holds the options as asked; it is what is saved as
``RUN_DIR/config.toml`` (so a resume on a bigger machine honours more workers), and the
part of it that changes results (:meth:`RunConfig.result_fingerprint`) must match on
resume. :meth:`RunConfig.resolve` is the only place that turns those options into
values: it validates them all and returns :class:`Settings`, typed, in units (bytes,
seconds), bounded to the machine, with the pool decided (``--workers 0`` is the inline
pool, except with Dask). The engine reads Settings only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import tomli_w

from midvbatch.errors import ConfigError, shown
from midvbatch.fileio import name_too_long, read_text, write_atomic

IMAGE_FORMATS = ("png", "jpg", "tif")
PIPELINES = ("localize", "ocr", "ground-truth", "frames", "extract", "probe")  # the built-in names (pipeline/registry)
POOLS = ("process", "thread", "dask")  # what --pool accepts
ARTIFACTS = ("shared", "return")  # how artifacts reach the run folder: written there, or sent back (Dask)
PoolKind = Literal["process", "thread", "inline", "dask"]  # what runs the clips, once resolved
LOG_LEVELS = ("debug", "info", "warning", "error")
ON_DISK_FULL = ("wait", "stop")
_PRIORITY = re.compile(r"^(clip|doc|id)=([^:]+):(-?\d+)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
MAX_SIZE = 2**60  # 1 EiB: larger than any machine's memory or disk
MIN_WORKER_MEMORY = 64 * 2**20  # below this a worker process cannot even start Python and PyAV
WORKER_MEMORY_SHARE = 0.8  # default worker memory limit: this share of RAM, split among the workers
MEMORY_PER_WORKER = 256 * 2**20  # a worker holds at least this much; caps --workers on small machines
WORKERS_PER_CORE = 4  # more workers (or decode threads) than this per core only thrash
MAX_RETRIES = 100
MAX_PREFETCH = 1024  # --prefetch: frames decoded ahead per worker
MAX_BATCH_SIZE = 1024  # --batch-size: frames held at once by a batch (1080x1920 BGR: 6 MiB each)
MAX_RETRY_DELAY = 3600.0  # seconds: the longest --retry-delay
MAX_RETRY_WAIT = 3600.0  # the exponential backoff never waits longer than this per retry
MAX_TASK_TIMEOUT = 7 * 86400.0  # seconds: one week
MAX_JOBS = 64  # --jobs of fetch and validate: archives or clips at once
MAX_PRIORITY = 10**9  # |weight| of a priority rule; the ledger stores priorities as 64-bit integers
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_size(value: int | str, what: str = "size") -> int:
    """Return bytes from 1GB (10^9), 512MiB (2^29), 1.5G or a plain number of bytes; raise ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{what} must not be negative, not {shown(value)}")
        if value > MAX_SIZE:
            raise ConfigError(f"{what} {shown(value)} is too large (at most 1EiB)")
        return value
    m = _SIZE.match(str(value))
    if not m or m.group(2) is None and not str(value).strip():
        raise ConfigError(f"{what} {shown(value)} is not a size like 1GB, 512MiB or a number of bytes")
    unit = (m.group(2) or "").lower()
    if unit not in _UNITS:
        raise ConfigError(f"{what} {shown(value)} has an unknown unit {m.group(2)!r} (use KB, MB, GB, KiB, MiB, GiB)")
    number = float(m.group(1)) * _UNITS[unit]  # a long digit string is inf, never an error
    if not number <= MAX_SIZE:
        raise ConfigError(f"{what} {shown(value)} is too large (at most 1EiB)")
    return int(number)


@dataclass(frozen=True)
class Floor:
    """A floor as asked: a number of `bytes`, or a `percent` of a total; `asked` is the user's value, for messages."""

    asked: int | str
    bytes: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: int | str, what: str) -> Floor:
        """Parse a size (1GB, 512MiB, bytes) or a percentage ('10%'); raise ConfigError naming `what`."""
        text = str(value).strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1])
            except ValueError:
                raise ConfigError(f"{what} {shown(value)} is not a percentage like 10%") from None
            if not 0 <= share <= 100:  # also nan
                raise ConfigError(f"{what} {shown(value)} must be between 0% and 100%")
            return cls(value, percent=share)
        return cls(value, bytes=parse_size(value, what))

    def of(self, total: int) -> int:
        """Return the floor in bytes, for a total of `total` bytes."""
        return int(total * self.percent / 100) if self.percent is not None else self.bytes or 0


def parse_floor(value: int | str, total: int, what: str) -> int:
    """Return bytes from a size or a percentage of `total` ('10%')."""
    return Floor.parse(value, what).of(total)


def cpu_cores() -> int:
    """Return the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _floor(floor: Floor | None, total: int, what: str, whole: str) -> int:
    """Return `floor` (default: 1 GiB or 10% of `total`, the smaller) in bytes.

    Raises ConfigError for a floor of `total` or more, which is never met (`whole` says
    what the total is).
    """
    if floor is None:
        return min(total // 10, 1 << 30)
    value = floor.of(total)
    if value >= total:
        raise ConfigError(f"{what} {shown(floor.asked, 20)} can never be met: {whole}, and the run would wait forever")
    return value


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def parse_count(value: Any, what: str, *, minimum: int) -> int | Literal["auto"]:
    """Return 'auto', or `value` (an int or its digits) as an int of at least `minimum`; else raise ConfigError."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{what} must be a number or 'auto', not {shown(value)}")
    try:
        n = int(value)
    except ValueError:  # also a digit string too long for int()
        raise ConfigError(f"{what} must be a number or 'auto', not {shown(value)}") from None
    if n < minimum:
        raise ConfigError(f"{what} must be {minimum} or more, not {n}")
    return n


def _whole(value: Any, what: str, low: int, high: int | None = None) -> int:
    """Return `value` if it is an int in [low, high], else raise ConfigError naming `what`."""
    bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
    if isinstance(value, bool) or not isinstance(value, int) or value < low or high is not None and value > high:
        raise ConfigError(f"{what} must be a whole number {bounds}, not {shown(value)}")
    return value


def parse_seconds(value: Any, what: str, low: float, high: float, *, above: bool = False) -> float:
    """Return `value` as finite seconds in [low, high] (`above`: low itself excluded), else raise ConfigError."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (not isinstance(value, float) or math.isfinite(value))
        and (value > low if above else value >= low)
        and value <= high
    )
    if not ok:
        lower = f"more than {low:g}" if above else f"at least {low:g}"
        raise ConfigError(f"{what} must be a number of seconds, {lower} and at most {high:g}, not {shown(value)}")
    return float(value)


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")  # Dask's transports that reach a scheduler in another process
_HOST_PORT = re.compile(r"^(\[[^\[\]/\s]+\]|[^:/\[\]\s@?#]+)(?::(.*))?$")


def scheduler_address(value: Any) -> tuple[str, str, int] | None:
    """Return a Dask scheduler address as (scheme, host, port), None for 'local'; raise ConfigError saying what
    is wrong with it. A bare HOST:PORT is tcp; an IPv6 host goes in brackets."""
    if value == "local":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"scheduler must be text, not {shown(value)}")
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    problem = None
    found = _HOST_PORT.match(rest)
    if scheme == "inproc":
        problem = "inproc:// reaches a scheduler in the same process only: use 'local'"
    elif scheme not in SCHEDULER_SCHEMES:
        problem = f"{shown(scheme)} is not a transport midvbatch can use (tcp, tls, ws, wss)"
    elif not rest:
        problem = "no host"
    elif found is None:
        problem = "not HOST:PORT (an IPv6 host goes in brackets: tcp://[::1]:8786)"
    elif found.group(2) is None:
        problem = "no port (Dask's default is 8786)"
    elif not re.fullmatch(r"\d{1,5}", found.group(2)) or not 0 < int(found.group(2)) < 65536:
        problem = f"port {shown(found.group(2))} is not a number from 1 to 65535"
    if problem is not None:
        raise ConfigError(f"scheduler {shown(value)} is not 'local' or an address like tcp://HOST:8786: {problem}")
    assert found is not None
    return scheme, found.group(1).strip("[]"), int(found.group(2))


def check_finite(value: Any, where: str) -> None:
    """Raise ConfigError if `value` holds a float that is nan or infinite (JSON and TOML both allow them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"option {where} is {value}; processor options must be finite numbers")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]")


@dataclass(frozen=True)
class Machine:
    """What the computer can honour: cores, total memory and the run folder's disk size, in bytes."""

    cores: int
    memory: int
    disk: int | None = None  # None: unknown (the check of --min-free-disk waits for the run's own reading)

    @classmethod
    def current(cls, path: str | Path | None = None) -> Machine:
        """Read this machine; `disk` is the size of the filesystem that holds (or will hold) `path`."""
        import psutil  # here, not at import time: the CLI imports this module for its bounds

        return cls(cpu_cores(), psutil.virtual_memory().total, _disk_size(path) if path else None)


def _disk_size(path: str | Path) -> int | None:
    """Return the size of the filesystem of `path` or of its nearest existing parent, None if unreadable."""
    try:
        where = Path(path).absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        return shutil.disk_usage(where).total
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class PriorityRule:
    """`key=PATTERN:WEIGHT`: clips whose key matches the glob get WEIGHT added."""

    key: str  # clip (clip code), doc (document name) or id (clip id)
    pattern: str
    weight: int

    @classmethod
    def parse(cls, text: str) -> PriorityRule:
        """Parse 'clip=H*:10'; raise ConfigError on anything else."""
        m = _PRIORITY.match(text.strip())
        if not m:
            raise ConfigError(
                f"bad priority rule {shown(text)}: expected KEY=PATTERN:WEIGHT with KEY clip, doc or id, "
                "e.g. 'clip=H*:10'"
            )
        digits = m.group(3).lstrip("-").lstrip("0")
        weight = int(m.group(3)) if len(digits) <= 10 else MAX_PRIORITY + 1  # int() refuses 4300+ digits
        if abs(weight) > MAX_PRIORITY:
            raise ConfigError(
                f"bad priority rule {shown(text)}: the weight must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"
            )
        return cls(m.group(1), m.group(2), weight)

    def __str__(self) -> str:
        return f"{self.key}={self.pattern}:{self.weight}"


def _memory_floor(floor: Floor | None, total_memory: int) -> int:
    return _floor(floor, total_memory, "min-free-memory", f"this machine has {_gib(total_memory)} of memory in all")


def _disk_floor(floor: Floor | None, disk_size: int) -> int:
    return _floor(floor, disk_size, "min-free-disk", f"the run folder's disk holds {_gib(disk_size)} in all")


def _auto_worker_memory(total_memory: int, workers: int) -> int:
    """The default worker memory limit: WORKER_MEMORY_SHARE of the memory over the workers, at least MIN_WORKER_MEMORY."""
    return max(MIN_WORKER_MEMORY, int(total_memory * WORKER_MEMORY_SHARE / workers))


def _process_only(option: str, pool: str, warnings: list[str], dask: bool = False) -> bool:
    """Tell whether `option`, a limit only a worker process (a local one, or a Dask worker's when `dask`)
    can be held to, applies; warn when it does not."""
    if pool == "process" or (dask and pool == "dask"):
        return True
    warnings.append(
        f"{option} applies to {'worker processes (local or Dask)' if dask else 'local worker processes'} only; "
        "not enforced with " + ("--workers 0" if pool == "inline" else f"--pool {pool}")
    )
    return False


@dataclass(frozen=True)
class Settings:
    """A run's options resolved: typed, in units, bounded to the machine; what the engine reads.

    Made by :meth:`RunConfig.resolve` only, after every option was checked. `pool` says
    what runs the clips: worker processes, threads, the orchestrator itself ('inline':
    ``--workers 0`` with any pool but Dask) or a Dask cluster; `workers` is how many clips
    run at once (1 inline; with Dask, the size of a local cluster). Limits a pool cannot
    enforce are None here (`worker_memory` and `task_timeout` apply to worker processes, local
    or Dask workers; `max_tasks_per_worker` to local ones only); the first two with a warning
    saying so.
    """

    dataset: str  # absolute
    out: str  # absolute
    processor: str  # the --processor value, else the pipeline's name
    options: dict[str, Any]  # the factory's keyword arguments (image_format added for extract)
    pool: PoolKind
    workers: int
    scheduler: str | None  # with Dask: the scheduler's address, or 'local'; else None
    decode_threads: int  # FFmpeg threads per worker
    batch_size: int  # annotated frames per process_batch call (processors that define it)
    prefetch: int  # frames a worker decodes ahead in a thread while its processor works; 0: none
    batch_across_clips: bool  # a batch may hold frames of several clips of a worker's task
    devices: tuple[str, ...]  # accelerators, one per worker in turn ('cuda:0', ...); (): none
    device_memory: int | None  # bytes of device memory a worker may hold (where the driver tells); None: no limit
    artifacts: str  # "shared": workers write them into RUN_DIR/tmp; "return": Dask workers send them back
    docs: tuple[str, ...]
    clips: tuple[str, ...]
    limit: int | None
    priority: tuple[PriorityRule, ...]
    image_format: str
    catalog: str | None
    retries: int
    retry_delay: float  # seconds
    task_timeout: float | None  # seconds; None: none, or not enforceable by the pool
    max_failures: int | None
    max_tasks_per_worker: int | None
    min_free_memory: Floor | None  # None: the default (1 GiB or 10% of the memory, the smaller)
    min_free_disk: Floor | None  # None: the default (1 GiB or 10% of the disk, the smaller)
    worker_memory: int | Literal["auto"] | None  # bytes; 'auto': a share of the memory; None: no limit
    on_disk_full: str
    log_level: str
    check: bool
    strict: bool
    notes: tuple[str, ...] = ()  # defaults derived from the machine, one line each (logged as info)
    warnings: tuple[str, ...] = ()  # values capped to the machine, limits the pool cannot enforce (logged as warnings)

    def memory_floor(self, total_memory: int) -> int:
        """Return the available memory below which no clip is dispatched, in bytes.

        Default: 1 GiB or 10% of the memory, whichever is smaller. Raises ConfigError for
        a floor of `total_memory` or more: available memory never reaches it, so the run
        would wait forever.
        """
        return _memory_floor(self.min_free_memory, total_memory)

    def disk_floor(self, disk_size: int) -> int:
        """Return the free disk space below which no clip is dispatched, in bytes.

        Default: 1 GiB or 10% of the disk, whichever is smaller. Raises ConfigError for a
        floor of `disk_size` or more, which free space never reaches.
        """
        return _disk_floor(self.min_free_disk, disk_size)

    def worker_memory_limit(self, total_memory: int) -> int | None:
        """Return the resident memory a worker may reach before it is killed, in bytes; None: no limit.

        'auto' is WORKER_MEMORY_SHARE of `total_memory` split among the workers, at least
        MIN_WORKER_MEMORY; a size is capped to `total_memory` (this machine's: not for Dask workers).
        """
        if self.worker_memory is None:
            return None
        if self.worker_memory == "auto":
            return _auto_worker_memory(total_memory, self.workers)
        return self.worker_memory if self.pool == "dask" else min(self.worker_memory, total_memory)


@dataclass
class RunConfig:
    """Everything that defines a run, as asked (flags, TOML, defaults); :meth:`resolve` gives its Settings."""

    dataset: str = ""
    out: str = ""
    pipeline: str = "localize"
    processor: str | None = None  # MODULE:FACTORY or a registered name; overrides pipeline
    options: dict[str, Any] = field(default_factory=dict)  # passed to the processor factory
    workers: int | str = "auto"  # 0 runs clips inline (except with --pool dask)
    decode_threads: int | str = "auto"  # FFmpeg threads per worker; auto: cores // workers, at least 1
    batch_size: int = 1  # annotated frames per process_batch call, within a clip (processors that define it)
    prefetch: int = 0  # frames decoded ahead in a thread while the processor works; 0: none
    batch_across_clips: bool = False  # batches may hold frames of the next clips a worker holds
    devices: str | None = None  # "cuda:0,cuda:1" or "auto": one device per worker; None: none
    device_memory: str | int | None = None  # kill a worker holding more device memory than this (class oom)
    pool: str = "process"
    scheduler: str | None = None  # with pool "dask": the scheduler's address, or "local"
    artifacts: str = "shared"  # "return": Dask workers send artifacts back with the results (no shared run folder)
    docs: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    limit: int | None = None
    priority: list[str] = field(default_factory=list)
    image_format: str = "png"
    catalog: str | None = None
    retries: int = 2
    retry_delay: float = 2.0  # seconds before the first retry; doubles each attempt, with jitter
    task_timeout: float | None = None  # seconds a clip may run before its worker is killed
    max_failures: int | None = None  # stop dispatching once this many clips are dead
    max_tasks_per_worker: int | None = None  # recycle a worker after this many clips
    min_free_memory: str | int | None = None  # default: 10% of RAM or 1 GiB, whichever is smaller
    worker_memory: str | int | None = None  # kill a worker past this; default 80% of RAM / workers; "none": never
    min_free_disk: str | int | None = None  # default: 1 GiB or 10% of the disk, whichever is smaller
    on_disk_full: str = "wait"
    log_level: str = "info"
    check: bool = True  # validate the clips before running them
    strict: bool = False  # refuse to start when a selected clip is invalid

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

        Options the machine cannot honour are capped (--workers, --decode-threads,
        --worker-memory) or refused (floors it can never meet); the Settings' `warnings`
        and `notes` say in one line each what was capped and what default was derived
        from the machine. `machine` replaces this computer's figures (for tests).
        """
        for name in ("docs", "clips", "priority"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of patterns, not {shown(value)}")
        for name in ("dataset", "out", "pipeline"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, not {shown(getattr(self, name))}")
        for name in ("processor", "catalog", "scheduler"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, not {shown(getattr(self, name))}")
        if self.scheduler is not None:
            scheduler_address(self.scheduler)
        for name in ("dataset", "out"):
            if name_too_long(getattr(self, name) or ""):
                raise ConfigError(f"{name} {shown(getattr(self, name))} is too long for a file name")
        if not self.dataset:
            raise ConfigError("no dataset given")
        if self.processor is None and self.pipeline not in PIPELINES:
            raise ConfigError(f"unknown pipeline {shown(self.pipeline)} (one of {', '.join(PIPELINES)})")
        if not self.out:
            raise ConfigError("no run folder given (--out RUN_DIR)")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, not {shown(self.pool)}")
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {shown(self.image_format)}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {shown(self.log_level)}")
        machine = machine or Machine.current(self.out)
        notes: list[str] = []
        warnings: list[str] = []
        workers, pool = self._workers(machine, warnings)
        devices = self._devices(pool, notes, warnings)
        if devices and pool == "process" and self.workers == "auto":
            workers = len(devices)
            notes.append(f"{workers} worker{'s' if workers > 1 else ''}: one per device (--devices)")
        device_memory = None
        if self.device_memory is not None:
            device_memory = parse_size(self.device_memory, "device-memory")
            if not devices:
                warnings.append("--device-memory applies to workers given a device (--devices): not enforced")
                device_memory = None
        decode_threads = self._decode_threads(machine, workers, warnings)
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ConfigError(f"limit must be a positive number of clips, not {shown(self.limit)}")
        retries = _whole(self.retries, "retries", 0, MAX_RETRIES)
        batch_size = _whole(self.batch_size, "batch size", 1, MAX_BATCH_SIZE)
        prefetch = _whole(self.prefetch, "prefetch", 0, MAX_PREFETCH)
        retry_delay = parse_seconds(self.retry_delay, "retry delay", 0, MAX_RETRY_DELAY)
        task_timeout = None
        if self.task_timeout is not None:
            task_timeout = parse_seconds(self.task_timeout, "task timeout", 0, MAX_TASK_TIMEOUT, above=True)
        for name in ("max_failures", "max_tasks_per_worker"):
            if getattr(self, name) is not None:
                _whole(getattr(self, name), name.replace("_", "-"), 1)
        if self.artifacts not in ARTIFACTS:
            raise ConfigError(f"artifacts must be one of {', '.join(ARTIFACTS)}, not {shown(self.artifacts)}")
        if self.artifacts == "return" and pool != "dask":
            warnings.append("--artifacts return applies to --pool dask: local workers write into the run folder")
        if self.on_disk_full not in ON_DISK_FULL:
            raise ConfigError(f"on-disk-full must be one of {', '.join(ON_DISK_FULL)}, not {shown(self.on_disk_full)}")
        min_free_memory = (
            Floor.parse(self.min_free_memory, "min-free-memory") if self.min_free_memory is not None else None
        )
        _memory_floor(min_free_memory, machine.memory)
        min_free_disk = Floor.parse(self.min_free_disk, "min-free-disk") if self.min_free_disk is not None else None
        if machine.disk is not None:
            _disk_floor(min_free_disk, machine.disk)
        worker_memory = self._worker_memory(machine, workers, pool, notes, warnings)
        if not isinstance(self.options, dict):
            raise ConfigError("options must be a table of processor options")
        check_finite(self.options, "")
        for name in ("check", "strict", "batch_across_clips"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name.replace('_', '-')} must be true or false, not {shown(getattr(self, name))}")
        priority = tuple(PriorityRule.parse(r) for r in self.priority)
        if task_timeout is not None and not _process_only("--task-timeout", pool, warnings, dask=True):
            task_timeout = None
        options = dict(self.options)
        if self.processor_spec() == "extract":
            options.setdefault("image_format", self.image_format)
        return Settings(
            dataset=os.path.abspath(self.dataset),
            out=os.path.abspath(self.out),
            processor=self.processor_spec(),
            options=options,
            pool=pool,
            workers=workers,
            scheduler=(self.scheduler or "local") if pool == "dask" else None,
            decode_threads=decode_threads,
            batch_size=batch_size,
            prefetch=prefetch,
            batch_across_clips=self.batch_across_clips,
            devices=devices,
            device_memory=device_memory,
            artifacts=self.artifacts if pool == "dask" else "shared",
            docs=tuple(self.docs),
            clips=tuple(self.clips),
            limit=self.limit,
            priority=priority,
            image_format=self.image_format,
            catalog=self.catalog,
            retries=retries,
            retry_delay=retry_delay,
            task_timeout=task_timeout,
            max_failures=self.max_failures,
            max_tasks_per_worker=self.max_tasks_per_worker if pool == "process" else None,
            min_free_memory=min_free_memory,
            min_free_disk=min_free_disk,
            worker_memory=worker_memory,
            on_disk_full=self.on_disk_full,
            log_level=self.log_level,
            check=self.check,
            strict=self.strict,
            notes=tuple(notes),
            warnings=tuple(warnings),
        )

    def _workers(self, machine: Machine, warnings: list[str]) -> tuple[int, PoolKind]:
        """Return (clips at once, pool): 'auto' is one worker per core; 0 is the inline pool, except with Dask.

        A count is capped at what the machine can honour: WORKERS_PER_CORE per core, and
        MEMORY_PER_WORKER of memory each.
        """
        asked = parse_count(self.workers, "workers", minimum=0)
        if asked == "auto":
            count = machine.cores
        else:
            cap = max(1, min(WORKERS_PER_CORE * machine.cores, machine.memory // MEMORY_PER_WORKER))
            count = min(asked, cap)
            if count < asked:
                why = (
                    f"{WORKERS_PER_CORE} per core on {machine.cores} cores"
                    if count == WORKERS_PER_CORE * machine.cores
                    else f"{MEMORY_PER_WORKER >> 20} MiB each of {_gib(machine.memory)} of memory"
                )
                warnings.append(f"workers capped at {count} (asked {shown(asked, 20)}): {why}")
        if self.pool == "dask":
            return max(1, count), "dask"
        if count == 0:
            return 1, "inline"
        return count, "thread" if self.pool == "thread" else "process"

    def _devices(self, pool: PoolKind, notes: list[str], warnings: list[str]) -> tuple[str, ...]:
        """Return the accelerators workers get in turn: those asked for, or with 'auto' those the driver lists.

        Devices are given to local worker processes only (each restricted to its own through
        its environment). None found, or no driver: () and a note saying the workers use the CPU.
        """
        from midvbatch.accelerators import gpus, parse_devices

        asked = self.devices
        if asked is None or (isinstance(asked, str) and asked.strip().lower() in ("", "none")):
            return ()
        if not isinstance(asked, str):
            raise ConfigError(f"devices must be text (cuda:0,cuda:1 or auto), not {shown(asked)}")
        if asked.strip().lower() == "auto":
            found = gpus()
            if not found:
                why = "the driver lists no GPU" if found is not None else "no GPU driver found (nvidia-smi)"
                notes.append(f"--devices auto: {why}; the workers run on the CPU")
                return ()
            devices = found
        else:
            try:
                devices = parse_devices(asked)
            except ValueError as exc:
                raise ConfigError(f"devices: {exc}") from None
        if not _process_only("--devices", pool, warnings):
            return ()
        return devices

    def _decode_threads(self, machine: Machine, workers: int, warnings: list[str]) -> int:
        """Return FFmpeg's decoding threads per worker: 'auto' shares the cores among the workers.

        A count is capped at WORKERS_PER_CORE per core.
        """
        asked = parse_count(self.decode_threads, "decode threads", minimum=1)
        if asked == "auto":
            return max(1, machine.cores // workers)
        count = min(asked, WORKERS_PER_CORE * machine.cores)
        if count < asked:
            warnings.append(
                f"decode threads capped at {count} (asked {shown(asked, 20)}): "
                f"{WORKERS_PER_CORE} per core on {machine.cores} cores"
            )
        return count

    def _worker_memory(
        self, machine: Machine, workers: int, pool: PoolKind, notes: list[str], warnings: list[str]
    ) -> int | Literal["auto"] | None:
        """Return the worker memory limit: bytes, 'auto' (the default share) or None (off, or not enforceable).

        Not set, the limit applies to local worker processes only (nothing can kill a
        thread or an inline clip; Dask workers have their own limit). A size applies to
        local and Dask workers; below MIN_WORKER_MEMORY it is refused, above the machine's
        memory (local workers) capped to it.
        """
        asked = self.worker_memory
        if asked is None:
            if pool != "process":
                return None
            limit = _auto_worker_memory(machine.memory, workers)
            notes.append(
                f"worker memory limit {_gib(limit)} each (default: {WORKER_MEMORY_SHARE:.0%} "
                f"of {_gib(machine.memory)} over {workers} worker{'s' if workers > 1 else ''}; "
                "--worker-memory none turns it off)"
            )
            return "auto"
        if isinstance(asked, str) and asked.strip().lower() == "none":
            return None
        size = parse_size(asked, "worker-memory")
        if size < MIN_WORKER_MEMORY:
            raise ConfigError(
                f"worker-memory {shown(asked, 20)} is below the "
                f"{MIN_WORKER_MEMORY >> 20} MiB a worker needs to start (use 'none' for no limit)"
            )
        if not _process_only("--worker-memory", pool, warnings, dask=True):
            return None
        if size > machine.memory and pool != "dask":  # (a Dask worker's machine is not this one)
            warnings.append(
                f"worker memory capped at {_gib(machine.memory)} (asked {shown(asked, 20)}): the machine's memory"
            )
        return size

    def processor_spec(self) -> str:
        """Return what names the processor: the --processor value, else the pipeline."""
        return self.processor or self.pipeline

    def result_fingerprint(self) -> str:
        """Hash of the options that change results; a resumed run must have the same."""
        key = {
            "processor": self.processor_spec(),
            "options": self.options,
            "image_format": self.image_format,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain data, None values left out (TOML has no null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def save(self, path: str | Path) -> None:
        """Write the configuration as TOML (a temporary file, renamed)."""
        write_atomic(path, tomli_w.dumps(self.to_dict()))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file; raise ConfigError naming it if unreadable or unknown keys."""
    path = Path(path)
    text = read_text(path, error=ConfigError, what="a regular file")  # a FIFO or a device refused, a size cap
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bad TOML: {exc}", path=path) from None
    known = {f.name for f in fields(RunConfig)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}", path=path)
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
