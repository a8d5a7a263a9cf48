"""Text-field recognition metrics, exactly as Smart Engines publish them for MIDV-500.

From SmartEngines/stoppers_modelling (metrics.py): a string is normalized by upper-casing
it and replacing the letter O with the digit 0; a field is correct end to end when the
normalized strings are equal; the Levenshtein distance is taken between the normalized
strings; the normalized generalized Levenshtein distance (NGLD) is ``2L / (|a| + |b| + L)``
with the lengths of the strings *as given* (0 for two empty strings). Beside them, the
character error rate ``L / |truth|`` that other benchmarks report.

Upper-casing can change a string's length (German ``ß`` becomes ``SS``): L is measured on
the normalized strings, the NGLD's lengths on the strings as given, as the reference does.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from midvbatch.dataset.groundtruth import Template

FIELD_TYPES = ("date", "number", "name", "mrz", "other")


def normalize(text: str) -> str:
    """Upper-case and replace the letter O with the digit 0 (the reference's normalize_string)."""
    return text.upper().replace("O", "0")


def levenshtein(a: str, b: str) -> int:
    """The Levenshtein distance (insertions, deletions, substitutions, each costing 1)."""
    if a == b:  # the common case of a good reader: no table to fill
        return 0
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def ngld(result: str, truth: str) -> float:
    """Normalized generalized Levenshtein distance: 2L / (|result| + |truth| + L), 0 for two empty strings.

    L is the distance between the normalized strings; the lengths are those of the strings
    as given (the reference's levmetric)."""
    return score_field(result, truth).ngld


@dataclass(frozen=True)
class FieldScore:
    """The scores of one field read once."""

    correct: bool  # the normalized strings are equal (end to end)
    distance: int  # Levenshtein distance between the normalized strings
    ngld: float
    cer: float  # distance / |truth| (as given); for an empty truth: 0 if the result is empty too, else 1

    def to_dict(self) -> dict:
        """Return a JSON-ready record."""
        return {"correct": self.correct, "distance": self.distance, "ngld": self.ngld, "cer": self.cer}


def score_field(result: str, truth: str) -> FieldScore:
    """Score a recognized string against the true value."""
    a, b = normalize(result), normalize(truth)
    distance = levenshtein(a, b)
    total = len(result) + len(truth) + distance
    value = 0.0 if not result and not truth else 2.0 * distance / total
    cer = distance / len(truth) if truth else (0.0 if not result else 1.0)
    return FieldScore(a == b, distance, value, cer)


_DATE = re.compile(
    r"^\s*(\d{1,2}[./\- ]\d{1,2}[./\- ]\d{2,4}|\d{4}[./\- ]\d{1,2}[./\- ]\d{1,2}"
    r"|\d{1,2}[ ./\-]?[A-Za-z]{3,9}[./ \-]*(?:/[A-Za-z]{3,9})?[ ./\-]?\d{2,4})\s*$"
)
_MRZ = re.compile(r"^[A-Z0-9<]{28,46}$")
_NAME = re.compile(r"^[A-Za-z\u00C0-\u024F]+(?:[ '\-.,][A-Za-z\u00C0-\u024F]+)*\.?$")
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-/.]{3,}$")


