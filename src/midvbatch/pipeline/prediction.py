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
  that), its confidence a number from 0 to 1;
- a text field's ``alternatives`` (one {character: membership} per position) are taken out
  before the result is stored (take_alternatives): checked, normalised, handed to the
  clip's video-stream combination (scoring.stream) and not kept; the reading's ``text``,
  where the processor gave none, is the best character of each position.

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
LABELS_LIMIT = 1024  # alternatives of one position of a reading
LABEL_LIMIT = 8  # characters of one alternative (a character, or one written as several code points)

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
        field = len(path) == 2 and path[0] == "fields"  # (a field's object: its confidence is a number)
        for key, item in value.items():
            name = key if type(key) is str and key.isascii() else _key(key, path, what, note)
            if name is _DROP:
                continue
            if (
                type(item) is str
                and item.isascii()
                and len(item) <= READING_LIMIT
                and not (field and name == "confidence")
            ):
                out[name] = item  # (stored as it is, wherever it is: the usual reading, taken without a call)
            elif (kept := _clean(item, (*path, name), what, note)) is not _DROP:
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


Positions = list[dict[str, float]]  # a reading's alternatives: {label: membership} per position, each summing to 1


def alternatives(value: Any) -> Positions:
    """A reading's alternatives checked and normalised: a list with one {character: membership} per position,
    memberships finite and non-negative, normalised to sum 1 ('' is the empty label: no character). Raises
    ValueError saying what is wrong (a position whose memberships sum to 0, a membership that is not a number,
    too many positions or labels)."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of {{character: membership}}, one per position, got {shown(value, 40)}")
    if len(value) > READING_LIMIT:
        raise ValueError(f"{len(value):,} positions, more than {READING_LIMIT}")
    out: Positions = []
    for k, position in enumerate(value):
        if not isinstance(position, dict) or not position:
            raise ValueError(f"position {k} must be a non-empty {{character: membership}}, got {shown(position, 40)}")
        if len(position) > LABELS_LIMIT:
            raise ValueError(f"position {k} has {len(position):,} alternatives, more than {LABELS_LIMIT}")
        total = 0.0
        for label, membership in position.items():
            if not isinstance(label, str) or len(label) > LABEL_LIMIT or valid_text(label) is not label:
                raise ValueError(f"position {k}: {shown(label, 20)} is not a character")
            if isinstance(membership, bool) or not isinstance(membership, (int, float)):
                raise ValueError(f"position {k}: the membership of {shown(label, 20)} is not a number")
            try:
                value = float(membership)
            except OverflowError:  # an integer of hundreds of digits
                raise ValueError(f"position {k}: the membership of {shown(label, 20)} is too large") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"position {k}: the membership of {shown(label, 20)} is {shown(membership, 20)}")
            total += value
        if not total > 0:
            raise ValueError(f"position {k}: the memberships sum to 0")
        if not math.isfinite(total):
            raise ValueError(f"position {k}: the memberships sum to {total!r}")
        out.append({label: float(m) / total for label, m in position.items()})
    return out


def best_text(positions: Positions) -> str:
    """The reading the alternatives give: each position's best label (ties: the first in sorted order), the
    empty label writing nothing."""
    out = []
    for position in positions:
        top = max(position.values())
        label = min(label for label, m in position.items() if m == top)
        out.append(label)
    return "".join(out)


def take_alternatives(result: Any, note: Note) -> tuple[Any, dict[str, Positions | None]]:
    """Take the text fields' ``alternatives`` out of a result: (the result without them, field name -> its
    alternatives checked, or None where they are malformed: that reading is left out, with a note). A field
    given by its alternatives alone gets their best text as its ``text``."""
    if not isinstance(result, dict) or not isinstance(result.get("fields"), dict):
        return result, {}
    fields = result["fields"]
    if not any(isinstance(given, dict) and "alternatives" in given for given in fields.values()):
        return result, {}
    kept_fields: dict[Any, Any] = {}
    taken: dict[str, Positions | None] = {}
    for name, given in fields.items():
        if isinstance(given, dict) and "alternatives" in given:
            raw, given = given["alternatives"], {k: v for k, v in given.items() if k != "alternatives"}
            try:
                positions = alternatives(raw)
            except ValueError as exc:
                note(f"field {shown(name)}: alternatives {exc}; reading left out")
                taken[str(name)] = None
                continue
            taken[str(name)] = positions
            if not isinstance(given.get("text"), str):
                given["text"] = best_text(positions)
        kept_fields[name] = given
    return {**result, "fields": kept_fields}, taken
