"""The figures of a run's report, as typed values: accuracy by the MIDV-500 protocol in every
grouping, speed, the worst clips, and the text fields' figures (per field, per field type,
..., the accuracy after k frames combined, the worst fields).

:func:`compute_figures` makes them from a run's records in one pass over its frames;
``midvbatch report`` renders them (Markdown, JSON, CSV, HTML). Field order is the order of
the report's JSON.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from midvbatch.dataset.catalog import ClipKind
from midvbatch.dataset.visibility import SUBSETS
from midvbatch.engine.progress import Snapshot
from midvbatch.results.records import ClipResult, FrameResult, RunMeta, clip_kinds
from midvbatch.results.textfigures import TextFigures, TextTally
from midvbatch.scoring import METRICS, FrameScore, aggregate
from midvbatch.scoring.stats import ratio_intervals

WORST_CLIPS = 6  # clips listed as the worst


@dataclass(frozen=True)
class Accuracy:
    """Frames of one group scored by the MIDV-500 protocol (see scoring.aggregate).

    ``accuracy`` is the headline: the share of frames whose iou_gt passes 0.9.
    ``accuracy_<metric>``: the share that pass that metric, frames without prediction
    counting as failures; ``mean_<metric>``: its mean (``mean_mean_iou`` is the mean of the
    mean_iou metric). Shares and means are None for a group without frames.
    """

    frames: int
    accuracy_iou: float | None
    accuracy_iou_gt: float | None
    accuracy_mean_iou: float | None
    accuracy_min_d: float | None
    mean_iou: float | None
    mean_iou_gt: float | None
    mean_mean_iou: float | None
    mean_min_d: float | None
    accuracy: float | None
    missing: int  # frames without prediction
    # each share's and mean's 95% interval, [low, high], from a bootstrap over the group's clips; {}: one clip
    ci: dict[str, list[float | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, scores: Iterable[FrameScore]) -> Accuracy:
        """Aggregate frame scores."""
        return cls(**aggregate(scores))

    def with_ci(self, sums: ClipSums, positions: np.ndarray) -> Accuracy:
        """This group's figures with every share's and mean's interval from a bootstrap over its clips (the frames
        at `positions` of `sums`); unchanged for a group of one clip."""
        ci = sums.intervals(positions)
        return replace(self, ci=ci) if ci else self


class ClipSums:
    """The scored frames' verdicts and values as arrays, with each frame's clip: what a group's intervals over
    clips are summed from (numpy, not a loop over frames per group)."""

    def __init__(self, scored: list[tuple[FrameResult, FrameScore]]) -> None:
        index: dict[str, int] = {}
        self.clip = np.array([index.setdefault(f.clip, len(index)) for f, _ in scored], dtype=np.int64)
        n = len(scored)
        self.correct = np.zeros((len(METRICS), n))
        self.value = np.zeros((len(METRICS), n))
        self.measured = np.zeros((len(METRICS), n))
        for row, (_, score) in enumerate(scored):
            for i, metric in enumerate(METRICS):
                self.correct[i, row] = score.correct(metric)
                value = getattr(score, metric)
                if value is not None and math.isfinite(value):
                    self.value[i, row], self.measured[i, row] = value, 1.0

    def intervals(self, positions: np.ndarray) -> dict[str, list[float | None]]:
        """{figure: [low, high]} of the frames at `positions`; {} when they are of fewer than two clips."""
        units, clip = np.unique(self.clip[positions], return_inverse=True)
        if len(units) < 2:
            return {}
        frames = np.bincount(clip, minlength=len(units)).astype(np.float64)
        figures: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i, metric in enumerate(METRICS):
            figures[f"accuracy_{metric}"] = (np.bincount(clip, self.correct[i, positions], len(units)), frames)
            figures[f"mean_{metric}"] = (
                np.bincount(clip, self.value[i, positions], len(units)),
                np.bincount(clip, self.measured[i, positions], len(units)),
            )
        ci = {name: interval.to_list() for name, interval in ratio_intervals(figures).items()}
        ci["accuracy"] = ci["accuracy_iou_gt"]
        return ci


@dataclass(frozen=True)
class RunOverview:
    """Where the run stands, as the report's header says it."""

    run_dir: str
    dataset: str | None
    processor: str | None
    state: str  # running | paused | finished | interrupted
    clips: int
    done: int
    dead: int
    pending: int  # pending, failed (to retry) and running
    scored_frames: int
    complete: bool  # finished with no dead clip
    format: str | None = None  # the dataset format the run read the dataset with; None: not recorded
    imported: dict | None = None  # a run of `midvbatch import`: the file read (source, format, sha256)


