"""Shared test helpers: real H.264 files written with PyAV, real sample data."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

REAL = Path(__file__).parent / "data" / "midv500-real"


def index_image(i: int, width: int, height: int) -> np.ndarray:
    """An image whose top half encodes i % 16 and bottom half i // 16 (grey levels x 16)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2] = (i % 16) * 16
    img[height // 2 :] = (i // 16) * 16
    return img


def image_index(img: np.ndarray) -> int:
    """Read back the number index_image() drew."""
    h = img.shape[0]
    top = int(round(float(img[h // 4, 4, 0]) / 16))
    bottom = int(round(float(img[3 * h // 4, 4, 0]) / 16))
    return top + 16 * bottom


def write_video(
    path: Path,
    *,
    frames: int = 40,
    rate: float | Fraction = 30,
    width: int = 64,
    height: int = 96,
    rotation: int = 0,
    draw=index_image,
) -> Path:
    """Write a lossless H.264 video whose frame i shows draw(i, width, height) as displayed.

    `rotation` is the display rotation (degrees counter-clockwise) written in the
    container; stored frames are turned the other way, so the displayed picture is the
    drawn one, as on a phone.
    """
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=rate)
    turned = rotation % 180 == 90
    stream.width, stream.height = (height, width) if turned else (width, height)
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "0", "preset": "ultrafast"}
    if rotation:
        stream.set_display_rotation(rotation)
    for i in range(frames):
        img = draw(i, width, height)
        if rotation:
            img = np.ascontiguousarray(np.rot90(img, k=-(rotation // 90)))
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture
def real_data() -> Path:
    """The real MIDV-500 samples (see tests/data/midv500-real/SOURCES.md)."""
    return REAL
