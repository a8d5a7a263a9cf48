"""Every run option, one row each: what the command line, the TOML file, the Settings and the docs are made from.

A row names the option (``retries``: the flag ``--retries``, the TOML key ``retries``, the
field of RunConfig and Settings; an underscore in a name is a dash in the flag), says what
values it takes (its kind: the parser and the bounds, which the flag's type and the TOML
check use too), its default, its help (``{default}`` and ``{choices}`` filled from the
row), whether it changes results (part of the run's fingerprint), which pools can honour
it, and where the command line shows it. Adding an option is adding a row here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from midvbatch.config.units import (
    Floor,
    PriorityRule,
    check_finite,
    parse_count,
    parse_seconds,
    parse_size,
    parse_whole,
    scheduler_address,
)
from midvbatch.errors import ConfigError, shown
from midvbatch.fileio import name_too_long
from midvbatch.plugins import EXECUTORS, PROCESSORS, builtin_names

IMAGE_FORMATS = ("png", "jpg", "tif")
PIPELINES = builtin_names(PROCESSORS)  # the built-in processors (pipeline/registry.py)
POOLS = tuple(n for n in builtin_names(EXECUTORS) if n != "inline")  # what --pool accepts (inline: --workers 0)
ARTIFACTS = ("shared", "return")  # how artifacts reach the run folder: written there, or sent back (Dask)
PoolKind = Literal["process", "thread", "inline", "dask"]  # what runs the clips, once resolved
ALL_POOLS: frozenset[str] = frozenset(builtin_names(EXECUTORS))
WORKER_PROCESSES: frozenset[str] = frozenset(("process", "dask"))  # local worker processes and Dask workers
LOCAL_PROCESSES: frozenset[str] = frozenset(("process",))
DASK: frozenset[str] = frozenset(("dask",))
LOG_LEVELS = ("debug", "info", "warning", "error")
ON_DISK_FULL = ("wait", "stop")
MAX_RETRIES = 100
MAX_PREFETCH = 1024  # --prefetch: frames decoded ahead per worker
MAX_BATCH_SIZE = 1024  # frames held at once by a batch (1080x1920 BGR: 6 MiB each)
MAX_RETRY_DELAY = 3600.0  # seconds: the longest wait before a first retry
MAX_TASK_TIMEOUT = 7 * 86400.0  # seconds: one week
CATALOG_HELP = (
    "Dataset format the folder holds (midv500, midv2019, midv2020, folder, a plugin's: see `midvbatch formats`); "
    "found from the folder by default."
)


class Kind:
    """What values an option takes: `parse` checks one as asked and returns it as the engine reads it."""

    value = "text"  # what the docs' table says the value is

    def parse(self, value: Any, what: str) -> Any:
        """Return `value` checked (and converted to units); raise ConfigError naming `what`."""
        if not isinstance(value, str):
            raise ConfigError(f"{what} must be text, not {shown(value)}")
        return value


@dataclass(frozen=True)
class Text(Kind):
    """Text; `example` follows 'must be text' in the message."""

    example: str = ""

    def parse(self, value: Any, what: str) -> Any:
        if not isinstance(value, str):
            raise ConfigError(f"{what} must be text{self.example}, not {shown(value)}")
        return value


@dataclass(frozen=True)
class Folder(Kind):
    """A path a run needs (the dataset, the run folder): text, not empty, short enough for a file name."""

    missing: str  # the message when it is empty

    def parse(self, value: Any, what: str) -> Any:
        super().parse(value, what)
        if name_too_long(value):
            raise ConfigError(f"{what} {shown(value)} is too long for a file name")
        if not value:
            raise ConfigError(self.missing)
        return os.path.abspath(value)


@dataclass(frozen=True)
class Choice(Kind):
    """One of `choices`; `unknown` is the message for anything else (`{value}`, `{choices}` filled)."""

    choices: tuple[str, ...]
    unknown: str = "{what} must be one of {choices}, not {value}"

    @property
    def value(self) -> str:  # type: ignore[override]
        return " \\| ".join(self.choices)

    def parse(self, value: Any, what: str) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise ConfigError(self.unknown.format(what=what, choices=", ".join(self.choices), value=shown(value)))
        return value


@dataclass(frozen=True)
class Flag(Kind):
    """True or false."""

    value = "true \\| false"

    def parse(self, value: Any, what: str) -> Any:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, not {shown(value)}")
        return value


@dataclass(frozen=True)
class Whole(Kind):
    """A whole number from `low` to `high` (None: no bound); `says` replaces the message's 'a whole number ...'."""

    low: int
    high: int | None = None
    says: str | None = None

    @property
    def value(self) -> str:  # type: ignore[override]
        return f"{self.low} to {self.high}" if self.high is not None else f"{self.low} or more"

    def parse(self, value: Any, what: str) -> Any:
        if self.says is not None and (isinstance(value, bool) or not isinstance(value, int) or value < self.low):
            raise ConfigError(f"{what} must be {self.says}, not {shown(value)}")
        return parse_whole(value, what, self.low, self.high)


