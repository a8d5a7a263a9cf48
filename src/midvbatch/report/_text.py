"""The report's text-fields section: headline, tables per field type, field, collection,
condition, device and document, the accuracy after k frames (a table, and a plot in HTML),
the processor's own clip results, and the fields read worst (with their crops in HTML).

Renders Report.text, the plain-data form of results.textfigures.TextFigures.
"""

from __future__ import annotations

import html
from typing import Any

from midvbatch.report import _stream
from midvbatch.report._render import (
    ci_bounds,
    ci_text,
    curve_points,
    data_uri,
    fmt,
    fmt_ci,
    html_table,
    md_table,
    md_text,
    png,
    read_frame,
    shortened,
)
from midvbatch.scoring.text import COMBINATIONS

PROTOCOL = (
    "a field is correct when result and truth are equal once normalized (upper case, the letter O as the "
    "digit 0); NGLD = 2L / (|result| + |truth| + L), L the Levenshtein distance of the normalized strings; "
    "CER = L / |truth|; fields empty on the document ('*') are left out and counted"
)
COLUMNS = ("fields", "accuracy", "mean_ngld", "mean_cer", "missing", "empty")
CSV_COLUMNS = (
    "fields",
    "fields_correct",
    "text_accuracy",
    "mean_ngld",
    "mean_cer",
    "fields_missing",
    "fields_empty",
    "text_accuracy_ci_low",
    "text_accuracy_ci_high",
    "mean_ngld_ci_low",
    "mean_ngld_ci_high",
    "mean_cer_ci_low",
    "mean_cer_ci_high",
    "mean_frames",  # a stopping rule's (the video-stream rows: _stream.csv_rows)
)
PLOT = "text_accuracy_after_frames"  # the curve's plot name (its PNG beside an HTML --out)
CROP_HEIGHT = 40  # pixels, a worst field's crop

# the text tables, in page order: (grouping in TextFigures.groups, title); by clip only in JSON and CSV
SECTIONS = (
    ("type", "Text by field type"),
    ("field", "Text by field"),
    ("collection", "Text by collection"),
    ("condition", "Text by condition"),
    ("device", "Text by device"),
    ("document", "Text by document"),
)


def laid_out(text: dict[str, Any]) -> dict[str, Any]:
    """The section's figures as every format shows them: the worst fields' readings and true values
    cut to _render.SHOWN characters (a reading is stored up to 256, and a ledger of an earlier
    midvbatch may hold megabytes)."""
    worst = [{**w, "truth": shortened(w["truth"]), "text": shortened(w["text"])} for w in text["worst"]]
    return {**text, "worst": worst}


def _with_ci(agg: dict[str, Any], name: str, digits: int = 3) -> str:
    return fmt_ci(agg[name], (agg.get("ci") or {}).get(name), digits)


def _cells(agg: dict[str, Any]) -> list[str]:
    return [
        str(agg["fields"]),
        _with_ci(agg, "accuracy"),
        _with_ci(agg, "mean_ngld", 4),
        _with_ci(agg, "mean_cer", 4),
        str(agg["missing"]),
        fmt(agg["empty"]),
    ]


def _headline(text: dict[str, Any]) -> str | None:
    o = text["overall"]
    if o is None:
        return None
    interval = ci_text(o["accuracy"], (o.get("ci") or {}).get("accuracy"))
    return (
        f"Per-field accuracy **{fmt(o['accuracy'])}**{' ' + interval if interval else ''} over {o['fields']} fields in {text['frames']} frames "
        f"(a field of a frame counts once); mean NGLD {_with_ci(o, 'mean_ngld', 4)}, mean CER "
        f"{_with_ci(o, 'mean_cer', 4)}; fields not returned {o['missing']}; fields empty on the document ('*'), "
        f"left out: {o['empty']}."
    )


def _curve_rows(curves: dict[str, Any], points: list[int]) -> list[list[str]]:
    rows = []
    for label, curve in [("all", curves["overall"]), *curves["by_type"].items()]:
        for method in COMBINATIONS:
            values = curve[method]
            name = method if label == "all" else f"{method}, {label}"
            rows.append([name, *(fmt(values[min(k, len(values)) - 1]) for k in points), fmt(curve["per_frame"])])
    return rows


