"""Plane geometry of quads: exact areas, convex clipping, regions, homographies.

The one copy of these computations: the localization metrics, the visibility subsets,
the ground-truth checks, the localizer and the synthesizer all call it. Points are
``(x, y)`` tuples (plain floats: for four corners, Python arithmetic is faster than
numpy's); ``quad_homography`` works on them too (9 floats), ``homography`` and ``transform`` take
and return numpy arrays.

Orientation: a signed area is positive when the corners run counter-clockwise in
x-right, y-up axes, that is clockwise on screen (x right, y down), as document quads
(top-left, top-right, bottom-right, bottom-left) do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]
Region = list[tuple[int, list[Point]]]  # a region as sum(coefficient * convex polygon)


# --- areas and orientation ----------------------------------------------------------------


def cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    """Return the z component of (a - o) x (b - o): positive when o, a, b turn left (y up)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def signed_area(poly: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Return the shoelace area of a polygon: positive clockwise on screen (y down).

    A self-intersecting polygon gets the sum of its lobes' signed areas (a bow-tie's
    two lobes cancel); see :func:`quad_region` for the region a quad winds around.
    """
    if len(poly) == 0:
        return 0.0
    s = 0.0
    x0, y0 = poly[-1]
    for x1, y1 in poly:
        s += x0 * y1 - x1 * y0
        x0, y0 = x1, y1
    return s / 2.0


def area(poly: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Return the area enclosed by a simple polygon (the absolute shoelace area)."""
    return abs(signed_area(poly))


def segments_cross(p1: Sequence[float], p2: Sequence[float], p3: Sequence[float], p4: Sequence[float]) -> bool:
    """Tell whether segments p1-p2 and p3-p4 cross at a point inside both (touching is not crossing)."""

    def side(a, b, c) -> int:
        v = cross(a, b, c)
        return (v > 0) - (v < 0)

    return side(p1, p2, p3) * side(p1, p2, p4) < 0 and side(p3, p4, p1) * side(p3, p4, p2) < 0


def rectangle(width: float, height: float) -> np.ndarray:
    """Return the corners of the [0, width] x [0, height] rectangle as a (4, 2) float64 quad (TL, TR, BR, BL)."""
    return np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], np.float64)


def points(corners: np.ndarray) -> list[Point]:
    """Return an (n, 2) array of corners as a list of (x, y) float tuples."""
    return [(x, y) for x, y in np.asarray(corners, np.float64).tolist()]  # (tolist: a C loop, Python floats)


# --- clipping -------------------------------------------------------------------------------


def clip_convex(subject: Sequence[Point], clip: Sequence[Point]) -> list[Point]:
    """Return the part of `subject` inside the convex polygon `clip` (Sutherland-Hodgman).

    `clip` must have a positive signed area (see :func:`signed_area`); `subject` may run
    either way and need not be convex (the result is then exact in area but may hold
    zero-width bridges). Returns [] when fewer than 3 corners remain.
    """
    out = list(subject)
    a = clip[-1]
    for b in clip:
        if not out:
            break
        pts, out = out, []
        ex, ey = b[0] - a[0], b[1] - a[1]
        p = pts[-1]
        cp = ex * (p[1] - a[1]) - ey * (p[0] - a[0])
        for q in pts:
            cq = ex * (q[1] - a[1]) - ey * (q[0] - a[0])
            if cq >= 0.0:
                if cp < 0.0:
                    t = cp / (cp - cq)
                    out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
                out.append(q)
            elif cp >= 0.0:
                t = cp / (cp - cq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
            p, cp = q, cq
        a = b
    return out if len(out) >= 3 else []


def area_inside_box(poly: Sequence[Sequence[float]], width: float, height: float) -> float:
    """Return the area of the simple polygon `poly` that lies inside [0, width] x [0, height]."""
    box = [(0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height))]
    return area(clip_convex([(float(x), float(y)) for x, y in poly], box))


def _tidy(poly: list[Point]) -> list[Point]:
    """Return a convex polygon clockwise on screen without its negligible corners, or [].

    A clipping edge must have a direction: corners closer than 1e-12 of the polygon's
    extent to their neighbour, or turning by less than that (rounding spikes left by an
    earlier clip), are dropped. What remains differs from `poly` by a negligible area.
    """
    if len(poly) < 3:
        return []
    if signed_area(poly) < 0:
        poly = poly[::-1]
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    tol = 1e-12 * extent
    eps = tol * extent
    pts = list(poly)
    changed = True
    while changed and len(pts) >= 3:
        changed = False
        for i in range(len(pts)):
            prev, cur, nxt = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
            short = abs(cur[0] - prev[0]) <= tol and abs(cur[1] - prev[1]) <= tol
            if short or cross(prev, cur, nxt) <= eps:
                del pts[i]
                changed = True
                break
    return pts if len(pts) >= 3 else []


# --- regions of quads -------------------------------------------------------------------------