@dataclass(frozen=True)
class Count(Kind):
    """A whole number of at least `minimum`, or 'auto' (derived from the machine)."""

    minimum: int

    @property
    def value(self) -> str:  # type: ignore[override]
        return f"auto, or {self.minimum} or more"

    def parse(self, value: Any, what: str) -> Any:
        return parse_count(value, what, minimum=self.minimum)


@dataclass(frozen=True)
class Seconds(Kind):
    """Finite seconds from `low` (excluded when `above`) to `high`."""

    low: float
    high: float
    above: bool = False

    @property
    def value(self) -> str:  # type: ignore[override]
        if self.above:
            return f"seconds, more than {self.low:g}, at most {self.high:g}"
        return f"seconds, {self.low:g} to {self.high:g}"

    def parse(self, value: Any, what: str) -> Any:
        return parse_seconds(value, what, self.low, self.high, above=self.above)


@dataclass(frozen=True)
class Size(Kind):
    """A size in bytes (1GB, 512MiB, a number), or `off` (kept as is: no limit)."""

    off: str | None = None

    @property
    def value(self) -> str:  # type: ignore[override]
        return f"size \\| {self.off}" if self.off else "size"

    def parse(self, value: Any, what: str) -> Any:
        if self.off is not None and isinstance(value, str) and value.strip().lower() == self.off:
            return self.off
        return parse_size(value, what)


@dataclass(frozen=True)
class FloorOf(Kind):
    """A floor: a size, or a share of the total ('10%')."""

    value = "size \\| N%"

    def parse(self, value: Any, what: str) -> Any:
        return Floor.parse(value, what)


@dataclass(frozen=True)
class Patterns(Kind):
    """A list of globs; with `rule`, each is parsed by it (priority rules)."""

    rule: bool = False

    @property
    def value(self) -> str:  # type: ignore[override]
        return "list of rules" if self.rule else "list of patterns"

    def parse(self, value: Any, what: str) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{what} must be a list of patterns, not {shown(value)}")
        return tuple(PriorityRule.parse(v) for v in value) if self.rule else tuple(value)


@dataclass(frozen=True)
class Table(Kind):
    """A table of processor options: finite numbers, text, lists, tables."""

    value = "table"

    def parse(self, value: Any, what: str) -> Any:
        if not isinstance(value, dict):
            raise ConfigError("options must be a table of processor options")
        check_finite(value, "")
        return dict(value)


@dataclass(frozen=True)
class Address(Kind):
    """'local' or a Dask scheduler's address."""

    value = "address \\| local"

    def parse(self, value: Any, what: str) -> Any:
        scheduler_address(value)
        return value


