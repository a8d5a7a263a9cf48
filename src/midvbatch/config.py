"""The options of a run, read from flags and a TOML file, validated in one place.

Precedence: flags given on the command line, then the TOML file (``--config``), then
defaults. The effective configuration is saved as ``RUN_DIR/config.toml``; the part of
it that changes results (:meth:`RunConfig.result_fingerprint`) must match on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from midvbatch.errors import ConfigError

IMAGE_FORMATS = ("png", "jpg", "tif")
PIPELINES = ("localize", "ground-truth", "frames", "extract", "probe")
POOLS = ("process", "thread", "dask")
LOG_LEVELS = ("debug", "info", "warning", "error")
ON_DISK_FULL = ("wait", "stop")
_PRIORITY = re.compile(r"^(clip|doc|id)=([^:]+):(-?\d+)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3,
          "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(value: int | str, what: str = "size") -> int:
    """Return bytes from 1GB (10^9), 512MiB (2^29), 1.5G or a plain number of bytes; raise ConfigError."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{what} must not be negative, not {value}")
        return value
    m = _SIZE.match(str(value))
    if not m or m.group(2) is None and not str(value).strip():
        raise ConfigError(f"{what} {value!r} is not a size like 1GB, 512MiB or a number of bytes")
    unit = (m.group(2) or "").lower()
    if unit not in _UNITS:
        raise ConfigError(f"{what} {value!r} has an unknown unit {m.group(2)!r} (use KB, MB, GB, KiB, MiB, GiB)")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_floor(value: int | str, total: int, what: str) -> int:
    """Return bytes from a size or a percentage of `total` ('10%')."""
    text = str(value).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1])
        except ValueError:
            raise ConfigError(f"{what} {value!r} is not a percentage like 10%") from None
        if not 0 <= share <= 100:
            raise ConfigError(f"{what} {value!r} must be between 0% and 100%")
        return int(total * share / 100)
    return parse_size(value, what)


def cpu_cores() -> int:
    """Return the cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _count(value: Any, what: str, *, minimum: int) -> int:
    """Return `value` as an int of at least `minimum`, else raise ConfigError naming `what`."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number or 'auto', not {value!r}") from None
    if n < minimum:
        raise ConfigError(f"{what} must be {minimum} or more, not {n}")
    return n


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
                f"bad priority rule {text!r}: expected KEY=PATTERN:WEIGHT with KEY clip, doc or id, "
                "e.g. 'clip=H*:10'"
            )
        return cls(m.group(1), m.group(2), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.key}={self.pattern}:{self.weight}"


@dataclass
class RunConfig:
    """Everything that defines a run. Paths are stored as given."""

    dataset: str = ""
    out: str = ""
    pipeline: str = "localize"
    processor: str | None = None  # MODULE:FACTORY or a registered name; overrides pipeline
    options: dict[str, Any] = field(default_factory=dict)  # passed to the processor factory
    workers: int | str = "auto"
    decode_threads: int | str = "auto"  # FFmpeg threads per worker; auto: cores // workers, at least 1
    pool: str = "process"
    scheduler: str | None = None  # with pool "dask": the scheduler's address, or "local"
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
    worker_memory: str | int | None = None  # kill a worker whose resident memory passes this
    min_free_disk: str | int = "1GiB"
    on_disk_full: str = "wait"
    log_level: str = "info"
    check: bool = True  # validate the clips before running them
    strict: bool = False  # refuse to start when a selected clip is invalid

    def validate(self) -> RunConfig:
        """Check every option; raise ConfigError naming the first bad one. Return self."""
        if not self.dataset:
            raise ConfigError("no dataset given")
        if self.processor is None and self.pipeline not in PIPELINES:
            raise ConfigError(f"unknown pipeline {self.pipeline!r} (one of {', '.join(PIPELINES)})")
        if not self.out:
            raise ConfigError("no run folder given (--out RUN_DIR)")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {self.image_format!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        self.worker_count()
        self.decode_thread_count()
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"limit must be a positive number of clips, not {self.limit!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, not {self.retries!r}")
        if not isinstance(self.retry_delay, (int, float)) or self.retry_delay < 0:
            raise ConfigError(f"retry delay must be 0 or more seconds, not {self.retry_delay!r}")
        if self.task_timeout is not None and (not isinstance(self.task_timeout, (int, float)) or self.task_timeout <= 0):
            raise ConfigError(f"task timeout must be a positive number of seconds, not {self.task_timeout!r}")
        for name in ("max_failures", "max_tasks_per_worker"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, not {value!r}")
        if self.on_disk_full not in ON_DISK_FULL:
            raise ConfigError(f"on-disk-full must be one of {', '.join(ON_DISK_FULL)}, not {self.on_disk_full!r}")
        self.memory_floor(1 << 30)
        self.disk_floor(1 << 30)
        self.worker_memory_limit()
        if not isinstance(self.options, dict):
            raise ConfigError("options must be a table of processor options")
        for name in ("docs", "clips", "priority"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of patterns, not {value!r}")
        for name in ("dataset", "out", "pipeline"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, not {getattr(self, name)!r}")
        for name in ("processor", "catalog", "scheduler"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, not {getattr(self, name)!r}")
        if isinstance(self.task_timeout, bool) or isinstance(self.workers, (bool, float)):
            raise ConfigError("task timeout must be seconds and workers a whole number")
        self.priority_rules()
        return self

    def worker_count(self) -> int:
        """Return the number of workers: 'auto' is one per core; 0 runs clips inline."""
        if self.workers == "auto":
            return cpu_cores()
        return _count(self.workers, "workers", minimum=0)

    def decode_thread_count(self) -> int:
        """Return FFmpeg's decoding threads per worker: 'auto' shares the cores among the workers."""
        if self.decode_threads == "auto":
            return max(1, cpu_cores() // max(1, self.worker_count()))
        return _count(self.decode_threads, "decode threads", minimum=1)

    def memory_floor(self, total_memory: int) -> int:
        """Return the available memory below which no clip is dispatched, in bytes."""
        if self.min_free_memory is None:
            return min(total_memory // 10, 1 << 30)
        return parse_floor(self.min_free_memory, total_memory, "min-free-memory")

    def disk_floor(self, disk_size: int) -> int:
        """Return the free disk space below which no clip is dispatched, in bytes."""
        return parse_floor(self.min_free_disk, disk_size, "min-free-disk")

    def worker_memory_limit(self) -> int | None:
        """Return the resident memory a worker may reach before it is killed, in bytes."""
        return None if self.worker_memory is None else parse_size(self.worker_memory, "worker-memory")

    def priority_rules(self) -> list[PriorityRule]:
        """Return the parsed priority rules."""
        return [PriorityRule.parse(r) for r in self.priority]

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

    def save(self, path: str | Path, *, resolve: bool = False) -> None:
        """Write the configuration as TOML; `resolve` makes the dataset and out paths absolute.

        Absolute paths let `midvbatch retry RUN_DIR` run from any directory.
        """
        data = self.to_dict()
        if resolve:
            data["dataset"], data["out"] = str(Path(self.dataset).resolve()), str(Path(self.out).resolve())
        Path(path).write_text(tomli_w.dumps(data))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file; raise ConfigError naming it if unreadable or unknown keys."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=path) from None
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
