"""A classical document localizer: the best-supported quadrilateral of the frame's edges.

The baseline of the built-in ``localize`` pipeline. Per frame:

1. work on copies scaled to 480 and 640 pixels high (`work_heights`; corners are mapped
   back), and keep the better supported answer;
2. edges: Canny on the lightness and the saturation channels, so that a document shows
   whether it differs from its background in brightness or in colour;
3. candidates: the outer contours of the (closed) edge map and of Otsu segmentations,
   each reduced to a convex quadrilateral (polygon approximation, else the minimum-area
   rectangle);
4. each candidate is scored by how much of its four sides lies on edges (a distance
   transform of the edge map), the weakest side weighing most;
5. the winner's sides are refitted to the edge pixels along them (robust line fit), and
   the corners are the intersections of adjacent sides, so a corner out of view is
   extrapolated;
6. corners are ordered top-left, top-right, bottom-right, bottom-left, with the top
   being a long side for a landscape document and a short side for a portrait one.
"""

from __future__ import annotations

import cv2
import numpy as np

from midvbatch.geometry import area
from midvbatch.pipeline.processor import Frame, Processor

_BINS = 8  # gradient orientation bins over 180 degrees


def order_corners(quad: np.ndarray) -> np.ndarray:
    """Return the 4 corners clockwise on screen from the top-left of the document."""
    quad = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    centre = quad.mean(axis=0)
    angles = np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0])
    quad = quad[np.argsort(angles)]  # clockwise on screen (y down), starting anywhere
    sides = [np.linalg.norm(quad[(i + 1) % 4] - quad[i]) for i in range(4)]
    # the top side: of the two sides that face up the most, the longer pair for a landscape document
    long_first = sides[0] + sides[2] >= sides[1] + sides[3]
    candidates = [0, 2] if long_first else [1, 3]
    top = min(candidates, key=lambda i: quad[i][1] + quad[(i + 1) % 4][1])
    return np.roll(quad, -top, axis=0)


def _line_intersection(l1, l2):
    (vx1, vy1, x1, y1), (vx2, vy2, x2, y2) = l1, l2
    det = vx1 * (-vy2) - vy1 * (-vx2)
    if abs(det) < 1e-9:
        return None
    t = ((x2 - x1) * (-vy2) - (y2 - y1) * (-vx2)) / det
    return np.array([x1 + t * vx1, y1 + t * vy1])


