"""The report of a run: accuracy by the MIDV-500 protocol in every grouping, and speed.

Reads the ledger (also while the run goes on, or after it was interrupted) and builds
one :class:`Report` that renders as Markdown (the terminal), JSON (the same tables, an
``accuracy`` figure in every grouping), CSV (one row per group) or a self-contained HTML
page with plots (PNG images inlined as data: URIs; nothing to fetch to view it).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.dataset.catalog import CATALOGS
from midvbatch.dataset.visibility import SUBSETS
from midvbatch.engine.ledger import Ledger
from midvbatch.engine.status import run_status
from midvbatch.errors import LedgerError, MidvBatchError
from midvbatch.fileio import write_atomic
from midvbatch.runfolder import check_output_path
from midvbatch.scoring import THRESHOLDS, FrameScore, aggregate

FORMATS = ("md", "html", "json", "csv")
WORST_CLIPS = 6


@dataclass
class FrameRow:
    """One scored frame as the report sees it."""

    clip: str
    document: str
    code: str
    frame: int
    seconds: float | None
    score: FrameScore
    subsets: list[str]
    predicted: Any


@dataclass
class Report:
    """The tables of a run's report."""

    run: dict[str, Any]
    overall: dict[str, Any] | None
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # grouping -> key -> aggregate
    speed: dict[str, Any] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    iou_gt: list[float] = field(default_factory=list)  # per frame, for the distribution plot
    latencies: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document: run, protocol, overall, groups, speed, worst clips."""
        return {
            "run": self.run,
            "protocol": {"thresholds": THRESHOLDS, "headline": "iou_gt",
                         "correct": "iou, iou_gt, mean_iou >= 0.9; min_d <= 0.017"},
            "overall": self.overall,
            **{f"by_{name}": table for name, table in self.groups.items()},
            "speed": self.speed,
            "worst_clips": self.worst,
        }


def _condition_device(code: str) -> tuple[str, str]:
    for catalog in CATALOGS.values():
        kind = catalog.clip_kind(code)
        if kind is not None:
            return f"{kind.condition.code} ({kind.condition.name})", f"{kind.device.code} ({kind.device.name})"
    return "-", "-"


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Return the length of the union of (start, end) intervals: the time clips were running.

    A resumed run's pause between sessions is not counted in its speed.
    """
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def build_report(run_dir: str | Path) -> Report:
    """Read the run's ledger and build its report; raises LedgerError if it is not a run folder."""
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    ledger = Ledger(run_dir, readonly=True)
    try:
        rows = []
        for r in ledger.frame_results():
            if r["scores"] is None:
                continue
            s = json.loads(r["scores"])
            rows.append(FrameRow(
                r["clip"], r["document"], r["code"], r["frame"], r["seconds"],
                FrameScore(s["iou"], s["iou_gt"], s["mean_iou"], s["min_d"]), s.get("subsets", []),
                (json.loads(r["result"]) or {}).get("quad"),
            ))
        latencies = ledger.frame_seconds()
        tasks = ledger.tasks(states=("done",))
        stage_rows = ledger.stage_seconds()
        processor = ledger.get_meta("processor")
        dataset = ledger.get_meta("dataset")
    finally:
        ledger.close()
    state = status.state
    run = {
        "run_dir": str(run_dir), "dataset": dataset, "processor": processor, "state": state,
        "clips": status.total, "done": status.done, "dead": status.dead,
        "pending": status.pending + status.failed + status.running, "scored_frames": len(rows),
        "complete": state == "finished" and status.dead == 0,
    }
    report = Report(run=run, overall=aggregate(r.score for r in rows) if rows else None)
    groupings: dict[str, Any] = {
        "condition": lambda r: _condition_device(r.code)[0],
        "device": lambda r: _condition_device(r.code)[1],
        "document": lambda r: r.document,
        "clip": lambda r: r.clip,
    }
    for name, key in groupings.items():
        buckets: dict[str, list[FrameScore]] = defaultdict(list)
        for r in rows:
            buckets[key(r)].append(r.score)
        report.groups[name] = {k: aggregate(v) for k, v in sorted(buckets.items())}
    subsets: dict[str, list[FrameScore]] = {name: [] for name in SUBSETS}
    for r in rows:
        for name in r.subsets:
            subsets.setdefault(name, []).append(r.score)
    report.groups["subset"] = {k: aggregate(v) for k, v in subsets.items()}
    # speed
    stage_totals: dict[str, float] = defaultdict(float)
    frames_done = sum(t.frames_done for t in tasks)
    for stages in stage_rows:
        for stage, seconds in json.loads(stages or "{}").items():
            stage_totals[stage] += seconds
    span = busy_seconds([(t.started_at, t.finished_at) for t in tasks if t.started_at and t.finished_at])
    report.speed = {
        "frames": frames_done, "clips": len(tasks), "wall_seconds": round(span, 3),
        "frames_per_second": round(frames_done / span, 2) if span > 0 else None,
        "latency_p50": _percentile(latencies, 50), "latency_p95": _percentile(latencies, 95),
        "latency_max": max(latencies) if latencies else None,
        "stage_seconds_per_frame": {k: round(v / frames_done, 6) for k, v in sorted(stage_totals.items())}
        if frames_done else {},
        "cpu_seconds_per_clip": round(sum(t.cpu_seconds or 0 for t in tasks) / len(tasks), 4) if tasks else None,
        "peak_worker_rss_mib": round(max((t.peak_rss or 0) for t in tasks) / 2**20, 1) if tasks else None,
    }
    report.iou_gt = [r.score.iou_gt for r in rows]
    report.latencies = latencies
    by_clip = defaultdict(list)
    for r in rows:
        by_clip[r.clip].append(r)
    per_clip = report.groups["clip"]  # the aggregates already made: rank by them
    ranked = sorted(by_clip, key=lambda c: (per_clip[c]["accuracy"], per_clip[c]["mean_iou_gt"]))
    for clip in ranked[:WORST_CLIPS]:
        worst = min(by_clip[clip], key=lambda x: x.score.iou_gt)
        report.worst.append({
            "clip": clip, "document": worst.document, "accuracy": per_clip[clip]["accuracy"],
            "mean_iou_gt": per_clip[clip]["mean_iou_gt"], "worst_frame": worst.frame,
            "worst_iou_gt": worst.score.iou_gt, "predicted": worst.predicted,
        })
    return report


