"""Localization metrics: hand-worked values, independent computations, properties, real quads."""

from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midvbatch.dataset.catalog import MIDV500_DOCUMENTS
from midvbatch.dataset.groundtruth import Quad, load_frame_quad
from midvbatch.scoring import (
    METRICS,
    TEMPLATE_SIZES,
    THRESHOLDS,
    FrameScore,
    aggregate,
    document_template_size,
    polygon_iou,
    score_frame,
    template_size,
)

FRAME = (1080, 1920)
ID1 = (856, 540)
GT = [[139, 678], [940, 689], [966, 1180], [88, 1167]]  # CA43_01, a real ground truth
UNIT = [[0, 0], [1, 0], [1, 1], [0, 1]]
UNIT_40 = [[0, 0], [40, 0], [40, 40], [0, 40]]
TILTED = [[400, 500], [700, 500], [1000, 1400], [0, 1400]]  # a card seen at a steep angle


def _shift(quad, dx, dy=0.0):
    return [[x + dx, y + dy] for x, y in quad]


def _to_frame(template_points, gt, size=ID1):
    """Map template-rectangle points into the frame with the inverse of the gt homography."""
    w, h = size
    rect = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    inv = np.linalg.inv(cv2.findHomography(np.array(gt, np.float64), rect)[0])
    pts = np.array(template_points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, inv).reshape(-1, 2).tolist()


def _cross2(u, v):
    return u[0] * v[1] - u[1] * v[0]


def _assert_in_range(score: FrameScore):
    for value in (score.iou, score.iou_gt, score.mean_iou):
        assert 0.0 <= value <= 1.0
    assert score.min_d is None or score.min_d >= 0.0


# --- hand-worked values -------------------------------------------------------------------


def test_metrics_identical_quads_are_perfect():
    score = score_frame(GT, GT, FRAME, ID1)
    assert score.iou == pytest.approx(1.0, abs=1e-12)
    assert score.iou_gt == pytest.approx(1.0, abs=1e-12)
    assert score.mean_iou == 1.0
    assert score.min_d == pytest.approx(0.0, abs=1e-12)
    assert all(score.correct(m) for m in METRICS)


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        (_shift(UNIT, 0.5), 1 / 3),  # overlap 0.5, union 1.5
        (_shift(UNIT, 0.5, 0.5), 0.25 / 1.75),
        (_shift(UNIT, 1.0), 0.0),  # touching edges
        (_shift(UNIT, 3.0, 3.0), 0.0),
        ([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]], 0.25),  # inside
    ],
)
def test_metrics_polygon_iou_of_unit_squares(b, expected):
    assert polygon_iou(UNIT, b) == pytest.approx(expected, abs=1e-12)
    assert polygon_iou(b, UNIT) == pytest.approx(expected, abs=1e-12)


def test_metrics_iou_gt_is_measured_in_the_template():
    # A prediction shifted by a tenth of the template height *in template units*, seen
    # through the perspective of CA43_01 and of a steeply tilted card: iou_gt is the
    # template-space value (540 - 54) / (540 + 54), while the frame-space iou differs.
    for gt in (GT, TILTED):
        pred = _to_frame(_shift([[0, 0], [856, 0], [856, 540], [0, 540]], 0, 54), gt)
        score = score_frame(pred, gt, FRAME, ID1)
        assert score.iou_gt == pytest.approx(486 / 594, abs=1e-9)
        # Template sizes are affine images of each other: iou_gt does not depend on them.
        assert score_frame(pred, gt, FRAME, (1000, 1000)).iou_gt == pytest.approx(score.iou_gt)
    assert abs(score.iou - score.iou_gt) > 0.01  # strong perspective: frame pixels differ


def test_metrics_min_d_of_one_moved_corner():
    # The prediction is the template rectangle itself, so its homography is the identity:
    # the ground truth's third corner is 50 template units (30, 40) off.
    pred = [[0, 0], [856, 0], [856, 540], [0, 540]]
    gt = [[0, 0], [856, 0], [886, 580], [0, 540]]
    assert score_frame(pred, gt, (2000, 2000), ID1).min_d == pytest.approx(50 / 2792, abs=1e-12)
    # Same in a translated frame position (the homography is then a translation).
    moved = score_frame(_shift(pred, 100, 200), _shift(gt, 100, 200), (2000, 2000), ID1)
    assert moved.min_d == pytest.approx(50 / 2792, abs=1e-12)