def field_type(value: str, name: str = "") -> str:
    """Say what kind of field it is: date, number (a document number), name (in Latin letters),
    mrz (a machine-readable zone line), or other.

    A field `name` that says it (MIDV-2020's ``birth_date``, ``mrz_line0``, ``number``,
    ``surname``) decides, the value's shape confirming a name is in Latin letters; MIDV-500's
    ``field05`` says nothing, and the value's shape decides."""
    text = value.strip()
    hint = name.lower()
    if "mrz" in hint:
        return "mrz"
    if "date" in hint:
        return "date"
    if "number" in hint or hint.endswith(("_no", "_num")):
        return "number"
    if "name" in hint:
        return "name" if _NAME.match(text) and not any(c.isdigit() for c in text) else "other"
    if _MRZ.match(text) and "<" in text:
        return "mrz"
    if _DATE.match(text):
        return "date"
    if _NAME.match(text) and not any(c.isdigit() for c in text):
        return "name"
    digits = sum(c.isdigit() for c in text)
    if _NUMBER.match(text) and digits >= max(3, len(text.replace(" ", "")) // 2):
        return "number"
    return "other"


def score_fields(
    read: Mapping[str, tuple[str, float | None]], template: Template, skip: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Score what a processor read (field name -> (text, confidence)) against a template's values.

    Every field of the template with a value is scored, read or not (one not read scores as
    the empty string, marked ``missing``), but those in `skip` (a malformed result); fields
    without text and empty ones ('*') are not. Each record: truth, text, confidence, type, correct, distance, ngld, cer (and
    missing). A name `read` holds that the template lacks is the caller's to report.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, field in template.fields.items():
        if field.value is None or name in skip:
            continue
        text, confidence = read.get(name, ("", None))
        record: dict[str, Any] = {
            "truth": field.value,
            "text": text,
            "confidence": confidence,
            "type": field_type(field.value, name),
            **score_field(text, field.value).to_dict(),
        }
        if name not in read:
            record["missing"] = True
        out[name] = record
    return out


def empty_fields(template: Template) -> int:
    """The fields that hold text on other documents but are empty on this one ('*'): not scored, counted."""
    return sum(1 for f in template.fields.values() if f.has_text and f.value is None)


# --- combining the frames of a clip ------------------------------------------------------


def combine_majority(results: list[str]) -> str | None:
    """The result read most often once normalized (ties: the one reached first); None for no results.

    Returns the first string as read of the winning normalized form."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for text in results:
        key = normalize(text)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, text)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(key for key in counts if counts[key] == best)  # dicts keep insertion order: first reached
    return first[winner]


def combine_best(results: list[tuple[str, float | None]]) -> str | None:
    """The result with the highest confidence (ties and missing confidences: the earliest); None for none."""
    best: tuple[str, float] | None = None
    for text, confidence in results:
        value = confidence if confidence is not None else float("-inf")
        if best is None or value > best[1]:
            best = (text, value)
    return best[0] if best is not None else None


def combine_characters(results: list[tuple[str, float | None]]) -> str | None:
    """A character-level vote: among the results of the most common length (once normalized; ties: the
    length reached first), each position takes the character with the most weight (a result's
    confidence, 1 without one; ties: the earliest result's). None for no results.

    Per-frame errors in different characters outvote each other, where a vote of whole
    strings needs the same string twice."""
    if not results:
        return None
    normalized = [
        (normalize(text), 1.0 if confidence is None else max(0.0, confidence)) for text, confidence in results
    ]
    lengths: dict[int, int] = {}
    for text, _ in normalized:
        lengths[len(text)] = lengths.get(len(text), 0) + 1
    best = max(lengths.values())
    length = next(n for n in lengths if lengths[n] == best)
    voters = [(text, weight) for text, weight in normalized if len(text) == length]
    out = []
    for i in range(length):
        weights: dict[str, float] = {}
        for text, weight in voters:
            weights[text[i]] = weights.get(text[i], 0.0) + weight
        top = max(weights.values())
        out.append(next(text[i] for text, _ in voters if weights[text[i]] == top))
    return "".join(out)


COMBINATIONS = ("majority", "best", "characters")


def combine(results: list[tuple[str, float | None]], method: str) -> str | None:
    """Combine a field's per-frame (text, confidence) results by `method`: majority, best or characters."""
    if method == "majority":
        return combine_majority([text for text, _ in results])
    if method == "best":
        return combine_best(results)
    if method == "characters":
        return combine_characters(results)
    raise ValueError(f"unknown combination {method!r}: {', '.join(COMBINATIONS)}")


def accuracy_after_frames(
    clips: list[tuple[list[tuple[str, float | None]], str]], method: str = "majority"
) -> list[float]:
    """Accuracy of the combined result after 1, 2, ... frames, over clips of one field.

    `clips` holds, per clip, its per-frame (result, confidence) in frame order and the true
    value. Entry k - 1 is the share of clips whose first k results, combined by `method`
    (one of COMBINATIONS), equal the truth once normalized; a clip with fewer than k
    results counts with all it has (as a recognizer that has stopped). Clips without
    results count as wrong.
    """
    if method not in COMBINATIONS:
        raise ValueError(f"unknown combination {method!r}: {', '.join(COMBINATIONS)}")
    if not clips:
        return []
    longest = max(len(results) for results, _ in clips)
    curve = []
    for k in range(1, longest + 1):
        right = 0
        for results, truth in clips:
            combined = combine(results[:k], method)
            right += combined is not None and normalize(combined) == normalize(truth)
        curve.append(right / len(clips))
    return curve