@dataclass(frozen=True)
class Option:
    """One run option: its name, its kind, its default, its help, and what it applies to."""

    name: str  # the TOML key and the field of RunConfig and Settings; the flag with dashes for underscores
    kind: Kind
    default: Any
    help: str  # "{default}" and "{choices}" are filled from the row
    fingerprint: bool = False  # changes results: a resumed run must have the same value
    applies_to: frozenset[str] = ALL_POOLS  # the pools that honour it; elsewhere it is its default
    quiet: bool = False  # dropped where it does not apply without a warning
    metavar: str | None = None
    label: str | None = None  # what messages call it; default: the flag's name without dashes
    flag: str | None = None  # the command-line flag; default --NAME-WITH-DASHES
    where: Literal["run", "selection"] | None = "run"  # the command line's group (None: an argument)
    overridden_by: str | None = None  # not checked while this other option is given

    @property
    def cli_flag(self) -> str:
        """The flag that sets it: --NAME-WITH-DASHES, unless the row names another."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def what(self) -> str:
        """The option as messages name it: the row's label, else the flag's name without its dashes."""
        return self.label or self.name.replace("_", "-")

    def describe(self) -> str:
        """The help, its {default} and {choices} filled."""
        choices = ", ".join(getattr(self.kind, "choices", ()))
        return self.help.format(default=self.default, choices=choices)

    def parse(self, value: Any) -> Any:
        """Return `value` checked by its kind (None, where the default is None: not given); raise ConfigError."""
        if value is None and self.default is None:
            return None
        return self.kind.parse(value, self.what)


# fmt: off
OPTIONS: tuple[Option, ...] = (  # one row per option, in the order of `midvbatch run --help`
    Option("dataset", Folder("no dataset given"), "", "The dataset folder (DATASET_DIR).", where=None),
    Option("out", Folder("no run folder given (--out RUN_DIR)"), "",
           "Run folder: ledger, logs, artifacts. Run again to resume.", metavar="RUN_DIR"),
    Option("pipeline", Choice(PIPELINES, "unknown pipeline {value} (one of {choices})"), "localize",
           "Built-in pipeline (default {default}).", fingerprint=True, overridden_by="processor"),
    Option("processor", Text(), None, "Your processor: MODULE:FACTORY or a registered name.", fingerprint=True,
           metavar="MODULE:FACTORY"),
    Option("options", Table(), {}, "Option for the processor's factory; VALUE is JSON or text (repeatable).",
           fingerprint=True, metavar="KEY=VALUE", flag="--option"),
    Option("workers", Count(0), "auto", "Worker count (default one per core; 0 runs clips inline, for debugging).",
           metavar="N|auto"),
    Option("pool", Choice(POOLS), "process",
           "Worker processes (default), threads, or a Dask cluster (see --scheduler)."),
    Option("scheduler", Address(), None, "With --pool dask: the scheduler (tcp://host:8786), or 'local'.",
           applies_to=DASK, quiet=True, metavar="ADDRESS"),
    Option("artifacts", Choice(ARTIFACTS), "shared",
           "With --pool dask: workers write artifacts into the shared run folder (default), or return them "
           "with the results (up to 64 MiB a clip) when it is not shared.", applies_to=DASK, quiet=True),
    Option("decode_threads", Count(1), "auto",
           "FFmpeg decoding threads per worker (default {default}: the cores shared among the workers).",
           metavar="N|auto", label="decode threads"),
    Option("batch_size", Whole(1, MAX_BATCH_SIZE), 1,
           "Annotated frames per process_batch call, within a clip (processors that define it; default {default}).",
           metavar="N", label="batch size"),
    Option("prefetch", Whole(0, MAX_PREFETCH), 0,
           "Frames each worker decodes ahead, in a thread, while its processor works (default {default}: none).",
           metavar="N"),
    Option("batch_across_clips", Flag(), False,
           "Let a batch hold frames of the next clips a worker holds (with --batch-size)."),
    Option("image_format", Choice(IMAGE_FORMATS), "png", "Image format of --pipeline extract.", fingerprint=True,
           label="image format"),
    Option("retries", Whole(0, MAX_RETRIES), 2, "Attempts after the first for a failing clip (default {default}).",
           metavar="N"),
    Option("log_level", Choice(LOG_LEVELS), "info", "Console log level (default {default}).", label="log level"),
    Option("retry_delay", Seconds(0, MAX_RETRY_DELAY), 2.0,
           "Wait before the first retry; doubles each attempt, at most 1 hour (default {default:g}; 0 to 3600).",
           metavar="SECONDS", label="retry delay"),
    Option("task_timeout", Seconds(0, MAX_TASK_TIMEOUT, above=True), None,
           "Kill a clip's worker after this long; the clip fails with 'timeout'.", applies_to=WORKER_PROCESSES,
           metavar="SECONDS", label="task timeout"),
    Option("max_failures", Whole(1), None, "Stop dispatching once N clips are dead (default: never).", metavar="N"),
    Option("max_tasks_per_worker", Whole(1), None, "Replace each worker after N clips, to contain leaks.",
           applies_to=LOCAL_PROCESSES, quiet=True, metavar="N"),
    Option("min_free_memory", FloorOf(), None,
           "Dispatch only while this much memory is available (default 10% of RAM or 1GiB, the smaller).",
           metavar="SIZE|N%"),
    Option("worker_memory", Size(off="none"), None,
           "Kill a worker whose resident memory passes SIZE (1GB, 512MiB); its clip fails with 'memory' "
           "(default 80% of RAM shared among the workers; none: no limit).", applies_to=WORKER_PROCESSES,
           metavar="SIZE|none"),
    Option("devices", Text(" (cuda:0,cuda:1 or auto)"), None,
           "Accelerators for the workers, one each in turn: cuda:0,cuda:1, or auto (the GPUs nvidia-smi lists); "
           "each worker sees only its own (CUDA_VISIBLE_DEVICES). Default: none.", applies_to=LOCAL_PROCESSES,
           metavar="LIST|auto"),
    Option("device_memory", Size(), None,
           "Kill a worker holding more than SIZE of its device's memory (as nvidia-smi tells); its clip fails "
           "with 'oom'.", metavar="SIZE"),
    Option("min_free_disk", FloorOf(), None,
           "Dispatch only while RUN_DIR's disk has this much free plus the next clip's output "
           "(default 1GiB or 10% of the disk, the smaller).", metavar="SIZE|N%"),
    Option("on_disk_full", Choice(ON_DISK_FULL), "wait",
           "Below --min-free-disk: wait for space (default) or stop cleanly."),
    Option("strict", Flag(), False, "Refuse to start when a selected clip is invalid."),
    Option("check", Flag(), True,
           "Skip the checks of the clips before the run (they are cached; a resume does not redo them).",
           flag="--no-check"),
    Option("docs", Patterns(), [], "Only documents matching this glob (repeatable).", metavar="PATTERN",
           where="selection"),
    Option("clips", Patterns(), [], "Only clips whose code or id matches (repeatable).", metavar="PATTERN",
           where="selection"),
    Option("limit", Whole(1, says="a positive number of clips"), None, "Only the first N clips of the queue.",
           metavar="N", where="selection"),
    Option("priority", Patterns(rule=True), [],
           "KEY=PATTERN:WEIGHT with KEY clip, doc or id, e.g. 'clip=H*:10'; higher goes first (repeatable).",
           metavar="RULE", where="selection"),
    Option("catalog", Text(), None, CATALOG_HELP, metavar="NAME", where="selection"),
)
# fmt: on
OPTION = {option.name: option for option in OPTIONS}


def options_table() -> str:
    """Return the run options as a Markdown table: flag, TOML key, value, default, pools, whether results change."""
    lines = [
        "| flag | TOML key | value | default | applies to | changes results |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for o in OPTIONS:
        flag = f"`{o.cli_flag}`" if o.where else "(argument)"
        shown_default = str(o.default).lower() if isinstance(o.default, bool) else o.default
        default = "-" if o.default in (None, [], {}, "") else f"`{shown_default}`"
        pools = "all" if o.applies_to == ALL_POOLS else ", ".join(sorted(o.applies_to))
        lines.append(
            f"| {flag} | `{o.name}` | {o.kind.value} | {default} | {pools} | {'yes' if o.fingerprint else ''} |"
        )
    return "\n".join(lines)
