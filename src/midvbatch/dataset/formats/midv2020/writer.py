"""MIDV-2020 written: per document type its templates, scans, photos and clips, with VIA annotations.

Writes, per document type TYPE, document number NN and annotated frame number FFFFFF:
``COLLECTION/images/TYPE/NN.jpg`` and ``COLLECTION/annotations/TYPE.json`` for the
templates, scan_upright, scan_rotated and photo collections;
``clips_video/video/TYPE/NN.mp4`` (upright H.264), ``clips/images/TYPE/NN/FFFFFF.jpg`` (its
frames 1, 7, 13, ..., decoded from the written video) and ``clips/annotations/TYPE/NN.json``
(paths: :mod:`.layout`'s, as the reader's). The annotations are VIA 2.0 project files as
MIDV-2020's (:mod:`.via`): each image keyed by file name and byte size, with a "face" rect
and the "doc_quad" polygon (corners in document order); a template's whole image is its
document, and its text fields are rects with their values. Document NN of a type is the
same document (one template) in every collection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from midvbatch.dataset.catalog import MIDV2020_COLLECTIONS, Midv2020Catalog
from midvbatch.dataset.formats.midv2020.layout import (
    FRAME_STEP,
    VIDEO_COLLECTION,
    annotation_file,
    clip_annotation_file,
    clip_frame_file,
    clip_video_file,
    picture_file,
)
from midvbatch.dataset.formats.midv2020.via import image_entry, write_via
from midvbatch.dataset.groundtruth import Quad
from midvbatch.dataset.synth import render
from midvbatch.dataset.synth.options import MAX_SIDE, Selection, SynthConfig, Written
from midvbatch.dataset.synth.output import imwrite, writing
from midvbatch.geometry import rectangle
from midvbatch.video.reader import read_frames_at
from midvbatch.video.writer import VideoWriter

_CLIPS, _VIDEOS = Path("clips"), Path(VIDEO_COLLECTION)
# How the synthesizer draws each MIDV-2020 condition: surface and motion (T table, K keyboard,
# C clutter, H held in a hand, D steep perspective, L low light, S scanner lid).
_LOOKS = {
    "lowlight": "L",
    "keyboard": "K",
    "table": "T",
    "cloth": "T",
    "text": "C",
    "outdoor": "H",
    "projective": "D",
    "highlight": "T",
    "upright": "S",
    "rotated": "S",
}


_Fields = dict[str, tuple[Quad, str | None]]


@dataclass(frozen=True)
class _Unit:
    """One clip code of MIDV-2020 resolved: its collection and the document numbers it writes."""

    code: str
    collection: str
    numbers: range


def _units(codes: list[str], images: int) -> list[_Unit]:
    """Resolve clip codes to units, catalog order (so each collection's units are together)."""
    units = []
    for code in codes:
        collection, _, tail = code.partition("/")
        if collection == "clips":
            numbers = range(int(tail), int(tail) + 1)
        elif collection == "photo":
            low, high = (int(n) for n in tail.split("-"))
            numbers = range(low, min(high, low + images - 1) + 1)
        else:
            numbers = range(images)
        units.append(_Unit(code, collection, numbers))
    return units


class Midv2020Writer:
    """Writes a MIDV-2020 dataset: the selection's clip codes ('templates', 'photo/00-09', 'clips/00')
    for each of its document types; `config.images` documents per template or scan collection and
    photo block."""

    def __init__(self, catalog: Midv2020Catalog):
        self.catalog = catalog

    def outputs(self, selection: Selection, config: SynthConfig) -> Iterator[Path]:
        """Yield every file :meth:`write` writes, relative to its output folder, once."""
        units = _units(selection.codes, config.images)
        frames = _frames(selection)[1]
        seen: set[Path] = set()
        for doc_type in selection.documents:
            for unit in units:
                for number in unit.numbers:
                    if unit.collection == "clips":
                        paths = [
                            clip_video_file(_VIDEOS, doc_type, number),
                            clip_annotation_file(_CLIPS, doc_type, number),
                        ]
                        paths += [clip_frame_file(_CLIPS, doc_type, number, k) for k in frames]
                    else:
                        collection = Path(unit.collection)
                        paths = [picture_file(collection, doc_type, number), annotation_file(collection, doc_type)]
                    for path in paths:
                        if path not in seen:
                            seen.add(path)
                            yield path

    def write(
        self, root: Path, selection: Selection, config: SynthConfig, progress: Callable[[str], None] | None
    ) -> Written:
        """Write the selection under `root`; `progress` gets 'TYPE/CODE' after each clip code
        ('alb_id/photo/00-09')."""
        by_collection: dict[str, list[_Unit]] = {}
        for unit in _units(selection.codes, config.images):
            by_collection.setdefault(unit.collection, []).append(unit)
        n, frames = _frames(selection)
        clips = pictures = 0
        for doc_type in selection.documents:
            writer = _Writer2020(root, self.catalog, doc_type, config, selection.rate, n, frames)
            for collection, group in by_collection.items():
                entries: dict[str, dict] = {}
                for unit in group:
                    with writing(root):
                        pictures += writer.write(unit, entries)
                    clips += 1
                    if progress is not None:
                        progress(f"{doc_type}/{unit.code}")
                if collection != "clips":
                    with writing(root):
                        path = root / annotation_file(Path(collection), doc_type)
                        write_via(path, f"{collection}/images/{doc_type}", entries)
        return Written(clips, pictures)


def _frames(selection: Selection) -> tuple[int, list[int]]:
    """A clip's frame count and its annotated frames (1-based: 1, 7, 13, ...)."""
    n = max(1, round(selection.seconds * selection.rate))
    return n, list(range(1, n + 1, FRAME_STEP))


@dataclass
class _Writer2020:
    """Writes the pictures of one MIDV-2020 document type; document NN is one template throughout."""

    root: Path
    catalog: Midv2020Catalog
    doc_type: str
    config: SynthConfig
    rate: Fraction
    n: int  # frames per clip
    frames: list[int]  # the annotated ones, 1-based

    def rng(self, collection: str, number: int) -> np.random.Generator:
        """The generator of one picture (collection index 0: the template itself)."""
        where = MIDV2020_COLLECTIONS.index(collection) + 1 if collection else 0
        return np.random.default_rng(
            [self.config.seed, 2020, self.catalog.documents.index(self.doc_type), where, number]
        )

    def template(self, number: int) -> tuple[np.ndarray, _Fields]:
        """Draw document `number`'s template, the same each time (a few ms: cheaper than keeping 100)."""
        # Under a MIDV-500 folder name ('00_alb_id'), whose parts give country and kind;
        # number 0 leaves no field empty ('*').
        return render.render_template(f"00_{self.doc_type}", 0, self.rng("", number), named=True)

    def write(self, unit: _Unit, entries: dict[str, dict]) -> int:
        """Write the pictures (and a clip's video and annotation) of `unit`, adding image entries
        to `entries`; return how many annotated pictures it wrote."""
        if unit.collection == "clips":
            return sum(self.clip(number) for number in unit.numbers)
        kind = self.catalog.clip_kind(unit.code)
        assert kind is not None  # the selection's codes are the catalog's
        for number in unit.numbers:
            image, fields = self.template(number)
            rng = self.rng(unit.collection, number)
            th, tw = image.shape[:2]
            if unit.collection == "templates":
                picture, quad, text = image, rectangle(tw, th), fields
            else:
                look = _LOOKS[kind.condition.code]
                if look == "S":
                    height = min(2 * self.config.height, MAX_SIDE)
                    width = round(height / math.sqrt(2))  # A4, portrait
                    rotated = unit.collection == "scan_rotated"
                    quad = render.scan_quad((tw, th), width, height, rotated, rng)  # 10 px/mm
                else:
                    width, height = self.config.width, self.config.height
                    quad = render.random_trajectory(look, th / tw, width, height, np.zeros(1), rng)[0]
                picture, text = render.render_picture(look, image, quad, width, height, rng), {}
            path = self.root / picture_file(Path(unit.collection), self.doc_type, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            size = imwrite(path, picture)
            entries[f"{path.name}{size}"] = image_entry(path.name, size, quad, (tw, th), fields["face"][0], text)
        return len(unit.numbers)

    def clip(self, number: int) -> int:
        """Write clip `number`: its video, its annotated frames decoded from it, their annotation."""
        image, fields = self.template(number)
        th, tw = image.shape[:2]
        w, h = self.config.width, self.config.height
        kind = self.catalog.clip_kind(f"clips/{number:02d}")
        assert kind is not None  # every number 00..99 is a clip
        look = _LOOKS[kind.condition.code]
        rng = self.rng("clips", number)
        times = np.array([float(Fraction(i) / self.rate) for i in range(self.n)])
        quads = render.random_trajectory(look, th / tw, w, h, times, rng)
        scene = render.make_scene(look, image, quads, times, w, h, rng)
        video = self.root / clip_video_file(_VIDEOS, self.doc_type, number)
        video.parent.mkdir(parents=True, exist_ok=True)
        with VideoWriter(video, self.rate, w, h) as writer:
            for i in range(self.n):
                writer.write(render.render_frame(scene, quads[i], i, w, h))
        # The JPEGs are decoded from the video, as MIDV-2020's were cut from its clips: frame
        # number k of the annotation is the video's k-th decoded frame.
        entries: dict[str, dict] = {}
        folder = self.root / clip_frame_file(_CLIPS, self.doc_type, number, 1).parent
        folder.mkdir(parents=True, exist_ok=True)
        for frame in read_frames_at(video, self.frames, threads=1):
            path = self.root / clip_frame_file(_CLIPS, self.doc_type, number, frame.number)
            size = imwrite(path, frame.image)
            quad = quads[frame.number - 1]
            entries[f"{path.name}{size}"] = image_entry(path.name, size, quad, (tw, th), fields["face"][0], {})
        via = self.root / clip_annotation_file(_CLIPS, self.doc_type, number)
        via.parent.mkdir(parents=True, exist_ok=True)
        write_via(via, f"clips/images/{self.doc_type}/{number:02d}", entries)
        return len(entries)
