"""The video-stream figures of a run's report: the error after k frames combined, and the stopping rules.

A field of a video clip is read frame after frame. For every combiner (scoring.text's
majority, best and characters, and scoring.stream's combination with alternatives) the
mean NGLD of the combined result after k = 1, 2, ... frames; and for each stopping rule
(``fixed N``, ``stable K``, ``expected_distance T``: scoring.stream) at each threshold of
a sweep, the mean number of frames at the stop and the mean NGLD and accuracy of the
result there (the combination with alternatives), overall and per field type. The worker
worked out each frame's combined result and D_n as the clip ran (pipeline/clip.py); here
they are only read: every rule at every threshold is a few array operations over all
(clip, field) pairs at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from midvbatch.errors import ConfigError
from midvbatch.scoring.stream import PRIOR, expected_distance_stop, fixed_stop, stable_stop
from midvbatch.scoring.text import COMBINATIONS, ngld, scores_at

STREAM_COMBINATIONS = (*COMBINATIONS, "alternatives")
RULES = ("fixed", "stable", "expected_distance")
DEFAULT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "fixed": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30),
    "stable": (1, 2, 3, 4, 5, 6, 8, 10),
    "expected_distance": (0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.025, 0.02, 0.015, 0.01),
}
THRESHOLDS_LIMIT = 100  # thresholds of one rule
FRAMES_LIMIT = 1_000_000  # the largest N of fixed N and K of stable K (a clip of MIDV-2020 has 69 annotated frames)


def parse_thresholds(text: str | None) -> dict[str, tuple[float, ...]]:
    """The sweep of `--stop-thresholds`: 'expected_distance=0.1,0.05;stable=2,3;fixed=5,10' (rules not named keep
    their default sweep; None: every default). ConfigError naming what is wrong."""
    out = dict(DEFAULT_THRESHOLDS)
    if text is None or not text.strip():
        return out
    for part in text.split(";"):
        rule, eq, values = part.partition("=")
        rule = rule.strip()
        if not eq or rule not in RULES:
            raise ConfigError(
                f"--stop-thresholds: {part.strip()!r} is not RULE=V,V,... with RULE one of {', '.join(RULES)}"
            )
        try:
            numbers = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"--stop-thresholds: {rule}: {values.strip()!r} is not a list of numbers") from None
        if not numbers or len(numbers) > THRESHOLDS_LIMIT:
            raise ConfigError(f"--stop-thresholds: {rule} takes 1 to {THRESHOLDS_LIMIT} thresholds")
        if any(not math.isfinite(v) or v < 0 for v in numbers):
            raise ConfigError(f"--stop-thresholds: {rule}: thresholds are finite numbers, at least 0")
        if rule != "expected_distance" and any(v != int(v) or not 1 <= v <= FRAMES_LIMIT for v in numbers):
            raise ConfigError(f"--stop-thresholds: {rule} counts frames: whole numbers from 1 to {FRAMES_LIMIT:,}")
        out[rule] = numbers
    return out


_UNSET = object()  # no result seen yet


class StreamSeries:
    """One field through the frames of one video clip, kept as what changed: for each combiner, the frames where
    its result changed with the NGLD it then has (and, for the combination with alternatives, whether it is
    right), the frames without a reading, and the D_n the run stored (readings not all the same text). A
    report reads a million fields: a frame costs a few comparisons, the rest is worked out once per series."""

    __slots__ = ("changes", "frames", "last", "missing", "stored", "truth", "worked_out")

    def __init__(self, truth: str) -> None:
        self.truth = truth
        self.frames = 0
        self.changes: dict[str, list[tuple]] = {method: [] for method in STREAM_COMBINATIONS}
        self.missing: list[int] = []  # frames (0-based) that gave no reading of the field
        self.stored: list[tuple[int, float]] = []  # (frame, D_n) as the run stored it
        self.last: dict[str, Any] = {}  # combiner -> its last result (normalized)
        self.worked_out = False  # some frame carried the stream's figures (a run of this midvbatch)

    def take(self, record: Mapping[str, Any], combiner: Any, keys: Sequence[str | None]) -> None:
        """Take a frame's field record (FrameResult.fields'), `combiner` (scoring.text.Combiner) holding the
        clip's readings up to it and `keys` its results normalized (Combiner.normalized())."""
        frame = self.frames
        self.frames = frame + 1
        last, changes = self.last, self.changes
        for method, key in zip(COMBINATIONS, keys, strict=True):
            if last.get(method, _UNSET) != key:
                last[method] = key
                changes[method].append((frame, ngld(combiner.result(method) or "", self.truth)))
        combined = record.get("combined")
        if last.get("alternatives", _UNSET) != combined or not frame:
            last["alternatives"] = combined
            if combined is None:  # no reading yet (or no stream worked out): nothing combined
                changes["alternatives"].append((frame, ngld("", self.truth), not self.truth))
            else:
                distance = record["combined_distance"]
                changes["alternatives"].append((frame, scores_at(combined, self.truth, distance).ngld, distance == 0))
        if combined is not None:
            self.worked_out = True
        if record["missing"]:
            self.missing.append(frame)
        expected = record.get("expected")
        if expected is not None:
            self.stored.append((frame, expected))


