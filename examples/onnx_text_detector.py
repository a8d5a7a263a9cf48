"""A neural text detector in batches: PP-OCRv4's DBNet on ONNX Runtime, on the CPU or a GPU.

The model ships inside the rapidocr-onnxruntime wheel from PyPI (models/ch_PP-OCRv4_det_infer.onnx),
so nothing is downloaded at run time; .ci/onnx installs it with onnxruntime. Each batch of frames is
scaled to one size and goes through the network in one call; the text found in a frame is returned
as boxes, and the rectangle around all of them as the frame's "quad", which midvbatch scores
against the document's ground truth (the text of a card covers most of it).

    midvbatch run DATASET --out runs/det --processor examples.onnx_text_detector:make \\
        --batch-size 8 --prefetch 8 --option side=480

Options: side (the scaled frames' shorter side, a multiple of 32; default 480), threshold (a pixel's
text probability, default 0.3), box_threshold (a box's mean probability, default 0.5), threads (ONNX
Runtime's threads per worker; default 1, as midvbatch runs one worker per core), device ("cpu", or
"cuda" with onnxruntime-gpu; default: the worker's accelerator when the run was given --devices,
else the CPU).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from midvbatch import PermanentError

MODEL = "ch_PP-OCRv4_det_infer.onnx"


def model_path() -> Path:
    """The detector's .onnx file inside the installed rapidocr_onnxruntime package (not imported: it needs
    opencv-python and more that midvbatch does not use)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("rapidocr-onnxruntime is not installed: run .ci/onnx (or pip install --no-deps "
                           "rapidocr-onnxruntime onnxruntime)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL
    if not path.is_file():
        raise RuntimeError(f"{path}: the detector model is missing from rapidocr-onnxruntime")
    return path


def order_corners(points: np.ndarray) -> list[list[float]]:
    """Four corners clockwise from the top-left one (the smallest x + y)."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    points = points[np.argsort(angles)]
    points = np.roll(points, -int(np.argmin(points.sum(axis=1))), axis=0)
    return [[round(float(x), 1), round(float(y), 1)] for x, y in points]


class TextDetector:
    """process_batch: the frames of a batch, scaled to one size, through the network in one call."""

    def __init__(self, side: int = 480, threshold: float = 0.3, box_threshold: float = 0.5, threads: int = 1,
                 device: str | None = None):
        if side < 32 or side % 32:
            raise ValueError(f"side must be a positive multiple of 32, not {side}")
        self.side, self.threshold, self.box_threshold = side, threshold, box_threshold
        self.threads, self.device = threads, device
        self.session = None

    def setup(self) -> None:
        """Load the model, once per worker."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        device = self.device or ("cuda" if os.environ.get("MIDVBATCH_DEVICE", "").startswith("cuda") else "cpu")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("device cuda asked for, but this onnxruntime has no CUDA provider "
                                   "(install onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(model_path()), options, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def _size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) scaled so that the shorter side is `side`, both multiples of 32."""
        scale = self.side / min(height, width)
        return (max(32, round(height * scale / 32) * 32), max(32, round(width * scale / 32) * 32))

    def process_batch(self, frames):
        height, width = frames[0].image.shape[:2]
        size = self._size(height, width)
        batch = np.empty((len(frames), 3, *size), np.float32)
        for i, frame in enumerate(frames):
            image = frame.image
            if image.shape[:2] != (height, width):  # a batch across clips may mix frame sizes
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            scaled = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            batch[i] = ((scaled.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
        probabilities = self.session.run(None, {self.input: batch})[0][:, 0]
        return [self._boxes(p, frame.image.shape[:2]) for p, frame in zip(probabilities, frames, strict=True)]

    def process_frame(self, frame):
        return self.process_batch([frame])[0]

    def _boxes(self, probability: np.ndarray, shape: tuple[int, int]) -> dict:
        """Text boxes (rotated rectangles, grown as DBNet's are) in frame pixels, and the quad around them."""
        mask = (probability > self.threshold).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        sy, sx = shape[0] / probability.shape[0], shape[1] / probability.shape[1]
        boxes = []
        for contour in contours:
            if len(contour) < 4:
                continue
            (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
            if min(w, h) < 3:
                continue
            region = np.zeros_like(mask)
            cv2.drawContours(region, [contour], -1, 1, thickness=-1)
            if float(probability[region > 0].mean()) < self.box_threshold:
                continue
            grow = w * h * 1.6 / (2 * (w + h))  # DBNet's unclip: the area times the ratio over the perimeter
            corners = cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle)) * (sx, sy)
            boxes.append(corners)
        if not boxes:
            return {"quad": None, "boxes": []}
        every = np.concatenate(boxes).astype(np.float32)
        around = cv2.boxPoints(cv2.minAreaRect(every))
        return {"quad": order_corners(around), "boxes": [order_corners(b) for b in boxes]}


def check(**options) -> None:
    """What a run checks before it starts: ONNX Runtime and the model file are installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise PermanentError("the detector needs ONNX Runtime: run .ci/onnx (or pip install onnxruntime)")
    try:
        model_path()
    except RuntimeError as exc:
        raise PermanentError(str(exc)) from None


def make(side: int = 480, threshold: float = 0.3, box_threshold: float = 0.5, threads: int = 1,
         device: str | None = None) -> TextDetector:
    """Factory: the engine calls it with the run's --option values."""
    return TextDetector(side=side, threshold=threshold, box_threshold=box_threshold, threads=threads,
                        device=device)


make.check = check  # type: ignore[attr-defined]