@pytest.mark.parametrize("start", [0, 1, 2, 3])
@pytest.mark.parametrize("reverse", [False, True])
def test_metrics_corner_relabeling_of_the_same_polygon_is_perfect(start, reverse):
    pred = GT[start:] + GT[:start]
    pred = pred[::-1] if reverse else pred
    score = score_frame(pred, GT, FRAME, ID1)
    assert score.iou == pytest.approx(1.0, abs=1e-12)
    assert score.iou_gt == pytest.approx(1.0, abs=1e-12)
    assert score.mean_iou == 1.0
    assert score.min_d == pytest.approx(0.0, abs=1e-9)


def test_metrics_mean_iou_hand_worked_in_a_small_frame():
    # OpenCV fills a polygon with its boundary pixels: [0, 4] x [0, 4] is 25 pixels.
    a = [[0, 0], [4, 0], [4, 4], [0, 4]]
    b = _shift(a, 2)  # 25 pixels, 15 shared
    fg, bg = 15 / 35, (100 - 35) / (100 - 15)
    assert score_frame(b, a, (10, 10), (5, 5)).mean_iou == pytest.approx((fg + bg) / 2)


def test_metrics_mean_iou_clips_quads_partly_outside_the_frame():
    a = [[-5, -5], [4, -5], [4, 4], [-5, 4]]  # 25 pixels inside the frame
    b = [[2, 2], [8, 2], [8, 8], [2, 8]]  # 49 pixels, 9 shared
    fg, bg = 9 / 65, (100 - 65) / (100 - 9)
    assert score_frame(a, b, (10, 10), (5, 5)).mean_iou == pytest.approx((fg + bg) / 2)
    # The reference truncates toward zero: -0.7 is pixel 0, 4.9 is pixel 4.
    fractional = [[-5.9, -5.9], [4.9, -5.9], [4.9, 4.9], [-5.9, 4.9]]
    assert score_frame(fractional, b, (10, 10), (5, 5)).mean_iou == pytest.approx((fg + bg) / 2)


@pytest.mark.parametrize(
    "quads",
    [
        (_shift(UNIT_40, -50, -50), _shift(UNIT_40, -45, -45)),
        ([[-5, -5], [20, -5], [20, 20], [-5, 20]], [[-9, -9], [30, -9], [30, 30], [-9, 30]]),
    ],
    ids=["both-outside", "both-cover-the-frame"],
)
def test_metrics_mean_iou_of_an_empty_term_is_zero(quads):
    # No foreground (or no background) pixel at all: 0/0, where the reference stops.
    pred, gt = quads
    assert score_frame(pred, gt, (10, 10), (5, 5)).mean_iou == pytest.approx(0.5)


def _reference_mean_iou(a, b, frame):
    """The reference's computation, naively: both quads drawn on the whole frame."""
    width, height = frame
    img_a = np.zeros((height, width), np.uint8)
    img_b = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(img_a, np.array(a).astype(np.int32), 1)
    cv2.fillConvexPoly(img_b, np.array(b).astype(np.int32), 1)
    fg = (img_a & img_b).sum() / (img_a | img_b).sum()
    na, nb = 1 - img_a, 1 - img_b
    return (fg + (na & nb).sum() / (na | nb).sum()) / 2


def test_metrics_mean_iou_equals_whole_frame_rasterization_on_real_quads(real_data):
    coco = json.loads((real_data / "midv500_coco.json").read_text())
    quads = [np.array(a["segmentation"][0], float).reshape(4, 2) for a in coco["annotations"]]
    rng = np.random.default_rng(7)
    outside = sum(bool((q[:, 0] < 0).any() or (q[:, 0] > FRAME[0]).any()) for q in quads)
    assert outside > 10  # the sample does exercise clipping
    for i in range(0, len(quads) - 1, 3):
        pred = quads[i + 1] + rng.normal(0, 20, (4, 2))
        expected = _reference_mean_iou(pred, quads[i], FRAME)
        score = score_frame(pred, quads[i], FRAME, ID1)
        assert score.mean_iou == pytest.approx(expected, abs=1e-12)


# --- degenerate predictions ---------------------------------------------------------------


