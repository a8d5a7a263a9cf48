"""A prediction as stored: what a processor returns, checked once against what later commands assume.

Every value of a result (per frame, or per clip) is stored as JSON that every later
command (report, export, status, the Python API) reads and writes back safely:

- text is valid Unicode: a lone surrogate (as a decoder fed bytes may produce) becomes
  U+FFFD;
- numbers are finite, integers within 64 bits;
- objects and lists nest at most DEPTH_LIMIT levels;
- the document ``quad`` is 4 corners within QUAD_LIMIT pixels of the frame's origin (one
  that is not is stored as null and kept as text in ``quad_raw``);
- a text field's reading is at most READING_LIMIT characters (a longer one is cut to
  that), its confidence a number from 0 to 1.

A value that cannot be kept is left out (from a list: stored as null), with a note
naming it; the rest of the result is kept. A value of a type JSON does not know (a numpy
array) is the processor's mistake: ProcessorError, and the clip fails with the reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from midvbatch.errors import ProcessorError, shown

READING_LIMIT = 256  # characters of a text field's reading kept, compared and stored (an MRZ line has 44)
QUAD_LIMIT = 1_000_000.0  # pixels: a predicted corner farther from the frame's origin is no prediction
DEPTH_LIMIT = 100  # levels of objects and lists in a result (JSON readers recurse once per level)
INT_LIMIT = 2**63  # integers kept: -INT_LIMIT <= n < INT_LIMIT, what JSON readers hold without loss
QUAD_RAW = 200  # characters of a quad not kept, stored as text in quad_raw

Note = Callable[[str], None]
_DROP = object()  # a value left out
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # how json.dumps writes a surrogate


def valid_text(text: str) -> str:
    """Return `text` as valid Unicode: each lone surrogate replaced with U+FFFD (a pair joined into its character)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _where(path: tuple[str | int, ...]) -> str:
    """A value's place in a result, as notes name it: boxes[2][1], fields.field01.text."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{shown(part)}]"
    if len(out) > 80:  # a value nested deep
        out = f"{out[:60]}... ({len(path)} levels)"
    return out or "the result"


def _gone(path: tuple[str | int, ...]) -> str:
    """What became of a value left out: a list keeps its place."""
    return "stored as null" if path and isinstance(path[-1], int) else "left out"


def _text(value: str, where: Callable[[], str], note: Note) -> str:
    """`value` as valid Unicode; `where()` (asked only then) names its place in a note when it was not."""
    fixed = valid_text(value)
    if fixed is not value:
        note(f"{where()}: {shown(value)} is not valid Unicode (a lone surrogate); stored with U+FFFD in its place")
    return fixed


def _reading(value: str, name: str, note: Note) -> str:
    if len(value) > READING_LIMIT:
        note(f"field {shown(name)}: a reading of {len(value):,} characters; cut to its first {READING_LIMIT}")
        value = value[:READING_LIMIT]
    return _text(value, lambda: f"field {shown(name)}", note)


def _confidence(value: Any, name: str, note: Note) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN is not a number
        note(f"field {shown(name)}: confidence {shown(value)} is not a number; ignored")
        return _DROP
    if not 0 <= value <= 1:
        note(f"field {shown(name)}: confidence {shown(value)} is not from 0 to 1; ignored")
        return _DROP
    return float(value)


def _key(key: Any, path: tuple[str | int, ...], what: str, note: Note) -> Any:
    """An object's key as JSON writes it (a string; numbers, booleans and None as their JSON text)."""
    if isinstance(key, str):
        return _text(key, lambda: f"a key of {_where(path)}", note)
    if key is None or isinstance(key, (int, float)):
        try:
            return json.dumps(key)
        except ValueError:
            note(f"a key of {_where(path)}: an integer too long to write out; left out")
            return _DROP
    raise ProcessorError(
        f"{what} returned a value that cannot be stored as JSON: a key of {_where(path)} is a {type(key).__name__}"
    )


def _clean(value: Any, path: tuple[str | int, ...], what: str, note: Note) -> Any:
    """`value` as stored, or _DROP; notes say what was changed or left out."""
    if len(path) == 3 and path[0] == "fields" and path[2] == "confidence":
        return _confidence(value, str(path[1]), note)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if path[:1] == ("fields",) and isinstance(path[-1], str) and (len(path) == 2 or path[2:] == ("text",)):
            return _reading(value, str(path[1]), note)
        return _text(value, lambda: _where(path), note)
    if isinstance(value, int):
        if -INT_LIMIT <= value < INT_LIMIT:
            return int(value)
        note(f"{_where(path)}: an integer beyond 64 bits; {_gone(path)}")
        return _DROP
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        note(f"{_where(path)}: {value!r} is not a finite number; {_gone(path)}")
        return _DROP
    if isinstance(value, (dict, list, tuple)) and len(path) >= DEPTH_LIMIT:
        note(f"{_where(path)}: nested deeper than {DEPTH_LIMIT} levels; {_gone(path)}")
        return _DROP
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _key(key, path, what, note)
            if name is not _DROP and (kept := _clean(item, (*path, name), what, note)) is not _DROP:
                out[name] = kept
        return out
    if isinstance(value, (list, tuple)):
        kept = [
            # (a finite float, an int within 64 bits, None: stored as they are, without a call each: quads, boxes)
            item
            if item is None
            or (type(item) is float and math.isfinite(item))
            or (type(item) is int and -INT_LIMIT <= item < INT_LIMIT)
            else _clean(item, (*path, i), what, note)
            for i, item in enumerate(value)
        ]
        return [None if item is _DROP else item for item in kept]
    raise ProcessorError(
        f"{what} returned a value that cannot be stored as JSON: {_where(path)} is a {type(value).__name__}"
    )


def _quad(result: dict, note: Note) -> dict:
    """A predicted quad as 4 [x, y] corners; one that is not 4 finite corners within QUAD_LIMIT as None,
    kept as text in quad_raw."""
    from midvbatch.scoring import as_corners

    raw = result["quad"]
    if raw is None:
        return result
    corners = as_corners(raw)
    fixed = dict(result)
    if corners is None or abs(corners).max() > QUAD_LIMIT:
        note(
            f"quad {shown(raw)} is not 4 finite corners within {QUAD_LIMIT:,.0f} pixels; "
            "scored as no prediction (kept as text in quad_raw)"
        )
        fixed["quad"], fixed["quad_raw"] = None, valid_text(str(raw)[:QUAD_RAW])  # as text: it may hold NaN
    else:
        fixed["quad"] = [[float(x), float(y)] for x, y in corners]
    return fixed


def storable(result: Any, what: str, note: Note) -> Any:
    """Return `result` (what method `what` returned) as it is stored: every value checked (see the module's
    docstring); each one changed or left out is a `note`. Raises ProcessorError for a value JSON cannot hold."""
    if isinstance(result, dict) and "quad" in result:
        result = _quad(result, note)
    kept = _clean(result, (), what, note)
    return None if kept is _DROP else kept


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    return value


def read_stored(raw: str) -> Any:
    """Read a result or scores as the ledger holds them (JSON text), lone surrogates that an earlier
    midvbatch stored replaced with U+FFFD."""
    value = json.loads(raw)
    return _repaired(value) if _SURROGATE_ESCAPE.search(raw) else value
