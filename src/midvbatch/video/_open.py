"""Open a video with PyAV, turning every failure into a VideoError naming the file."""

from __future__ import annotations

from pathlib import Path

import av

from midvbatch.errors import VideoError


def ffmpeg_reason(exc: BaseException) -> str:
    """Say in a few words what FFmpeg objected to."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":", 1)[0].strip() if "':" in text else text.strip()


def open_video(path: str | Path):
    """Open `path` for reading and return (container, video stream).

    Raises VideoError for a missing, empty, unreadable or non-video file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoError("no such file", path=path) from None
    except OSError as exc:
        raise VideoError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if path.is_dir():
        raise VideoError("is a folder, not a video file", path=path)
    if size == 0:
        raise VideoError("empty file (0 bytes), not a video", path=path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(f"not a readable video ({ffmpeg_reason(exc)})", path=path) from None
    except OSError as exc:
        raise VideoError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not container.streams.video:
        container.close()
        raise VideoError("has no video stream", path=path)
    return container, container.streams.video[0]
