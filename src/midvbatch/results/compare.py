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
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.errors import ConfigError, LedgerError
from midvbatch.fileio import write_atomic
from midvbatch.results.figures import condition_label, device_label
from midvbatch.results.reader import RunResults, open_run, recorded_dataset
from midvbatch.results.records import clip_kinds
from midvbatch.runfolder import claim_output, record_output
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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "document": self.document, "a": self.a, "b": self.b, "difference": self.b - self.a}


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

    frames: dict[tuple, dict[str, float | None]] = field(default_factory=dict)
    fields: dict[tuple, dict[str, float | None]] = field(default_factory=dict)
    clip_fields: dict[tuple, dict[str, float | None]] = field(default_factory=dict)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # clip -> grouping -> group
    types: dict[tuple, str] = field(default_factory=dict)  # a field's key -> its type


def _read(run: RunResults) -> _Measures:
    measures = _Measures()
    kind = clip_kinds(run.meta.format)
    for frame in run.frames():
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
            values: dict[str, float | None] = {
                name: float(score.correct(metric)) for name, metric in _METRIC_OF.items()
            }
            values |= {
                "mean_iou_gt": score.iou_gt,
                "mean_iou": score.iou,
                "mean_mean_iou": score.mean_iou,
                "mean_min_d": score.min_d if score.min_d is not None and math.isfinite(score.min_d) else None,
            }
            measures.frames[(frame.clip, frame.number)] = values
        for name, record in frame.fields.items():
            key = (frame.clip, frame.number, name)
            measures.fields[key] = _field_values(record)
            measures.types[key] = record["type"]
    for clip in run.clips("done"):
        for name, record in clip.fields.items():
            measures.clip_fields[(clip.clip, name)] = {"clip_text_accuracy": float(bool(record["correct"]))}
            measures.types[(clip.clip, name)] = record["type"]
    return measures


def _field_values(record: dict[str, Any]) -> dict[str, float | None]:
    return {"text_accuracy": float(bool(record["correct"])), "mean_ngld": record["ngld"], "mean_cer": record["cer"]}


# ---------------------------------------------------------------- comparing two


def _pairs(a: dict[tuple, dict], b: dict[tuple, dict]) -> tuple[list[tuple], int, int]:
    both = sorted(a.keys() & b.keys(), key=repr)
    return both, len(a.keys() - b.keys()), len(b.keys() - a.keys())


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
    kinds = (
        (frames, a.frames, b.frames, FRAME_FIGURES, GROUPINGS[:-1]),
        (fields, a.fields, b.fields, FIELD_FIGURES, GROUPINGS),
        (clip_fields, a.clip_fields, b.clip_fields, CLIP_FIGURES, GROUPINGS),
    )
    for keys, values_a, values_b, figures, groupings in kinds:
        for grouping in groupings:
            members: dict[str, list[tuple]] = defaultdict(list)
            for key in keys:
                if grouping == "type":
                    members[a.types.get(key) or b.types.get(key) or "-"].append(key)
                else:
                    members[groups.get(key[0], {}).get(grouping, "-")].append(key)
            if grouping == "collection" and set(members) <= {"-"}:
                continue  # a format without collections (MIDV-500)
            for group in sorted(members):
                comparison.figures += _figures(
                    grouping, group, members[group], values_a, values_b, figures, groups, unit, resamples, seed, level
                )
    comparison.clips_better, comparison.clips_worse = _changed(
        frames, a.frames, b.frames, "accuracy", lambda key: (key[0], groups.get(key[0], {}).get("document", "-"))
    )
    comparison.fields_better, comparison.fields_worse = _changed(
        fields,
        a.fields,
        b.fields,
        "text_accuracy",
        lambda key: (
            f"{groups.get(key[0], {}).get('document', '-')} {key[2]}",
            groups.get(key[0], {}).get("document", "-"),
        ),
    )
    return comparison