def test_metrics_no_prediction_scores_zero_and_is_incorrect():
    score = score_frame(None, GT, FRAME, ID1)
    assert (score.iou, score.iou_gt, score.mean_iou, score.min_d) == (0.0, 0.0, 0.0, None)
    assert not any(score.correct(m) for m in METRICS)
    assert score.to_dict() == {
        "iou": 0.0, "iou_gt": 0.0, "mean_iou": 0.0, "min_d": None, "correct": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    "pred",
    [
        [[500, 900], [500, 900], [500, 900], [500, 900]],  # a point
        [[100, 700], [500, 900], [900, 1100], [300, 800]],  # all on one line
        [[139, 678], [966, 1180], [940, 689], [88, 1167]],  # bow-tie of the ground truth
        [[139, 678], [940, 689], [966, 1180], [540, 684]],  # three corners on a line
        [[1e200, 0], [0, 1e200], [-1e200, 0], [0, -1e200]],  # finite but absurd
        [[-640, 100], [2000, 100], [2000, 3000], [-640, 3000]],  # covers the whole frame
    ],
    ids=["point", "segment", "bow-tie", "triangle", "huge", "cover"],
)
def test_metrics_degenerate_predictions_are_scored_in_range(pred):
    score = score_frame(pred, GT, FRAME, ID1)
    _assert_in_range(score)
    assert score.min_d is not None
    assert score.to_dict()["correct"] is False


@pytest.mark.parametrize(
    "pred",
    [
        [[math.nan, 0], [1, 0], [1, 1], [0, 1]],
        [[math.inf, 0], [1, 0], [1, 1], [0, 1]],
        [[0, 0], [1, 0], [1, 1]],
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
        "quad",
        [[0, 0], [1, 0], [1, "x"], [0, 1]],
    ],
    ids=["nan", "inf", "three-corners", "3d", "text", "not-a-number"],
)
def test_metrics_malformed_predictions_count_as_missing(pred):
    assert score_frame(pred, GT, FRAME, ID1) == score_frame(None, GT, FRAME, ID1)


def test_metrics_bow_tie_covers_both_lobes():
    # Lobes (0,0)-(0.5,0.5)-(0,1) and (1,0)-(0.5,0.5)-(1,1): area 0.5, all inside the square.
    bow_tie = [[0, 0], [1, 1], [1, 0], [0, 1]]
    assert polygon_iou(bow_tie, UNIT) == pytest.approx(0.5)
    assert polygon_iou(bow_tie, bow_tie) == pytest.approx(1.0)
    assert polygon_iou(bow_tie, [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]) == pytest.approx(0.25 / 0.75)


def test_metrics_zero_area_quads_have_iou_zero():
    point = [[1, 1]] * 4
    assert polygon_iou(point, point) == 0.0
    assert polygon_iou(point, UNIT) == 0.0


def test_metrics_concave_quad_iou():
    # The triangle (0,0)-(1,0)-(1,1) with a notch to (0.5, 0.25): area 0.5 - 0.125.
    notch = [[0, 0], [1, 0], [1, 1], [0.5, 0.25]]
    assert polygon_iou(notch, UNIT) == pytest.approx(0.375)
    assert polygon_iou(notch, [[0, 0], [1, 0], [1, 1], [1, 1]]) == pytest.approx(0.75)
    assert polygon_iou(notch, notch[3:] + notch[:3]) == pytest.approx(1.0)
    dart = [[0, 0], [1, 0.5], [0, 1], [0.5, 0.5]]  # area 0.25, reflex corner at (0.5, 0.5)
    assert polygon_iou(dart, UNIT) == pytest.approx(0.25)
    assert polygon_iou(dart, notch) == pytest.approx(polygon_iou(notch, dart))


def test_metrics_polygon_iou_rejects_non_quads():
    with pytest.raises(ValueError, match="4 finite"):
        polygon_iou([[0, 0], [1, 0], [1, 1]], UNIT)
    with pytest.raises(ValueError, match="4 finite"):
        polygon_iou([[0, 0], [1, 0], [1, math.nan], [0, 1]], UNIT)


def test_metrics_malformed_ground_truth_or_size_raises():
    with pytest.raises(ValueError, match="ground-truth"):
        score_frame(GT, [[0, 0], [1, 0]], FRAME, ID1)
    with pytest.raises(ValueError, match="frame size"):
        score_frame(GT, GT, (0, 1920), ID1)
    with pytest.raises(ValueError, match="template size"):
        score_frame(GT, GT, FRAME, (856,))


