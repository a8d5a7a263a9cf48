"""The HTML report's drill-down: chosen clips frame by frame, for a researcher to browse.

For each chosen clip (the worst by accuracy, and a seeded sample of the others: bounded,
so that a 73,000-frame run does not make 73,000 pictures), its annotated frames as
thumbnails with the true quad (green) and the predicted one (red) drawn over them and the
frame's scores; and each text field's truth and reading, the characters that differ marked
(substitutions, insertions and deletions told apart: scoring.text.char_diff). The tables
sort by a click on a column and filter by document, condition, field and score in the
browser, without a server. Thumbnails are cached in RUN/report-cache/ (a folder only
midvbatch writes), keyed by what they show, so a second report draws nothing again.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.errors import MidvBatchError
from midvbatch.report._render import PREDICTED, TRUTH, data_uri, drawn, fmt
from midvbatch.results.figures import ReportFigures, condition_label
from midvbatch.results.reader import RunResults
from midvbatch.results.records import clip_kinds
from midvbatch.runfolder import REPORT_CACHE
from midvbatch.scoring.text import char_diff

WORST = 8  # clips shown because they are the worst
SAMPLE = 4  # more clips, a seeded sample of the others
FRAMES = 30  # frames of a clip shown at most (evenly spaced beyond)
THUMB_WIDTH = 160  # pixels
SEED = 20261207


@dataclass
class DrillFrame:
    number: int
    iou_gt: float | None
    correct: bool | None
    predicted: Any  # [[x, y] x 4] or None
    scored: bool
    fields: list[dict[str, Any]] = field(default_factory=list)  # name, truth, text, correct, ngld


@dataclass
class DrillClip:
    clip: str
    document: str
    condition: str
    why: str  # "worst" or "sample"
    frames: list[DrillFrame] = field(default_factory=list)


def choose(figures: ReportFigures) -> list[tuple[str, str]]:
    """The clips the drill-down shows, (clip, why): the WORST by accuracy (by text accuracy when no quad was
    scored), then SAMPLE of the rest drawn with a fixed seed."""
    table = figures.groups.get("clip", {})
    if table:
        ranked = sorted(table, key=lambda c: (table[c].accuracy if table[c].accuracy is not None else 2.0, c))
    elif figures.text is not None and "clip" in figures.text.groups:
        text = figures.text.groups["clip"]
        ranked = sorted(text, key=lambda c: (text[c].accuracy if text[c].accuracy is not None else 2.0, c))
    else:
        return []
    worst = ranked[:WORST]
    rest = ranked[WORST:]
    sample = sorted(random.Random(SEED).sample(rest, min(SAMPLE, len(rest))), key=ranked.index)
    return [(c, "worst") for c in worst] + [(c, "sample") for c in sample]


def gather(run: RunResults, chosen: list[tuple[str, str]]) -> list[DrillClip]:
    """The chosen clips' frames from the run (its ledger read for these clips only)."""
    why = dict(chosen)
    kind = clip_kinds(run.meta.format)
    clips: dict[str, DrillClip] = {}
    for frame in run.frames(list(why)):
        drill = clips.get(frame.clip)
        if drill is None:
            drill = clips[frame.clip] = DrillClip(
                frame.clip, frame.document, condition_label(kind(frame.code)), why[frame.clip]
            )
        score = frame.score
        fields = [
            {"name": name, "truth": r.get("truth") or "", "text": r.get("text") or "", "correct": r.get("correct"),
             "ngld": r.get("ngld"), "missing": r.get("missing")}
            for name, r in frame.fields.items()
        ]  # fmt: skip
        drill.frames.append(
            DrillFrame(
                frame.number,
                frame.iou_gt,
                (frame.scores or {}).get("correct") if score is not None else None,
                frame.quad,
                score is not None,
                fields,
            )
        )
    for drill in clips.values():
        if len(drill.frames) > FRAMES:
            step = len(drill.frames) / FRAMES
            drill.frames = [drill.frames[int(i * step)] for i in range(FRAMES)]
    return [clips[c] for c, _ in chosen if c in clips]


# ---------------------------------------------------------------- thumbnails