def _figures(
    grouping: str,
    group: str,
    keys: list[tuple],
    values_a: dict[tuple, dict],
    values_b: dict[tuple, dict],
    figures: dict[str, tuple[str, bool]],
    groups: dict[str, dict[str, str]],
    unit: str,
    resamples: int,
    seed: int,
    level: float,
) -> list[Figure]:
    """The figures of one group: per unit sums of each figure's values in A and B, then one paired bootstrap."""
    index: dict[str, int] = {}
    for key in keys:
        name = key[0] if unit == "clip" else groups.get(key[0], {}).get("document", "-")
        index.setdefault(name, len(index))
    n = len(index)
    sums = {name: np.zeros((4, n)) for name in figures}  # per unit: num_a, den_a, num_b, den_b
    measured = dict.fromkeys(figures, 0)
    changes = {name: [0, 0] for name in figures if name in SHARES}
    for key in keys:
        u = index[key[0] if unit == "clip" else groups.get(key[0], {}).get("document", "-")]
        va, vb = values_a[key], values_b[key]
        for name in figures:
            x, y = va.get(name), vb.get(name)
            cell = sums[name]
            if x is not None:
                cell[0, u] += x
                cell[1, u] += 1
            if y is not None:
                cell[2, u] += y
                cell[3, u] += 1
            if x is not None and y is not None:
                measured[name] += 1
                if name in changes and x != y:
                    changes[name][0 if y > x else 1] += 1
    intervals = paired_differences(
        {name: ((s[0], s[1]), (s[2], s[3])) for name, s in sums.items()}, resamples=resamples, seed=seed, level=level
    )
    out = []
    for name in figures:
        s = sums[name]
        fig_a = float(s[0].sum() / s[1].sum()) if s[1].sum() else None
        fig_b = float(s[2].sum() / s[3].sum()) if s[3].sum() else None
        interval = intervals[name]
        units = int(np.count_nonzero((s[1] > 0) & (s[3] > 0)))
        extra: dict[str, Any] = {}
        if name in changes:
            up, down = changes[name]
            extra = {"became_correct": up, "became_wrong": down, "p_value": mcnemar_exact(up, down)}
        out.append(
            Figure(grouping, group, name, fig_a, fig_b, interval.value, interval.low, interval.high, units,
                   measured[name], **extra)
        )  # fmt: skip
    return out


def _changed(
    keys: list[tuple], values_a: dict, values_b: dict, figure: str, name_of: Callable[[tuple], tuple[str, str]]
) -> tuple[list[Change], list[Change]]:
    """The clips (fields) whose `figure` changed most, up and down."""
    tallies: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for key in keys:
        x, y = values_a[key].get(figure), values_b[key].get(figure)
        if x is None or y is None:
            continue
        t = tallies[name_of(key)]
        t[0], t[1], t[2] = t[0] + x, t[1] + y, t[2] + 1
    changes = [Change(name, doc, t[0] / t[2], t[1] / t[2], int(t[2])) for (name, doc), t in tallies.items() if t[2]]
    better = sorted((c for c in changes if c.b > c.a), key=lambda c: (c.a - c.b, c.name))[:CHANGED]
    worse = sorted((c for c in changes if c.b < c.a), key=lambda c: (c.b - c.a, c.name))[:CHANGED]
    return better, worse


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


@dataclass(frozen=True)
class CompareOutput:
    """What `midvbatch compare` prints: the comparison as text, and the gate's lines (a run worse than allowed)."""

    text: str
    failures: list[str]
    comparison: RunComparison


def compare_output(
    run_dirs: list[str | Path],
    fmt: str = "md",
    out: str | Path | None = None,
    *,
    unit: str = "clip",
    resamples: int = RESAMPLES,
    seed: int | None = None,
    rule: str | None = None,
    force: bool = False,
) -> CompareOutput:
    """Compare the runs (compare_runs), render the comparison in `fmt`, write it to `out` if given (a temporary
    name, then renamed; an existing file only if a report, export or compare of the first run wrote it, or with
    `force`), and apply the gate `rule` (FIGURE[:MARGIN], see gate)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if rule is not None:
        gate(RunComparison([], None, unit, resamples, SEED, LEVEL, []), rule)  # a bad rule: before the work
    for run_dir in run_dirs:
        if not Path(run_dir).is_dir():
            raise LedgerError("no such run folder", path=run_dir)
    if out is not None and run_dirs:
        claim_output(out, run_dirs[0], force=force, dataset=recorded_dataset(run_dirs[0]))
    comparison = compare_runs(run_dirs, unit=unit, resamples=resamples, seed=SEED if seed is None else seed)
    text = render(comparison, fmt)
    if out is not None:
        try:
            write_atomic(out, text, into_special=True)
        except OSError as exc:
            raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
        record_output(run_dirs[0], out)
    return CompareOutput(text, gate(comparison, rule) if rule else [], comparison)
