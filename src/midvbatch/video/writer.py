"""Encode BGR frames to an H.264 video (PyAV), renamed into place when complete."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Self

import av
import cv2
import numpy as np

CRF = "20"
PRESET = "veryfast"
X264_THREADS = 1  # fixed: x264's output depends on its thread count
# x264's macroblock-tree rate control read uninitialised memory at some frame sizes
# (seen at 180x320 and 540x960, not at 256x512 or 1080x1920): the same frames gave
# different bytes from run to run. Without it the output is reproducible, at a small
# cost in quality per bit.
X264_PARAMS = "mbtree=0"

# display rotation (degrees counter-clockwise, as PyAV and FFmpeg's display matrix give
# it) -> how a display-orientation picture is turned to be stored
_STORE = {0: None, -90: cv2.ROTATE_90_COUNTERCLOCKWISE, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180}


class VideoWriter:
    """Write display-orientation BGR frames to an H.264 MOV/MP4 file, reproducibly.

    The file is written as ``.NAME.part`` beside `path` and renamed to `path` when the
    writer closes without an exception (a failure removes it): a reader never sees half a
    video. `display_rotation` (0, -90, 90 or 180 degrees counter-clockwise) stores the
    pictures turned, with that rotation in the container, as phones do (iPhones: -90,
    portrait frames stored landscape); players and our reader turn them back. The same
    frames and options give the same bytes (on the same FFmpeg/x264 build). Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        rate: Fraction | int,
        width: int,
        height: int,
        *,
        display_rotation: int = 0,
        crf: str = CRF,
        preset: str = PRESET,
        threads: int = X264_THREADS,
        x264_params: str = X264_PARAMS,
    ):
        if display_rotation not in _STORE:
            raise ValueError(f"display rotation must be one of {sorted(_STORE)}, got {display_rotation!r}")
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.part")
        self.turn = _STORE[display_rotation]
        container_format = "mov" if self.path.suffix.lower() == ".mov" else "mp4"
        self.partial.unlink(missing_ok=True)  # a leftover: opened for writing, a FIFO there would block
        self.container = av.open(str(self.partial), mode="w", format=container_format)
        try:
            stream = self.container.add_stream("libx264", rate=rate)
            stream.width, stream.height = (height, width) if display_rotation % 180 else (width, height)
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = threads
            stream.options = {"crf": crf, "preset": preset, "x264-params": x264_params}
            if display_rotation:
                stream.set_display_rotation(display_rotation)
        except BaseException:
            self.container.close()
            self.partial.unlink(missing_ok=True)
            raise
        self.stream = stream
        self.index = 0
        self.time_base = 1 / Fraction(rate)
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        """Encode one display-orientation BGR frame (height x width x 3, uint8)."""
        # cv2.rotate is np.rot90, several times faster on big frames.
        stored: np.ndarray = image if self.turn is None else cv2.rotate(image, self.turn)
        frame = av.VideoFrame.from_ndarray(stored, format="bgr24")
        frame.pts, frame.time_base = self.index, self.time_base
        self.index += 1
        self.container.mux(self.stream.encode(frame))

    def close(self, complete: bool = True) -> None:
        """Flush and close; rename the file into place if `complete`, else remove it."""
        if self.closed:
            return
        self.closed = True
        try:
            if complete:
                self.container.mux(self.stream.encode(None))
        except BaseException:
            complete = False
            raise
        finally:
            self.container.close()
            if complete:
                os.replace(self.partial, self.path)
            else:
                self.partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)
