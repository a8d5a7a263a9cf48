"""Frame visibility subsets of MIDV-500, as the Smart Engines runlists define them.

For a W x H frame and a frame's ground-truth quad:

- ``four_vertices_in_frame``: every corner has 0 <= x <= W and 0 <= y <= H;
- ``at_least_three_vertices_in_frame_closed``: at least 3 corners satisfy that;
- ``at_least_three_vertices_in_frame_half_closed``: at least 3 corners have
  0 <= x < W and 0 <= y < H;
- ``doc_area_in_frame_more_than_ninety_percent``: at least 90% of the quad's area lies
  inside the frame.
"""

from __future__ import annotations

from midvbatch.dataset.groundtruth import Quad
from midvbatch.geometry import area_inside_box

FOUR_VERTICES = "four_vertices_in_frame"
THREE_VERTICES_CLOSED = "at_least_three_vertices_in_frame_closed"
THREE_VERTICES_HALF_CLOSED = "at_least_three_vertices_in_frame_half_closed"
AREA_90 = "doc_area_in_frame_more_than_ninety_percent"

SUBSETS: tuple[str, ...] = (FOUR_VERTICES, THREE_VERTICES_CLOSED, THREE_VERTICES_HALF_CLOSED, AREA_90)
AREA_FRACTION = 0.9


def area_inside(quad: Quad, width: float, height: float) -> float:
    """Return the area of the quad that lies inside the [0, W] x [0, H] frame.

    Sutherland-Hodgman clipping against the frame (geometry.area_inside_box); exact for
    any simple polygon, since the frame is convex.
    """
    return area_inside_box(quad.points, width, height)


def inside_fraction(quad: Quad, width: float, height: float) -> float:
    """Return the share (0..1) of the quad's area inside the frame; 0 for a degenerate quad."""
    total = quad.area()
    if total <= 0.0:
        return 0.0
    return min(1.0, area_inside(quad, width, height) / total)


def subsets(quad: Quad, width: int, height: int) -> list[str]:
    """Return the names of the visibility subsets the frame belongs to, in runlist order."""
    closed = sum(1 for x, y in quad.points if 0 <= x <= width and 0 <= y <= height)
    half_open = sum(1 for x, y in quad.points if 0 <= x < width and 0 <= y < height)
    names = []
    if closed == 4:
        names.append(FOUR_VERTICES)
    if closed >= 3:
        names.append(THREE_VERTICES_CLOSED)
    if half_open >= 3:
        names.append(THREE_VERTICES_HALF_CLOSED)
    if inside_fraction(quad, width, height) >= AREA_FRACTION:
        names.append(AREA_90)
    return names
