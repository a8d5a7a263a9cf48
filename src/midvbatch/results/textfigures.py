"""The text fields' figures of a run's report: accuracy per field, field type, document, ...,
the accuracy after 1, 2, ... frames of a clip combined, and the fields read worst.

:class:`TextTally` gathers them frame by frame during compute_figures' one pass over the
frames (figures.py), and makes a :class:`TextFigures`. The metrics and the rules of
combination are scoring.text's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from midvbatch.results.records import ClipResult, FrameResult
from midvbatch.results.stopping import StreamFigures, StreamSeries, stream_figures
from midvbatch.scoring.stats import ratio_intervals
from midvbatch.scoring.text import COMBINATIONS, FIELD_TYPES, Combiner, normalize

WORST_FIELDS = 10  # (document, field) pairs listed as the worst read


@dataclass(frozen=True)
class TextAccuracy:
    """Text fields of one group scored, each field of each frame (or clip result) once.

    A field is correct when the result equals the truth once both are normalized
    (upper case, the letter O as the digit 0: scoring.text). ``accuracy`` is the share of
    the ``fields`` scored that are correct; ``mean_ngld`` and ``mean_cer`` are means over
    them; ``missing`` counts the fields the processor did not return (scored as the empty
    string). ``empty`` counts the fields left out because they are empty on the document
    ('*'); None in a grouping by field or field type, as the ledger counts them per frame,
    not by name. Shares and means are None for a group without fields.
    """

    fields: int
    correct: int
    accuracy: float | None
    mean_ngld: float | None
    mean_cer: float | None
    missing: int
    empty: int | None
    # the share's and the means' 95% intervals, [low, high], from a bootstrap over the group's clips; {}: one clip
    ci: dict[str, list[float | None]] = field(default_factory=dict)


def _with_ci(accuracy: TextAccuracy, by_clip: dict[str, _Tally] | None) -> TextAccuracy:
    """`accuracy` with its intervals from a bootstrap over the clips of `by_clip` (their own tallies)."""
    if not by_clip or len(by_clip) < 2:
        return accuracy
    tallies = list(by_clip.values())
    fields = np.array([t.fields for t in tallies], dtype=np.float64)
    figures = {
        "accuracy": (np.array([t.correct for t in tallies], dtype=np.float64), fields),
        "mean_ngld": (np.array([t.ngld for t in tallies]), fields),
        "mean_cer": (np.array([t.cer for t in tallies]), fields),
    }
    return replace(accuracy, ci={name: i.to_list() for name, i in ratio_intervals(figures).items()})


@dataclass(frozen=True)
class Curve:
    """The accuracy of a field once the first k frames of its clip are combined: entry k - 1.

    Over ``fields`` (clip, field) pairs. ``majority``: the majority vote of the normalized
    results (ties: the one reached first); ``best``: the result of highest confidence
    (ties and no confidence: the earliest); ``characters``: a vote per character among the
    results of the most common length (scoring.text.Combiner). A frame where the processor did not return the
    field gives no result; a field with no result yet is wrong; a clip with fewer than k
    frames counts with all it has. ``per_frame`` is the share of single frames read right
    in the same clips (every frame on its own), where ``majority[0]`` counts only each
    clip's first frame.
    """

    fields: int
    per_frame: float | None
    majority: tuple[float, ...]  # the rules of scoring.text.COMBINATIONS, in its order
    best: tuple[float, ...]
    characters: tuple[float, ...]


@dataclass(frozen=True)
class TextCurves:
    """The accuracy after 1, 2, ... frames, overall and per field type, over the video clips:
    those whose frames all show one document (each field's truth the same in every frame).
    ``left_out`` counts the clips whose frames show different documents (MIDV-2020's scans,
    photos and templates)."""

    clips: int
    left_out: int
    overall: Curve
    by_type: dict[str, Curve]


@dataclass(frozen=True)
class WorstField:
    """One of the (document, field) pairs read worst (highest mean NGLD), and its worst reading."""

    document: str
    field: str
    type: str  # of its worst reading
    fields: int  # readings scored
    accuracy: float
    mean_ngld: float
    clip: str  # where its worst reading is: clip, frame number
    frame: int
    truth: str
    text: str
    ngld: float


@dataclass(frozen=True)
class TextFigures:
    """Every text figure of a run: None in ReportFigures when nothing was read.

    ``overall`` and ``groups`` (type, field, collection, condition, device, document, clip)
    score every frame's fields; ``curves`` combine the frames of each video clip (None
    without such clips); ``clip_results`` and ``clip_results_by_type`` score the
    processor's own clip results (None and {} when it returned none).
    """

    frames: int  # frames with text fields scored
    overall: TextAccuracy | None  # None: no frame has text fields (only clip results)
    groups: dict[str, dict[str, TextAccuracy]]
    curves: TextCurves | None
    clips: int  # clips with a clip result scored
    clip_results: TextAccuracy | None
    clip_results_by_type: dict[str, TextAccuracy]
    worst: tuple[WorstField, ...] = ()
    stream: StreamFigures | None = None  # the "Video stream" section (results.stopping); None: not worked out


def _type_order(types: Iterable[str]) -> list[str]:
    """Field types in the order of scoring.text.FIELD_TYPES (date, number, name, mrz, other)."""
    return sorted(types, key=lambda t: (FIELD_TYPES.index(t) if t in FIELD_TYPES else len(FIELD_TYPES), t))


class _Tally:
    """Sums of text-field scores, for a TextAccuracy."""

    __slots__ = ("correct", "cer", "fields", "missing", "ngld")

    def __init__(self) -> None:
        self.fields = self.correct = self.missing = 0
        self.ngld = self.cer = 0.0

    def add(self, record: dict[str, Any]) -> None:
        """Count one field's scores (a record of FrameResult.fields)."""
        self.fields += 1
        self.correct += bool(record["correct"])
        self.ngld += record["ngld"]
        self.cer += record["cer"]
        self.missing += bool(record.get("missing"))

    def merge(self, other: _Tally) -> None:
        """Count another tally's fields too."""
        self.fields += other.fields
        self.correct += other.correct
        self.ngld += other.ngld
        self.cer += other.cer
        self.missing += other.missing

    def accuracy(self, empty: int | None) -> TextAccuracy:
        """The figures of the fields counted; `empty`: the '*' fields left out."""
        n = self.fields
        return TextAccuracy(
            n,
            self.correct,
            self.correct / n if n else None,
            self.ngld / n if n else None,
            self.cer / n if n else None,
            self.missing,
            empty,
        )


