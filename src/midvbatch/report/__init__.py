"""The report of a run: accuracy by the MIDV-500 protocol in every grouping, the text fields
read (when the processor reads any), and speed.

Reads the run's figures through midvbatch.results (also while the run goes on, or after
it was interrupted) and lays them out as one :class:`Report` that renders as Markdown
(the terminal), JSON (the same tables, an
``accuracy`` figure in every grouping), CSV (one row per group) or a self-contained HTML
page with plots (PNG images inlined as data: URIs; nothing to fetch to view it). The text
fields' section renders in ``_text``. Report formats are a registry (:func:`renderer_registry`):
those four, and entry points of group ``midvbatch.reports``, each a :class:`Renderer`.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.errors import ConfigError, LedgerError
from midvbatch.fileio import write_atomic
from midvbatch.pipeline.prediction import valid_text
from midvbatch.plugins import REPORTS, Registry, builtin_names, unknown_name
from midvbatch.report import _drill, _text
from midvbatch.report._render import (
    PREDICTED,
    TRUTH,
    ci_bounds,
    ci_text,
    data_uri,
    dataset_of,
    drawn,
    fmt,
    fmt_ci,
    frame_truth,
    html_table,
    md_table,
    png,
    read_frame,
)
from midvbatch.results.figures import WORST_CLIPS, ReportFigures, busy_seconds
from midvbatch.results.reader import open_run, recorded_dataset
from midvbatch.results.stopping import parse_thresholds
from midvbatch.runfolder import check_output_path, claim_output, record_output
from midvbatch.scoring import THRESHOLDS

FORMATS = builtin_names(REPORTS)  # the built-in report formats, what --format offers
__all__ = [
    "FORMATS",
    "WORST_CLIPS",
    "Renderer",
    "Report",
    "build_report",
    "busy_seconds",
    "figures",
    "new_renderer_registry",
    "renderer_registry",
    "render_csv",
    "render_html",
    "render_markdown",
    "write_report",
]


@dataclass
class Report:
    """The tables of a run's report, as the renderers read them (plain data; typed: ReportFigures)."""

    run: dict[str, Any]
    overall: dict[str, Any] | None
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # grouping -> key -> aggregate
    speed: dict[str, Any] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    iou_gt: list[float] = field(default_factory=list)  # per frame, for the distribution plot
    latencies: list[float] = field(default_factory=list)
    text: dict[str, Any] | None = None  # the text fields' figures (TextFigures); None: none read
    drill: list[Any] = field(default_factory=list)  # the HTML drill-down's clips (_drill.DrillClip), when asked

    @classmethod
    def from_figures(cls, figures: ReportFigures) -> Report:
        """Lay out a run's figures as the report's tables."""
        return cls(
            run=asdict(figures.run),
            overall=asdict(figures.overall) if figures.overall is not None else None,
            groups={name: {key: asdict(acc) for key, acc in table.items()} for name, table in figures.groups.items()},
            speed=asdict(figures.speed),
            worst=[asdict(w) for w in figures.worst],
            iou_gt=list(figures.iou_gt),
            latencies=list(figures.latencies),
            text=_text.laid_out(asdict(figures.text)) if figures.text is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document: run, protocol, overall, groups, speed, worst clips, text fields."""
        return {
            "run": self.run,
            "protocol": {
                "thresholds": THRESHOLDS,
                "headline": "iou_gt",
                "correct": "iou, iou_gt, mean_iou >= 0.9; min_d <= 0.017",
                "text": _text.PROTOCOL,
            },
            "overall": self.overall,
            **{f"by_{name}": table for name, table in self.groups.items()},
            "speed": self.speed,
            "worst_clips": self.worst,
            "text": self.text,
        }


def figures(run_dir: str | Path) -> ReportFigures:
    """Return the figures of the run's report, typed; raises LedgerError if it is not a run folder."""
    with open_run(run_dir) as run:
        return run.figures()


def build_report(
    run_dir: str | Path, drill: bool = False, stops: Mapping[str, Sequence[float]] | None = None
) -> Report:
    """Read the run's ledger and build its report; with `drill`, also the frames of the clips the HTML
    drill-down shows (_drill.choose); `stops`: the stopping rules' thresholds (results.stopping). Raises
    LedgerError if it is not a run folder."""
    with open_run(run_dir) as run:
        figures = run.figures(stops)
        report = Report.from_figures(figures)
        if drill:
            report.drill = _drill.gather(run, _drill.choose(figures))
    return report


# ----------------------------------------------------------------------------- rendering


_COLUMNS = (
    "frames",
    "accuracy",
    "accuracy_iou",
    "accuracy_mean_iou",
    "accuracy_min_d",
    "mean_iou_gt",
    "mean_iou",
    "mean_min_d",
    "missing",
)


_CI_COLUMNS = tuple(c for c in (*_COLUMNS, "mean_mean_iou") if c.startswith(("accuracy", "mean_")))  # with an interval


def _cell(agg: dict[str, Any], column: str) -> str:
    """A table's cell: a share or a mean with its 95% interval over clips, other figures as they are."""
    if column in _CI_COLUMNS:
        return fmt_ci(agg.get(column), (agg.get("ci") or {}).get(column))
    return fmt(agg.get(column))


def _md_table(title: str, table: dict[str, dict[str, Any]]) -> list[str]:
    rows = [[key, *(_cell(agg, c) for c in _COLUMNS)] for key, agg in table.items()]
    return md_table(title, ["group", *_COLUMNS], rows)


def _what_ran(run: dict[str, Any]) -> str:
    """What the run scored: its processor, or the file `midvbatch import` read (Markdown)."""
    imported = run.get("imported")
    if imported:
        sha = str(imported.get("sha256") or "")[:12]
        return (
            f"Predictions imported from `{imported.get('source')}` ({imported.get('format')}, sha256 {sha}...) "
            f"on `{run['dataset']}`; its speed is the scoring's, not the system's."
        )
    return f"Processor `{run['processor']}` on `{run['dataset']}`."


def _interval(agg: dict[str, Any], column: str) -> str:
    """'[0.650, 0.850] ' (the 95% interval of a figure, and a space), or '' where it has none."""
    shown = ci_text(agg.get(column), (agg.get("ci") or {}).get(column))
    return f"{shown} " if shown else ""


def _state_line(run: dict[str, Any]) -> str:
    if run["state"] == "running":
        return f"**The run is still going**: {run['done']} of {run['clips']} clips done; figures are partial."
    if run["state"] in ("interrupted", "paused"):
        return (
            f"**The run was interrupted**: {run['done']} of {run['clips']} clips done, {run['pending']} left; "
            "figures are partial."
        )
    if run["dead"]:
        return f"The run finished with {run['dead']} dead clips (not scored)."
    return f"The run finished: {run['done']} clips."


# the report's grouped tables, in page order: (group name in ReportFigures.groups, title)
_SECTIONS = (
    ("collection", "By collection"),
    ("condition", "By condition"),
    ("device", "By device"),
    ("subset", "By visibility subset"),
    ("document", "By document"),
    ("clip", "By clip"),
)


def render_markdown(report: Report) -> str:
    """Render the report as Markdown."""
    run = report.run
    lines = [
        f"# midvbatch report: {run['run_dir']}",
        "",
        f"{_what_ran(run)} {_state_line(run)}",
        "",
    ]
    if report.overall is None and report.text is not None:
        lines += ["No document quads scored: the processor returns no `quad`.", ""]
    elif report.overall is None:
        lines += ["No scored frames: the processor returns no `quad`, or no clip is done yet.", ""]
    else:
        o = report.overall
        lines += [
            f"**Accuracy (iou_gt >= 0.9): {fmt(o['accuracy'])}** {_interval(o, 'accuracy')}over {o['frames']} "
            f"frames; mean iou_gt {_cell(o, 'mean_iou_gt')}, mean iou {_cell(o, 'mean_iou')}, "
            f"accuracy by min_d {_cell(o, 'accuracy_min_d')}, frames without prediction {o['missing']}. "
            "In brackets: 95% intervals from a bootstrap over clips (frames of one clip are not independent).",
            "",
        ]
        for name, title in _SECTIONS:
            if name in report.groups:
                lines += _md_table(title, report.groups[name])
    if report.text is not None:
        lines += _text.markdown(report.text)
    s = report.speed
    lines += [
        "### Speed",
        "",
        f"{s['frames']} frames in {s['clips']} clips, {fmt(s['frames_per_second'], 1)} frames/s over "
        f"{fmt(s['wall_seconds'], 1)} s; per-frame processor latency p50 {fmt(s['latency_p50'], 4)} s, "
        f"p95 {fmt(s['latency_p95'], 4)} s, max {fmt(s['latency_max'], 4)} s.",
        "",
    ]
    if s["stage_seconds_per_frame"]:
        lines += ["| stage | seconds per frame |", "|---|---|"]
        lines += [f"| {k} | {fmt(v, 5)} |" for k, v in s["stage_seconds_per_frame"].items()] + [""]
    if report.worst:
        lines += [
            "### Worst clips",
            "",
            "| clip | accuracy | mean iou_gt | worst frame | its iou_gt |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {w['clip']} | {fmt(w['accuracy'])} | {fmt(w['mean_iou_gt'])} | {w['worst_frame']} | "
            f"{fmt(w['worst_iou_gt'])} |"
            for w in report.worst
        ] + [""]
    return "\n".join(lines)


def render_csv(report: Report) -> str:
    """Render every grouping as CSV rows: grouping, group, then the aggregate's columns.

    When the processor read text fields, their columns follow (empty in the rows above) and
    their rows come after the localization ones, grouping ``text``, ``text_<grouping>``, ...
    (see _text.csv_rows), the localization columns empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    text = [] if report.text is None else list(_text.CSV_COLUMNS)
    pad = [None] * len(text)
    intervals = [f"{c}_ci_{bound}" for c in _CI_COLUMNS for bound in ("low", "high")]
    writer.writerow(["grouping", "group", *_COLUMNS, "mean_mean_iou", *intervals, *text])
    if report.overall is not None:
        o = report.overall
        writer.writerow(
            ["overall", "all", *(o.get(c) for c in _COLUMNS), o["mean_mean_iou"], *ci_bounds(o, _CI_COLUMNS), *pad]
        )
    for name, table in report.groups.items():
        for key, agg in table.items():
            writer.writerow(
                [
                    name,
                    key,
                    *(agg.get(c) for c in _COLUMNS),
                    agg.get("mean_mean_iou"),
                    *ci_bounds(agg, _CI_COLUMNS),
                    *pad,
                ]
            )
    if report.text is not None:
        blank = [None] * (len(_COLUMNS) + 1 + len(intervals))
        writer.writerows([grouping, group, *blank, *values] for grouping, group, *values in _text.csv_rows(report.text))
    return out.getvalue()


# ---------------------------------------------------------------------------------- html


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
        out[name] = png(fig)
        plt.close(fig)

    if report.overall is not None:
        bars("accuracy_by_condition", report.groups["condition"], "Accuracy per condition")
        bars("accuracy_by_document", report.groups["document"], "Accuracy per document")
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(report.iou_gt, bins=np.linspace(0, 1, 41).tolist(), color="#3b7dd8")
        ax.axvline(THRESHOLDS["iou_gt"], color="#d83b3b", linestyle="--", label="threshold 0.9")
        ax.set_xlabel("iou_gt")
        ax.set_ylabel("frames")
        ax.set_title("IoU distribution")
        ax.legend()
        out["iou_distribution"] = png(fig)
        plt.close(fig)
    if report.latencies:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(np.array(report.latencies) * 1000, bins=40, color="#5a9e4b")
        ax.set_xlabel("processor time per frame (ms)")
        ax.set_ylabel("frames")
        ax.set_title("Latency distribution")
        out["latency_distribution"] = png(fig)
        plt.close(fig)
    return out


def _thumbnail(dataset, worst: dict[str, Any]) -> bytes | None:
    """Decode a clip's worst frame and draw ground truth (green) and prediction (red) on it; JPEG bytes."""
    number = worst["worst_frame"]
    read = read_frame(dataset, worst["clip"], number)
    if read is None:
        return None
    clip, frame = read
    truth = frame_truth(clip, number)
    return drawn(frame, [(truth.points if truth else None, TRUTH), (worst.get("predicted"), PREDICTED)], height=240)


def _html_table(title: str, table: dict[str, dict[str, Any]]) -> str:
    rows = [[html.escape(k), *(_cell(agg, c) for c in _COLUMNS)] for k, agg in table.items()]
    return html_table(title, ["group", *_COLUMNS], rows)


def render_html(report: Report, plot_dir: Path | None = None, claim: Callable[[Path], object] | None = None) -> str:
    """Render a self-contained HTML page; with `plot_dir`, also write each plot there as PNG.

    `claim(path)` is called before each plot is written (it raises to refuse the path), and
    `record_output` after, when the report belongs to a run folder.
    """
    run = report.run
    images = plots(report)
    text_images = _text.plots(report.text) if report.text is not None else {}
    if plot_dir is not None:
        every = {plot_dir / f"{name}.png": data for name, data in {**images, **text_images}.items()}
        for path in every:
            if claim is not None:
                claim(path)
        plot_dir.mkdir(exist_ok=True)
        for path, data in every.items():
            write_atomic(path, data)
            record_output(run["run_dir"], path)
    dataset = (
        dataset_of(run["dataset"], run.get("format"))
        if report.worst or report.drill or (report.text and report.text["worst"])
        else None
    )
    parts = [
        f"<h1>midvbatch report</h1><p>Run <code>{html.escape(run['run_dir'])}</code>: "
        + re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(_what_ran(run)))
        + f"</p><p class='state'>{html.escape(_state_line(run).replace('**', ''))}</p>"
    ]
    if report.overall is not None:
        o = report.overall
        parts.append(
            f"<p class='headline'>Accuracy (iou_gt &ge; 0.9): <b>{fmt(o['accuracy'])}</b> {_interval(o, 'accuracy')}"
            f"over {o['frames']} frames; mean iou_gt {_cell(o, 'mean_iou_gt')}; accuracy by min_d "
            f"{fmt(o['accuracy_min_d'])}; frames without prediction {o['missing']}.</p>"
        )
    for name, data in images.items():
        parts.append(
            f"<figure><img alt='{name}' src='{data_uri(data, 'image/png')}'>"
            f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>"
        )
    if report.overall is not None:
        for name, title in _SECTIONS:
            if name in report.groups:
                parts.append(_html_table(title, report.groups[name]))
    if report.text is not None:
        parts.append(_text.html_section(report.text, text_images, dataset))
    s = report.speed
    parts.append(
        f"<h3>Speed</h3><p>{s['frames']} frames in {s['clips']} clips, {fmt(s['frames_per_second'], 1)} "
        f"frames/s; latency p50 {fmt(s['latency_p50'], 4)} s, p95 {fmt(s['latency_p95'], 4)} s, "
        f"max {fmt(s['latency_max'], 4)} s.</p>"
    )
    if report.worst:
        cells = []
        for w in report.worst:
            thumb = _thumbnail(dataset, w) if dataset is not None else None
            img = f"<img alt='{html.escape(w['clip'])}' src='{data_uri(thumb, 'image/jpeg')}'>" if thumb else ""
            cells.append(
                f"<figure class='thumb'>{img}<figcaption>{html.escape(w['clip'])} frame {w['worst_frame']}: "
                f"iou_gt {fmt(w['worst_iou_gt'])} (clip accuracy {fmt(w['accuracy'])})</figcaption></figure>"
            )
        parts.append(
            "<h3>Worst clips</h3><p>Ground truth in green, prediction in red.</p>"
            f"<div class='thumbs'>{''.join(cells)}</div>"
        )
    parts.append(_drill.section(report.drill, dataset, run["run_dir"]))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em}"
        ".thumbs figure{width:200px;vertical-align:top}.headline{font-size:1.2em}td img{max-width:400px}" + _drill.STYLE
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>midvbatch report</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