# ----------------------------------------------------------------------------- rendering


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


_COLUMNS = ("frames", "accuracy", "accuracy_iou", "accuracy_mean_iou", "accuracy_min_d", "mean_iou_gt", "mean_iou",
            "mean_min_d", "missing")


def _md_table(title: str, table: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"### {title}", "", "| group | " + " | ".join(_COLUMNS) + " |", "|---" * (len(_COLUMNS) + 1) + "|"]
    for key, agg in table.items():
        lines.append(f"| {key} | " + " | ".join(_fmt(agg.get(c)) for c in _COLUMNS) + " |")
    return lines + [""]


def _state_line(run: dict[str, Any]) -> str:
    if run["state"] == "running":
        return f"**The run is still going**: {run['done']} of {run['clips']} clips done; figures are partial."
    if run["state"] in ("interrupted", "paused"):
        return (f"**The run was interrupted**: {run['done']} of {run['clips']} clips done, {run['pending']} left; "
                "figures are partial.")
    if run["dead"]:
        return f"The run finished with {run['dead']} dead clips (not scored)."
    return f"The run finished: {run['done']} clips."


def render_markdown(report: Report) -> str:
    """Render the report as Markdown."""
    run = report.run
    lines = [f"# midvbatch report: {run['run_dir']}", "",
             f"Processor `{run['processor']}` on `{run['dataset']}`. {_state_line(run)}", ""]
    if report.overall is None:
        lines += ["No scored frames: the processor returns no `quad`, or no clip is done yet.", ""]
    else:
        o = report.overall
        lines += [f"**Accuracy (iou_gt >= 0.9): {_fmt(o['accuracy'])}** over {o['frames']} frames; "
                  f"mean iou_gt {_fmt(o['mean_iou_gt'])}, mean iou {_fmt(o['mean_iou'])}, "
                  f"accuracy by min_d {_fmt(o['accuracy_min_d'])}, frames without prediction {o['missing']}.", ""]
        for name, title in (("condition", "By condition"), ("device", "By device"), ("subset", "By visibility subset"),
                            ("document", "By document"), ("clip", "By clip")):
            lines += _md_table(title, report.groups[name])
    s = report.speed
    lines += ["### Speed", "",
              f"{s['frames']} frames in {s['clips']} clips, {_fmt(s['frames_per_second'], 1)} frames/s over "
              f"{_fmt(s['wall_seconds'], 1)} s; per-frame processor latency p50 {_fmt(s['latency_p50'], 4)} s, "
              f"p95 {_fmt(s['latency_p95'], 4)} s, max {_fmt(s['latency_max'], 4)} s.", ""]
    if s["stage_seconds_per_frame"]:
        lines += ["| stage | seconds per frame |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v, 5)} |" for k, v in s["stage_seconds_per_frame"].items()] + [""]
    if report.worst:
        lines += ["### Worst clips", "", "| clip | accuracy | mean iou_gt | worst frame | its iou_gt |",
                  "|---|---|---|---|---|"]
        lines += [f"| {w['clip']} | {_fmt(w['accuracy'])} | {_fmt(w['mean_iou_gt'])} | {w['worst_frame']} | "
                  f"{_fmt(w['worst_iou_gt'])} |" for w in report.worst] + [""]
    return "\n".join(lines)


