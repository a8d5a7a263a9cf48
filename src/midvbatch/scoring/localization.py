"""Document-localization metrics of MIDV-500, as Smart Engines publish them.

The protocol is the one of github.com/SmartEngines/hough_document_localization
(``metrics.py`` and ``run_stat.py``; Tropin et al., Computer Optics 45(5), 2021),
reimplemented here. For each frame, a predicted quad is scored against the ground-truth
quad with four metrics:

- ``iou``: Jaccard index of the two quads in frame pixels (exact polygon areas);
- ``iou_gt``: Jaccard index in the template's coordinates (SmartDoc-15): the prediction
  is warped by the homography taking the ground truth onto the template rectangle;
- ``mean_iou``: mean of the foreground and background Jaccard indices of the two quads
  rasterized in the frame, with OpenCV exactly as the reference does;
- ``min_d``: the largest corner distance, in template units, after the homography
  taking the prediction onto the template rectangle, minimized over the 4 cyclic
  relabelings of the corners, divided by the template perimeter.

A frame is correct when iou, iou_gt or mean_iou is >= 0.9, or min_d <= 0.017 (with the
reference's 1e-10 tolerance). A frame without prediction scores 0 and has no min_d.

Where the reference is undefined, this module decides (and says so):

- a quad's region is the set of points it winds around, so a self-intersecting
  ("bow-tie") quad covers both its lobes; the reference mixes shoelace areas with
  polygon-clipper intersections there and can leave [0, 1];
- a prediction that crosses the ground truth's vanishing line warps to an unbounded
  region, so its iou_gt is 0 (the reference warps its corners through infinity);
- a prediction without a homography onto the template (three corners on a line) has
  ``min_d = inf``, the worst score; so has a ground-truth corner on the prediction's
  vanishing line (where the reference's ``assert d != 0`` fails);
- a 0/0 term of mean_iou (no foreground or no background pixel at all, where the
  reference stops in ``breakpoint()``) counts as 0;
- a prediction that is not four finite corners is scored as no prediction;
- a prediction reaching beyond 2**20 pixels is cut to that box before rasterization
  (the reference's int32 cast is undefined past 2**31, and OpenCV walks every row).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from midvbatch.dataset.catalog import ID1, physical_template_size
from midvbatch.dataset.groundtruth import Quad
from midvbatch.errors import MidvBatchError
from midvbatch.fileio import IMAGE_LIMIT, read_bytes
from midvbatch.geometry import (
    Point,
    Region,
    clip_convex,
    cross,
    intersection_area,
    points,
    project,
    quad_homography,
    quad_region,
    rectangle,
    region_area,
)

METRICS: tuple[str, ...] = ("iou", "iou_gt", "mean_iou", "min_d")
THRESHOLDS: dict[str, float] = {"iou": 0.9, "iou_gt": 0.9, "mean_iou": 0.9, "min_d": 0.017}
# run_stat.py compares with `score > THRESHOLD - 1e-10` and `score < RESIDUALS_THRESHOLD + 1e-10`.
_TOLERANCE = 1e-10


def template_size(document: str, template_image_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Return the (width, height) of a document's template rectangle for the metrics.

    `document` is a folder name such as ``01_alb_id`` (the number is optional). Known
    physical formats come first, in tenths of a millimetre (856 x 540 for an ID-1 card);
    other documents get `template_image_size`, the template image's (width, height) in
    pixels. Raises ValueError when neither is known.
    """
    known = physical_template_size(document)  # the catalog's one table, which the synthesizer draws by too
    if known is not None:
        return known
    # no stand-in format here (the synthesizer's is a guess): the template picture's own aspect ratio is right
    if template_image_size is not None:
        w, h = (int(v) for v in template_image_size)
        if w > 0 and h > 0:
            return (w, h)
        raise ValueError(f"template image size must be positive, got {template_image_size!r}")
    raise ValueError(f"no known physical size for document {document!r}: pass its template image size")