def _curve_note(curves: dict[str, Any]) -> str:
    o = curves["overall"]
    left = (
        f" {curves['left_out']} clips are left out: their frames show different documents."
        if curves["left_out"]
        else ""
    )
    return (
        f"Each field of {curves['clips']} video clips ({o['fields']} fields) read in the clip's first k frames, "
        "the results combined by a majority vote of the normalized strings, by taking the one of highest "
        "confidence, or by a vote per character among the results of the most common length (as MIDV-500 "
        "results are published). k = 1 is each clip's first frame alone; the per-frame "
        f"accuracy counts every frame of these clips on its own: {fmt(o['per_frame'])}.{left}"
    )


def _clip_results_line(text: dict[str, Any]) -> str:
    c = text["clip_results"]
    return (
        f"The processor's own results per clip (process_clip or finish_clip), {text['clips']} clips: accuracy "
        f"**{fmt(c['accuracy'])}** over {c['fields']} fields, mean NGLD {fmt(c['mean_ngld'], 4)}, "
        f"mean CER {fmt(c['mean_cer'], 4)}; fields not returned {c['missing']}; '*' left out {c['empty']}."
    )


_WORST_HEADER = ["document", "field", "type", "fields", "accuracy", "mean NGLD", "worst frame", "truth", "result"]


def markdown(text: dict[str, Any]) -> list[str]:
    """The section as Markdown lines (the crops are left to HTML)."""
    lines = ["## Text fields", ""]
    headline = _headline(text)
    if headline:
        lines += [headline, ""]
        for name, title in SECTIONS:
            if name in text["groups"]:
                table = text["groups"][name]
                lines += md_table(title, ["group", *COLUMNS], [[md_text(k), *_cells(a)] for k, a in table.items()])
    curves = text["curves"]
    if curves is not None:
        points = curve_points(len(curves["overall"]["majority"]))
        lines += ["### Text accuracy after k frames", "", _curve_note(curves), ""]
        lines += md_table(None, ["k", *map(str, points), "per frame"], _curve_rows(curves, points))
    if text.get("stream") is not None:
        lines += _stream.markdown(text["stream"])
    if text["clip_results"] is not None:
        lines += ["### Text: the processor's clip results", "", _clip_results_line(text), ""]
    if text["worst"]:
        rows = [
            [
                md_text(w["document"]),
                md_text(w["field"]),
                w["type"],
                str(w["fields"]),
                fmt(w["accuracy"]),
                fmt(w["mean_ngld"], 4),
                f"{md_text(w['clip'])} #{w['frame']}",
                f"`{md_text(w['truth'])}`",
                f"`{md_text(w['text'])}`" if w["text"] else "(nothing)",
            ]
            for w in text["worst"]
        ]
        lines += md_table("Worst fields (highest mean NGLD)", _WORST_HEADER, rows)
    return lines


def csv_rows(text: dict[str, Any]) -> list[list[Any]]:
    """Rows of (grouping, group, CSV_COLUMNS): overall ('text', 'all'), every text grouping
    ('text_<grouping>'), the clip results ('text_clip_results'), and the accuracy after k
    frames ('text_majority_after_frames', 'text_best_after_frames', 'text_characters_after_frames': group k,
    in text_accuracy)."""

    def row(grouping: str, group: str, a: dict[str, Any]) -> list[Any]:
        values = (a["fields"], a["correct"], a["accuracy"], a["mean_ngld"], a["mean_cer"], a["missing"], a["empty"])
        return [grouping, group, *values, *ci_bounds(a, ("accuracy", "mean_ngld", "mean_cer")), None]

    rows = [row("text", "all", text["overall"])] if text["overall"] is not None else []
    for name, table in text["groups"].items():
        rows += [row(f"text_{name}", key, a) for key, a in table.items()]
    if text["clip_results"] is not None:
        rows.append(row("text_clip_results", "all", text["clip_results"]))
        rows += [row("text_clip_results_type", key, a) for key, a in text["clip_results_by_type"].items()]
    if text["curves"] is not None:
        curve = text["curves"]["overall"]
        for method in COMBINATIONS:
            for k, value in enumerate(curve[method], 1):
                rows.append(
                    [f"text_{method}_after_frames", str(k), curve["fields"], None, value]
                    + [None] * (len(CSV_COLUMNS) - 3)
                )
    if text.get("stream") is not None:
        rows += _stream.csv_rows(text["stream"], len(CSV_COLUMNS) - 1)
    return rows