@dataclass(frozen=True)
class StreamCurve:
    """Mean NGLD after k = 1, 2, ... frames combined, per combiner, over `fields` (clip, field) pairs; and the
    accuracy of the combination with alternatives. A clip shorter than k counts with its last frame."""

    fields: int
    ngld: dict[str, tuple[float, ...]]  # STREAM_COMBINATIONS -> entry k - 1
    accuracy: tuple[float, ...]


@dataclass(frozen=True)
class RulePoint:
    """A stopping rule at one threshold, over `fields` (clip, field) pairs: the mean number of frames read when
    it stops, and the mean NGLD and the accuracy of the combination with alternatives there."""

    rule: str
    threshold: float
    fields: int
    mean_frames: float
    mean_ngld: float
    accuracy: float


@dataclass(frozen=True)
class StreamFigures:
    """The "Video stream" section: curves and rules, overall and per field type."""

    clips: int
    overall: StreamCurve
    by_type: dict[str, StreamCurve]
    rules: tuple[RulePoint, ...]
    rules_by_type: dict[str, tuple[RulePoint, ...]]


class _Matrix:
    """Series side by side, each padded with its last frame to the longest."""

    def __init__(self, series: Sequence[StreamSeries]) -> None:
        self.lengths = np.array([s.frames for s in series], dtype=np.int64)
        width = self.width = int(self.lengths.max())
        count = len(series)
        self.ngld = {m: np.empty((count, width)) for m in STREAM_COMBINATIONS}
        self.right = np.empty((count, width))
        self.expected = np.full((count, width), np.nan)
        self.unchanged = np.zeros((count, width), dtype=np.int64)  # frames in a row the string has not changed
        columns = np.arange(width)
        for i, s in enumerate(series):
            for method in STREAM_COMBINATIONS:
                row, marks = self.ngld[method][i], s.changes[method]
                for k, (start, value, *_) in enumerate(marks):  # each value holds until the next change
                    row[start : marks[k + 1][0] if k + 1 < len(marks) else width] = value
            marks = s.changes["alternatives"]
            for k, (start, _, right) in enumerate(marks):
                self.right[i, start : marks[k + 1][0] if k + 1 < len(marks) else width] = right
            starts = np.array([m[0] for m in marks], dtype=np.int64)
            self.unchanged[i] = columns - starts[np.searchsorted(starts, columns, side="right") - 1]
            # readings so far at each frame; where every one was the same text D_n = 0.1 / (n + 1) (not stored)
            readings = columns + 1 - np.searchsorted(np.array(s.missing, dtype=np.int64), columns, side="right")
            with np.errstate(divide="ignore"):
                self.expected[i] = np.where(readings >= 2, PRIOR / (readings + 1), np.nan)
            for frame, value in s.stored:
                self.expected[i, frame] = value
        self.columns = columns

    def first(self, hit: np.ndarray) -> np.ndarray:
        """Per series, the 1-based frame of its first hit within its own frames, else its last frame."""
        hit = hit & (self.columns[None, :] < self.lengths[:, None])
        found = hit.any(axis=1)
        return np.where(found, hit.argmax(axis=1) + 1, self.lengths)

    def stops(self, rule: str, threshold: float) -> np.ndarray:
        frames = min(int(threshold), self.width + 1) if rule != "expected_distance" else 0  # (no clip is longer)
        if rule == "fixed":
            return np.minimum(frames, self.lengths)
        if rule == "stable":
            return self.first(self.unchanged >= frames)
        with np.errstate(invalid="ignore"):
            return self.first((self.expected <= threshold) & (self.columns[None, :] >= 1))

    def point(self, rule: str, threshold: float, rows: np.ndarray) -> RulePoint:
        stops = self.stops(rule, threshold)[rows]
        at = (rows, stops - 1)
        return RulePoint(
            rule,
            threshold,
            len(rows),
            float(stops.mean()),
            float(self.ngld["alternatives"][at].mean()),
            float(self.right[at].mean()),
        )

    def curve(self, rows: np.ndarray) -> StreamCurve:
        return StreamCurve(
            len(rows),
            {m: tuple(self.ngld[m][rows].mean(axis=0).tolist()) for m in STREAM_COMBINATIONS},
            tuple(self.right[rows].mean(axis=0).tolist()),
        )


