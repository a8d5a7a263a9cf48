"""Where a clip's annotated frames come from: decoded from its video (by time or by number), or read
from its pictures. Every reader of a clip's frames (runs, decode, validate, the Python API, reports)
goes through :func:`read_clip_frames` (without pixels, for a processor that reads none)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from pathlib import Path

import numpy as np

from midvbatch.errors import VideoError
from midvbatch.video.image import image_size, read_images
from midvbatch.video.probe import probe
from midvbatch.video.reader import AnnotatedFrame, read_annotated_frames, read_frames_at


def read_clip_frames(
    video: str | Path | None,
    *,
    count: int,
    fps: float,
    numbers: tuple[int, ...] = (),
    images: Mapping[int, str | Path] | None = None,
    threads: int | None = None,
    pixels: bool = True,
) -> Generator[AnnotatedFrame, None, None]:
    """The annotated frames of a clip, wherever they come from: decoded from its `video` by time
    (`count` at `fps`) or by number (`numbers`, 1-based in decode order), else read from its
    pictures (`images`: frame number -> file) when it has no video and names its frames by number.

    Without `pixels` nothing is decoded, for what needs a frame's number and size only (scoring
    predictions made elsewhere): each frame's image is an empty array of the frame's shape as
    shown with no channels (H x W x 0), its size read from the video's container or the
    picture's header; its time the frame's slot, (number - 1) / `fps`.

    Raises VideoError when there is nothing to read the frames from.
    """
    if video is None and not (numbers and images):
        raise VideoError("clip has no video file" + (" and no frame pictures" if numbers else ""))
    if not pixels:
        return _blank_frames(video, count, fps, numbers, images or {})
    if video is not None:
        if numbers:
            return read_frames_at(video, numbers, threads=threads)
        return read_annotated_frames(video, count=count, fps=fps, threads=threads)
    return read_images(images or {})


def _blank_frames(
    video: str | Path | None, count: int, fps: float, numbers: tuple[int, ...], images: Mapping[int, str | Path]
) -> Generator[AnnotatedFrame, None, None]:
    """The frames read_clip_frames gives without `pixels` (it checked there is something to read them from)."""
    if video is not None:
        info = probe(video)
        blank = np.empty((info.display_height, info.display_width, 0), np.uint8)
        for number in numbers or range(1, count + 1):
            yield AnnotatedFrame(number, (number - 1) / fps if fps > 0 else 0.0, number - 1, blank)
        return
    for number in sorted(images):
        width, height = image_size(images[number])
        yield AnnotatedFrame(number, 0.0, number, np.empty((height, width, 0), np.uint8))