class _Series(_Tally):
    """One field through the frames of one clip: its scores summed (those of its first frame's
    field type), its worst reading, and what the curves need.

    For the curves, per frame and per rule of scoring.text.COMBINATIONS, whether the
    readings so far combined are right (one byte each); the Combiner only while the clip is
    being read (close() drops it). It combines one frame at a time: the report reads
    73,000 frames, and recombining each clip's first k readings for every k would cost k
    times more. ``stream`` holds the video-stream figures' own (results.stopping).
    """

    __slots__ = ("combiner", "key", "rows", "stream", "truth", "type", "worst")

    def __init__(self, truth: str, type_: str) -> None:
        super().__init__()
        self.truth = truth
        self.type = type_  # its first frame's
        self.key = normalize(truth)
        self.combiner: Combiner | None = Combiner()
        self.rows = {method: bytearray() for method in COMBINATIONS}  # method -> right after each frame
        self.worst: tuple[float, int, str, str, str] | None = None  # ngld, frame, text, truth, type
        self.stream = StreamSeries(truth)

    def take(self, record: dict[str, Any], frame: int, curve: bool) -> bool:
        """Take frame `frame`'s reading (its scores if of the series' type); into the curves too if
        `curve`. Return False when its truth is not the series' (the clip shows another document:
        not a video clip)."""
        ngld = record["ngld"]
        if record["type"] == self.type:
            self.add(record)
        if self.worst is None or ngld > self.worst[0]:  # the first of equals
            self.worst = (ngld, frame, record["text"], record["truth"], record["type"])
        if not curve or self.combiner is None:
            return True
        if record["truth"] != self.truth:
            return False
        if not record["missing"]:  # a field not returned gives no reading
            self.combiner.add(record["text"], record["confidence"])
        keys = self.combiner.normalized()
        for row, combined in zip(self.rows.values(), keys, strict=True):
            row.append(combined == self.key)
        self.stream.take(record, self.combiner, keys)
        return True

    def close(self) -> None:
        """Drop what only the clip's next frames would need."""
        self.combiner = None