def stream_figures(
    series: Sequence[tuple[str, str, StreamSeries]], thresholds: Mapping[str, Sequence[float]] | None = None
) -> StreamFigures | None:
    """The video-stream figures of (clip, field type, series) of video clips; None when no series carries the
    stream's figures (a run of an earlier midvbatch)."""
    kept = [(clip, type_, s) for clip, type_, s in series if s.worked_out and s.frames]
    if not kept:
        return None
    sweep = thresholds or DEFAULT_THRESHOLDS
    matrix = _Matrix([s for _, _, s in kept])
    everything = np.arange(len(kept))
    types: dict[str, list[int]] = {}
    for i, (_, type_, _) in enumerate(kept):
        types.setdefault(type_, []).append(i)

    def points(rows: np.ndarray) -> tuple[RulePoint, ...]:
        return tuple(matrix.point(rule, t, rows) for rule in RULES for t in sweep.get(rule, ()))

    by_type = {t: np.array(rows, dtype=np.int64) for t, rows in types.items()}
    return StreamFigures(
        clips=len({clip for clip, _, _ in kept}),
        overall=matrix.curve(everything),
        by_type={t: matrix.curve(rows) for t, rows in by_type.items()},
        rules=points(everything),
        rules_by_type={t: points(rows) for t, rows in by_type.items()},
    )


def filled_expected(record: Mapping[str, Any], readings: int) -> float | None:
    """D_n of a field record (FrameResult.fields'), `readings` being its clip's readings of the field so far, this
    frame's included: as stored, or, where every reading so far was the same text (not stored), 0.1 / (n + 1)."""
    expected = record.get("expected")
    if expected is None and record.get("combined") is not None and readings >= 2:
        expected = PRIOR / (readings + 1)
    return expected


def field_stream(
    records: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Sequence[float]] | None = None
) -> tuple[list[float | None], dict[str, dict[str, int]] | None]:
    """For one field's records of one clip in frame order: D_n at each (filled_expected), and the frame (1-based,
    of the field's frames) each rule stops at, per threshold ('0.1': 7); None for the stops where the run did
    not work its stream out."""
    expected: list[float | None] = []
    readings = 0
    for record in records:
        readings += not record["missing"]
        expected.append(filled_expected(record, readings))
    if all(r.get("combined") is None for r in records):
        return expected, None
    sweep = thresholds or DEFAULT_THRESHOLDS
    texts = [record.get("combined") for record in records]
    return expected, {
        "fixed": {f"{t:g}": fixed_stop(len(records), int(t)) for t in sweep.get("fixed", ())},
        "stable": {f"{t:g}": stable_stop(texts, int(t)) for t in sweep.get("stable", ())},
        "expected_distance": {
            f"{t:g}": expected_distance_stop(expected, t) for t in sweep.get("expected_distance", ())
        },
    }