def _thumbnails(drill: DrillClip, dataset: Any, cache: Path | None) -> dict[int, bytes]:
    """Frame number -> JPEG of the frame with its true and predicted quads drawn, from the cache or decoded."""
    if dataset is None:
        return {}
    try:
        clip = dataset.clip(drill.clip)
        from midvbatch.dataset.formats import get_format

        truths = get_format(clip.format).read_quads(clip.ground_truth) if clip.ground_truth else {}
    except MidvBatchError:
        return {}
    keys = {f.number: _key(drill.clip, f, truths.get(f.number)) for f in drill.frames}
    out: dict[int, bytes] = {}
    for number, key in keys.items():
        cached = cache / f"{key}.jpg" if cache is not None else None
        if cached is not None and cached.is_file():
            out[number] = cached.read_bytes()
    wanted = {f.number: f for f in drill.frames if f.number not in out}
    if wanted:
        for number, image in _decode(clip, sorted(wanted)):
            frame = wanted[number]
            truth = truths.get(number)
            data = drawn(image, [(truth.points if truth else None, TRUTH), (frame.predicted, PREDICTED)],
                         width=THUMB_WIDTH)  # fmt: skip
            if data is None:
                continue
            out[number] = data
            if cache is not None:
                _keep(cache / f"{keys[number]}.jpg", data)
    return out


def _key(clip: str, frame: DrillFrame, truth: Any) -> str:
    shown = json.dumps([clip, frame.number, truth.to_list() if truth is not None else None, frame.predicted,
                        THUMB_WIDTH])  # fmt: skip
    return hashlib.sha256(shown.encode()).hexdigest()[:24]


def _decode(clip: Any, numbers: list[int]) -> list[tuple[int, np.ndarray]]:
    """The frames `numbers` of a clip, decoded in one pass; [] when it cannot be read."""
    from midvbatch.video.frames import read_clip_frames

    rule = clip.frame_rule
    want = set(numbers)
    try:
        frames = read_clip_frames(
            clip.video,
            count=max(numbers),
            fps=rule.fps,
            numbers=tuple(numbers) if rule.numbers else (),
            images={n: p for n, p in clip.images.items() if n in want},
        )
        return [(f.number, f.image) for f in frames if f.number in want]
    except (MidvBatchError, OSError):
        return []


def _keep(path: Path, data: bytes) -> None:
    """Cache a thumbnail (best effort: a run folder that cannot be written keeps none)."""
    from midvbatch.fileio import write_atomic

    try:
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, data)
    except OSError:
        pass


def cache_of(run_dir: str) -> Path | None:
    """The run's thumbnail cache folder, or None where it is not a plain folder midvbatch may write."""
    path = Path(run_dir) / REPORT_CACHE
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return None
    return path


# ---------------------------------------------------------------- the section


def _diff_html(truth: str, text: str) -> str:
    parts = []
    for op, t, r in char_diff(truth, text):
        if op == "=":
            parts.append(html.escape(r))
        elif op == "~":
            parts.append(f"<span class='sub' title='{html.escape(t)}'>{html.escape(r)}</span>")
        elif op == "-":
            parts.append(f"<del>{html.escape(t)}</del>")
        else:
            parts.append(f"<ins>{html.escape(r)}</ins>")
    return "".join(parts)


