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

import functools
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


def char_diff(truth: str, result: str) -> list[tuple[str, str, str]]:
    """How `result` differs from `truth`, character by character, as OCR evaluation tools show it: a shortest
    alignment (Levenshtein) as (op, truth's character, result's character), op "=" (equal), "~" (substituted),
    "-" (deleted: in the truth, not read) or "+" (inserted: read, not in the truth). Compared as given (the
    scores compare the normalized strings: see normalize). Where several alignments are shortest, equal
    characters are matched first, then substitutions, then deletions."""
    n, m = len(truth), len(result)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = truth[i - 1] == result[j - 1]
            cost[i][j] = min(cost[i - 1][j - 1] + (0 if same else 1), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    ops: list[tuple[str, str, str]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (truth[i - 1] != result[j - 1]):
            ops.append(("=" if truth[i - 1] == result[j - 1] else "~", truth[i - 1], result[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(("-", truth[i - 1], ""))
            i -= 1
        else:
            ops.append(("+", "", result[j - 1]))
            j -= 1
    return ops[::-1]


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
    return scores_at(result, truth, levenshtein(normalize(result), normalize(truth)))


def scores_at(result: str, truth: str, distance: int) -> FieldScore:
    """The scores of a reading whose normalized distance to the truth is `distance` (0: equal once normalized)."""
    total = len(result) + len(truth) + distance
    value = 0.0 if not result and not truth else 2.0 * distance / total
    cer = distance / len(truth) if truth else (0.0 if not result else 1.0)
    return FieldScore(distance == 0, distance, value, cer)


_DATE = re.compile(
    r"^\s*(\d{1,2}[./\- ]\d{1,2}[./\- ]\d{2,4}|\d{4}[./\- ]\d{1,2}[./\- ]\d{1,2}"
    r"|\d{1,2}[ ./\-]?[A-Za-z]{3,9}[./ \-]*(?:/[A-Za-z]{3,9})?[ ./\-]?\d{2,4})\s*$"
)
_MRZ = re.compile(r"^[A-Z0-9<]{28,46}$")
_NAME = re.compile(r"^[A-Za-z\u00C0-\u024F]+(?:[ '\-.,][A-Za-z\u00C0-\u024F]+)*\.?$")
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-/.]{3,}$")


def _is_name(text: str) -> bool:
    """Words of Latin letters, two letters at least (a lone 'M' is a sex, 'P' a document type)."""
    return bool(_NAME.match(text)) and sum(c.isalpha() for c in text) >= 2


@functools.lru_cache(maxsize=4096)  # a clip's frames show the same values: scored once per worker, not per frame
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
        return "name" if _is_name(text) else "other"
    if _MRZ.match(text) and "<" in text:
        return "mrz"
    if _DATE.match(text):
        return "date"
    if _is_name(text):
        return "name"
    digits = sum(c.isdigit() for c in text)
    if _NUMBER.match(text) and digits >= max(3, len(text.replace(" ", "")) // 2):
        return "number"
    return "other"


def score_fields(
    read: Mapping[str, tuple[str, float | None]], template: Template, skip: Collection[str] = ()
) -> dict[str, dict[str, Any]]:
    """Score what a processor read (field name -> (text, confidence)) against a template's values,
    as stored with the frame: {name: {"truth", "text", "type", "distance"[, "confidence"][, "missing"]}}.

    Every field of the template with a value is scored, read or not (one not read scores as
    the empty string, marked ``missing``), but those in `skip` (a malformed result); fields
    without text and empty ones ('*') are not. The rest of the scores (correct, ngld, cer)
    follow from these: field_scores() gives the whole record. A name `read` holds that the
    template lacks is the caller's to report.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, field in template.fields.items():
        if field.value is None or name in skip:
            continue
        text, confidence = read.get(name, ("", None))
        record: dict[str, Any] = {
            "truth": field.value,
            "text": text,
            "type": field_type(field.value, name),
            "distance": levenshtein(normalize(text), normalize(field.value)),
        }
        if confidence is not None:
            record["confidence"] = confidence
        if name not in read:
            record["missing"] = True
        out[name] = record
    return out


def field_scores(stored: Mapping[str, Any], stream: bool = False) -> dict[str, Any]:
    """A field's whole record from what score_fields stored: truth, text, confidence, type, correct,
    distance, ngld, cer, missing; where the clip stands (combined, combined_distance, expected: with `stream`,
    the frame's fields carry them; expected is None where every reading so far was the same text, D_n then
    being 0.1 / (n + 1)). (Storing only the distance keeps a frame's record small: a dataset's ledger holds a
    million of them; a ledger row of more than 2 kB takes a page of its own.)"""
    text, truth, distance = stored["text"], stored["truth"], stored["distance"]
    if distance == 0:  # read right: the common case, a reader of a run's million fields meets it most
        ngld, cer = 0.0, 0.0
    else:
        score = scores_at(text, truth, distance)
        ngld, cer = score.ngld, score.cer
    return {
        "truth": truth,
        "text": text,
        "confidence": stored.get("confidence"),
        "type": stored["type"],
        "correct": distance == 0,
        "distance": distance,
        "ngld": ngld,
        "cer": cer,
        "missing": bool(stored.get("missing", False)),
        # the clip's frames so far combined with their alternatives (scoring.stream), and D_n; None where the
        # run did not work them out (a ledger of an earlier midvbatch)
        "combined": stored.get("combined", text) if stream else None,
        "combined_distance": stored.get("combined_distance", distance),
        "expected": stored.get("expected"),
    }


def empty_fields(template: Template) -> int:
    """The fields that hold text on other documents but are empty on this one ('*'): not scored, counted."""
    return sum(1 for f in template.fields.values() if f.has_text and f.value is None)


# --- combining the frames of a clip ------------------------------------------------------

COMBINATIONS = ("majority", "best", "characters")
WEIGHT_UNIT = 1_000_000  # a confidence of 1 in the character vote


def _in_range(confidence: Any) -> float | None:
    """A confidence as the combinations weigh it: from 0 to 1 (a ledger of an earlier midvbatch may hold
    1e308 or -5), None when it is not a number (NaN included)."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or confidence != confidence:
        return None
    return min(max(float(confidence), 0.0), 1.0)


class Combiner:
    """A field's readings in a clip, combined as they come, by every rule of COMBINATIONS at once.

    ``majority``: the reading seen most often once normalized (ties: the one reached first),
    as first read. ``best``: the reading of highest confidence (ties and readings without
    one: the earliest), as read. A confidence is held to 0..1, and one that is not a number
    counts as none. ``characters``: a character vote: among the readings of
    the most common length once normalized (ties: the length reached first), each position
    takes the character of most weight (a reading's confidence, 1 without one; ties: the
    earliest reading's), normalized. A report combines the frames of every clip of a
    dataset after each frame: a reading costs a few dictionary updates, and the character
    vote is worked out only when asked for after a new reading, over the distinct readings.
    """

    __slots__ = (
        "_best",
        "_best_key",
        "_best_value",
        "_by_length",
        "_counts",
        "_first",
        "_lead",
        "_leader",
        "_vote",
        "_weights",
    )

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}  # normalized reading -> readings of it, in the order first read
        self._first: dict[str, str] = {}  # normalized reading -> as first read
        self._weights: dict[str, int] = {}  # normalized reading -> its readings' confidences summed (WEIGHT_UNIT)
        self._by_length: dict[int, int] = {}  # normalized length -> readings of it, in the order first reached
        self._leader: str | None = None
        self._lead = 0
        self._best: str | None = None
        self._best_key: str | None = None  # normalized
        self._best_value = float("-inf")
        self._vote: str | None = None  # the character vote, until the next reading

    def add(self, text: str, confidence: float | None = None) -> None:
        """Take the next reading."""
        key = normalize(text)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count == 1:
            self._first[key] = text
        leader = self._leader
        if count > self._lead or (count == self._lead and leader is not None and self._before(key, leader)):
            self._leader, self._lead = key, count  # a tie goes to the reading reached first
        confidence = _in_range(confidence)
        value = float("-inf") if confidence is None else confidence
        if self._best is None or value > self._best_value:
            self._best, self._best_key, self._best_value = text, key, value
        # in millionths, as integers: sums then do not depend on the order they are added in
        weight = WEIGHT_UNIT if confidence is None else round(confidence * WEIGHT_UNIT)
        self._weights[key] = self._weights.get(key, 0) + weight
        self._by_length[len(key)] = self._by_length.get(len(key), 0) + 1
        self._vote = None

    def _before(self, a: str, b: str) -> bool:
        """Was `a` first read before `b`? (Only asked on a tie of counts: rare, and the readings few.)"""
        for key in self._counts:
            if key in (a, b):
                return key == a
        return False

    def result(self, method: str) -> str | None:
        """The readings so far combined by `method` (one of COMBINATIONS); None before the first."""
        if method == "majority":
            return self._first[self._leader] if self._leader is not None else None
        if method == "best":
            return self._best
        if method == "characters":
            return self._characters()
        raise ValueError(f"unknown combination {method!r}: {', '.join(COMBINATIONS)}")

    def normalized(self) -> tuple[str | None, str | None, str | None]:
        """The three combinations so far, normalized, in the order of COMBINATIONS: what a curve compares
        with the truth after every frame."""
        return self._leader, self._best_key, self._characters()

    def _characters(self) -> str | None:
        if self._vote is None and self._counts:
            self._vote = self._vote_now()
        return self._vote

    def _vote_now(self) -> str:
        if len(self._counts) == 1:  # one reading, however often: the vote is it
            return next(iter(self._counts))
        most = max(self._by_length.values())
        length = next(n for n, count in self._by_length.items() if count == most)
        voters = [key for key in self._counts if len(key) == length]  # in the order first read
        if len(voters) == 1:
            return voters[0]
        out = []
        for position in range(length):
            weights: dict[str, int] = {}  # character -> weight, in the order first read
            for key in voters:
                weights[key[position]] = weights.get(key[position], 0) + self._weights[key]
            top = max(weights.values())
            out.append(next(char for char, weight in weights.items() if weight == top))
        return "".join(out)


def combine(results: list[tuple[str, float | None]], method: str) -> str | None:
    """Combine a field's per-frame (text, confidence) readings by `method`: see Combiner."""
    combiner = Combiner()
    for text, confidence in results:
        combiner.add(text, confidence)
    return combiner.result(method)


def combine_majority(results: list[str]) -> str | None:
    """The reading seen most often once normalized (ties: the one reached first), as first read; None for none."""
    return combine([(text, None) for text in results], "majority")


def combine_best(results: list[tuple[str, float | None]]) -> str | None:
    """The reading with the highest confidence (ties and missing confidences: the earliest); None for none."""
    return combine(results, "best")


def combine_characters(results: list[tuple[str, float | None]]) -> str | None:
    """The character vote of the readings (see Combiner), normalized; None for none.

    Per-frame errors in different characters outvote each other, where a vote of whole
    strings needs the same string twice."""
    return combine(results, "characters")


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
    right = [0] * longest
    for results, truth in clips:
        combiner, key, now = Combiner(), normalize(truth), False
        for k in range(longest):
            if k < len(results):
                combiner.add(*results[k])
                combined = combiner.result(method)
                now = combined is not None and normalize(combined) == key
            right[k] += now
    return [r / len(clips) for r in right]
