"""Probe a video's container metadata without decoding it (except for rotation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import av

from midvbatch.video._open import open_video, video_failure


@dataclass(frozen=True)
class VideoInfo:
    """What a video container says about its first video stream."""

    path: str
    container: str  # FFmpeg format name(s), e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # e.g. "h264"
    width: int  # as stored (coded picture size)
    height: int
    rotation: int  # display rotation, degrees counter-clockwise (0, 90, 180, 270)
    fps: float | None  # average frame rate
    duration: float | None  # seconds
    frame_count: int | None  # from the container, None where it does not say
    bit_rate: int | None
    size_bytes: int

    @property
    def display_width(self) -> int:
        """Width of the frames as shown, rotation applied."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        """Height of the frames as shown, rotation applied."""
        return self.width if self.rotation in (90, 270) else self.height

    def to_dict(self) -> dict:
        """Return a JSON-ready dict, display size included."""
        d = asdict(self)
        d["display_width"], d["display_height"] = self.display_width, self.display_height
        return d


def normalise_rotation(degrees: float | int | None) -> int:
    """Map any angle to the nearest of 0, 90, 180, 270."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90


def probe(path: str | Path) -> VideoInfo:
    """Read the container metadata of `path`; raise VideoError naming the file if unusable.

    Rotation comes from the display matrix, which FFmpeg attaches to decoded frames, so
    the first packet is decoded to read it.
    """
    container, stream = open_video(path)
    try:
        ctx = stream.codec_context
        ctx.thread_count = 1  # one frame: no decoding threads to start
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = normalise_rotation(getattr(frame, "rotation", 0))
                break
        except av.FFmpegError as exc:
            raise video_failure(exc, "cannot decode its first frame", path) from None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        fps = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(
            path=str(path),
            container=container.format.name,
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            rotation=rotation,
            fps=fps,
            duration=duration,
            frame_count=stream.frames or None,
            bit_rate=container.bit_rate or None,
            size_bytes=Path(path).stat().st_size,
        )
    finally:
        container.close()