# ----------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class Renderer:
    """A report format: `render(report, plot_dir, claim)` returns the report's text.

    With `plots`, `plot_dir` is the folder beside --out to write its plots into (None: no
    --out, plots inlined only), and `claim(path)` is called before each file is written there.
    """

    render: Callable[[Report, Path | None, Callable[[Path], object] | None], str]
    plots: bool = False
    drill: bool = False  # it shows the drill-down: the report carries the chosen clips' frames


def _markdown(report: Report, plot_dir: Path | None, claim: Callable[[Path], object] | None) -> str:
    return render_markdown(report)


def _json(report: Report, plot_dir: Path | None, claim: Callable[[Path], object] | None) -> str:
    from midvbatch.results.exports import json_safe

    return json.dumps(json_safe(report.to_dict()), indent=1)


def _csv(report: Report, plot_dir: Path | None, claim: Callable[[Path], object] | None) -> str:
    return render_csv(report)


MARKDOWN = Renderer(_markdown)
HTML = Renderer(render_html, plots=True, drill=True)
JSON = Renderer(_json)
CSV = Renderer(_csv)


def new_renderer_registry() -> Registry[Renderer]:
    """Return a new registry of report formats: the built-ins, entry points of group midvbatch.reports,
    nothing registered; its errors are ConfigError."""
    return Registry(REPORTS, "report format", error=ConfigError, unknown=unknown_name("report format", "use "))