@dataclass(frozen=True)
class Speed:
    """How fast the run went; seconds are wall seconds while clips were running."""

    frames: int
    clips: int
    wall_seconds: float
    frames_per_second: float | None
    latency_p50: float | None  # per-frame processor time, seconds
    latency_p95: float | None
    latency_max: float | None
    stage_seconds_per_frame: dict[str, float]
    cpu_seconds_per_clip: float | None
    peak_worker_rss_mib: float | None


@dataclass(frozen=True)
class WorstClip:
    """One of the clips with the lowest accuracy, and its worst frame."""

    clip: str
    document: str
    accuracy: float | None
    mean_iou_gt: float | None
    worst_frame: int
    worst_iou_gt: float
    predicted: Any  # the predicted quad of that frame, [[x, y] x 4] or None


@dataclass(frozen=True)
class ReportFigures:
    """Every figure of a run's report.

    `groups` maps a grouping (condition, device, document, clip, subset) to its groups'
    accuracy; `iou_gt` and `latencies` are per frame (for distributions); `text` holds the
    text fields' figures (None when the processor read none).
    """

    run: RunOverview
    overall: Accuracy | None  # None: no scored frame
    groups: dict[str, dict[str, Accuracy]]
    speed: Speed
    worst: tuple[WorstClip, ...] = ()
    iou_gt: tuple[float, ...] = field(default=(), repr=False)
    latencies: tuple[float, ...] = field(default=(), repr=False)
    text: TextFigures | None = None  # None: the processor read no text field


def condition_label(kind: ClipKind | None) -> str:
    """Name a clip's condition as the report groups it: 'T (table)'; '-' when the format's catalog has none."""
    return f"{kind.condition.code} ({kind.condition.name})" if kind else "-"


