"""A dataset opened for Python: its clips, and its annotated frames decoded with their ground truth.

``open_dataset(root)`` discovers the dataset; ``frames()`` decodes each selected clip's
annotated frames (as ``ffmpeg -r 10`` samples them, see midvbatch.video.reader) and pairs
each with its ground truth by frame number, one frame in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midvbatch.dataset import (
    Clip,
    Dataset,
    FrameTruth,
    Quad,
    clip_frame_truths,
    discover,
    select,
)
from midvbatch.dataset.fields import FrameField, clip_fields
from midvbatch.errors import MidvBatchError, VideoError
from midvbatch.video.frames import read_clip_frames

Patterns = str | Sequence[str]


def _patterns(value: Patterns | None) -> tuple[str, ...]:
    """One glob or several; a lone string is one pattern, not its characters."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class DatasetFrame:
    """One annotated frame of a clip: the decoded image and its ground truth.

    `truth` is None when the clip has no ground truth for this frame (a folder of plain
    videos has none at all).
    """

    clip: Clip
    number: int  # 1-based, as in CCDD_KK
    time: float  # seconds from the clip's start of the decoded frame
    image: np.ndarray = field(repr=False)  # H x W x 3 uint8, BGR, upright (the video's rotation applied)
    truth: FrameTruth | None
    # the document's text fields in this frame, true values included; {} without template or quad
    fields: dict[str, FrameField] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        """The frame's name as the dataset gives it: CCDD_KK."""
        return self.clip.frame_id(self.number)

    @property
    def quad(self) -> Quad | None:
        """The document's ground-truth corners in this frame, or None without ground truth."""
        return self.truth.quad if self.truth is not None else None

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.image.shape))
        quad = self.quad.to_list() if self.quad is not None else None
        return f"DatasetFrame(id={self.id!r}, time={self.time:.3f}, image={shape}, quad={quad})"


class AnnotatedDataset:
    """A dataset folder, discovered: select its clips, read their ground truth, decode their frames."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    @property
    def root(self) -> Path:
        """The dataset's folder."""
        return self.dataset.root

    def clips(self, docs: Patterns | None = None, clips: Patterns | None = None) -> list[Clip]:
        """Return the clips whose document matches a `docs` glob and whose code or id matches a `clips` glob.

        No patterns: every clip. Raises DatasetError when patterns select nothing.
        """
        return select(self.dataset, _patterns(docs), _patterns(clips))

    def clip(self, clip_id: str) -> Clip:
        """Return the clip with this id ('TA01'); raise DatasetError if there is none."""
        return self.dataset.clip(clip_id)

    def truths(self, docs: Patterns | None = None, clips: Patterns | None = None) -> Iterator[FrameTruth]:
        """Yield the ground truth of the selected clips' annotated frames, without decoding any video.

        Raises GroundTruthError naming the first malformed file.
        """
        for clip in self.clips(docs, clips):
            yield from clip_frame_truths(clip)

    def frames(
        self, docs: Patterns | None = None, clips: Patterns | None = None, *, threads: int | None = None
    ) -> Iterator[DatasetFrame]:
        """Yield the annotated frames of the selected clips, clip by clip, each with its ground truth.

        `threads` is FFmpeg's decoding threads (None: FFmpeg chooses). Raises VideoError
        naming the file for a clip without video, or one that cannot be decoded or ends
        early (after yielding the frames it has); GroundTruthError for a malformed
        ground-truth file.
        """
        for clip in self.clips(docs, clips):
            yield from self.clip_frames(clip, threads=threads)

    def clip_frames(self, clip: Clip | str, *, threads: int | None = None) -> Iterator[DatasetFrame]:
        """Yield one clip's annotated frames (a Clip or its id), each with its ground truth."""
        if isinstance(clip, str):
            clip = self.clip(clip)
        if clip.video is None and not clip.runs_from_pictures:
            raise VideoError(f"clip {clip.id} has no video file", path=self.root)
        rule = clip.frame_rule  # which frames are annotated: by time (count at fps) or by number
        truths = {t.number: t for t in clip_frame_truths(clip)}
        try:
            fields = clip_fields(clip, truths)
        except MidvBatchError:  # a template that cannot be read: frames without fields (validate says why)
            fields = {}
        frames = read_clip_frames(
            clip.video, count=rule.count, fps=rule.fps, numbers=rule.numbers, images=clip.images, threads=threads
        )
        for frame in frames:
            number = frame.number
            yield DatasetFrame(clip, number, frame.time, frame.image, truths.get(number), fields.get(number, {}))

    def __repr__(self) -> str:
        return f"AnnotatedDataset({str(self.root)!r}, {len(self.dataset.clips)} clips)"


def open_dataset(root: str | Path, catalog: str | None = None) -> AnnotatedDataset:
    """Discover the dataset under `root`, in the format named by `catalog` ('midv500', 'midv2019',
    'midv2020', a plugin's), guessed from the folder by default.

    Raises DatasetError if `root` is not a folder or holds no dataset.
    """
    return AnnotatedDataset(discover(root, catalog))
