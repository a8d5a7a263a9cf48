"""Visibility subsets, on the 600 real quads of the COCO export and on edge cases."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from midvbatch.dataset import Quad, subsets
from midvbatch.dataset.visibility import (
    AREA_90,
    FOUR_VERTICES,
    SUBSETS,
    THREE_VERTICES_CLOSED,
    THREE_VERTICES_HALF_CLOSED,
    inside_fraction,
)

W, H = 1080, 1920


def _real_quads(real_data):
    coco = json.loads((real_data / "midv500_coco.json").read_text())
    return [Quad.from_list(a["segmentation"][0]) for a in coco["annotations"]]


def _area_fraction_by_opencv(quad):
    """Independent: intersect the quad with the frame with OpenCV's convex intersection."""
    pts = np.array(quad.points, np.float32)
    frame = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32)
    hull = cv2.convexHull(pts)
    inter, _ = cv2.intersectConvexConvex(hull, frame)
    return inter / abs(cv2.contourArea(pts)) if cv2.contourArea(pts) else 0.0


def test_visibility_real_quads_follow_the_definitions(real_data):
    quads = _real_quads(real_data)
    assert len(quads) == 600
    for q in quads:
        got = subsets(q, W, H)
        closed = sum(0 <= x <= W and 0 <= y <= H for x, y in q.points)
        half = sum(0 <= x < W and 0 <= y < H for x, y in q.points)
        assert (FOUR_VERTICES in got) == (closed == 4)
        assert (THREE_VERTICES_CLOSED in got) == (closed >= 3)
        assert (THREE_VERTICES_HALF_CLOSED in got) == (half >= 3)
        convex = cv2.isContourConvex(np.array(q.points, np.float32))
        if convex:
            expected = _area_fraction_by_opencv(q)
            assert inside_fraction(q, W, H) == pytest.approx(expected, abs=1e-6)
            if abs(expected - 0.9) > 1e-6:
                assert (AREA_90 in got) == (expected >= 0.9)
        assert got == [s for s in SUBSETS if s in got]  # runlist order


def test_visibility_real_quads_cover_every_subset_combination_seen(real_data):
    seen = {tuple(subsets(q, W, H)) for q in _real_quads(real_data)}
    assert tuple(SUBSETS) in seen  # fully visible
    assert () in seen  # document mostly out of view
    assert (AREA_90,) in seen  # corners cut off, area still in
    # a corner exactly on the right or bottom edge: closed but not half-closed
    assert any(THREE_VERTICES_CLOSED in s and THREE_VERTICES_HALF_CLOSED not in s for s in seen)


def test_visibility_fully_visible_quads_keep_the_coco_bbox_unclipped(real_data):
    coco = json.loads((real_data / "midv500_coco.json").read_text())
    for a in coco["annotations"]:
        q = Quad.from_list(a["segmentation"][0])
        if FOUR_VERTICES in subsets(q, W, H):
            xs, ys = [p[0] for p in q.points], [p[1] for p in q.points]
            assert a["bbox"][:2] == [min(xs), min(ys)]


@pytest.mark.parametrize(
    "corners, expected",
    [
        ([[0, 0], [W, 0], [W, H], [0, H]], list(SUBSETS[:2]) + [AREA_90]),  # corners on the closed edge
        ([[1, 1], [W - 1, 1], [W - 1, H - 1], [1, H - 1]], list(SUBSETS)),
        ([[-10, 10], [500, 10], [500, 500], [10, 500]], [THREE_VERTICES_CLOSED, THREE_VERTICES_HALF_CLOSED, AREA_90]),
        ([[-2000, 10], [-1000, 10], [-1000, 500], [-2000, 500]], []),
        ([[5, 5], [5, 5], [5, 5], [5, 5]], SUBSETS[:3]),  # degenerate: no area to be 90% inside
    ],
)
def test_visibility_edge_cases(corners, expected):
    assert subsets(Quad.from_list(corners), W, H) == list(expected)


def test_visibility_area_fraction_half_out():
    q = Quad.from_list([[-100, 0], [100, 0], [100, 100], [-100, 100]])
    assert inside_fraction(q, W, H) == pytest.approx(0.5)
    q = Quad.from_list([[0, 0], [100, 0], [100, 100], [-12, 100]])
    assert inside_fraction(q, W, H) == pytest.approx(10000 / 10600)
