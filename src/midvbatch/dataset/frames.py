"""The annotated frames of a dataset: id, ground-truth quad, frame size, visibility subsets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from midvbatch.dataset.formats import get_format
from midvbatch.dataset.groundtruth import Quad
from midvbatch.dataset.model import Clip
from midvbatch.dataset.visibility import subsets
from midvbatch.errors import VideoError
from midvbatch.video.image import image_size
from midvbatch.video.probe import probe


@dataclass(frozen=True)
class FrameTruth:
    """One annotated frame's ground truth and the subsets it belongs to."""

    id: str  # CCDD_KK
    clip: str  # clip id
    number: int
    quad: Quad
    width: int
    height: int
    size_from: str  # "video", "picture", "catalog" (the format's documented size) or "unknown" (0 x 0)
    subsets: tuple[str, ...]

    def to_dict(self) -> dict:
        """Return a JSON-ready record."""
        return {
            "id": self.id,
            "clip": self.clip,
            "frame": self.number,
            "quad": self.quad.to_list(),
            "frame_size": [self.width, self.height],
            "frame_size_from": self.size_from,
            "subsets": list(self.subsets),
        }


def frame_size(clip: Clip) -> tuple[int, int, str]:
    """Return (width, height, source) of the clip's frames as shown.

    From the video when it is present and readable, else as the clip's format documents
    it, else (0, 0, "unknown").
    """
    if clip.video is not None:
        try:
            info = probe(clip.video)
            return info.display_width, info.display_height, "video"
        except VideoError:
            pass
    if clip.frame_size is not None:
        return clip.frame_size[0], clip.frame_size[1], "catalog"
    return 0, 0, "unknown"


def clip_frame_truths(clip: Clip) -> list[FrameTruth]:
    """Read the ground truth of every annotated frame of a clip, in frame order.

    Raises GroundTruthError naming the first malformed file.
    """
    if not clip.ground_truth:
        return []
    width, height, source = frame_size(clip)
    quads = get_format(clip.format).read_quads(clip.ground_truth)
    out = []
    for number in sorted(quads):
        quad = quads[number]
        if clip.video is None and number in clip.images:  # a picture: its own size
            try:
                width, height = image_size(clip.images[number])
                source = "picture"
            except VideoError:
                width, height, source = 0, 0, "unknown"
        out.append(
            FrameTruth(
                clip.frame_id(number),
                clip.id,
                number,
                quad,
                width,
                height,
                source,
                tuple(subsets(quad, width, height)),
            )
        )
    return out


def frame_truths(clips: Iterable[Clip]) -> Iterator[FrameTruth]:
    """Yield the annotated frames of every clip, clip by clip."""
    for clip in clips:
        yield from clip_frame_truths(clip)