def test_metrics_accepts_quads_and_flat_lists():
    flat = [v for corner in GT for v in corner]
    expected = score_frame(GT, GT, FRAME, ID1)
    assert score_frame(Quad.from_list(GT), Quad.from_list(GT), FRAME, ID1) == expected
    assert score_frame(flat, GT, FRAME, ID1) == expected
    assert score_frame(np.array(GT), np.array(GT), FRAME, ID1) == expected


def test_metrics_prediction_across_the_vanishing_line_has_iou_gt_zero():
    # A quad far along the perspective of the real ground truth crosses the line that the
    # homography sends to infinity; warped, it is unbounded.
    rect = np.float32([[0, 0], [856, 0], [856, 540], [0, 540]])
    h = cv2.getPerspectiveTransform(np.float32(GT), rect)
    a, b, _ = h[2]  # vanishing line a x + b y + 1 = 0
    x = np.array([-1e5, 1e5])
    y = -(a * x + 1) / b  # two points on it
    pred = [[x[0], y[0] - 10], [x[1], y[1] - 10], [x[1], y[1] + 10], [x[0], y[0] + 10]]
    score = score_frame(pred, GT, FRAME, ID1)
    assert score.iou_gt == 0.0
    _assert_in_range(score)


# --- independent computations -------------------------------------------------------------


def _random_convex_quad(rng):
    while True:
        pts = rng.uniform(0, 100, (12, 2)).astype(np.float32)
        hull = cv2.convexHull(pts)[:, 0]
        if len(hull) >= 4:
            pick = np.sort(rng.choice(len(hull), 4, replace=False))
            quad = hull[pick]
            if abs(cv2.contourArea(quad)) > 1.0:
                return quad.astype(np.float64)


def test_metrics_polygon_iou_matches_opencv_on_convex_quads():
    rng = np.random.default_rng(3)
    for _ in range(300):
        a, b = _random_convex_quad(rng), _random_convex_quad(rng)
        inter, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
        area_a = cv2.contourArea(a.astype(np.float32))
        area_b = cv2.contourArea(b.astype(np.float32))
        expected = inter / (area_a + area_b - inter)
        assert polygon_iou(a, b) == pytest.approx(expected, abs=1e-4)


def _inside_even_odd(quad, xs, ys):
    """Crossing-number test of sample points against a polygon (any self-intersection)."""
    inside = np.zeros(xs.shape, bool)
    for i in range(4):
        (x0, y0), (x1, y1) = quad[i - 1], quad[i]
        if y0 == y1:
            continue
        crosses = (y0 > ys) != (y1 > ys)
        x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xs < x_at)
    return inside


def test_metrics_polygon_iou_matches_fine_rasterization_on_random_quads():
    # Random corners give convex, concave and bow-tie quads alike.
    rng = np.random.default_rng(11)
    n = 800
    centres = (np.arange(n) + 0.5) / n
    xs, ys = np.meshgrid(centres, centres)
    kinds = set()
    for _ in range(40):
        a, b = rng.uniform(0, 1, (4, 2)), rng.uniform(0, 1, (4, 2))
        ia, ib = _inside_even_odd(a, xs, ys), _inside_even_odd(b, xs, ys)
        union = (ia | ib).sum()
        expected = (ia & ib).sum() / union if union else 0.0
        assert polygon_iou(a, b) == pytest.approx(expected, abs=0.01)
        turns = [_cross2(a[i] - a[i - 1], a[(i + 1) % 4] - a[i]) > 0 for i in range(4)]
        kinds.add(sum(turns))
    assert kinds >= {0, 2, 4} or kinds >= {1, 2, 3}  # some convex and some not


# --- properties ---------------------------------------------------------------------------

coordinate = st.floats(-3000, 3000, allow_nan=False, allow_infinity=False)
corner = st.tuples(coordinate, coordinate)
quad = st.lists(corner, min_size=4, max_size=4)
anything = st.one_of(
    st.none(),
    st.lists(st.tuples(st.floats(), st.floats()), min_size=4, max_size=4),
    quad,
)