def document_template_size(document: str, template_image: str | Path | None) -> tuple[int, int]:
    """Return a document's template size, reading its template image only when the format is unknown.

    Falls back to an ID-1 card (856 x 540) when the format is unknown and the image is
    missing, unreadable, not a regular file or larger than fileio.IMAGE_LIMIT: only
    min_d depends on the size, through w / h.
    """
    try:
        return template_size(document)  # the scoring's one source of truth: a known format, the picture unread
    except ValueError:
        pass
    if template_image is not None:
        try:
            data = read_bytes(template_image, IMAGE_LIMIT, what="a template image")
        except MidvBatchError:
            return ID1  # missing, not a regular file, too large
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if picture is not None:
            return template_size(document, (picture.shape[1], picture.shape[0]))
    return ID1  # a run scores every clip rather than stop at one bad picture: min_d then assumes a card's w / h


@dataclass(frozen=True)
class FrameScore:
    """The four scores of one frame; ``min_d`` is None when there was no prediction."""

    iou: float
    iou_gt: float
    mean_iou: float
    min_d: float | None

    def correct(self, metric: str = "iou_gt") -> bool:
        """Tell whether the frame passes the threshold of `metric` (a name in METRICS)."""
        if metric not in THRESHOLDS:
            raise ValueError(f"unknown metric {metric!r}, expected one of {', '.join(METRICS)}")
        value = getattr(self, metric)
        if metric == "min_d":
            return value is not None and value < THRESHOLDS[metric] + _TOLERANCE
        return value > THRESHOLDS[metric] - _TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        """Return the scores and ``correct`` (by iou_gt) as a JSON-ready dict.

        ``min_d`` may be ``inf`` (no homography), which json writes as ``Infinity``.
        """
        return {
            "iou": self.iou,
            "iou_gt": self.iou_gt,
            "mean_iou": self.mean_iou,
            "min_d": self.min_d,
            "correct": self.correct(),
        }


MISSING = FrameScore(0.0, 0.0, 0.0, None)  # the score of a frame without prediction


# --- quads ------------------------------------------------------------------------------


def as_corners(quad: Any) -> np.ndarray | None:
    """Return a (4, 2) float64 array of finite corners, or None if `quad` is not one."""
    if isinstance(quad, Quad):
        quad = quad.points
    try:
        arr = np.asarray(quad, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size != 8 or arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape != (4, 2)):
        return None
    arr = arr.reshape(4, 2)
    if not np.isfinite(arr).all():
        return None
    return arr


def _require_corners(quad: Any, what: str) -> np.ndarray:
    arr = as_corners(quad)
    if arr is None:
        raise ValueError(f"{what} must be 4 finite [x, y] corners, got {quad!r}")
    return arr


