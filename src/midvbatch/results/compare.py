"""Two or more runs of one dataset side by side: is B better than A, or is the difference noise?

`compare_runs(A, B, ...)` pairs the runs frame by frame (frames scored in one and not the
other are left out, and counted), and gives for every headline figure, overall and per
document, condition, device, collection (and field type for text): A, B, B - A and the 95%
interval of B - A from a paired bootstrap over clips (or documents: frames of one clip are
not independent), with the exact McNemar test for the frame-level accuracies
(scoring/stats.py). The clips and fields that changed most, both ways, are listed.
`gate(comparison, "accuracy:0.01")` says whether B is worse than A by more than a margin
with the interval entirely beyond it: the regression gate a team puts in CI.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.errors import ConfigError, LedgerError
from midvbatch.results.figures import condition_label, device_label
from midvbatch.results.reader import RunResults, open_run
from midvbatch.results.records import clip_kinds
from midvbatch.scoring.stats import LEVEL, RESAMPLES, SEED, mcnemar_exact, paired_differences

UNITS = ("clip", "document")
FORMATS = ("md", "json", "csv")
CHANGED = 5  # clips and fields listed as changed most, each way

# the figures compared: name -> (what it is, lower is better)
FRAME_FIGURES: dict[str, tuple[str, bool]] = {
    "accuracy": ("share of frames with iou_gt >= 0.9 (the headline)", False),
    "accuracy_min_d": ("share of frames with min_d <= 0.017", False),
    "accuracy_iou": ("share of frames with iou >= 0.9", False),
    "accuracy_mean_iou": ("share of frames with mean_iou >= 0.9", False),
    "mean_iou_gt": ("mean iou_gt", False),
    "mean_iou": ("mean iou", False),
    "mean_mean_iou": ("mean of the mean_iou metric", False),
    "mean_min_d": ("mean min_d (frames with a prediction)", True),
}
FIELD_FIGURES: dict[str, tuple[str, bool]] = {
    "text_accuracy": ("share of the fields of frames read right", False),
    "mean_ngld": ("mean NGLD of the fields of frames", True),
    "mean_cer": ("mean CER of the fields of frames", True),
}
CLIP_FIGURES: dict[str, tuple[str, bool]] = {
    "clip_text_accuracy": ("share of the fields of clips' own (combined) results read right", False),
}
FIGURES = FRAME_FIGURES | FIELD_FIGURES | CLIP_FIGURES
SHARES = {"accuracy", "accuracy_min_d", "accuracy_iou", "accuracy_mean_iou", "text_accuracy", "clip_text_accuracy"}
GROUPINGS = ("overall", "document", "condition", "device", "collection", "type")
_METRIC_OF = {"accuracy": "iou_gt", "accuracy_min_d": "min_d", "accuracy_iou": "iou", "accuracy_mean_iou": "mean_iou"}


@dataclass(frozen=True)
class Figure:
    """One figure of a group in runs A and B, B - A with its interval, and for a share the frames that changed."""

    grouping: str  # overall, document, condition, device, collection, type
    group: str  # "" overall, else the group's name
    figure: str  # a name of FIGURES
    a: float | None
    b: float | None
    difference: float | None
    low: float | None
    high: float | None
    units: int  # clips (or documents) measured in both
    measured: int  # frames (fields) measured in both
    became_correct: int | None = None  # shares: frames (fields) wrong in A and right in B
    became_wrong: int | None = None
    p_value: float | None = None  # shares: the exact McNemar test of the frames that changed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record; `ci` is [low, high]."""
        out = {
            "grouping": self.grouping,
            "group": self.group,
            "figure": self.figure,
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "ci": [self.low, self.high],
            "units": self.units,
            "measured": self.measured,
        }
        if self.became_correct is not None:
            out |= {"became_correct": self.became_correct, "became_wrong": self.became_wrong, "p_value": self.p_value}
        return out