@st.composite
def convex_quads(draw):
    """Four corners on an ellipse, in angular order: a convex quad, of either orientation."""
    cx, cy = draw(coordinate), draw(coordinate)
    rx, ry = draw(st.floats(20, 2000)), draw(st.floats(20, 2000))
    tilt = draw(st.floats(0, math.pi))
    gaps = [draw(st.floats(0.3, 1.0)) for _ in range(4)]
    angles = np.cumsum(gaps) / sum(gaps) * 2 * math.pi + draw(st.floats(0, 2 * math.pi))
    c, s = math.cos(tilt), math.sin(tilt)
    ex, ey = rx * np.cos(angles), ry * np.sin(angles)
    pts = list(zip((cx + ex * c - ey * s).tolist(), (cy + ex * s + ey * c).tolist()))
    return pts[::-1] if draw(st.booleans()) else pts


@settings(max_examples=300, deadline=None)
@given(quad, quad)
def test_metrics_polygon_iou_is_symmetric_and_in_range(a, b):
    value = polygon_iou(a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(polygon_iou(b, a), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(anything, quad)
def test_metrics_scores_are_bounded(pred, gt):
    _assert_in_range(score_frame(pred, gt, FRAME, ID1))


@settings(max_examples=300, deadline=None)
@given(convex_quads(), st.integers(1, 3))
def test_metrics_min_d_is_invariant_to_relabeling_with_a_square_template(pred, k):
    # Only for convex predictions: the reference judges a quad's orientation at corner 1
    # alone, so for a concave or bow-tie one min_d depends on which corner comes first.
    relabeled = pred[k:] + pred[:k]
    d = score_frame(pred, GT, FRAME, (700, 700)).min_d
    d_k = score_frame(relabeled, GT, FRAME, (700, 700)).min_d
    assert d_k == pytest.approx(d, rel=1e-6, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(convex_quads(), st.integers(1, 3))
def test_metrics_min_d_relabeling_of_a_card_changes_it_by_at_most_the_aspect_ratio(pred, k):
    # Relabeling by two corners is a half turn of the template: an isometry, no change.
    # By one corner, the template's quarter turn stretches one axis by w/h: min_d is
    # then within that factor (the reference relabels the mapped ground truth, not this).
    relabeled = pred[k:] + pred[:k]
    d = score_frame(pred, GT, FRAME, ID1).min_d
    d_k = score_frame(relabeled, GT, FRAME, ID1).min_d
    if k == 2:
        assert d_k == pytest.approx(d, rel=1e-6, abs=1e-9)
    else:
        aspect = ID1[0] / ID1[1]
        assert d / aspect * (1 - 1e-6) - 1e-9 <= d_k <= d * aspect * (1 + 1e-6) + 1e-9


# --- real data ----------------------------------------------------------------------------


def _real_quads(real_data):
    paths = sorted((real_data / "43_tur_id" / "ground_truth" / "CA").glob("*.json"))
    assert len(paths) == 30
    return [load_frame_quad(p) for p in paths]


def test_metrics_real_quads_against_themselves_are_perfect(real_data):
    size = template_size("43_tur_id", None)
    for q in _real_quads(real_data):
        score = score_frame(q, q, FRAME, size)
        assert score.iou == pytest.approx(1.0, abs=1e-12)
        assert score.iou_gt == pytest.approx(1.0, abs=1e-12)
        assert score.mean_iou == 1.0
        assert score.min_d == pytest.approx(0.0, abs=1e-12)


def test_metrics_real_quads_against_the_next_frame_are_plausible(real_data):
    size = template_size("43_tur_id", None)
    quads = _real_quads(real_data)
    scores = [score_frame(nxt, q, FRAME, size) for q, nxt in zip(quads, quads[1:])]
    # The camera moves up to ~70 px between annotated frames (10 per second) in this clip.
    for score in scores:
        assert 0.7 < score.iou < 1.0
        assert score.iou_gt == pytest.approx(score.iou, abs=0.01)  # a nearly frontal view
        assert 0.8 < score.mean_iou < 1.0
        assert 0.0 < score.min_d < 0.05
    summary = aggregate(scores)
    assert summary["frames"] == 29 and summary["missing"] == 0
    assert 0.8 < summary["mean_iou"] < 0.95
    assert 0.0 < summary["accuracy"] < 1.0


# --- thresholds, aggregation, template sizes ----------------------------------------------


def test_metrics_thresholds_follow_run_stat():
    assert THRESHOLDS == {"iou": 0.9, "iou_gt": 0.9, "mean_iou": 0.9, "min_d": 0.017}
    assert FrameScore(0.9, 0.9, 0.9, 0.017).correct("iou")
    assert all(FrameScore(0.9, 0.9, 0.9, 0.017).correct(m) for m in METRICS)
    assert not any(FrameScore(0.8999, 0.8999, 0.8999, 0.0171).correct(m) for m in METRICS)
    assert not FrameScore(1.0, 1.0, 1.0, math.inf).correct("min_d")
    with pytest.raises(ValueError, match="unknown metric"):
        FrameScore(1.0, 1.0, 1.0, 0.0).correct("minD")


def test_metrics_to_dict_reports_iou_gt_correctness():
    assert FrameScore(0.5, 0.95, 0.5, 0.5).to_dict() == {
        "iou": 0.5, "iou_gt": 0.95, "mean_iou": 0.5, "min_d": 0.5, "correct": True,
    }  # fmt: skip


def test_metrics_aggregate_like_run_stat():
    scores = [
        FrameScore(1.0, 0.95, 0.99, 0.01),
        FrameScore(0.5, 0.5, 0.6, 0.05),
        FrameScore(0.0, 0.0, 0.0, None),
    ]
    summary = aggregate(iter(scores))
    assert summary == {
        "frames": 3,
        "accuracy": pytest.approx(1 / 3),
        "accuracy_iou": pytest.approx(1 / 3),
        "accuracy_iou_gt": pytest.approx(1 / 3),
        "accuracy_mean_iou": pytest.approx(1 / 3),
        "accuracy_min_d": pytest.approx(1 / 3),
        "mean_iou": pytest.approx(0.5),
        "mean_iou_gt": pytest.approx(1.45 / 3),
        "mean_mean_iou": pytest.approx(1.59 / 3),
        "mean_min_d": pytest.approx(0.03),  # over the two frames with a prediction
        "missing": 1,
    }


def test_metrics_aggregate_of_nothing():
    summary = aggregate([])
    assert summary["frames"] == 0 and summary["missing"] == 0
    assert summary["accuracy"] is None and summary["mean_min_d"] is None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("01_alb_id", (856, 540)),  # the reference's own example
        ("43_tur_id", (856, 540)),
        ("48_usa_passportcard", (856, 540)),
        ("12_deu_drvlic_new", (856, 540)),
        ("05_aze_passport", (1250, 880)),
        ("46_ury_passport", (1250, 880)),
        ("alb_id", (856, 540)),  # without its number, as MIDV-2020 names it
    ],
)
def test_metrics_template_size_of_known_formats(document, expected):
    assert template_size(document, None) == expected
    assert template_size(document, (2000, 1000)) == expected  # the physical size wins


def test_metrics_template_size_falls_back_to_the_template_image():
    assert template_size("39_rus_internalpassport", (1040, 1480)) == (1040, 1480)
    with pytest.raises(ValueError, match="template image size"):
        template_size("39_rus_internalpassport", None)
    with pytest.raises(ValueError, match="positive"):
        template_size("99_xxx_unknown", (0, 10))


def test_metrics_document_template_size_reads_the_template_image_with_limits(tmp_path, monkeypatch):
    image = tmp_path / "39_rus_internalpassport.tif"
    _, data = cv2.imencode(".tif", np.zeros((148, 104, 3), np.uint8))
    image.write_bytes(data.tobytes())
    assert document_template_size("39_rus_internalpassport", image) == (104, 148)
    assert document_template_size("01_alb_id", tmp_path / "absent.tif") == (856, 540)  # known: not read
    # missing, damaged, a FIFO (never opened for reading: it would block), too large: an ID-1 card
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    (tmp_path / "damaged.tif").write_bytes(b"II*\0 not a tiff")
    for path in (tmp_path / "absent.tif", tmp_path / "damaged.tif", fifo, tmp_path):
        assert document_template_size("39_rus_internalpassport", path) == (856, 540)
    monkeypatch.setattr("midvbatch.scoring.localization.IMAGE_LIMIT", len(data) - 1)
    assert document_template_size("39_rus_internalpassport", image) == (856, 540)


def test_metrics_template_table_names_midv500_documents():
    names = {d.split("_", 1)[1] for d in MIDV500_DOCUMENTS}
    assert set(TEMPLATE_SIZES) <= names
    unlisted = names - set(TEMPLATE_SIZES)
    # Formats not known for sure: their template image decides.
    assert unlisted == {
        "aut_id_old", "deu_drvlic_old", "deu_id_old", "rus_internalpassport", "usa_ssn82",
    }  # fmt: skip