def _positive_size(size: Any, what: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return w, h


# --- exact areas (midvbatch.geometry) --------------------------------------------------


def _jaccard(a: Region, b: Region) -> float:
    """Return the Jaccard index of two regions of geometry.quad_region, clamped to [0, 1]."""
    area_a, area_b = region_area(a), region_area(b)
    inter = intersection_area(a, b)
    if not math.isfinite(inter + area_a + area_b):
        return 0.0  # coordinates so large that their products overflow: score as worst
    # Rounding may push the intersection a hair past the smaller area (the reference
    # clamps the same way); an empty union (two zero-area quads) scores 0.
    inter = min(max(inter, 0.0), area_a, area_b)
    union = area_a + area_b - inter
    if union <= 0.0:
        return 0.0
    return min(1.0, max(0.0, inter / union))


def polygon_iou(a: Any, b: Any) -> float:
    """Return the Jaccard index of two quads, from exact areas (no rasterization).

    Quads are Quad values or 4 [x, y] corners in any order of travel. A self-intersecting
    quad covers both lobes of its bow-tie. The result is in [0, 1]; 0 when both quads have
    zero area. Raises ValueError when a quad is not 4 finite corners.
    """
    pa = quad_region(points(_require_corners(a, "quad a")))
    pb = quad_region(points(_require_corners(b, "quad b")))
    return _jaccard(pa, pb)


# --- the four metrics -------------------------------------------------------------------


# Homographies are solved in float64 (geometry.quad_homography); the reference rounds corners
# to float32 first: differences of the order of 1e-7 in the scores.


def _iou_gt(pred: list[Point], gt: list[Point], rect: list[Point]) -> float:
    h = quad_homography(gt, rect)
    if h is None:
        return 0.0
    side = 1.0 if sum(project(h, p)[2] for p in gt) > 0 else -1.0
    mapped = [project(h, p) for p in pred]
    if any(w * side <= 0.0 for _, _, w in mapped):
        # The prediction reaches the ground truth's vanishing line: its warped region is
        # unbounded (or entirely off the rectangle), so the Jaccard index is 0.
        return 0.0
    return _jaccard(quad_region([(x / w, y / w) for x, y, w in mapped]), [(1, rect)])


# OpenCV walks every scanline from a polygon's top to its bottom, even off the image:
# corners a million pixels away cost a millisecond, 2**31 pixels away seconds.
_RASTER_LIMIT = float(2**20)
_RASTER_BOX = [
    (-_RASTER_LIMIT, -_RASTER_LIMIT), (_RASTER_LIMIT, -_RASTER_LIMIT),
    (_RASTER_LIMIT, _RASTER_LIMIT), (-_RASTER_LIMIT, _RASTER_LIMIT),
]  # fmt: skip


def _raster_corners(q: np.ndarray) -> np.ndarray:
    """Return the polygon's corners as the reference draws them: truncated toward zero.

    A quad reaching beyond 2**20 pixels (no real prediction does) is first cut to that
    box, which keeps its region but not the reference's exact edge pixels.
    """
    if np.abs(q).max() > _RASTER_LIMIT:
        q = np.array(clip_convex(points(q), _RASTER_BOX), np.float64).reshape(-1, 2)
    return np.trunc(q).astype(np.int64)


def _canvas(quad: np.ndarray, frame: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """A blank canvas of the quad's bounding box clipped to the frame, and the shift of its origin;
    None when the box is empty."""
    width, height = frame
    (x0, y0), (x1, y1) = quad.min(axis=0).tolist(), quad.max(axis=0).tolist()
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width - 1, x1), min(height - 1, y1)
    if x0 > x1 or y0 > y1:
        return None
    return np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8), np.array([x0, y0], np.int64)


def _mean_iou(pred: np.ndarray, gt: np.ndarray, frame: tuple[int, int]) -> float:
    """Rasterize like the reference (int32 truncation, cv2.fillConvexPoly, W x H frame).

    Only bounding boxes, clipped to the frame, are drawn: OpenCV's rasterization is the same
    under integer shifts as long as the clipping edges stay the frame's, and every pixel
    outside a quad's box is background for it. The ground truth is drawn in its box; both
    quads in the box of the two: the intersection is what each covers less what they cover
    together (no second canvas of the union's size, no pixelwise AND).
    """
    width, height = frame
    a, b = _raster_corners(pred), _raster_corners(gt)
    count_b = union = 0
    if len(b) and (drawn := _canvas(b, frame)) is not None:
        canvas, shift = drawn
        cv2.fillConvexPoly(canvas, (b - shift).astype(np.int32), 1)
        count_b = cv2.countNonZero(canvas)
    both = np.vstack([a, b])
    if len(both) and (drawn := _canvas(both, frame)) is not None:
        canvas, shift = drawn
        if len(a):
            cv2.fillConvexPoly(canvas, (a - shift).astype(np.int32), 1)
        count_a = cv2.countNonZero(canvas)
        if len(b):
            cv2.fillConvexPoly(canvas, (b - shift).astype(np.int32), 1)
        union = cv2.countNonZero(canvas)
    else:
        count_a = 0
    count_ab = count_a + count_b - union
    total = width * height
    fg = count_ab / union if union else 0.0
    bg_union = total - count_ab
    bg = (total - union) / bg_union if bg_union else 0.0
    return (fg + bg) / 2.0


