"""Plane geometry: areas and orientation, convex clipping, quad regions, homographies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from midvbatch.geometry import (
    area,
    area_inside_box,
    clip_convex,
    homography,
    intersection_area,
    quad_region,
    rectangle,
    region_area,
    segments_cross,
    three_collinear,
    signed_area,
    transform,
)

# OpenCV's cv2.contourArea of CA43_01's ground-truth quad, an independent computation
AREA_CA43 = 411_505.0
SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]  # TL TR BR BL: clockwise on screen


def _shift(poly, dx, dy=0.0):
    return [(x + dx, y + dy) for x, y in poly]


# --- areas and orientation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "poly, expected",
    [
        (SQUARE, 16.0),
        ([(0, 0), (3, 0), (0, 4)], 6.0),  # right triangle
        ([(0, 0), (4, 0), (6, 3), (2, 3)], 12.0),  # parallelogram
        ([(0, 0), (4, 0), (4, 4), (2, 1), (0, 4)], 10.0),  # concave pentagon: 16 - 6
        ([(139, 678), (940, 689), (966, 1180), (88, 1167)], AREA_CA43),  # CA43_01's ground truth
    ],
)
def test_geometry_area_of_known_polygons(poly, expected):
    assert signed_area(poly) == pytest.approx(expected)
    assert area(poly) == area(poly[::-1]) == pytest.approx(expected)


def test_geometry_signed_area_is_positive_clockwise_on_screen():
    """Document order (TL, TR, BR, BL, y down) is positive; reversed, negative; any start, the same."""
    assert signed_area(SQUARE) == 16.0
    assert signed_area(SQUARE[::-1]) == -16.0
    for k in range(4):
        assert signed_area(SQUARE[k:] + SQUARE[:k]) == 16.0
    # the same check by the cross product at a convex corner: TL -> TR -> BR turns "left" in y-up terms
    (ax, ay), (bx, by), (cx, cy) = SQUARE[:3]
    assert (bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0


def test_geometry_bow_tie_shoelace_cancels_but_its_region_covers_both_lobes():
    bow = [(0.0, 0.0), (4.0, 4.0), (4.0, 0.0), (0.0, 4.0)]
    assert signed_area(bow) == 0.0
    assert region_area(quad_region(bow)) == pytest.approx(8.0)


@pytest.mark.parametrize(
    "quad",
    [
        [(1.0, 1.0)] * 4,  # a point
        [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)],  # a segment
        [(0.0, 0.0), (4.0, 0.0), (4.0, 0.0), (0.0, 0.0)],  # two corners twice
    ],
)
def test_geometry_degenerate_quads_have_no_area_and_no_homography(quad):
    assert area(quad) == 0.0
    assert quad_region(quad) == [] or region_area(quad_region(quad)) == pytest.approx(0.0)
    assert three_collinear(quad)
    assert homography(np.array(quad), rectangle(10, 5)) is None
    assert homography(rectangle(10, 5), np.array(quad)) is None


def test_geometry_segments_cross():
    assert segments_cross((0, 0), (2, 2), (0, 2), (2, 0))
    assert not segments_cross((0, 0), (1, 1), (2, 2), (3, 0))  # apart
    assert not segments_cross((0, 0), (2, 0), (1, 0), (1, 1))  # touching at an end is not crossing
    assert not segments_cross((0, 0), (2, 0), (0, 1), (2, 1))  # parallel


# --- clipping -------------------------------------------------------------------------------


def test_geometry_clip_overlapping_quads():
    part = clip_convex(SQUARE, _shift(SQUARE, 2.0, 1.0))
    assert area(part) == pytest.approx(2.0 * 3.0)
    xs, ys = zip(*part)
    assert (min(xs), max(xs), min(ys), max(ys)) == (2.0, 4.0, 1.0, 4.0)


def test_geometry_clip_disjoint_quads_is_empty():
    assert clip_convex(SQUARE, _shift(SQUARE, 10.0)) == []
    assert area(clip_convex(SQUARE, _shift(SQUARE, 4.0))) == 0.0  # sharing an edge only: no area


def test_geometry_clip_contained_quads():
    inner = [(1.0, 1.0), (3.0, 1.0), (3.0, 2.0), (1.0, 2.0)]
    assert area(clip_convex(inner, SQUARE)) == pytest.approx(2.0)  # inner inside: itself
    assert area(clip_convex(SQUARE, inner)) == pytest.approx(2.0)  # clipped to the inner one


def test_geometry_clip_keeps_a_subject_running_either_way():
    clip = _shift(SQUARE, 1.0, 1.0)
    assert signed_area(clip_convex(SQUARE[::-1], clip)) == pytest.approx(-9.0)
    assert signed_area(clip_convex(SQUARE, clip)) == pytest.approx(9.0)


def test_geometry_area_inside_box():
    quad = [(-2.0, 1.0), (2.0, 1.0), (2.0, 3.0), (-2.0, 3.0)]  # half out on the left
    assert area_inside_box(quad, 10, 10) == pytest.approx(4.0)
    assert area_inside_box(_shift(quad, 100.0), 10, 10) == 0.0
    assert area_inside_box([(0, 0), (10, 0), (10, 10), (0, 10)], 10, 10) == pytest.approx(100.0)


def test_geometry_intersection_of_regions_matches_clipping_for_convex_quads():
    a, b = quad_region(SQUARE), quad_region(_shift(SQUARE, 1.0, -1.0))
    assert intersection_area(a, b) == pytest.approx(9.0)
    # a concave quad (an arrowhead) is split into pieces whose areas add up
    arrow = [(0.0, 0.0), (4.0, 2.0), (0.0, 4.0), (1.0, 2.0)]
    assert region_area(quad_region(arrow)) == pytest.approx(area(arrow)) == pytest.approx(6.0)


# --- homographies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quad",
    [
        [[139, 678], [940, 689], [966, 1180], [88, 1167]],
        [[400, 500], [700, 500], [1000, 1400], [0, 1400]],  # a card seen at a steep angle
        [[0, 0], [856, 0], [856, 540], [0, 540]],  # identity
    ],
)
def test_geometry_homography_maps_the_corners_exactly(quad):
    src = np.array(quad, np.float64)
    rect = rectangle(856, 540)
    h = homography(src, rect)
    assert h is not None and h[2, 2] == 1.0
    assert np.allclose(transform(h, src), rect, rtol=0, atol=1e-9)
    back = homography(rect, src)
    assert np.allclose(transform(back, rect), src, rtol=0, atol=1e-9)
    assert np.allclose(back @ h / (back @ h)[2, 2], np.eye(3), atol=1e-12)


def test_geometry_homography_agrees_with_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    rect = rectangle(856, 540)
    inside = np.array([[428.0, 270.0], [10.0, 500.0], [850.0, 3.0]])
    for _ in range(50):
        # float32 values, which OpenCV's solver takes (it forms products in float32 too:
        # a few 1e-7 apart relatively); quads a camera could see
        quad = (
            (rng.uniform(100, 900, 2) + rng.uniform(0.5, 1.5) * (rect - rect.mean(0)) + rng.uniform(-150, 150, (4, 2)))
            .astype(np.float32)
            .astype(np.float64)
        )
        h = homography(rect, quad)
        reference = cv2.getPerspectiveTransform(rect.astype(np.float32), quad.astype(np.float32))
        assert np.allclose(transform(h, inside), transform(reference, inside), rtol=1e-6, atol=1e-3)


def test_geometry_point_on_the_vanishing_line_maps_to_infinity():
    src = np.array([[400, 500], [700, 500], [1000, 1400], [0, 1400]], np.float64)
    h = homography(src, rectangle(856, 540))
    x = 500.0
    y = -(h[2, 0] * x + h[2, 2]) / h[2, 1]  # where the homogeneous w is 0
    assert not np.isfinite(transform(h, np.array([[x, y]]))).all()
    assert np.isfinite(transform(h, np.array([[x, y + 10.0]]))).all()


def test_geometry_rectangle():
    assert rectangle(3, 2).tolist() == [[0, 0], [3, 0], [3, 2], [0, 2]]
    assert signed_area([tuple(p) for p in rectangle(3, 2)]) == 6.0
    assert math.isclose(area(rectangle(856, 540)), 856 * 540)
