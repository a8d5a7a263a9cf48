"""The report's "Video stream" section: the error after k frames combined, per combiner, and the stopping
rules' trade-off between frames read and error at the stop (a table in md, a plot in HTML, rows in CSV).

Renders Report.text["stream"], the plain-data form of results.stopping.StreamFigures.
"""

from __future__ import annotations

import html
from typing import Any

from midvbatch.report._render import curve_points, data_uri, fmt, html_table, md_table, png
from midvbatch.results.stopping import RULES, STREAM_COMBINATIONS

PLOT = "video_stream"
NAMES = {
    "majority": "majority vote",
    "best": "best confidence",
    "characters": "character vote",
    "alternatives": "alternatives (Bulatov)",
}
RULE_NAMES = {"fixed": "fixed N", "stable": "stable K", "expected_distance": "expected distance T"}


def note(stream: dict[str, Any]) -> str:
    o = stream["overall"]
    return (
        f"Each field of {stream['clips']} video clips ({o['fields']} fields) read frame after frame. Mean NGLD of "
        "the result combined after k frames: by the whole-string rules, and by combining the readings' "
        "per-character alternatives (a reading without them counts as certain of its text). The stopping "
        "rules decide after each frame on the combination with alternatives: fixed N stops after N frames, "
        "stable K when its string has not changed for K frames, expected distance T at the first frame n >= 2 "
        "whose estimate D_n of the distance one more frame would move the result is at most T (else at the "
        "clip's last frame); each row gives the mean frames read and the mean NGLD and accuracy at the stop."
    )


def _curve_rows(stream: dict[str, Any], points: list[int]) -> list[list[str]]:
    rows = []
    for method in STREAM_COMBINATIONS:
        values = stream["overall"]["ngld"][method]
        rows.append([NAMES[method], *(fmt(values[min(k, len(values)) - 1], 4) for k in points)])
    for type_, curve in stream["by_type"].items():
        values = curve["ngld"]["alternatives"]
        rows.append([f"alternatives, {type_}", *(fmt(values[min(k, len(values)) - 1], 4) for k in points)])
    return rows


def _rule_rows(points: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [RULE_NAMES[p["rule"]], f"{p['threshold']:g}", fmt(p["mean_frames"], 2), fmt(p["mean_ngld"], 4),
         fmt(p["accuracy"])]
        for p in points
    ]  # fmt: skip


_RULE_HEADER = ["rule", "threshold", "mean frames", "mean NGLD", "accuracy"]


def markdown(stream: dict[str, Any]) -> list[str]:
    points = curve_points(len(stream["overall"]["ngld"]["alternatives"]))
    lines = ["### Video stream", "", note(stream), ""]
    lines += md_table("Mean NGLD after k frames", ["k", *map(str, points)], _curve_rows(stream, points))
    lines += md_table("Stopping rules (the combination with alternatives)", _RULE_HEADER, _rule_rows(stream["rules"]))
    return lines


def csv_rows(stream: dict[str, Any], width: int) -> list[list[Any]]:
    """Rows of (grouping, group, the text section's `width` columns, mean_frames): ``stream_<combiner>_after_frames``
    (group k; mean_ngld, and text_accuracy for the alternatives), ``stream_<rule>`` (group the threshold) and
    ``stream_<rule>_<field type>``."""

    def row(grouping: str, group: str, fields: int, accuracy: Any, ngld: Any, frames: Any = None) -> list[Any]:
        return [grouping, group, fields, None, accuracy, ngld, *([None] * (width - 4)), frames]

    o = stream["overall"]
    rows = []
    for method in STREAM_COMBINATIONS:
        for k, value in enumerate(o["ngld"][method], 1):
            accuracy = o["accuracy"][k - 1] if method == "alternatives" else None
            rows.append(row(f"stream_{method}_after_frames", str(k), o["fields"], accuracy, value))
    for label, points in [("", stream["rules"]), *((f"_{t}", p) for t, p in stream["rules_by_type"].items())]:
        for p in points:
            rows.append(
                row(f"stream_{p['rule']}{label}", f"{p['threshold']:g}", p["fields"], p["accuracy"], p["mean_ngld"],
                    p["mean_frames"])
            )  # fmt: skip
    return rows


def plots(stream: dict[str, Any]) -> dict[str, bytes]:
    """The error after k frames per combiner, and the trade-off of each rule (one curve per rule, fixed N the
    reference)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    o = stream["overall"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    styles = {"majority": ("#3b7dd8", "o", "-"), "best": ("#5a9e4b", "s", "--"),
              "characters": ("#9b59b6", "^", "-."), "alternatives": ("#d8773b", "D", "-")}  # fmt: skip
    for method in STREAM_COMBINATIONS:
        values = o["ngld"][method]
        color, marker, line = styles[method]
        left.plot(range(1, len(values) + 1), values, color=color, marker=marker, markersize=3, linestyle=line,
                  label=NAMES[method])  # fmt: skip
    left.set_xlabel("frames combined (k)")
    left.set_ylabel("mean NGLD")
    left.set_title("Error after k frames")
    left.legend(fontsize=8)
    rule_styles = {"fixed": ("#555555", ":"), "stable": ("#3b7dd8", "--"), "expected_distance": ("#d8773b", "-")}
    for rule in RULES:
        points = sorted((p for p in stream["rules"] if p["rule"] == rule), key=lambda p: p["mean_frames"])
        if points:
            color, line = rule_styles[rule]
            right.plot([p["mean_frames"] for p in points], [p["mean_ngld"] for p in points], color=color,
                       linestyle=line, marker="o", markersize=3, label=RULE_NAMES[rule])  # fmt: skip
    right.set_xlabel("mean frames at the stop")
    right.set_ylabel("mean NGLD at the stop")
    right.set_title("Stopping rules")
    right.legend(fontsize=8)
    fig.tight_layout()
    out = {PLOT: png(fig)}
    plt.close(fig)
    return out


def html_section(stream: dict[str, Any], images: dict[str, bytes]) -> str:
    points = curve_points(len(stream["overall"]["ngld"]["alternatives"]))
    parts = ["<h3>Video stream</h3>", f"<p>{html.escape(note(stream))}</p>"]
    if PLOT in images:
        parts.append(
            f"<figure><img alt='{PLOT}' src='{data_uri(images[PLOT], 'image/png')}'>"
            "<figcaption>video stream: error after k frames, and the stopping rules</figcaption></figure>"
        )
    parts.append(html_table("Mean NGLD after k frames", ["k", *map(str, points)], _curve_rows(stream, points)))
    parts.append(
        html_table("Stopping rules (the combination with alternatives)", _RULE_HEADER, _rule_rows(stream["rules"]))
    )
    return "".join(parts)