def section(drill: list[DrillClip], dataset: Any, run_dir: str) -> str:
    """The drill-down's HTML: its filters, the frames table, the fields table and the script that sorts and
    filters them."""
    if not drill:
        return ""
    cache = cache_of(run_dir)
    frame_rows, field_rows = [], []
    for clip in drill:
        thumbs = _thumbnails(clip, dataset, cache) if any(f.scored for f in clip.frames) else {}
        attrs = (
            f"data-document='{html.escape(clip.document)}' data-condition='{html.escape(clip.condition)}' "
            f"data-clip='{html.escape(clip.clip)}'"
        )
        for f in clip.frames:
            if f.scored:
                thumb = thumbs.get(f.number)
                img = (
                    f"<img alt='{html.escape(clip.clip)} {f.number}' src='{data_uri(thumb, 'image/jpeg')}'>"
                    if thumb
                    else ""
                )
                verdict = "-" if f.correct is None else ("yes" if f.correct else "no")
                frame_rows.append(
                    f"<tr {attrs} data-score='{f.iou_gt if f.iou_gt is not None else 0}'><td>{html.escape(clip.clip)}"
                    f"</td><td>{html.escape(clip.document)}</td><td>{html.escape(clip.condition)}</td>"
                    f"<td>{f.number}</td><td>{fmt(f.iou_gt)}</td><td>{verdict}</td><td>{clip.why}</td>"
                    f"<td>{img}</td></tr>"
                )
            for r in f.fields:
                reading = "<i>(nothing)</i>" if r["missing"] else _diff_html(r["truth"], r["text"])
                field_rows.append(
                    f"<tr {attrs} data-field='{html.escape(r['name'])}' data-score='{1 - (r['ngld'] or 0):.4f}'>"
                    f"<td>{html.escape(clip.clip)}</td><td>{html.escape(clip.document)}</td>"
                    f"<td>{html.escape(clip.condition)}</td><td>{f.number}</td><td>{html.escape(r['name'])}</td>"
                    f"<td class='text'>{html.escape(r['truth'])}</td><td class='text'>{reading}</td>"
                    f"<td>{fmt(r['ngld'], 4)}</td><td>{'yes' if r['correct'] else 'no'}</td></tr>"
                )
    parts = [
        "<h3 id='drill'>Frames, clip by clip</h3>",
        f"<p>The {sum(c.why == 'worst' for c in drill)} worst clips and a sample of "
        f"{sum(c.why == 'sample' for c in drill)} others, up to {FRAMES} frames each: ground truth in green, "
        "prediction in red. Click a column to sort; the fields below filter with the frames. In a reading, "
        "<span class='sub'>substituted</span>, <ins>inserted</ins> and <del>missed</del> characters are "
        "marked.</p>",
        "<p class='drill-filter'><input id='drill-document' placeholder='document'> "
        "<input id='drill-condition' placeholder='condition'> <input id='drill-field' placeholder='field'> "
        "<input id='drill-score' type='number' step='0.05' min='0' max='1' "
        "placeholder='score at most' title='iou_gt of a frame, 1 - NGLD of a field'> (score: a frame's iou_gt, "
        "a field's 1 - NGLD)</p>",
    ]
    if frame_rows:
        parts.append(
            "<table class='drill' id='drill-frames'><thead><tr><th>clip</th><th>document</th><th>condition</th>"
            "<th>frame</th><th>iou_gt</th><th>correct</th><th>shown as</th><th>frame</th></tr></thead><tbody>"
            + "".join(frame_rows)
            + "</tbody></table>"
        )
    if field_rows:
        parts.append(
            "<table class='drill' id='drill-fields'><thead><tr><th>clip</th><th>document</th><th>condition</th>"
            "<th>frame</th><th>field</th><th>truth</th><th>reading</th><th>NGLD</th><th>correct</th></tr></thead>"
            "<tbody>" + "".join(field_rows) + "</tbody></table>"
        )
    parts.append(f"<script>{SCRIPT}</script>")
    return "".join(parts)


STYLE = (
    ".drill td.text{text-align:left;font-family:monospace}.drill img{width:160px}"
    ".sub{background:#fd8;text-decoration:underline}ins{background:#bfb;text-decoration:none}"
    ".drill-filter input{width:11em}"
    "del{background:#fbb}.drill th{cursor:pointer}"
)

SCRIPT = """
(function(){
  function value(row, i){var c=row.cells[i];return c?c.textContent.trim():'';}
  document.querySelectorAll('table.drill').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th, i){
      th.addEventListener('click', function(){
        var up = th.getAttribute('data-up') !== '1';
        th.setAttribute('data-up', up ? '1' : '0');
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        rows.sort(function(a, b){
          var x = value(a, i), y = value(b, i), nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return up ? c : -c;
        });
        rows.forEach(function(r){ table.tBodies[0].appendChild(r); });
      });
    });
  });
  function filter(){
    var doc = document.getElementById('drill-document').value.toLowerCase();
    var cond = document.getElementById('drill-condition').value.toLowerCase();
    var fld = document.getElementById('drill-field').value.toLowerCase();
    var most = parseFloat(document.getElementById('drill-score').value);
    document.querySelectorAll('table.drill tbody tr').forEach(function(r){
      var ok = (r.getAttribute('data-document') || '').toLowerCase().indexOf(doc) >= 0
        && (r.getAttribute('data-condition') || '').toLowerCase().indexOf(cond) >= 0
        && (!fld || !r.hasAttribute('data-field') || r.getAttribute('data-field').toLowerCase().indexOf(fld) >= 0)
        && (isNaN(most) || parseFloat(r.getAttribute('data-score')) <= most);
      r.style.display = ok ? '' : 'none';
    });
  }
  document.querySelectorAll('.drill-filter input').forEach(function(input){
    input.addEventListener('input', filter);
  });
})();
"""
