"""What a dataset is made of, whatever its format: clips, documents, frame rules, findings.

A dataset format (:mod:`midvbatch.dataset.formats`) turns a folder into a :class:`Dataset`;
everything above the dataset layer works on these types only.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from midvbatch.dataset.catalog import Catalog
from midvbatch.errors import DatasetError

VIDEO_EXTENSIONS = frozenset(
    {".mov", ".mp4", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv"}
)
ERROR, WARNING, NOTE = "error", "warning", "note"


@dataclass(frozen=True)
class FrameRule:
    """Which frames of a clip are annotated.

    By time (MIDV-500, MIDV-2019): frame k (1..count) is the picture shown at (k - 1) / fps
    seconds, as FFmpeg's ``fps`` filter samples it (30 at 10 fps). By number (MIDV-2020):
    `numbers` lists the annotated frames, 1-based in decode order (1, 7, 13, ...), or the
    numbers of a group's pictures; `count` is then their number and `fps` 0.
    """

    count: int = 30
    fps: float = 10.0
    numbers: tuple[int, ...] = ()

    @classmethod
    def by_number(cls, numbers: Iterable[int]) -> FrameRule:
        """The rule of a clip whose annotated frames are named by number."""
        chosen = tuple(sorted(set(numbers)))
        return cls(count=len(chosen), fps=0.0, numbers=chosen)

    @property
    def needed_seconds(self) -> float:
        """The shortest clip from which the sampler yields every annotated frame (0 for a rule by number)."""
        return (self.count - 0.5) / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class Problem:
    """One finding of validation: how bad, what kind, which file, what is wrong."""

    severity: str  # error | warning | note
    kind: str  # missing | ground_truth | quad | template | video | decode | frame_mismatch | archive | extra
    path: str
    message: str
    clip: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Clip:
    """One video clip of a dataset and the files that annotate it."""

    id: str  # unique in the dataset: "TA01" (code + document number), or the video's relative path
    document: str
    code: str  # clip code ("TA"), or the video's file stem outside MIDV structure
    video: Path | None
    format: str = "midv500"  # the name of the dataset format that found it (reads its ground truth)
    condition: str | None = None
    device: str | None = None
    ground_truth: dict[int, Path] = field(default_factory=dict)  # frame number -> JSON
    images: dict[int, Path] = field(default_factory=dict)  # frame number -> extracted frame
    frame_rule: FrameRule = FrameRule()
    frame_size: tuple[int, int] | None = None  # (width, height) as the format documents it; None: unknown
    frame_digits: int = 2  # digits of a frame number in frame ids: 2 (CCDD_KK), 6 (MIDV-2020's 000007)
    template: str | None = None  # where its text fields are: the format's reference (read_templates); None: none

    @property
    def runs_from_pictures(self) -> bool:
        """A clip without video whose pictures are its frames (a format naming its frames by number)."""
        return self.video is None and bool(self.frame_rule.numbers) and bool(self.images)

    def frame_id(self, number: int) -> str:
        """Name annotated frame `number` as the dataset does (CCDD_KK)."""
        return f"{self.id}_{number:0{self.frame_digits}d}"

    def to_dict(self) -> dict:
        """Return a JSON-ready summary of the clip."""
        return {
            "id": self.id,
            "document": self.document,
            "clip": self.code,
            "condition": self.condition,
            "device": self.device,
            "video": str(self.video) if self.video else None,
            "ground_truth": len(self.ground_truth),
            "images": len(self.images),
        }


@dataclass
class Document:
    """A document folder of a MIDV dataset."""

    name: str
    folder: Path
    template_image: Path | None
    template_json: Path | None
    clips: list[Clip]


@dataclass(frozen=True)
class Missing:
    """Something a complete dataset would hold and this one does not."""

    kind: str  # document | clip | video | ground_truth | template_image | template_json
    where: str  # document name or clip id
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass
class Dataset:
    """What discovery found under a root: documents, clips, and what is missing."""

    root: Path
    format: str  # the name of the dataset format that read it
    catalog: Catalog | None  # documents, conditions, devices; None: a folder of videos
    documents: list[Document]
    clips: list[Clip]
    missing: list[Missing]

    @functools.cached_property
    def _by_id(self) -> dict[str, Clip]:
        return {c.id: c for c in self.clips}

    def clip(self, clip_id: str) -> Clip:
        """Return the clip with this id; raise DatasetError if there is none."""
        try:
            return self._by_id[clip_id]  # exports look up every clip of a run: not a scan each
        except KeyError:
            raise DatasetError(f"no clip {clip_id!r}", path=self.root) from None

    def to_dict(self) -> dict:
        """Return a JSON-ready summary: root, catalog, clips and missing parts."""
        return {
            "root": str(self.root),
            "format": self.format,
            "catalog": self.catalog.name if self.catalog else None,
            "documents": len(self.documents),
            "clips": [c.to_dict() for c in self.clips],
            "missing": [{"kind": m.kind, "where": m.where, "detail": m.detail} for m in self.missing],
        }


def select(
    dataset: Dataset, docs: list[str] | tuple[str, ...] = (), clips: list[str] | tuple[str, ...] = ()
) -> list[Clip]:
    """Return the clips whose document matches any `docs` glob and whose code or id matches any `clips` glob.

    An empty list of patterns selects everything. Raises DatasetError when patterns
    select nothing, naming them.
    """
    chosen = [
        c
        for c in dataset.clips
        if (not docs or any(fnmatch.fnmatchcase(c.document, p) for p in docs))
        and (not clips or any(fnmatch.fnmatchcase(c.code, p) or fnmatch.fnmatchcase(c.id, p) for p in clips))
    ]
    if not chosen and (docs or clips):
        wanted = " ".join([f"--docs {p}" for p in docs] + [f"--clips {p}" for p in clips])
        raise DatasetError(f"no clip matches {wanted}", path=dataset.root)
    return chosen