def quad_region(quad: Sequence[Point]) -> Region:
    """Write the region a quad winds around as sum(c * convex piece), pieces with positive area.

    A strictly convex quad is its own piece. Otherwise split it along the diagonal p0-p2
    into triangles T1 = p0 p1 p2 and T2 = p0 p2 p3: if they turn the same way they lie on
    either side of the diagonal and the region is T1 + T2; if not (a concave quad, a
    bow-tie) the region is their symmetric difference T1 + T2 - 2 (T1 & T2). So a
    bow-tie covers both its lobes. This covers every 4-corner polygon, degenerate ones
    included (a quad without area is the empty region), without case analysis of crossings.
    """
    quad = list(quad)
    turns = [cross(quad[i - 1], quad[i], quad[(i + 1) % 4]) for i in range(4)]
    if all(t > 0 for t in turns) or all(t < 0 for t in turns):
        whole = _tidy(quad)
        return [(1, whole)] if whole else []
    p0, p1, p2, p3 = quad
    t1, t2 = _tidy([p0, p1, p2]), _tidy([p0, p2, p3])
    pieces: Region = [(1, t) for t in (t1, t2) if t]
    if t1 and t2 and cross(p0, p1, p2) * cross(p0, p2, p3) < 0.0:
        both = _tidy(clip_convex(t1, t2))
        if both:
            pieces.append((-2, both))
    return pieces


def region_area(region: Region) -> float:
    """Return the area of a region from :func:`quad_region`."""
    return sum(c * signed_area(p) for c, p in region)


def intersection_area(a: Region, b: Region) -> float:
    """Return the area of the intersection of two regions (exact up to rounding; may be a hair off)."""
    inter = 0.0
    for ca, pa in a:
        for cb, pb in b:
            part = clip_convex(pa, pb)
            if part:
                inter += ca * cb * signed_area(part)
    return inter


# --- homographies ---------------------------------------------------------------------------


def three_collinear(quad: Sequence[Point]) -> bool:
    """Tell whether three of the 4 corners lie on one line (to 1e-12 of the quad's extent squared)."""
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    tol = 1e-12 * (extent * extent)  # not **, which raises on overflow
    p0, p1, p2, p3 = quad
    return (
        abs(cross(p0, p1, p2)) <= tol
        or abs(cross(p0, p1, p3)) <= tol
        or abs(cross(p0, p2, p3)) <= tol
        or abs(cross(p1, p2, p3)) <= tol
    )


Matrix = tuple[float, float, float, float, float, float, float, float, float]  # 3x3, row by row


def _from_square(q: Sequence[Point]) -> Matrix | None:
    """The projective map of the unit square (0,0), (1,0), (1,1), (0,1) onto the quad's corners in turn
    (P. Heckbert, Fundamentals of Texture Mapping and Image Warping, 1989, section 2.2.3); None when
    corners 1, 2, 3 are on one line."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = q
    dx1, dy1, dx2, dy2 = x1 - x2, y1 - y2, x3 - x2, y3 - y2
    sx, sy = x0 - x1 + x2 - x3, y0 - y1 + y2 - y3
    det = dx1 * dy2 - dx2 * dy1
    if det == 0.0:
        return None
    g, h = (sx * dy2 - dx2 * sy) / det, (dx1 * sy - sx * dy1) / det
    return (x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h, 1.0)


def _adjugate(m: Matrix) -> Matrix:
    """The adjugate of a 3x3 matrix: its inverse up to a factor, which a homography does not see."""
    a, b, c, d, e, f, g, h, i = m
    return (e * i - f * h, c * h - b * i, b * f - c * e,
            f * g - d * i, a * i - c * g, c * d - a * f,
            d * h - e * g, b * g - a * h, a * e - b * d)  # fmt: skip


def _product(m: Matrix, n: Matrix) -> Matrix:
    return tuple(  # type: ignore[return-value]
        m[r] * n[c] + m[r + 1] * n[c + 3] + m[r + 2] * n[c + 6] for r in (0, 3, 6) for c in (0, 1, 2)
    )


def quad_homography(src: Sequence[Point], dst: Sequence[Point]) -> Matrix | None:
    """Return the homography taking the 4 `src` corners onto `dst` (h33 = 1) as 9 floats row by row,
    or None if there is none (three corners of either on one line, or a result that is not finite).

    Plain floats: for four corners, this closed form (the square onto `dst` after `src` onto the
    square) costs a few microseconds where an 8x8 linear solve in numpy costs tens.
    """
    if three_collinear(src) or three_collinear(dst):
        return None
    to_src, to_dst = _from_square(src), _from_square(dst)
    if to_src is None or to_dst is None:
        return None
    h = _product(to_dst, _adjugate(to_src))
    scale = h[8]
    if scale == 0.0 or not math.isfinite(scale):
        return None
    out = tuple(v / scale for v in h)
    return out if all(math.isfinite(v) for v in out) else None  # type: ignore[return-value]


def project(h: Matrix, p: Point) -> tuple[float, float, float]:
    """The homogeneous image [x', y', w] of point `p` under `h` (not divided by w)."""
    x, y = p
    return h[0] * x + h[1] * y + h[2], h[3] * x + h[4] * y + h[5], h[6] * x + h[7] * y + h[8]


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Return the 3x3 homography taking the 4 `src` corners onto `dst` (h33 = 1), or None if none.

    Solved in float64 (:func:`quad_homography`). A homography between quads exists only when
    no three corners of either are on one line; None then (and when the solution is not finite).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    h = quad_homography(points(src), points(dst))
    return None if h is None else np.array(h, np.float64).reshape(3, 3)


def homogeneous(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Return (n, 3) homogeneous images [x', y', w] of (n, 2) points under `h` (not divided by w)."""
    return np.hstack([pts, np.ones((len(pts), 1))]) @ h.T


def transform(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Return the (n, 2) images of (n, 2) points under `h`; inf or nan for a point on its vanishing line."""
    mapped = homogeneous(h, np.asarray(pts, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return mapped[:, :2] / mapped[:, 2:3]