def plots(text: dict[str, Any]) -> dict[str, bytes]:
    """Draw the accuracy-after-k-frames curve ({PLOT: PNG bytes}; {} without video clips)."""
    curves = text["curves"]
    if curves is None:
        return {}
    extra = _stream.plots(text["stream"]) if text.get("stream") is not None else {}
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    o = curves["overall"]
    ks = list(range(1, len(o["majority"]) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ks, o["majority"], color="#3b7dd8", marker="o", markersize=3, label="majority vote")
    ax.plot(ks, o["best"], color="#5a9e4b", marker="s", markersize=3, linestyle="--", label="best confidence")
    ax.plot(ks, o["characters"], color="#9b59b6", marker="^", markersize=3, linestyle="-.", label="character vote")
    if o["per_frame"] is not None:
        ax.axhline(o["per_frame"], color="#d83b3b", linestyle=":", label="per frame")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0.5, len(ks) + 0.5)
    ax.set_xlabel("frames combined (k)")
    ax.set_ylabel("field accuracy")
    ax.set_title("Text accuracy after k frames")
    ax.legend(loc="lower right", fontsize=8)
    out = {PLOT: png(fig), **extra}
    plt.close(fig)
    return out


def crop(dataset: Any, worst: dict[str, Any]) -> bytes | None:
    """Cut a worst field out of its worst frame, upright, CROP_HEIGHT high; PNG bytes, or None
    when the dataset no longer gives that frame or the field's place in it."""
    import cv2

    from midvbatch.dataset.fields import clip_fields, field_crop
    from midvbatch.errors import MidvBatchError

    read = read_frame(dataset, worst["clip"], worst["frame"])
    if read is None:
        return None
    clip, image = read
    try:
        place = clip_fields(clip, [worst["frame"]]).get(worst["frame"], {}).get(worst["field"])
    except (MidvBatchError, TypeError):
        return None
    piece = field_crop(image, place.quad, CROP_HEIGHT) if place is not None else None
    if piece is None:
        return None
    ok, data = cv2.imencode(".png", piece)
    return data.tobytes() if ok else None


def html_section(text: dict[str, Any], images: dict[str, bytes], dataset: Any) -> str:
    """The section as HTML: the tables, the curve's plot (from `images`), the worst fields with
    their crops cut from `dataset`'s frames (none when `dataset` is None)."""
    parts = ["<h2>Text fields</h2>"]
    headline = _headline(text)
    if headline:
        bold = html.escape(headline).replace("**", "<b>", 1).replace("**", "</b>", 1)
        parts.append(f"<p class='headline'>{bold}</p>")
    if PLOT in images:
        parts.append(
            f"<figure><img alt='{PLOT}' src='{data_uri(images[PLOT], 'image/png')}'>"
            f"<figcaption>{PLOT.replace('_', ' ')}</figcaption></figure>"
        )
    if headline:
        for name, title in SECTIONS:
            if name in text["groups"]:
                rows = [[html.escape(k), *_cells(a)] for k, a in text["groups"][name].items()]
                parts.append(html_table(title, ["group", *COLUMNS], rows))
    curves = text["curves"]
    if curves is not None:
        points = curve_points(len(curves["overall"]["majority"]))
        parts.append(
            html_table(
                "Text accuracy after k frames", ["k", *map(str, points), "per frame"], _curve_rows(curves, points)
            )
            + f"<p>{html.escape(_curve_note(curves))}</p>"
        )
    if text.get("stream") is not None:
        parts.append(_stream.html_section(text["stream"], images))
    if text["clip_results"] is not None:
        line = html.escape(_clip_results_line(text)).replace("**", "<b>", 1).replace("**", "</b>", 1)
        parts.append(f"<h3>Text: the processor's clip results</h3><p>{line}</p>")
    if text["worst"]:
        rows = []
        for w in text["worst"]:
            data = crop(dataset, w) if dataset is not None else None
            alt = html.escape(f"{w['document']} {w['field']}")
            image = f"<img alt='{alt}' src='{data_uri(data, 'image/png')}'>" if data else ""
            rows.append(
                [
                    html.escape(w["document"]),
                    html.escape(w["field"]),
                    w["type"],
                    str(w["fields"]),
                    fmt(w["accuracy"]),
                    fmt(w["mean_ngld"], 4),
                    f"{html.escape(w['clip'])} #{w['frame']}",
                    image,
                    f"<code>{html.escape(w['truth'])}</code>",
                    f"<code>{html.escape(w['text'])}</code>" if w["text"] else "(nothing)",
                ]
            )
        header = [*_WORST_HEADER[:7], "crop", *_WORST_HEADER[7:]]
        parts.append(html_table("Worst fields (highest mean NGLD)", header, rows))
    return "".join(parts)