class Localizer(Processor):
    """Find the document's quadrilateral in a frame with OpenCV; None when nothing fits."""

    def __init__(
        self, work_heights: tuple[int, ...] | list[int] = (480, 640), min_area: float = 0.04, min_support: float = 0.25
    ):
        self.work_heights = tuple(int(h) for h in work_heights)  # the frame is searched at each height
        self.min_area = min_area  # of the frame's area
        self.min_support = min_support  # share of the perimeter on edges, below which nothing is found

    def process_frame(self, frame: Frame) -> dict:
        """Return {"quad": [[x, y] x 4] or None, "confidence": edge support 0..1}."""
        quad, confidence = self.locate(frame.image)
        return {
            "quad": None if quad is None else [[round(float(x), 2), round(float(y), 2)] for x, y in quad],
            "confidence": round(float(confidence), 4),
        }

    # --------------------------------------------------------------------------------

    def locate(self, image: np.ndarray) -> tuple[np.ndarray | None, float]:
        """Return (quad in image pixels or None, confidence): the best-supported over the work heights.

        Edge and blur sizes are in pixels, so what is found depends on the scale; searching
        at two heights and keeping the better supported answer is more robust than either
        (measured in docs/scoring.md).
        """
        best, best_score = None, 0.0
        # never upscale: a frame smaller than a work height is searched at its own size, once
        for work_height in sorted({min(h, image.shape[0]) for h in self.work_heights}):
            quad, score = self._locate_at(image, work_height)
            if quad is not None and score > best_score:
                best, best_score = quad, score
        return best, best_score

    def _locate_at(self, image: np.ndarray, work_height: int) -> tuple[np.ndarray | None, float]:
        height, width = image.shape[:2]
        scale = work_height / height
        small = (
            cv2.resize(
                image,
                (round(width * scale), round(height * scale)),
                interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR,
            )
            if scale != 1.0
            else image
        )
        edges = self._edges(small)
        bins = self._orientations(small, edges)
        # one distance map per orientation: a side is supported by edges running along it
        dists = [
            cv2.distanceTransform(np.where(bins == b, 0, 255).astype(np.uint8), cv2.DIST_L2, 3) for b in range(_BINS)
        ]
        scored = sorted(
            ((self._support(q, dists), i, q) for i, q in enumerate(self._candidates(small, edges))),
            key=lambda x: x[:2],
            reverse=True,
        )
        best, best_score = None, 0.0
        for score, _, quad in scored[:3]:
            # an inner rectangle of the document (below a header band) is as well supported as
            # its outline: push each side outwards while it stays on edges
            quad, score = self._expand(quad, score, dists)
            if best is None or score > best_score + 0.03 or (score > best_score - 0.03 and area(quad) > area(best)):
                best, best_score = quad, score
        if best is None or best_score < self.min_support:
            return None, best_score
        refined = self._refine(best, bins)
        if refined is not None and self._support(refined, dists) >= best_score * 0.95:
            best = refined
        return order_corners(best / scale), best_score

    def _edges(self, image: np.ndarray) -> np.ndarray:
        # Lab: lightness and two colour axes, so a document shows whether it differs from its
        # background in brightness or in hue (a dark red band on a brown table).
        lab = cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_BGR2LAB)
        out = np.zeros(image.shape[:2], np.uint8)
        for i, (lo, hi) in enumerate(((30, 90), (12, 36), (12, 36))):
            channel_edges: np.ndarray = cv2.Canny(lab[:, :, i], lo, hi)
            out |= channel_edges
        return out

    @staticmethod
    def _orientations(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Return each edge pixel's gradient orientation bin (0..7 over 180 degrees), -1 elsewhere."""
        lab = cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
        gx = np.stack([cv2.Sobel(lab[:, :, i], cv2.CV_32F, 1, 0, ksize=3) for i in range(3)])
        gy = np.stack([cv2.Sobel(lab[:, :, i], cv2.CV_32F, 0, 1, ksize=3) for i in range(3)])
        strongest = np.argmax(gx * gx + gy * gy, axis=0)[None]
        gx = np.take_along_axis(gx, strongest, 0)[0]
        gy = np.take_along_axis(gy, strongest, 0)[0]
        angle = np.mod(np.arctan2(gy, gx), np.pi)
        bins = (np.floor(angle / (np.pi / _BINS)).astype(np.int8)) % _BINS
        return np.where(edges > 0, bins, -1).astype(np.int8)

    def _candidates(self, image: np.ndarray, edges: np.ndarray):
        h, w = edges.shape
        min_area = self.min_area * w * h
        masks = [cv2.morphologyEx(edges, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))]
        gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        _, otsu = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        masks += [otsu, 255 - otsu]
        for mask in masks:
            contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:8]:
                hull = cv2.convexHull(contour)
                if cv2.contourArea(hull) < min_area:
                    continue
                perimeter = cv2.arcLength(hull, True)
                quad = None
                for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
                    approx = cv2.approxPolyDP(hull, eps * perimeter, True)
                    if len(approx) == 4:
                        quad = approx.reshape(4, 2).astype(np.float64)
                        break
                    if len(approx) < 4:
                        break
                if quad is None:
                    quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float64)
                yield quad

    @staticmethod
    def _side_bins(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
        """The orientation bins of a side's normal: the nearest and its closest neighbour."""
        d = b - a
        normal = np.mod(np.arctan2(d[0], -d[1]), np.pi)  # gradients cross the side at right angles
        x = normal / (np.pi / _BINS)
        nearest = int(np.floor(x)) % _BINS
        other = (nearest + (1 if x - np.floor(x) >= 0.5 else -1)) % _BINS
        return nearest, other

    @classmethod
    def _shares(cls, starts: np.ndarray, ends: np.ndarray, dists: list[np.ndarray], samples: int = 40) -> np.ndarray:
        """Edge support of K sides with one direction, (K, 2) starts and ends: a share 0..1 each.

        The share of sample points with an edge of the side's orientation within 2 px; a side
        cut by the frame's border counts for what is visible of it.
        """
        h, w = dists[0].shape
        b1, b2 = cls._side_bins(starts[0], ends[0])
        t = np.linspace(0.05, 0.95, samples)
        pts = starts[:, None, :] + t[None, :, None] * (ends - starts)[:, None, :]
        x, y = pts[..., 0], pts[..., 1]
        inside = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
        xi = np.clip(x, 0, w - 1).astype(int)
        yi = np.clip(y, 0, h - 1).astype(int)
        on = (np.minimum(dists[b1][yi, xi], dists[b2][yi, xi]) <= 2.0) & inside
        visible = inside.sum(axis=1)
        share = np.where(visible > 0, on.sum(axis=1) / np.maximum(visible, 1), 0.0)
        return share * (0.5 + 0.5 * visible / samples)

    @staticmethod
    def _combine(shares: np.ndarray) -> np.ndarray:
        """Score from the 4 sides' shares (last axis): the weakest side weighs most."""
        return 0.5 * shares.min(axis=-1) + 0.5 * shares.mean(axis=-1)

    @classmethod
    def _support(cls, quad: np.ndarray, dists: list[np.ndarray]) -> float:
        shares = np.array([cls._shares(quad[i][None], quad[(i + 1) % 4][None], dists)[0] for i in range(4)])
        return float(cls._combine(shares))

    @classmethod
    def _expand(
        cls, quad: np.ndarray, score: float, dists: list[np.ndarray], reach: float = 0.25, tolerance: float = 0.04
    ) -> tuple[np.ndarray, float]:
        """Move each side outwards, to the farthest place (1 px steps) where the quad stays on edges."""
        quad = quad.copy()
        centre = quad.mean(axis=0)
        size = np.sqrt(max(area(quad), 1.0))
        steps = np.arange(1, int(reach * size) + 1, dtype=np.float64)[:, None]
        if not len(steps):
            return quad, score
        for i in range(4):
            p0, a, b, p3 = quad[i - 1], quad[i], quad[(i + 1) % 4], quad[(i + 2) % 4]
            d = (b - a) / (np.linalg.norm(b - a) + 1e-9)
            normal = np.array([-d[1], d[0]])
            if normal @ ((a + b) / 2 - centre) < 0:
                normal = -normal
            shifted = a + steps * normal  # a point of the moved side, per step

            def slide(origin, direction, d=d, shifted=shifted):
                # where the moved side meets the neighbour's line origin + s * direction
                denom = direction[0] * d[1] - direction[1] * d[0]
                if abs(denom) < 1e-9:
                    return None
                rel = shifted - origin
                return origin + ((rel[:, 0] * d[1] - rel[:, 1] * d[0]) / denom)[:, None] * direction

            ta, tb = slide(p0, a - p0), slide(b, p3 - b)
            if ta is None or tb is None:
                continue
            k = len(steps)
            shares = np.stack(
                [
                    cls._shares(np.repeat(p0[None], k, 0), ta, dists),  # side i-1, its end slides
                    cls._shares(ta, tb, dists),  # side i, moved
                    cls._shares(tb, np.repeat(p3[None], k, 0), dists),  # side i+1, its start slides
                    np.full(k, cls._shares(p3[None], p0[None], dists)[0]),  # side i+2, unchanged
                ],
                axis=1,
            )
            scores = cls._combine(shares)
            ok = np.nonzero(scores >= score - tolerance)[0]
            if len(ok):
                j = ok[-1]
                quad[i], quad[(i + 1) % 4] = ta[j], tb[j]
                score = max(float(scores[j]), min(score, float(scores[j])))
        return quad, score

    @classmethod
    def _refine(cls, quad: np.ndarray, bins: np.ndarray, band: float = 4.0) -> np.ndarray | None:
        ys, xs = np.nonzero(bins >= 0)
        if len(xs) < 20:
            return None
        points = np.stack([xs, ys], axis=1).astype(np.float64)
        point_bins = bins[ys, xs]
        lines = []
        for i in range(4):
            a, b = quad[i], quad[(i + 1) % 4]
            d = b - a
            length = np.linalg.norm(d)
            if length < 10:
                return None
            u = d / length
            rel = points - a
            along = rel @ u
            across = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])
            b1, b2 = cls._side_bins(a, b)
            keep = (
                (across <= band)
                & (along > 0.1 * length)
                & (along < 0.9 * length)
                & ((point_bins == b1) | (point_bins == b2))
            )
            near = points[keep]
            if len(near) < 10:
                return None
            vx, vy, x0, y0 = cv2.fitLine(near.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
            lines.append((vx, vy, x0, y0))
        corners = []
        for i in range(4):
            p = _line_intersection(lines[i - 1], lines[i])
            if p is None or np.linalg.norm(p - quad[i]) > 0.25 * max(bins.shape):
                return None
            corners.append(p)
        refined = np.array(corners)
        if not cv2.isContourConvex(refined.astype(np.float32)):
            return None
        return refined


def make(
    work_heights: tuple[int, ...] | list[int] = (480, 640), min_area: float = 0.04, min_support: float = 0.25
) -> Localizer:
    """Factory of the built-in localize pipeline (options: --option work_heights=[480,640] ...)."""
    return Localizer(work_heights=work_heights, min_area=min_area, min_support=min_support)
