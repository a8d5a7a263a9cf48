"""What every section of the report renders with: numbers, table cells, PNG images, data: URIs,
and a frame of the run's dataset read again (for the worst clips' thumbnails and the worst
fields' crops)."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from midvbatch.errors import MidvBatchError

TRUTH = (60, 200, 60)  # BGR: the ground truth drawn in green
PREDICTED = (60, 60, 230)  # a prediction in red
OTHER = (230, 120, 40)  # a second run's prediction in blue


def ci_text(value: Any, interval: list | None, digits: int = 3) -> str:
    """A figure's 95% interval as the tables show it, '[0.650, 0.850]'; '' where it has none (no figure, or a
    group of one clip)."""
    if value is None or not interval or interval[0] is None or interval[1] is None:
        return ""
    return f"[{fmt(interval[0], digits)}, {fmt(interval[1], digits)}]"


def fmt_ci(value: Any, interval: list | None, digits: int = 3) -> str:
    """A figure with its 95% interval: '0.757 [0.650, 0.850]'; the figure alone where it has none."""
    shown = ci_text(value, interval, digits)
    return f"{fmt(value, digits)} {shown}" if shown else fmt(value, digits)


def ci_bounds(agg: dict[str, Any], names: Iterable[str]) -> list[Any]:
    """The CSV's interval columns of an aggregate: low and high of each figure of `names` (None: none)."""
    ci = agg.get("ci") or {}
    return [bound for name in names for bound in (ci.get(name) or [None, None])]


def fmt(value: Any, digits: int = 3) -> str:
    """A figure as the tables show it: '-' for None, floats to `digits` places."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


SHOWN = 60  # characters of a reading (or a true value) a report shows; a longer one ends with an ellipsis
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # not tab or newline: md_text makes those spaces


def shortened(text: str, limit: int = SHOWN) -> str:
    """`text` cut to `limit` characters, its last an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def md_text(text: str) -> str:
    """A string in a Markdown table cell: pipes escaped, backticks as quotes, on one line, control
    characters (a terminal's escape sequences) written as escapes."""
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


CURVE_POINTS = (1, 2, 3, 5, 10, 15, 20, 30)  # the k a table of a curve after k frames shows


def curve_points(length: int) -> list[int]:
    """The k a table shows for a curve of `length` entries: CURVE_POINTS up to it, and its last."""
    points = [k for k in CURVE_POINTS if k <= length]
    return points if length in points else [*points, length]


def md_table(title: str | None, header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table under a ### `title` (None: none), as lines with a blank line after; cells formatted."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def html_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """An HTML table under an <h3> `title`; `rows` hold cells already escaped or formatted."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h3>{html.escape(title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes, as every plot of the report is saved."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """Inline `data` for an <img src>: the page needs nothing beside it."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def dataset_of(path: str | None, format: str | None = None) -> Any:
    """The dataset a run read (as `format`, None: told from the layout), for thumbnails and crops; None when it
    is no longer there."""
    from midvbatch.dataset import discover

    try:
        return discover(path, format) if path else None
    except MidvBatchError:
        return None


def frame_truth(clip: Any, number: int) -> Any:
    """The ground-truth quad of annotated frame `number` of `clip` (its file read alone), None when it has none or
    it cannot be read."""
    from midvbatch.dataset.formats import get_format

    if number not in clip.ground_truth:
        return None
    try:
        return get_format(clip.format).read_quads({number: clip.ground_truth[number]}).get(number)
    except (MidvBatchError, TypeError):
        return None


def drawn(image: np.ndarray, quads: Iterable[tuple[Any, tuple[int, int, int]]], *, width: int = 0,
          height: int = 0) -> bytes | None:  # fmt: skip
    """`image` scaled to `width` (else `height`) pixels with each (corners, colour) of `quads` drawn on it, after
    scaling so that the lines stay visible at thumbnail size; JPEG bytes. Corners that are None, or not points
    (a prediction of another shape), are left out."""
    import cv2

    scale = width / image.shape[1] if width else height / image.shape[0]
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    for points, colour in quads:
        if points is None or (isinstance(points, (list, tuple)) and not points):
            continue
        try:
            shown = np.round(np.array(points, dtype=np.float64) * scale).astype(np.int32).reshape(-1, 2)
            cv2.polylines(small, [shown], True, colour, 2)
        except (ValueError, TypeError, cv2.error):
            continue
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None


def read_frame(dataset: Any, clip_id: str, number: int) -> tuple[Any, np.ndarray] | None:
    """Decode annotated frame `number` of a clip of `dataset` again: (its Clip, the BGR image),
    or None when the dataset no longer has it or it cannot be read."""
    from midvbatch.video.frames import read_clip_frames

    try:
        clip = dataset.clip(clip_id)
        rule = clip.frame_rule
        picked = {number: clip.images[number]} if number in clip.images else {}
        frames = read_clip_frames(
            clip.video, count=number, fps=rule.fps, numbers=(number,) if rule.numbers else (), images=picked
        )
        frame = next(f for f in frames if f.number == number)
    except (MidvBatchError, StopIteration, TypeError):
        return None
    return clip, frame.image
