"""Open a video with PyAV, turning every failure into a VideoError naming the file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av

from midvbatch.errors import SHORT_ERRNOS, MidvBatchError, ResourceShortage, VideoError, shortage
from midvbatch.fileio import check_regular_file


def ffmpeg_reason(exc: BaseException) -> str:
    """Say in a few words what FFmpeg objected to."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":", 1)[0].strip() if "':" in text else text.strip()


# what FFmpeg ran short of, by the error it returns: EAGAIN is a decoder that could not start its threads
_SHORT = {errno.EAGAIN: "threads", **SHORT_ERRNOS}


def video_failure(exc: BaseException, problem: str, path: str | Path) -> MidvBatchError:
    """The error for FFmpeg's (or the system's) `exc` while doing something to the video at `path`: a
    ResourceShortage (retried) when the machine ran short of threads, file descriptors or memory, else a
    VideoError ("`problem` (reason)")."""
    what = _SHORT.get(getattr(exc, "errno", None) or 0) if isinstance(exc, av.FFmpegError) else shortage(exc)
    reason = ffmpeg_reason(exc) if isinstance(exc, av.FFmpegError) else (getattr(exc, "strerror", None) or str(exc))
    if what is not None:
        return ResourceShortage(f"{problem}: out of {what} ({reason})", resource=what, path=path)
    return VideoError(f"{problem} ({reason})", path=path)


_IMAGE_DEMUXERS = {"image2", "image2pipe", "gif", "apng", "webp"}  # FFmpeg's picture readers (and *_pipe)


def _image_kind(container, stream) -> str | None:
    """Say what kind of still image FFmpeg opened ('a PNG image'), or None for a video.

    FFmpeg opens a picture through an image demuxer (png_pipe, image2, ...) as a
    one-frame "video"; MIDV clips are never that.
    """
    names = set(container.format.name.split(","))
    pipes = {n for n in names if n.endswith("_pipe") and n != "image2pipe"}
    if pipes:
        kind = min(pipes).removesuffix("_pipe").upper()
    elif names & _IMAGE_DEMUXERS:
        kind = (stream.codec_context.name or "").upper()
        kind = {"MJPEG": "JPEG"}.get(kind, kind)
    else:
        return None
    return f"an {kind} image" if kind[:1] in "AEFHILMNORSX" else f"a {kind} image"


def open_container(path: Path, what: str):
    """Open `path` with FFmpeg for reading; a failure is a VideoError naming the file ('not a readable `what`')."""
    try:
        # An absolute name: FFmpeg would take a file named 'concat:...' or 'http:...' for a protocol.
        return av.open(os.path.abspath(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise video_failure(exc, f"not a readable {what}", path) from None
    except OSError as exc:
        if shortage(exc):
            raise video_failure(exc, "cannot open", path) from None
        raise VideoError(f"cannot read: {exc.strerror or exc}", path=path) from None


def open_video(path: str | Path):
    """Open `path` for reading and return (container, video stream).

    Raises VideoError for a missing, empty, unreadable or non-video file: anything but
    a regular file (a FIFO would block, /dev/zero never end) is refused before FFmpeg
    opens it, and so is a picture (PNG, JPEG, TIFF, ...) with a video's name.
    """
    path = Path(path)
    size = check_regular_file(path, VideoError, "a video file")
    if size == 0:
        raise VideoError("empty file (0 bytes), not a video", path=path)
    container = open_container(path, "video")
    try:
        streams = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]  # cover art is no video
        if not streams:
            still = " (only a still picture)" if container.streams.video else ""
            raise VideoError(f"has no video stream{still}", path=path)
        kind = _image_kind(container, streams[0])
        if kind is not None:
            raise VideoError(f"not a video ({kind})", path=path)
    except BaseException:
        container.close()
        raise
    return container, streams[0]
