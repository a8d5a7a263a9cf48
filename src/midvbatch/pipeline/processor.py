"""The processor plugin interface: what a processor is handed (Frame, ClipInfo) and its base class.

A processor is any object with ``process_frame(frame) -> dict | None`` (the engine
reads the annotated frames and calls it once per frame), ``process_batch(frames) ->
list`` (the same, up to --batch-size frames of a clip a call, one result per frame) or
``process_clip(clip) -> dict`` (the processor reads the video itself), and optionally
``setup()`` (once per worker, before the first clip: load a model), ``finish_clip(clip)
-> dict | None`` (after a clip's frames: the processor's own result for the whole clip,
e.g. its text fields combined over the frames) and ``close()``.

What a result may hold that midvbatch scores: ``"quad"`` (the document's four corners in
the frame) and ``"fields"`` (``{"field05": "01.01.1980"}``, or ``{"field05": {"text":
"01.01.1980", "confidence": 0.93}}``), each scored against the dataset's ground truth.
A *factory* makes it: a callable taking the run's processor options as keyword
arguments. Finding factories by name is pipeline/registry.py's concern.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midvbatch.dataset.fields import FrameField, field_crop, fields_in_frame
from midvbatch.dataset.groundtruth import Quad, Template
from midvbatch.errors import ProcessorError
from midvbatch.pipeline.prediction import valid_text
from midvbatch.runfolder import RESERVED, is_artifact_path


@dataclass
class ClipInfo:
    """What a processor knows of the clip it works on."""

    id: str  # TA01, or the video's path relative to a plain folder
    document: str
    code: str
    condition: str | None
    device: str | None
    video: Path | None
    frames: int  # annotated frames to read
    fps: float  # annotated-frame sampling rate
    ground_truth: dict[int, Quad] = field(default_factory=dict)  # frame number -> quad
    output_dir: Path | None = None  # write artifacts here; moved into RUN_DIR on success
    template_size: tuple[int, int] | None = None  # (w, h) of the document's template rectangle
    frame_digits: int = 2  # digits of a frame number in frame ids: 2 (CCDD_KK), 6 (MIDV-2020's 000007)
    accelerator: str | None = None  # the worker's device as it sees it ('cuda:0') with --devices; None: the CPU
    # frame number -> its text fields; their values are None (hidden) unless the processor says field_values = True
    templates: Mapping[int, Template] = field(default_factory=dict, repr=False)

    def artifact(self, relative: str | Path) -> Path:
        """Return where to write an artifact that ends up at RUN_DIR/`relative`."""
        if self.output_dir is None:
            raise ProcessorError("this run keeps no artifacts")
        rel = Path(relative)
        if valid_text(str(rel)) != str(rel):  # the ledger records its name, in UTF-8
            raise ProcessorError(f"artifact path {str(relative)!r} is not valid Unicode (a lone surrogate)")
        if not is_artifact_path(rel):
            raise ProcessorError(
                f"artifact path {str(relative)!r} must be relative, inside the run folder, and "
                f"not one of the run's own files ({', '.join(RESERVED)})"
            )
        path = self.output_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Frame:
    """One annotated frame handed to ``process_frame``."""

    image: np.ndarray  # H x W x 3, uint8, BGR, as displayed (rotation applied)
    number: int  # 1..30
    time: float  # seconds from the clip's start
    clip: ClipInfo

    @property
    def id(self) -> str:
        """The frame's dataset name: CCDD_KK (MIDV-500), clips/alb_id/00_000007 (MIDV-2020)."""
        return f"{self.clip.id}_{self.number:0{self.clip.frame_digits}d}"

    @property
    def quad(self) -> Quad | None:
        """The ground-truth quad of this frame, if the dataset has one."""
        return self.clip.ground_truth.get(self.number)

    @functools.cached_property
    def fields(self) -> dict[str, FrameField]:
        """The document's fields in this frame, by name: each one's quad in the frame's pixels.

        Carried from the template through the ground-truth document quad (a picture the
        template's size without one is the template itself). The true values are None
        (hidden) unless the processor declares ``field_values = True``; ``has_text`` says
        which fields hold text. {} for a frame without template or document quad.
        """
        document = self.quad
        template = self.clip.templates.get(self.number)
        if document is None and template is not None and (self.image.shape[1], self.image.shape[0]) == template.size:
            width, height = template.size
            document = Quad(((0, 0), (width, 0), (width, height), (0, height)))
        return self.fields_at(document) if document is not None else {}

    def fields_at(self, document: Quad) -> dict[str, FrameField]:
        """The document's fields were it at `document` in this frame (corners in document order: top-left
        of the document first): for reading the fields where a localizer found the document."""
        template = self.clip.templates.get(self.number)
        if template is None or template.size is None:
            return {}
        return fields_in_frame(template, template.size, document)

    def field_image(self, name: str, height: int = 32) -> np.ndarray | None:
        """Return field `name` cut out of the frame and rectified, `height` pixels high, text upright.

        None when the field has no area in the frame; ProcessorError for a name the frame
        does not show (see ``fields``)."""
        found = self.fields.get(name)
        if found is None:
            known = ", ".join(self.fields) or "none"
            raise ProcessorError(f"frame {self.id} has no field {name!r} (it has: {known})")
        return self.crop(found.quad, height)

    def crop(self, quad: Quad, height: int = 32) -> np.ndarray | None:
        """Return the region at `quad` (corners top-left, top-right, bottom-right, bottom-left) rectified,
        `height` pixels high, its width by the region's aspect ratio; None when it has no area."""
        return field_crop(self.image, quad, height)


@dataclass(frozen=True)
class Capabilities:
    """What a processor can do, as the interface above declares it: which of its optional methods it has, and
    whether it asks for the true field values. Read once, when the processor is built (`Capabilities.of`)."""

    process_frame: bool = False
    process_batch: bool = False
    process_clip: bool = False
    finish_clip: bool = False
    setup: bool = False
    field_values: bool = False  # Frame.fields carries the true values
    pixels: bool = True  # False: its frames are not decoded (Frame.image is an empty H x W x 0 array)

    @classmethod
    def of(cls, processor: object) -> Capabilities:
        """Return what `processor` has of the interface (its methods by name, its `field_values`)."""
        return cls(
            process_frame=hasattr(processor, "process_frame"),
            process_batch=hasattr(processor, "process_batch"),
            process_clip=hasattr(processor, "process_clip"),
            finish_clip=hasattr(processor, "finish_clip"),
            setup=hasattr(processor, "setup"),
            field_values=bool(getattr(processor, "field_values", False)),
            pixels=bool(getattr(processor, "pixels", True)),
        )


class Processor:
    """Optional base class: override ``process_frame``, ``process_batch`` or ``process_clip``."""

    field_values = False  # True: Frame.fields carries the true values (only for checking the scoring)
    pixels = True  # False: it reads no pixels: frames come undecoded, Frame.image an empty H x W x 0 array

    def setup(self) -> None:
        """Prepare once per worker (load a model); default: nothing."""

    def close(self) -> None:
        """Release what setup() took; default: nothing."""
