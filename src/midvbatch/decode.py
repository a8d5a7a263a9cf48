"""Decode the annotated frames of many clips and say how it went, clip by clip.

The smallest end-to-end use of the dataset and video layers: what ``midvbatch frames``
and the demo run. A clip that fails is reported with its reason; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from midvbatch.dataset.model import Clip
from midvbatch.errors import MidvBatchError
from midvbatch.video.frames import read_clip_frames


@dataclass(frozen=True)
class ClipDecode:
    """The outcome of decoding one clip's annotated frames."""

    clip: str
    frames: int  # annotated frames decoded
    width: int | None
    height: int | None
    seconds: float  # wall time
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every annotated frame was decoded."""
        return self.error is None

    def to_dict(self) -> dict:
        """Return a JSON-ready record."""
        return {
            "clip": self.clip,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


def decode_clip(clip: Clip, clock=time.perf_counter) -> ClipDecode:
    """Decode the annotated frames of `clip`; never raises for a bad video."""
    rule = clip.frame_rule
    start = clock()
    frames, width, height = 0, None, None
    if clip.video is None and not clip.runs_from_pictures:
        return ClipDecode(clip.id, 0, None, None, 0.0, "no video file")
    try:
        source = read_clip_frames(clip.video, count=rule.count, fps=rule.fps, numbers=rule.numbers, images=clip.images)
        for frame in source:
            frames += 1
            height, width = frame.image.shape[:2]
    except MidvBatchError as exc:
        return ClipDecode(clip.id, frames, width, height, clock() - start, str(exc))
    return ClipDecode(clip.id, frames, width, height, clock() - start)


def decode_clips(clips: Iterable[Clip]) -> Iterator[ClipDecode]:
    """Decode clip after clip, yielding each outcome as it is known."""
    for clip in clips:
        yield decode_clip(clip)