def device_label(kind: ClipKind | None) -> str:
    """Name a clip's device as the report groups it: 'A (Apple iPhone 5)'; '-' when the format's catalog has none."""
    return f"{kind.device.code} ({kind.device.name})" if kind else "-"


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Return the length of the union of (start, end) intervals: the time clips were running.

    A resumed run's pause between sessions is not counted in its speed.
    """
    total = 0.0
    current: tuple[float, float] | None = None  # the interval being merged
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def compute_figures(
    run_dir: str,
    meta: RunMeta,
    status: Snapshot,
    frames: Iterable[FrameResult],
    done: list[ClipResult],
    imported: dict | None = None,
    stops: Mapping[str, Sequence[float]] | None = None,
) -> ReportFigures:
    """Compute the report's figures from a run's frames (of done clips) and its done clips, in queue order.

    The frames are read once; a clip's frames come together, in frame order (as
    RunResults.frames yields them). `imported`: what a run of `midvbatch import` read; `stops`: the thresholds of
    the video stream's stopping rules (results.stopping)."""
    scored: list[tuple[FrameResult, FrameScore]] = []
    latencies: list[float] = []
    text = TextTally(stops)
    for f in frames:
        if f.seconds is not None:
            latencies.append(f.seconds)
        score = f.score
        if score is not None:
            scored.append((f, score))
        if f.scores is not None and "fields" in f.scores:
            text.add(f)
    state = status.state
    run = RunOverview(
        run_dir,
        meta.dataset,
        meta.processor,
        state,
        status.total,
        status.done,
        status.dead,
        status.pending + status.failed + status.running,
        len(scored),
        state == "finished" and status.dead == 0,
        meta.format,
        imported,
    )
    kind = clip_kinds(meta.format)
    keys: dict[str, Any] = {
        "collection": lambda f: (k.collection if (k := kind(f.code)) is not None else None) or "-",
        "condition": lambda f: condition_label(kind(f.code)),
        "device": lambda f: device_label(kind(f.code)),
        "document": lambda f: f.document,
        "clip": lambda f: f.clip,
    }
    sums = ClipSums(scored)

    def accuracy(positions: list[int]) -> Accuracy:
        figures = Accuracy.of(scored[i][1] for i in positions)
        return figures.with_ci(sums, np.array(positions, dtype=np.int64))

    groups: dict[str, dict[str, Accuracy]] = {}
    for name, key in keys.items():
        buckets: dict[str, list[int]] = defaultdict(list)
        for i, (f, _) in enumerate(scored):
            buckets[key(f)].append(i)
        if name == "collection" and set(buckets) <= {"-"}:
            continue  # a format without collections (MIDV-500): no such section
        if name == "clip":  # one clip each: no interval over clips
            groups[name] = {k: Accuracy.of(scored[i][1] for i in v) for k, v in sorted(buckets.items())}
        else:
            groups[name] = {k: accuracy(v) for k, v in sorted(buckets.items())}
    subsets: dict[str, list[int]] = {name: [] for name in SUBSETS}
    for i, (f, _) in enumerate(scored):
        for name in f.subsets:
            subsets.setdefault(name, []).append(i)
    groups["subset"] = {k: accuracy(v) for k, v in subsets.items()}
    return ReportFigures(
        run=run,
        overall=accuracy(list(range(len(scored)))) if scored else None,
        groups=groups,
        speed=_speed(done, latencies),
        worst=_worst(scored, groups["clip"]),
        iou_gt=tuple(s.iou_gt for _, s in scored),
        latencies=tuple(latencies),
        text=text.figures(keys, done),
    )


def _speed(done: list[ClipResult], latencies: list[float]) -> Speed:
    stage_totals: dict[str, float] = defaultdict(float)
    frames_done = sum(c.frames_done for c in done)
    for c in done:
        for stage, seconds in c.stage_seconds.items():
            stage_totals[stage] += seconds
    span = busy_seconds([(c.started_at, c.finished_at) for c in done if c.started_at and c.finished_at])
    return Speed(
        frames=frames_done,
        clips=len(done),
        wall_seconds=round(span, 3),
        frames_per_second=round(frames_done / span, 2) if span > 0 else None,
        latency_p50=_percentile(latencies, 50),
        latency_p95=_percentile(latencies, 95),
        latency_max=max(latencies) if latencies else None,
        stage_seconds_per_frame={k: round(v / frames_done, 6) for k, v in sorted(stage_totals.items())}
        if frames_done
        else {},
        cpu_seconds_per_clip=round(sum(c.cpu_seconds or 0 for c in done) / len(done), 4) if done else None,
        peak_worker_rss_mib=round(max((c.peak_rss or 0) for c in done) / 2**20, 1) if done else None,
    )


def _worst(scored: list[tuple[FrameResult, FrameScore]], per_clip: dict[str, Accuracy]) -> tuple[WorstClip, ...]:
    by_clip: dict[str, list[tuple[FrameResult, FrameScore]]] = defaultdict(list)
    for f, score in scored:
        by_clip[f.clip].append((f, score))
    ranked = sorted(by_clip, key=lambda c: (per_clip[c].accuracy, per_clip[c].mean_iou_gt))
    out = []
    for clip in ranked[:WORST_CLIPS]:
        frame, score = min(by_clip[clip], key=lambda x: x[1].iou_gt)
        out.append(
            WorstClip(
                clip,
                frame.document,
                per_clip[clip].accuracy,
                per_clip[clip].mean_iou_gt,
                frame.number,
                score.iou_gt,
                frame.quad,
            )
        )
    return tuple(out)
