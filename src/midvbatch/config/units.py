"""The values an option can take, parsed: sizes, floors, seconds, counts, whole numbers, addresses, priority rules.

Each parser takes the value as asked (a flag's text, a TOML value, a Python value) and
`what`, the name its message gives the option, and raises ConfigError in one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from midvbatch.errors import ConfigError, shown

MAX_SIZE = 2**60  # 1 EiB: larger than any machine's memory or disk
MAX_PRIORITY = 10**9  # |weight| of a priority rule; the ledger stores priorities as 64-bit integers
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")  # Dask's transports that reach a scheduler in another process
_PRIORITY = re.compile(r"^(clip|doc|id)=([^:]+):(-?\d+)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_HOST_PORT = re.compile(r"^(\[[^\[\]/\s]+\]|[^:/\[\]\s@?#]+)(?::(.*))?$")
_UNITS = {"": 1, "b": 1} | {
    f"{prefix}{suffix}": base**power
    for power, prefix in enumerate("kmgt", 1)
    for suffix, base in (("", 1000), ("b", 1000), ("i", 1024), ("ib", 1024))
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


def gib(n: float) -> str:
    """Return bytes as GiB with one decimal, for messages: '24.0 GiB'."""
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


def parse_whole(value: Any, what: str, low: int, high: int | None = None) -> int:
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
