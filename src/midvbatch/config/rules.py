"""What no single option decides: the rules that turn a run's options, checked one by one, into its Settings.

The pool from ``--workers 0`` (inline, except with Dask); the workers from the devices;
the limits only some pools can honour (each option's `applies_to`), dropped elsewhere
with a warning; counts and sizes capped to the machine, floors it can never meet
refused; and a note for each default derived from the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midvbatch.config.machine import Machine
from midvbatch.config.options import OPTION, OPTIONS, Option, PoolKind
from midvbatch.config.units import Floor, gib
from midvbatch.errors import ConfigError, shown

MIN_WORKER_MEMORY = 64 * 2**20  # below this a worker process cannot even start Python and PyAV
WORKER_MEMORY_SHARE = 0.8  # default worker memory limit: this share of RAM, split among the workers
MEMORY_PER_WORKER = 256 * 2**20  # a worker holds at least this much; caps --workers on small machines
WORKERS_PER_CORE = 4  # more workers (or decode threads) than this per core only thrash
_OWN_RULES = frozenset({"devices", "worker_memory"})  # options only some pools honour, with a rule of their own


def check_options(asked: Mapping[str, Any]) -> dict[str, Any]:
    """Return each option of `asked` (name -> value as asked) checked by its kind; raise ConfigError at the first bad one.

    An option overridden by another one given (``pipeline`` by ``processor``) is not checked.
    """
    return {
        name: value if _overridden(OPTION[name], asked) else OPTION[name].parse(value) for name, value in asked.items()
    }


def _overridden(option: Option, asked: Mapping[str, Any]) -> bool:
    return option.overridden_by is not None and asked.get(option.overridden_by) is not None


def settings_values(asked: Mapping[str, Any], machine: Machine | None = None) -> dict[str, Any]:
    """Return the keyword arguments of Settings for the options `asked` (every option, as asked).

    `machine` replaces this computer's figures (for tests). Notes and warnings say, one line
    each, what default was derived from the machine and what was capped or dropped.
    """
    values = check_options(asked)
    machine = machine or Machine.current(values["out"])
    notes: list[str] = []
    warnings: list[str] = []
    pool, values["workers"] = _pool_and_workers(values["workers"], values["pool"], machine, warnings)
    values["devices"] = _devices(values["devices"], pool, notes, warnings)
    if values["devices"] and pool == "process" and asked["workers"] == "auto":
        values["workers"] = len(values["devices"])
        notes.append(f"{_plural(values['workers'], 'worker')}: one per device (--devices)")
    device = OPTION["device_memory"]
    if values[device.name] is not None and not values["devices"]:
        warnings.append(f"{device.cli_flag} applies to workers given a device (--devices): not enforced")
        values[device.name] = None
    values["decode_threads"] = _threads_per_worker(values["decode_threads"], machine, values["workers"], warnings)
    if values["artifacts"] == "return" and pool != "dask":
        warnings.append("--artifacts return applies to --pool dask: local workers write into the run folder")
    memory_floor(values["min_free_memory"], machine.memory)
    if machine.disk is not None:
        disk_floor(values["min_free_disk"], machine.disk)
    values["worker_memory"] = _worker_limit(asked, values, machine, pool, notes, warnings)
    for option in OPTIONS:  # the other options only some pools honour: their default elsewhere
        if pool not in option.applies_to and option.name not in _OWN_RULES:
            if not option.quiet and values[option.name] != option.default:
                _enforced(option, pool, warnings)
            values[option.name] = option.default
    if pool == "dask":
        values["scheduler"] = values["scheduler"] or "local"
    values["processor"] = values["processor"] or values["pipeline"]
    if values["processor"] == "extract":
        values["options"].setdefault("image_format", values["image_format"])
    return {**values, "pool": pool, "notes": tuple(notes), "warnings": tuple(warnings)}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _enforced(option: Option, pool: str, warnings: list[str]) -> bool:
    """Tell whether `pool` honours `option`; warn when it does not."""
    if pool in option.applies_to:
        return True
    who = "worker processes (local or Dask)" if "dask" in option.applies_to else "local worker processes"
    warnings.append(
        f"{option.cli_flag} applies to {who} only; not enforced with "
        + ("--workers 0" if pool == "inline" else f"--pool {pool}")
    )
    return False


def _pool_and_workers(wanted: int | str, pool: str, machine: Machine, warnings: list[str]) -> tuple[PoolKind, int]:
    """Return (pool, clips at once): 'auto' is one worker per core; 0 is the inline pool, except with Dask.

    A count is capped at what the machine can honour: WORKERS_PER_CORE per core, and
    MEMORY_PER_WORKER of memory each.
    """
    if wanted == "auto":
        count = machine.cores
    else:
        assert isinstance(wanted, int)
        cap = max(1, min(WORKERS_PER_CORE * machine.cores, machine.memory // MEMORY_PER_WORKER))
        count = min(wanted, cap)
        if count < wanted:
            why = (
                f"{WORKERS_PER_CORE} per core on {machine.cores} cores"
                if count == WORKERS_PER_CORE * machine.cores
                else f"{MEMORY_PER_WORKER >> 20} MiB each of {gib(machine.memory)} of memory"
            )
            warnings.append(f"workers capped at {count} (asked {shown(wanted, 20)}): {why}")
    if pool == "dask":
        return "dask", max(1, count)
    if count == 0:
        return "inline", 1
    return ("thread" if pool == "thread" else "process"), count


def _devices(asked: str | None, pool: PoolKind, notes: list[str], warnings: list[str]) -> tuple[str, ...]:
    """Return the accelerators workers get in turn: those asked for, or with 'auto' those the driver lists.

    Devices are given to local worker processes only (each restricted to its own through
    its environment). None found, or no driver: () and a note saying the workers use the CPU.
    """
    from midvbatch.accelerators import gpus, parse_devices

    if asked is None or asked.strip().lower() in ("", "none"):
        return ()
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
    if not _enforced(OPTION["devices"], pool, warnings):
        return ()
    return devices


def _threads_per_worker(asked: int | str, machine: Machine, workers: int, warnings: list[str]) -> int:
    """Return FFmpeg's decoding threads per worker: 'auto' shares the cores among the workers.

    A count is capped at WORKERS_PER_CORE per core.
    """
    if asked == "auto":
        return max(1, machine.cores // workers)
    assert isinstance(asked, int)
    count = min(asked, WORKERS_PER_CORE * machine.cores)
    if count < asked:
        warnings.append(
            f"decode threads capped at {count} (asked {shown(asked, 20)}): "
            f"{WORKERS_PER_CORE} per core on {machine.cores} cores"
        )
    return count


def _worker_limit(
    asked: Mapping[str, Any],
    values: Mapping[str, Any],
    machine: Machine,
    pool: PoolKind,
    notes: list[str],
    warnings: list[str],
) -> int | str | None:
    """Return the worker memory limit: bytes, 'auto' (the default share) or None (off, or not enforceable).

    Not set, the limit applies to local worker processes only (nothing can kill a
    thread or an inline clip; Dask workers have their own limit). A size applies to
    local and Dask workers; below MIN_WORKER_MEMORY it is refused, above the machine's
    memory (local workers) capped to it.
    """
    option = OPTION["worker_memory"]
    size, raw, workers = values[option.name], asked[option.name], values["workers"]
    if size is None:
        if pool != "process":
            return None
        limit = default_worker_limit(machine.memory, workers)
        notes.append(
            f"worker memory limit {gib(limit)} each (default: {WORKER_MEMORY_SHARE:.0%} "
            f"of {gib(machine.memory)} over {_plural(workers, 'worker')}; {option.cli_flag} none turns it off)"
        )
        return "auto"
    if isinstance(size, str):  # 'none'
        return None
    if size < MIN_WORKER_MEMORY:
        raise ConfigError(
            f"{option.what} {shown(raw, 20)} is below the "
            f"{MIN_WORKER_MEMORY >> 20} MiB a worker needs to start (use 'none' for no limit)"
        )
    if not _enforced(option, pool, warnings):
        return None
    if size > machine.memory and pool != "dask":  # (a Dask worker's machine is not this one)
        warnings.append(f"worker memory capped at {gib(machine.memory)} (asked {shown(raw, 20)}): the machine's memory")
    return size


def default_worker_limit(total_memory: int, workers: int) -> int:
    """The default worker memory limit: WORKER_MEMORY_SHARE of the memory over the workers, at least MIN_WORKER_MEMORY."""
    return max(MIN_WORKER_MEMORY, int(total_memory * WORKER_MEMORY_SHARE / workers))


def _floor(floor: Floor | None, total: int, option: Option, whole: str) -> int:
    """Return `floor` (default: 1 GiB or 10% of `total`, the smaller) in bytes.

    Raises ConfigError for a floor of `total` or more, which is never met (`whole` says
    what the total is).
    """
    if floor is None:
        return min(total // 10, 1 << 30)
    value = floor.of(total)
    if value >= total:
        raise ConfigError(
            f"{option.what} {shown(floor.asked, 20)} can never be met: {whole}, and the run would wait forever"
        )
    return value


def memory_floor(floor: Floor | None, total_memory: int) -> int:
    """Return the available memory below which no clip is dispatched, in bytes; see Settings.memory_floor."""
    whole = f"this machine has {gib(total_memory)} of memory in all"
    return _floor(floor, total_memory, OPTION["min_free_memory"], whole)


def disk_floor(floor: Floor | None, disk_size: int) -> int:
    """Return the free disk space below which no clip is dispatched, in bytes; see Settings.disk_floor."""
    return _floor(floor, disk_size, OPTION["min_free_disk"], f"the run folder's disk holds {gib(disk_size)} in all")