def _curve(series: list[_Series]) -> Curve:
    """Average the series' right/wrong per k; a series shorter than k counts with its last."""
    longest = max(len(s.rows["majority"]) for s in series)

    def mean(rows: list[bytearray]) -> tuple[float, ...]:
        padded = b"".join(bytes(r) + bytes(r[-1:]) * (longest - len(r)) for r in rows)
        totals = np.frombuffer(padded, np.uint8).reshape(len(rows), longest).sum(axis=0, dtype=np.int64)
        return tuple(int(t) / len(rows) for t in totals)

    frames = sum(s.fields for s in series)
    return Curve(
        len(series),
        sum(s.correct for s in series) / frames if frames else None,
        *(mean([s.rows[method] for s in series]) for method in COMBINATIONS),
    )


class TextTally:
    """The text figures, gathered frame by frame in compute_figures' one pass.

    Frames are taken as RunResults.frames() yields them: a clip's frames together, in frame
    order (the curves need it); a clip whose frames come apart is left out of the curves.
    """

    def __init__(self, stops: Mapping[str, Sequence[float]] | None = None) -> None:
        self.stops = stops  # the stopping rules' thresholds (results.stopping.DEFAULT_THRESHOLDS)
        self.frames = 0
        self.series: dict[tuple[str, str], _Series] = {}  # (clip, field)
        self.stray: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)  # (clip, field, type) not the series'

        self.clips: dict[str, FrameResult] = {}  # clip -> its first frame (what groups it), in the order read
        self.empty: dict[str, int] = defaultdict(int)  # clip -> '*' fields left out
        self.out: set[str] = set()  # clips left out of the curves
        self.clip: str | None = None  # the clip being read
        self.open: list[_Series] = []  # its series

    def add(self, frame: FrameResult) -> None:
        """Count a frame's text fields (its scores hold "fields")."""
        clip = frame.clip
        if clip != self.clip:
            for s in self.open:
                s.close()
            self.open = []
            if clip in self.clips:
                self.out.add(clip)
            self.clips[clip] = frame
            self.clip = clip
        self.frames += 1
        self.empty[clip] += (frame.scores or {}).get("empty_fields", 0)
        curve = clip not in self.out
        for name, record in frame.fields.items():
            series = self.series.get((clip, name))
            if series is None:
                series = self.series[clip, name] = _Series(record["truth"], record["type"])
                self.open.append(series)
            if record["type"] != series.type:  # a clip of several documents: the field's type can change
                self.stray[clip, name, record["type"]].add(record)
            if not series.take(record, frame.number, curve):
                self.out.add(clip)
                curve = False

    def _cells(self) -> Iterator[tuple[tuple[str, str, str], _Tally]]:
        """The scores summed per (clip, field, field type)."""
        for (clip, name), series in self.series.items():
            yield (clip, name, series.type), series
        yield from self.stray.items()

    def figures(self, keys: dict[str, Callable[[FrameResult], str]], done: list[ClipResult]) -> TextFigures | None:
        """The text figures; None when neither a frame nor a clip result has text fields.

        `keys` are compute_figures' groupings of frames (collection, condition, device,
        document, clip: name -> the group of a frame); `done` the done clips, whose own
        clip results are scored too."""
        clip_tally, clip_empty, clips = _Tally(), 0, 0
        clip_types: dict[str, _Tally] = defaultdict(_Tally)
        for c in done:
            if c.scores is not None and "fields" in c.scores:
                clips += 1
                clip_empty += c.scores.get("empty_fields", 0)
                for record in c.fields.values():
                    clip_tally.add(record)
                    clip_types[record["type"]].add(record)
        if not self.frames and not clips:
            return None
        labels = {clip: {g: key(frame) for g, key in keys.items()} for clip, frame in self.clips.items()}
        overall = _Tally()
        tallies: dict[str, dict[str, _Tally]] = {g: defaultdict(_Tally) for g in ("type", "field", *keys)}
        empties: dict[str, dict[str, int]] = {g: defaultdict(int) for g in tallies}
        # each group's tallies clip by clip, for the intervals (a group of one clip has none: not the clips')
        by_clip: dict[str, dict[str, dict[str, _Tally]]] = {
            g: defaultdict(lambda: defaultdict(_Tally)) for g in ("overall", *tallies) if g != "clip"
        }
        for (clip, name, type_), tally in self._cells():
            overall.merge(tally)
            tallies["type"][type_].merge(tally)
            tallies["field"][name].merge(tally)
            for g, label in (("overall", ""), ("type", type_), ("field", name), *labels[clip].items()):
                if g in by_clip:
                    by_clip[g][label][clip].merge(tally)
            for g, label in labels[clip].items():
                tallies[g][label].merge(tally)
        for clip, n in self.empty.items():
            for g, label in labels[clip].items():
                empties[g][label] += n
        groups: dict[str, dict[str, TextAccuracy]] = {}
        for g, table in tallies.items():
            names = set(table) | set(empties[g])
            if g == "collection" and names <= {"-"}:
                continue  # a format without collections (MIDV-500): no such section
            by_frame = g not in ("type", "field")  # '*' fields are counted per frame, not by name
            intervals = by_clip.get(g, {})
            groups[g] = {
                name: _with_ci(
                    table.get(name, _Tally()).accuracy(empties[g].get(name, 0) if by_frame else None),
                    intervals.get(name),
                )
                for name in (_type_order(names) if g == "type" else sorted(names))
            }
        return TextFigures(
            frames=self.frames,
            overall=_with_ci(overall.accuracy(sum(self.empty.values())), by_clip["overall"].get(""))
            if self.frames
            else None,
            groups=groups,
            curves=self._curves(),
            clips=clips,
            clip_results=clip_tally.accuracy(clip_empty) if clips else None,
            clip_results_by_type={t: clip_types[t].accuracy(None) for t in _type_order(clip_types)},
            worst=self._worst(),
            stream=stream_figures(
                [(clip, s.type, s.stream) for (clip, _), s in self.series.items() if clip not in self.out], self.stops
            ),
        )

    def _curves(self) -> TextCurves | None:
        video = [(clip, s) for (clip, _), s in self.series.items() if clip not in self.out]
        if not video:
            return None
        by_type: dict[str, list[_Series]] = defaultdict(list)
        for _, s in video:
            by_type[s.type].append(s)
        return TextCurves(
            clips=len({clip for clip, _ in video}),
            left_out=len(self.out),
            overall=_curve([s for _, s in video]),
            by_type={t: _curve(by_type[t]) for t in _type_order(by_type)},
        )

    def _worst(self) -> tuple[WorstField, ...]:
        pairs: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
        for (clip, name, _), tally in self._cells():
            pairs[self.clips[clip].document, name].merge(tally)
        worst: dict[tuple[str, str], tuple[str, tuple[float, int, str, str, str]]] = {}
        for (clip, name), s in self.series.items():
            pair = (self.clips[clip].document, name)
            if s.worst is not None and (pair not in worst or s.worst[0] > worst[pair][1][0]):
                worst[pair] = (clip, s.worst)
        ranked = sorted(
            (p for p, t in pairs.items() if t.ngld > 0), key=lambda p: (-pairs[p].ngld / pairs[p].fields, p)
        )
        out = []
        for document, name in ranked[:WORST_FIELDS]:
            tally = pairs[document, name]
            clip, (ngld, frame, text, truth, type_) = worst[document, name]
            out.append(
                WorstField(
                    document,
                    name,
                    type_,
                    tally.fields,
                    tally.correct / tally.fields,
                    tally.ngld / tally.fields,
                    clip,
                    frame,
                    truth,
                    text,
                    ngld,
                )
            )
        return tuple(out)