def render_csv(report: Report) -> str:
    """Render every grouping as CSV rows: grouping, group, then the aggregate's columns."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["grouping", "group", *_COLUMNS, "mean_mean_iou"])
    if report.overall is not None:
        writer.writerow(["overall", "all", *(report.overall.get(c) for c in _COLUMNS), report.overall["mean_mean_iou"]])
    for name, table in report.groups.items():
        for key, agg in table.items():
            writer.writerow([name, key, *(agg.get(c) for c in _COLUMNS), agg.get("mean_mean_iou")])
    return out.getvalue()


# ---------------------------------------------------------------------------------- html


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plots(report: Report) -> dict[str, bytes]:
    """Draw the report's plots; return {name: PNG bytes}."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out: dict[str, bytes] = {}

    def bars(name: str, table: dict[str, dict[str, Any]], title: str) -> None:
        keys = list(table)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(keys) + 2), 3.2))
        ax.bar(range(len(keys)), [table[k]["accuracy"] or 0 for k in keys], color="#3b7dd8")
        ax.set_xticks(range(len(keys)), keys, rotation=45 if len(keys) > 3 else 0, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (iou_gt >= 0.9)")
        ax.set_title(title)
        out[name] = _png(fig)
        plt.close(fig)

    if report.overall is not None:
        bars("accuracy_by_condition", report.groups["condition"], "Accuracy per condition")
        bars("accuracy_by_document", report.groups["document"], "Accuracy per document")
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(report.iou_gt, bins=np.linspace(0, 1, 41), color="#3b7dd8")
        ax.axvline(THRESHOLDS["iou_gt"], color="#d83b3b", linestyle="--", label="threshold 0.9")
        ax.set_xlabel("iou_gt")
        ax.set_ylabel("frames")
        ax.set_title("IoU distribution")
        ax.legend()
        out["iou_distribution"] = _png(fig)
        plt.close(fig)
    if report.latencies:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(np.array(report.latencies) * 1000, bins=40, color="#5a9e4b")
        ax.set_xlabel("processor time per frame (ms)")
        ax.set_ylabel("frames")
        ax.set_title("Latency distribution")
        out["latency_distribution"] = _png(fig)
        plt.close(fig)
    return out


def _thumbnail(dataset, worst: dict[str, Any]) -> bytes | None:
    """Decode a clip's worst frame and draw ground truth (green) and prediction (red) on it; JPEG bytes."""
    import cv2

    from midvbatch.dataset.groundtruth import load_frame_quad
    from midvbatch.video.reader import read_annotated_frames

    try:
        clip = dataset.clip(worst["clip"])
        frame = next(f for f in read_annotated_frames(clip.video, count=worst["worst_frame"])
                     if f.number == worst["worst_frame"])
    except (MidvBatchError, StopIteration, TypeError):
        return None
    scale = 240 / frame.image.shape[0]
    image = cv2.resize(frame.image, (max(1, round(frame.image.shape[1] * scale)), 240), interpolation=cv2.INTER_AREA)
    # drawn after scaling down, so the lines stay visible at thumbnail size
    if worst["worst_frame"] in clip.ground_truth:
        truth = load_frame_quad(clip.ground_truth[worst["worst_frame"]])
        cv2.polylines(image, [np.int32(np.round(np.array(truth.points) * scale))], True, (60, 200, 60), 2)
    if worst.get("predicted"):
        cv2.polylines(image, [np.int32(np.round(np.array(worst["predicted"]) * scale))], True, (60, 60, 230), 2)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _html_table(title: str, table: dict[str, dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("group", *_COLUMNS))
    body = "".join(
        "<tr>" + f"<td>{html.escape(k)}</td>" + "".join(f"<td>{_fmt(agg.get(c))}</td>" for c in _COLUMNS) + "</tr>"
        for k, agg in table.items())
    return f"<h3>{html.escape(title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report, plot_dir: Path | None = None) -> str:
    """Render a self-contained HTML page; with `plot_dir`, also write each plot there as PNG."""
    run = report.run
    images = plots(report)
    if plot_dir is not None:
        plot_dir.mkdir(exist_ok=True)
        for name, data in images.items():
            write_atomic(plot_dir / f"{name}.png", data)
    parts = [f"<h1>midvbatch report</h1><p>Run <code>{html.escape(run['run_dir'])}</code>: processor "
             f"<code>{html.escape(str(run['processor']))}</code> on <code>{html.escape(str(run['dataset']))}</code>."
             f"</p><p class='state'>{html.escape(_state_line(run).replace('**', ''))}</p>"]
    if report.overall is not None:
        o = report.overall
        parts.append(f"<p class='headline'>Accuracy (iou_gt &ge; 0.9): <b>{_fmt(o['accuracy'])}</b> over "
                     f"{o['frames']} frames; mean iou_gt {_fmt(o['mean_iou_gt'])}; accuracy by min_d "
                     f"{_fmt(o['accuracy_min_d'])}; frames without prediction {o['missing']}.</p>")
    for name, data in images.items():
        parts.append(f"<figure><img alt='{name}' src='{_data_uri(data, 'image/png')}'>"
                     f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>")
    if report.overall is not None:
        for name, title in (("condition", "By condition"), ("device", "By device"),
                            ("subset", "By visibility subset"), ("document", "By document"), ("clip", "By clip")):
            parts.append(_html_table(title, report.groups[name]))
    s = report.speed
    parts.append(f"<h3>Speed</h3><p>{s['frames']} frames in {s['clips']} clips, {_fmt(s['frames_per_second'], 1)} "
                 f"frames/s; latency p50 {_fmt(s['latency_p50'], 4)} s, p95 {_fmt(s['latency_p95'], 4)} s, "
                 f"max {_fmt(s['latency_max'], 4)} s.</p>")
    if report.worst:
        from midvbatch.dataset.layout import discover

        try:
            dataset = discover(run["dataset"])
        except MidvBatchError:  # the dataset moved since the run: no thumbnails
            dataset = None
        cells = []
        for w in report.worst:
            thumb = _thumbnail(dataset, w) if dataset is not None else None
            img = f"<img alt='{html.escape(w['clip'])}' src='{_data_uri(thumb, 'image/jpeg')}'>" if thumb else ""
            cells.append(f"<figure class='thumb'>{img}<figcaption>{html.escape(w['clip'])} frame {w['worst_frame']}: "
                         f"iou_gt {_fmt(w['worst_iou_gt'])} (clip accuracy {_fmt(w['accuracy'])})</figcaption></figure>")
        parts.append("<h3>Worst clips</h3><p>Ground truth in green, prediction in red.</p>"
                     f"<div class='thumbs'>{''.join(cells)}</div>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em}"
             ".thumbs figure{width:200px;vertical-align:top}.headline{font-size:1.2em}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>midvbatch report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(run_dir: str | Path, fmt: str = "md", out: str | Path | None = None) -> str:
    """Build the report and render it as `fmt`; write it to `out` if given; return the text."""
    if fmt not in FORMATS:
        raise LedgerError(f"unknown report format {fmt!r} (use {', '.join(FORMATS)})")
    if out:
        check_output_path(out)  # never over the run folder's own files
        if fmt == "html":
            check_output_path(f"{Path(out).with_suffix('')}-plots/x.png")
    report = build_report(run_dir)
    if fmt == "md":
        text = render_markdown(report)
    elif fmt == "json":
        from midvbatch.engine.export import json_safe

        text = json.dumps(json_safe(report.to_dict()), indent=1)
    elif fmt == "csv":
        text = render_csv(report)
    else:
        plot_dir = Path(out).with_suffix("") if out else None
        try:
            text = render_html(report, plot_dir=Path(f"{plot_dir}-plots") if plot_dir else None)
        except OSError as exc:  # the plots' folder beside --out cannot be made
            raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
    if out:
        try:
            write_atomic(out, text, into_special=True)  # a user's --out: /dev/stdout, a FIFO are written into
        except OSError as exc:
            raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
    return text

