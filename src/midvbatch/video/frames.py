"""Where a clip's annotated frames come from: decoded from its video (by time or by number), or read
from its pictures. Every reader of a clip's frames (runs, decode, validate, the Python API, reports)
goes through :func:`read_clip_frames`."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from pathlib import Path

from midvbatch.errors import VideoError
from midvbatch.video.image import read_images
from midvbatch.video.reader import AnnotatedFrame, read_annotated_frames, read_frames_at


def read_clip_frames(
    video: str | Path | None,
    *,
    count: int,
    fps: float,
    numbers: tuple[int, ...] = (),
    images: Mapping[int, str | Path] | None = None,
    threads: int | None = None,
) -> Generator[AnnotatedFrame, None, None]:
    """The annotated frames of a clip, wherever they come from: decoded from its `video` by time
    (`count` at `fps`) or by number (`numbers`, 1-based in decode order), else read from its
    pictures (`images`: frame number -> file) when it has no video and names its frames by number.

    Raises VideoError when there is nothing to read the frames from.
    """
    if video is not None:
        if numbers:
            return read_frames_at(video, numbers, threads=threads)
        return read_annotated_frames(video, count=count, fps=fps, threads=threads)
    if numbers and images:
        return read_images(images)
    raise VideoError("clip has no video file" + (" and no frame pictures" if numbers else ""))