def _orient(q: list[Point]) -> list[Point]:
    """Give the quad the reference's orientation, judged (as it does) at corner 1 only."""
    if cross(q[0], q[1], q[2]) > 0:
        return q
    return [q[1], q[0], q[3], q[2]]


def _min_d(pred: list[Point], gt: list[Point], size: tuple[int, int], rect: list[Point]) -> float:
    pred, gt = _orient(pred), _orient(gt)
    h = quad_homography(pred, rect)
    if h is None:
        return math.inf
    mapped = [project(h, p) for p in gt]
    if any(w == 0.0 for _, _, w in mapped):
        return math.inf
    corners = [(x / w, y / w) for x, y, w in mapped]
    # the largest corner distance under each of the 4 cyclic relabelings (corner i - k onto rect's i)
    worst = min(
        max(math.hypot(corners[(i - k) % 4][0] - rx, corners[(i - k) % 4][1] - ry) for i, (rx, ry) in enumerate(rect))
        for k in range(4)
    )
    score = worst / (2.0 * (size[0] + size[1]))
    return score if math.isfinite(score) else math.inf  # overflow on absurd corners


@functools.lru_cache(maxsize=64)
def _rectangle(size: tuple[int, int]) -> list[Point]:
    """The template rectangle's corners (a run scores many frames against a few: made once each)."""
    return points(rectangle(*size))


def score_frame(
    pred: Any,
    gt: Any,
    frame_size: tuple[int, int],
    template_size: tuple[int, int],
) -> FrameScore:
    """Score one frame's predicted quad against its ground truth.

    `pred` is a Quad, 4 [x, y] corners (or a flat list of 8 numbers) in frame pixels, or
    None when the processor found no document; anything that is not 4 finite corners is
    scored as None. `gt` is the ground-truth quad; corners outside the frame are normal.
    `frame_size` is the frame's (W, H) in pixels; `template_size` is the template's
    (w, h) (see template_size()). Never raises for a bad prediction; raises ValueError
    for a malformed ground truth or size.
    """
    truth = _require_corners(gt, "ground-truth quad")
    frame = _positive_size(frame_size, "frame size")
    size = _positive_size(template_size, "template size")
    corners = as_corners(pred) if pred is not None else None
    if corners is None:
        return MISSING
    rect = _rectangle(size)
    pred_points, truth_points = points(corners), points(truth)
    # Absurd but finite corners (1e200) overflow; the results are guarded, the warnings noise.
    with np.errstate(all="ignore"):
        return FrameScore(
            iou=_jaccard(quad_region(pred_points), quad_region(truth_points)),
            iou_gt=_iou_gt(pred_points, truth_points, rect),
            mean_iou=_mean_iou(corners, truth, frame),
            min_d=_min_d(pred_points, truth_points, size, rect),
        )


def aggregate(scores: Iterable[FrameScore]) -> dict[str, Any]:
    """Summarize frames as run_stat.py does: accuracy and mean of each metric.

    Keys: ``frames``; ``accuracy`` (the headline, iou_gt's); ``accuracy_<metric>`` (share
    of frames that pass, frames without prediction counting as failures); ``mean_<metric>``
    (frames without prediction count 0 for the iou metrics and are skipped for min_d);
    ``missing`` (frames without prediction). Note that ``mean_iou`` is the mean of *iou*;
    the mean of the mean_iou metric is ``mean_mean_iou``. Shares and means are None when
    there is no frame (or, for min_d, no frame with a prediction).
    """
    frames = list(scores)
    n = len(frames)
    out: dict[str, Any] = {"frames": n}
    for metric in METRICS:
        out[f"accuracy_{metric}"] = sum(f.correct(metric) for f in frames) / n if n else None
    for metric in METRICS:
        values = [getattr(f, metric) for f in frames]
        values = [v for v in values if v is not None]
        out[f"mean_{metric}"] = math.fsum(values) / len(values) if values else None
    out["accuracy"] = out["accuracy_iou_gt"]
    out["missing"] = sum(f.min_d is None for f in frames)
    return out