@functools.cache
def renderer_registry() -> Registry[Renderer]:
    """Return this process's registry of report formats (made on first use; see new_renderer_registry)."""
    return new_renderer_registry()


def write_report(
    run_dir: str | Path,
    fmt: str = "md",
    out: str | Path | None = None,
    *,
    force: bool = False,
    stop_thresholds: str | None = None,
) -> str:
    """Build the report and render it as `fmt`; write it to `out` if given; return the text. `stop_thresholds`:
    the video stream's sweep, as ``--stop-thresholds`` takes it (results.stopping.parse_thresholds).

    An existing `out` (or plot beside it) is replaced only if this run's report or export
    wrote it, or with `force`; never inside the run's dataset (runfolder.claim_output).
    An unknown format raises ConfigError.
    """
    renderer = renderer_registry().get(fmt)
    stops = parse_thresholds(stop_thresholds)
    plot_dir = Path(f"{Path(out).with_suffix('')}-plots") if out and renderer.plots else None  # beside --out
    dataset = recorded_dataset(run_dir)

    def claim(path: str | Path) -> None:  # never over what midvbatch did not write
        claim_output(path, run_dir, force=force, dataset=dataset)

    if out:
        claim(out)
    if plot_dir is not None:
        check_output_path(plot_dir / "x.png")
    report = build_report(run_dir, drill=renderer.drill, stops=stops)
    try:
        text = renderer.render(report, plot_dir, claim)
    except OSError as exc:  # the plots' folder beside --out cannot be made
        raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
    text = valid_text(text)  # a reading stored with a lone surrogate by an earlier midvbatch: U+FFFD
    if out:
        try:
            write_atomic(out, text, into_special=True)  # a user's --out: /dev/stdout, a FIFO are written into
            record_output(run_dir, out)
        except OSError as exc:
            raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
    return text
