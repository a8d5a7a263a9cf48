"""A complete midvbatch processor: find the document in each frame with OpenCV.

Run it on a dataset:

    midvbatch run DATASET_DIR --out runs/find --processor examples.find_document:make \
        --option min_area=0.05

The engine imports this module in every worker (the current directory is on the
import path), calls make(**options) once per worker, then setup() once, then
process_frame() for each of the 30 annotated frames of every clip.
"""

from __future__ import annotations

import cv2
import numpy as np

from midvbatch.pipeline import Frame, Processor


class FindDocument(Processor):
    """Predict the document's quad as the largest four-sided contour of the frame."""

    def __init__(self, min_area: float = 0.05, blur: int = 5):
        self.min_area = min_area  # smallest document, as a share of the frame's area
        self.blur = blur
        self.kernel = None

    def setup(self) -> None:
        # Once per worker: where a real processor would load its model.
        self.kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))

    def process_frame(self, frame: Frame) -> dict | None:
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        gray = cv2.GaussianBlur(gray, (self.blur, self.blur), 0)
        edges = cv2.dilate(cv2.Canny(gray, 50, 150), self.kernel)
        contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        height, width = gray.shape
        best = max(contours, key=cv2.contourArea, default=None)
        if best is None or cv2.contourArea(best) < self.min_area * width * height:
            return {"quad": None}  # nothing found: still a result, stored per frame
        approx = cv2.approxPolyDP(best, 0.02 * cv2.arcLength(best, True), True)
        if len(approx) != 4:
            approx = cv2.boxPoints(cv2.minAreaRect(best))
        quad = np.asarray(approx, dtype=float).reshape(4, 2)
        # corners in document order: top-left first, clockwise on screen
        centre = quad.mean(axis=0)
        angles = np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0])
        quad = quad[np.argsort(angles)]
        start = int(np.argmin(quad.sum(axis=1)))
        quad = np.roll(quad, -start, axis=0)
        return {"quad": [[round(float(x), 1), round(float(y), 1)] for x, y in quad]}


def make(min_area: float = 0.05, blur: int = 5) -> FindDocument:
    """Factory: the engine calls it with the run's --option values."""
    return FindDocument(min_area=min_area, blur=blur)