@dataclass(frozen=True)
class Change:
    """A clip (or a document's field) whose accuracy changed between the runs."""

    name: str  # the clip id, or DOCUMENT field
    document: str
    a: float
    b: float
    measured: int
    example: tuple | None = None  # a thing that changed this way: (clip, frame) or (clip, frame, field)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "document": self.document, "a": self.a, "b": self.b, "difference": self.b - self.a}
        return out | ({"example": list(self.example)} if self.example is not None else {})


@dataclass
class Comparison:
    """Run B against run A."""

    a: str  # run folders
    b: str
    left_out: dict[str, int]  # frames (fields, clips) measured in one run only: "frames_only_a", ...
    figures: list[Figure] = field(default_factory=list)
    clips_better: list[Change] = field(default_factory=list)
    clips_worse: list[Change] = field(default_factory=list)
    fields_better: list[Change] = field(default_factory=list)
    fields_worse: list[Change] = field(default_factory=list)

    def figure(self, name: str, grouping: str = "overall", group: str = "") -> Figure | None:
        """The figure `name` of a group (the overall one by default), None if the runs have none."""
        return next((f for f in self.figures if (f.figure, f.grouping, f.group) == (name, grouping, group)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "left_out": self.left_out,
            "figures": [f.to_dict() for f in self.figures],
            "clips_changed": {"better": [c.to_dict() for c in self.clips_better],
                              "worse": [c.to_dict() for c in self.clips_worse]},
            "fields_changed": {"better": [c.to_dict() for c in self.fields_better],
                               "worse": [c.to_dict() for c in self.fields_worse]},
        }  # fmt: skip


@dataclass
class RunComparison:
    """Every run after the first against the first."""

    runs: list[dict[str, Any]]  # each run: run_dir, processor, imported
    dataset: str | None
    unit: str
    resamples: int
    seed: int
    level: float
    comparisons: list[Comparison]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (what `compare --format json` writes)."""
        return {
            "runs": self.runs,
            "dataset": self.dataset,
            "unit": self.unit,
            "resamples": self.resamples,
            "seed": self.seed,
            "level": self.level,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


# ---------------------------------------------------------------- reading a run


@dataclass
class _Measures:
    """What a run measured, keyed so that two runs pair: frames by (clip, number), fields by (clip, number,
    field), clips' own fields by (clip, field); each with its groups and its values."""

    frames: dict[tuple, list[float]] = field(default_factory=dict)  # values in FRAME_FIGURES' order (NaN: none)
    fields: dict[tuple, list[float]] = field(default_factory=dict)  # in FIELD_FIGURES' order
    clip_fields: dict[tuple, list[float]] = field(default_factory=dict)  # in CLIP_FIGURES' order
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # clip -> grouping -> group
    types: dict[tuple, str] = field(default_factory=dict)  # (clip, field) -> the field's type


_NAN = float("nan")


def _read(run: RunResults) -> _Measures:
    measures = _Measures()
    kind = clip_kinds(run.meta.format)
    for frame in run.frames(results=False):
        if frame.clip not in measures.groups:
            k = kind(frame.code)
            measures.groups[frame.clip] = {
                "overall": "",
                "document": frame.document,
                "condition": condition_label(k),
                "device": device_label(k),
                "collection": (k.collection if k is not None else None) or "-",
            }
        score = frame.score
        if score is not None:
            min_d = score.min_d if score.min_d is not None and math.isfinite(score.min_d) else _NAN
            measures.frames[(frame.clip, frame.number)] = [
                *(float(score.correct(metric)) for metric in _METRIC_OF.values()),
                score.iou_gt,
                score.iou,
                score.mean_iou,
                min_d,
            ]
        for name, record in frame.fields.items():
            key = (frame.clip, frame.number, name)
            measures.fields[key] = [float(bool(record["correct"])), record["ngld"], record["cer"]]
            if (frame.clip, name) not in measures.types:
                measures.types[(frame.clip, name)] = record["type"]
    for clip in run.clips("done"):
        for name, record in clip.fields.items():
            measures.clip_fields[(clip.clip, name)] = [float(bool(record["correct"]))]
            measures.types[(clip.clip, name)] = record["type"]
    return measures


# ---------------------------------------------------------------- comparing two


def _pairs(a: dict[tuple, list], b: dict[tuple, list]) -> tuple[list[tuple], int, int]:
    """What both runs measured, in A's order (its queue's), and how many things only A, only B measured."""
    both = [key for key in a if key in b]
    return both, len(a) - len(both), len(b) - len(both)


class _Paired:
    """What two runs measured of the same things (frames, fields or clips' fields), as arrays: each figure's
    value in A and in B (NaN: not measured), row by row in the order of `keys`."""

    def __init__(self, keys: list[tuple], a: dict[tuple, list], b: dict[tuple, list], figures: list[str]) -> None:
        self.figures = figures
        self.a = np.array([a[k] for k in keys], dtype=float).reshape(len(keys), len(figures))
        self.b = np.array([b[k] for k in keys], dtype=float).reshape(len(keys), len(figures))
        self.keys = keys

    def figures_of(
        self, grouping: str, group: str, positions: np.ndarray, units: np.ndarray, resamples: int, seed: int,
        level: float,
    ) -> list[Figure]:  # fmt: skip
        """The figures of one group (the things at `positions`, each in the unit `units` says): per unit sums in
        A and B, then one paired bootstrap for them all."""
        names, unit = np.unique(units[positions], return_inverse=True)
        n = len(names)
        sums: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {}
        extra: dict[str, dict[str, Any]] = {}
        counts: dict[str, tuple[int, int]] = {}
        for j, name in enumerate(self.figures):
            xa, xb = self.a[positions, j], self.b[positions, j]
            ma, mb = ~np.isnan(xa), ~np.isnan(xb)
            den_a, den_b = np.bincount(unit, ma, n), np.bincount(unit, mb, n)
            sums[name] = (
                (np.bincount(unit, np.where(ma, xa, 0.0), n), den_a),
                (np.bincount(unit, np.where(mb, xb, 0.0), n), den_b),
            )
            both = ma & mb
            counts[name] = (int(both.sum()), int(np.count_nonzero((den_a > 0) & (den_b > 0))))
            if name in SHARES:
                up = int(np.count_nonzero(both & (xa == 0) & (xb == 1)))
                down = int(np.count_nonzero(both & (xa == 1) & (xb == 0)))
                extra[name] = {"became_correct": up, "became_wrong": down, "p_value": mcnemar_exact(up, down)}
        intervals = paired_differences(sums, resamples=resamples, seed=seed, level=level)
        out = []
        for name in self.figures:
            (num_a, den_a), (num_b, den_b) = sums[name]
            fig_a = float(num_a.sum() / den_a.sum()) if den_a.sum() else None
            fig_b = float(num_b.sum() / den_b.sum()) if den_b.sum() else None
            i = intervals[name]
            measured, units_both = counts[name]
            out.append(
                Figure(grouping, group, name, fig_a, fig_b, i.value, i.low, i.high, units_both, measured,
                       **extra.get(name, {}))
            )  # fmt: skip
        return out

    def changed(self, figure: str, names: np.ndarray, documents: dict[str, str]) -> tuple[list[Change], list[Change]]:
        """The things grouped by `names` (clips, or a document's field) whose `figure` changed most, up and down."""
        j = self.figures.index(figure)
        xa, xb = self.a[:, j], self.b[:, j]
        both = ~np.isnan(xa) & ~np.isnan(xb)
        labels, index = np.unique(names[both], return_inverse=True)
        count = np.bincount(index, minlength=len(labels))
        mean_a = np.bincount(index, xa[both], len(labels)) / np.maximum(count, 1)
        mean_b = np.bincount(index, xb[both], len(labels)) / np.maximum(count, 1)
        kept = np.flatnonzero(both)
        up: dict[int, tuple] = {}  # label -> the first thing (in A's order) that changed that way
        down: dict[int, tuple] = {}
        for i in np.flatnonzero(xa[both] != xb[both]).tolist():
            label = int(index[i])
            (up if xb[kept[i]] > xa[kept[i]] else down).setdefault(label, self.keys[kept[i]])
        changes = [
            Change(str(label), documents.get(str(label), "-"), float(mean_a[i]), float(mean_b[i]), int(count[i]),
                   (up if mean_b[i] > mean_a[i] else down).get(i))
            for i, label in enumerate(labels)
            if count[i] and mean_a[i] != mean_b[i]
        ]  # fmt: skip
        better = sorted((c for c in changes if c.b > c.a), key=lambda c: (c.a - c.b, c.name))[:CHANGED]
        worse = sorted((c for c in changes if c.b < c.a), key=lambda c: (c.b - c.a, c.name))[:CHANGED]
        return better, worse


def _compare(
    a: _Measures, b: _Measures, run_a: str, run_b: str, unit: str, resamples: int, seed: int, level: float
) -> Comparison:
    frames, only_a, only_b = _pairs(a.frames, b.frames)
    fields, fields_a, fields_b = _pairs(a.fields, b.fields)
    clip_fields, clips_a, clips_b = _pairs(a.clip_fields, b.clip_fields)
    comparison = Comparison(
        run_a,
        run_b,
        {
            "frames_only_a": only_a,
            "frames_only_b": only_b,
            "fields_only_a": fields_a,
            "fields_only_b": fields_b,
            "clip_fields_only_a": clips_a,
            "clip_fields_only_b": clips_b,
        },
    )
    groups = a.groups | b.groups
    none: dict[str, str] = {}
    kinds = (
        (frames, a.frames, b.frames, FRAME_FIGURES, GROUPINGS[:-1]),
        (fields, a.fields, b.fields, FIELD_FIGURES, GROUPINGS),
        (clip_fields, a.clip_fields, b.clip_fields, CLIP_FIGURES, GROUPINGS),
    )
    paired: list[_Paired] = []
    for keys, values_a, values_b, figures, groupings in kinds:
        pair = _Paired(keys, values_a, values_b, list(figures))
        paired.append(pair)
        code: dict[str, int] = {}
        clips = np.array([code.setdefault(key[0], len(code)) for key in keys], dtype=np.int64)
        names = list(code)
        if unit == "clip":
            units = clips
        else:
            doc_index = {d: i for i, d in enumerate(sorted({groups.get(c, none).get("document", "-") for c in names}))}
            per_clip = np.array([doc_index[groups.get(c, none).get("document", "-")] for c in names], dtype=np.int64)
            units = per_clip[clips] if len(clips) else clips
        for grouping in groupings:
            if grouping == "type":
                labels = np.array(
                    [a.types.get((k[0], k[-1])) or b.types.get((k[0], k[-1])) or "-" for k in keys], dtype=str
                )
            else:
                of_clip = np.array([groups.get(c, none).get(grouping, "-") for c in names] or ["-"], dtype=str)
                labels = of_clip[clips] if len(clips) else np.array([], dtype=str)
            found, inverse = np.unique(labels, return_inverse=True)
            if grouping == "collection" and set(found.tolist()) <= {"-"}:
                continue  # a format without collections (MIDV-500)
            order = np.argsort(inverse, kind="stable")
            bounds = np.searchsorted(inverse[order], np.arange(len(found) + 1))
            for g, group in enumerate(found.tolist()):
                positions = order[bounds[g] : bounds[g + 1]]
                comparison.figures += pair.figures_of(grouping, group, positions, units, resamples, seed, level)
    documents = {clip: g.get("document", "-") for clip, g in groups.items()}
    frame_clips = np.array([key[0] for key in frames], dtype=str)
    comparison.clips_better, comparison.clips_worse = paired[0].changed("accuracy", frame_clips, documents)
    field_names = np.array([f"{documents.get(k[0], '-')} {k[2]}" for k in fields], dtype=str)
    by_field = {str(name): str(name).split(" ", 1)[0] for name in set(field_names.tolist())}
    comparison.fields_better, comparison.fields_worse = paired[1].changed("text_accuracy", field_names, by_field)
    return comparison


# ---------------------------------------------------------------- the entry point


def compare_runs(
    run_dirs: list[str | Path],
    *,
    unit: str = "clip",
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> RunComparison:
    """Compare every run after the first with the first; they must be runs of the same dataset.

    Raises ConfigError for fewer than two runs, a bad `unit` or `resamples`, and LedgerError
    for a folder that is not a run or runs of different datasets."""
    if len(run_dirs) < 2:
        raise ConfigError("compare needs two runs or more: RUN_A RUN_B [RUN_C ...]")
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} (one of {', '.join(UNITS)})")
    if not 1 <= resamples <= 1_000_000:
        raise ConfigError(f"resamples must be 1 to 1,000,000, not {resamples}")
    if not 0 < level < 1:
        raise ConfigError(f"the level must be between 0 and 1, not {level}")
    runs, measures, identities = [], [], []
    for run_dir in run_dirs:
        if not Path(run_dir).is_dir():
            raise LedgerError("no such run folder", path=run_dir)
        with open_run(run_dir) as run:
            identities.append(run.dataset_identity())
            config = run.config()
            runs.append({"run_dir": str(run_dir), "processor": run.meta.processor,
                         "options": dict(config.options) if config is not None else None,
                         "imported": run.imported()})  # fmt: skip
            measures.append(_read(run))
    first = identities[0]
    for run_dir, identity in zip(run_dirs[1:], identities[1:], strict=True):
        if not _same_dataset(first, identity):
            raise LedgerError(
                f"is a run of {identity.get('path')}, not of {first.get('path')} (the dataset of {run_dirs[0]}): "
                "compare runs of the same dataset",
                path=run_dir,
            )
    comparisons = [
        _compare(measures[0], m, str(run_dirs[0]), str(d), unit, resamples, seed, level)
        for d, m in zip(run_dirs[1:], measures[1:], strict=True)
    ]
    return RunComparison(runs, first.get("path"), unit, resamples, seed, level, comparisons)


def _same_dataset(a: dict, b: dict) -> bool:
    """The same dataset: the same fingerprint (clips and file sizes), read as the same format."""
    if a.get("fingerprint") and b.get("fingerprint"):
        return a["fingerprint"] == b["fingerprint"] and a.get("format") == b.get("format")
    return a.get("path") == b.get("path")


# ---------------------------------------------------------------- the gate


def gate(comparison: RunComparison, rule: str) -> list[str]:
    """The runs that are worse than the first by more than a margin, by `rule` (METRIC or METRIC:MARGIN): B's
    overall METRIC worse than A's by more than MARGIN (default 0) with B - A's whole interval beyond it. One line
    per such run; [] when none is."""
    name, _, margin_text = rule.partition(":")
    if name not in FIGURES:
        raise ConfigError(f"--fail-if-worse: unknown figure {name!r} (one of {', '.join(FIGURES)})")
    try:
        margin = float(margin_text) if margin_text else 0.0
    except ValueError:
        raise ConfigError(f"--fail-if-worse: the margin {margin_text!r} is not a number") from None
    if not math.isfinite(margin) or margin < 0:
        raise ConfigError(f"--fail-if-worse: the margin must be a number of 0 or more, not {margin_text}")
    lower = FIGURES[name][1]
    lines = []
    for c in comparison.comparisons:
        f = c.figure(name)
        if f is None or f.difference is None or f.low is None or f.high is None:
            continue
        worse = (f.difference > margin and f.low > margin) if lower else (f.difference < -margin and f.high < -margin)
        if worse:
            lines.append(
                f"{c.b} is worse than {c.a} on {name}: {_num(f.a)} -> {_num(f.b)}, B - A {_signed(f.difference)} "
                f"(95% CI {_signed(f.low)} to {_signed(f.high)}), beyond the margin of {margin:g}"
            )
    return lines


# ---------------------------------------------------------------- rendering


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


HEADLINE = ("accuracy", "mean_iou_gt", "text_accuracy", "mean_ngld", "clip_text_accuracy")


def render_markdown(result: RunComparison) -> str:
    """Markdown: per run after the first, its overall figures, then the headline figures per group."""
    lines = [f"# midvbatch compare: {len(result.runs)} runs of `{result.dataset}`", ""]
    lines.append(
        f"B - A with its {result.level:.0%} interval from a paired bootstrap over {result.unit}s "
        f"({result.resamples:,} resamples, seed {result.seed}); p: the exact McNemar test of the frames "
        "(fields) that changed verdict. An interval that holds 0 is a difference the data cannot tell from noise."
    )
    for c in result.comparisons:
        lines += ["", f"## A `{c.a}` -> B `{c.b}`", ""]
        left = {k: v for k, v in c.left_out.items() if v}
        if left:
            lines += ["Left out, measured in one run only: " + ", ".join(f"{k} {v}" for k, v in left.items()), ""]
        lines += _table([f for f in c.figures if f.grouping == "overall"], None)
        for grouping in GROUPINGS[1:]:
            rows = [f for f in c.figures if f.grouping == grouping and f.figure in HEADLINE]
            if rows:
                lines += ["", f"### By {grouping}", ""] + _table(rows, grouping)
        for title, changes in (
            ("Clips that gained most (accuracy)", c.clips_better),
            ("Clips that lost most (accuracy)", c.clips_worse),
            ("Fields that gained most (text accuracy)", c.fields_better),
            ("Fields that lost most (text accuracy)", c.fields_worse),
        ):
            if changes:
                lines += ["", f"### {title}", "", "| name | document | A | B | B - A |", "|---|---|---|---|---|"]
                lines += [f"| {x.name} | {x.document} | {_num(x.a)} | {_num(x.b)} | {_signed(x.b - x.a)} |"
                          for x in changes]  # fmt: skip
    return "\n".join(lines) + "\n"


def _table(figures: list[Figure], grouping: str | None) -> list[str]:
    """A Markdown table of figures; with a `grouping`, a first column names each one's group."""
    lead = [grouping] if grouping else []
    head = [*lead, "figure", "A", "B", "B - A", "95% CI", "units", "measured", "+/-", "p"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        changed = f"+{f.became_correct}/-{f.became_wrong}" if f.became_correct is not None else ""
        cells = [f.group] if grouping else []
        cells += [f.figure, _num(f.a), _num(f.b), _signed(f.difference), f"[{_signed(f.low)}, {_signed(f.high)}]",
                  str(f.units), str(f.measured), changed, _p(f.p_value)]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


CSV_COLUMNS = ("a", "b", "grouping", "group", "figure", "value_a", "value_b", "difference", "low", "high", "units",
               "measured", "became_correct", "became_wrong", "p_value")  # fmt: skip


def render_csv(result: RunComparison) -> str:
    """CSV: one row per figure of every comparison."""
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for c in result.comparisons:
        for f in c.figures:
            writer.writerow([c.a, c.b, f.grouping, f.group, f.figure, f.a, f.b, f.difference, f.low, f.high,
                             f.units, f.measured, f.became_correct, f.became_wrong, f.p_value])  # fmt: skip
    return stream.getvalue()


RENDERERS: dict[str, Callable[[RunComparison], str]] = {
    "md": render_markdown,
    "json": lambda result: json.dumps(result.to_dict(), indent=1) + "\n",
    "csv": render_csv,
}


def render(result: RunComparison, fmt: str) -> str:
    """The comparison as text in `fmt` (one of FORMATS)."""
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return RENDERERS[fmt](result)
