"""`midvbatch compare` as a command does it: the comparison rendered (md, json, csv from results.compare; html
here, with a thumbnail of the frame of each clip that changed most, both runs' quads drawn), written, gated.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midvbatch.errors import ConfigError, LedgerError
from midvbatch.fileio import write_atomic
from midvbatch.report._drill import STYLE, THUMB_WIDTH
from midvbatch.report._render import OTHER, PREDICTED, TRUTH, data_uri, dataset_of, drawn, fmt, frame_truth, read_frame
from midvbatch.results.compare import (
    FORMATS as TEXT_FORMATS,
)
from midvbatch.results.compare import (
    GROUPINGS,
    HEADLINE,
    LEVEL,
    RESAMPLES,
    SEED,
    Change,
    Figure,
    RunComparison,
    compare_runs,
    gate,
    render,
)
from midvbatch.results.reader import open_run, recorded_dataset
from midvbatch.runfolder import claim_output, record_output

FORMATS = (*TEXT_FORMATS, "html")


def render_html(result: RunComparison) -> str:
    """A self-contained page: per run after the first, its figures overall and per group, and the clips that
    changed most, each with the frame where its runs differ most drawn (truth green, A blue, B red)."""
    parts = [
        f"<h1>midvbatch compare</h1><p>{len(result.runs)} runs of <code>{html.escape(str(result.dataset))}</code>. "
        f"B - A with its {result.level:.0%} interval from a paired bootstrap over {result.unit}s "
        f"({result.resamples:,} resamples, seed {result.seed}); p: the exact McNemar test of the frames that "
        "changed verdict. An interval that holds 0 is a difference the data cannot tell from noise.</p>"
    ]
    dataset = dataset_of(result.dataset)
    for c in result.comparisons:
        parts.append(f"<h2>A <code>{html.escape(c.a)}</code> &rarr; B <code>{html.escape(c.b)}</code></h2>")
        parts.append(_table([f for f in c.figures if f.grouping == "overall"], None))
        for grouping in GROUPINGS[1:]:
            rows = [f for f in c.figures if f.grouping == grouping and f.figure in HEADLINE]
            if rows:
                parts.append(f"<h3>By {html.escape(grouping)}</h3>" + _table(rows, grouping))
        shown = [x.name for x in (*c.clips_better, *c.clips_worse)]
        frames = (_clip_frames(c.a, shown), _clip_frames(c.b, shown)) if dataset is not None and shown else None
        for title, changes in (("Clips that gained most", c.clips_better), ("Clips that lost most", c.clips_worse)):
            if changes:
                parts.append(f"<h3>{title} (accuracy)</h3><p>Truth in green, A in blue, B in red.</p>")
                parts.append("<div class='thumbs'>" + "".join(_figure(x, frames, dataset) for x in changes) + "</div>")
        for title, changes in (("Fields that gained most", c.fields_better), ("Fields that lost most", c.fields_worse)):
            if changes:
                cells = "".join(
                    f"<tr><td>{html.escape(x.name)}</td><td>{x.a:.3f}</td><td>{x.b:.3f}</td><td>{x.b - x.a:+.3f}</td>"
                    f"<td>{_field_crop(x, dataset)}</td></tr>"
                    for x in changes
                )
                parts.append(f"<h3>{title} (text accuracy)</h3><table><tr><th>field</th><th>A</th><th>B</th>"
                             f"<th>B - A</th><th>where it changed</th></tr>{cells}</table>")  # fmt: skip
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em;width:200px;"
        "vertical-align:top}" + STYLE
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>midvbatch compare</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


def _table(figures: list[Figure], grouping: str | None) -> str:
    head = ([grouping] if grouping else []) + ["figure", "A", "B", "B - A", "95% CI", "units", "+/-", "p"]
    rows = []
    for f in figures:
        cells = [f.group] if grouping else []
        interval = "-" if f.low is None or f.high is None else f"[{f.low:+.3f}, {f.high:+.3f}]"
        changed = f"+{f.became_correct}/-{f.became_wrong}" if f.became_correct is not None else ""
        p = "" if f.p_value is None else ("&lt;0.001" if f.p_value < 0.001 else f"{f.p_value:.3f}")
        cells += [f.figure, fmt(f.a), fmt(f.b), "-" if f.difference is None else f"{f.difference:+.3f}", interval,
                  str(f.units), changed, p]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(c) if '&' not in c else c}</td>" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _field_crop(change: Change, dataset: Any) -> str:
    """The field cut out of a frame where its verdict changed that way, and where: an <img> and a caption."""
    if dataset is None or change.example is None or len(change.example) != 3:
        return ""
    from midvbatch.report._text import crop

    clip, frame, name = change.example
    data = crop(dataset, {"clip": clip, "frame": frame, "field": name})
    where = f"{html.escape(str(clip))} frame {frame}"
    return (f"<img alt='{html.escape(name)} {where}' src='{data_uri(data, 'image/png')}'><br>" if data else "") + where


def _clip_frames(run_dir: str, clips: list[str]) -> dict[str, dict[int, tuple[Any, float]]]:
    """Each of these clips' frames in a run, read once: clip -> frame -> (predicted quad, iou_gt or 0)."""
    out: dict[str, dict[int, tuple[Any, float]]] = {clip: {} for clip in clips}
    with open_run(run_dir) as run:
        for f in run.frames(clips):
            out[f.clip][f.number] = (f.quad, f.iou_gt if f.iou_gt is not None else 0.0)
    return out


def _figure(change: Change, frames: tuple[dict, dict] | None, dataset: Any) -> str:
    """A changed clip as a figure: the frame where A's and B's iou_gt differ most, truth and both quads drawn."""
    picture = _changed_frame(change.name, frames, dataset) if frames is not None else None
    img = f"<img alt='{html.escape(change.name)}' src='{data_uri(picture[1], 'image/jpeg')}'>" if picture else ""
    frame = f", frame {picture[0]}" if picture else ""
    return (
        f"<figure>{img}<figcaption>{html.escape(change.name)}{frame}: accuracy {change.a:.3f} &rarr; "
        f"{change.b:.3f}</figcaption></figure>"
    )


def _changed_frame(clip_id: str, frames: tuple[dict, dict], dataset: Any) -> tuple[int, bytes] | None:
    a, b = frames[0].get(clip_id, {}), frames[1].get(clip_id, {})
    both = sorted(a.keys() & b.keys())
    if not both:
        return None
    number = max(both, key=lambda n: (abs(a[n][1] - b[n][1]), -n))
    read = read_frame(dataset, clip_id, number)
    if read is None:
        return None
    truth = frame_truth(read[0], number)
    quads = [(truth.points if truth else None, TRUTH), (a[number][0], OTHER), (b[number][0], PREDICTED)]
    data = drawn(read[1], quads, width=THUMB_WIDTH + 40)
    return (number, data) if data else None


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
    text = render_html(comparison) if fmt == "html" else render(comparison, fmt)
    if out is not None:
        try:
            write_atomic(out, text, into_special=True)
        except OSError as exc:
            raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None
        record_output(run_dirs[0], out)
    return CompareOutput(text, gate(comparison, rule) if rule else [], comparison)
