"""Discover what a dataset folder holds, from names alone (nothing is decoded or parsed).

A MIDV dataset root holds document folders ``NN_name/`` (also found one level deeper,
``NN_name/NN_name/``, as some unzip tools leave them), each with::

    videos/CCNN.ext                 one video per clip (extension and its case vary)
    ground_truth/NN_name.json       template fields
    ground_truth/CC/CCNN_KK.json    per-frame quads, KK = 01..30
    images/NN_name.tif              template image
    images/CC/CCNN_KK.tif           the annotated frames, extracted (optional)

A folder with no such structure is a dataset too: every video file under it is a clip
without ground truth.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from midvbatch.dataset.catalog import (
    DOCUMENT_NAME,
    MIDV500,
    Catalog,
    catalog_for_clip_codes,
    get_catalog,
)
from midvbatch.errors import DatasetError

VIDEO_EXTENSIONS = frozenset(
    {".mov", ".mp4", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv"}
)
STRUCTURE_DIRS = ("videos", "ground_truth", "images")
_VIDEO_NAME = re.compile(r"^([A-Za-z]{2})(\d\d)(\.[A-Za-z0-9]+)$")
_FRAME_FILE = re.compile(r"^([A-Za-z]{2})(\d\d)_(\d\d)\.([A-Za-z0-9]+)$")
_MAX_SEARCH_DEPTH = 3  # levels below the root searched for document folders


@dataclass
class Clip:
    """One video clip of a dataset and the files that annotate it."""

    id: str  # unique in the dataset: "TA01" (code + document number), or the video's relative path
    document: str
    code: str  # clip code ("TA"), or the video's file stem outside MIDV structure
    video: Path | None
    catalog: str | None = None
    condition: str | None = None
    device: str | None = None
    ground_truth: dict[int, Path] = field(default_factory=dict)  # frame number -> JSON
    images: dict[int, Path] = field(default_factory=dict)  # frame number -> extracted frame

    def frame_id(self, number: int) -> str:
        """Name annotated frame `number` as the dataset does (CCDD_KK)."""
        return f"{self.id}_{number:02d}"

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
    catalog: Catalog | None  # None: plain folder of videos
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
            "catalog": self.catalog.name if self.catalog else None,
            "documents": len(self.documents),
            "clips": [c.to_dict() for c in self.clips],
            "missing": [{"kind": m.kind, "where": m.where, "detail": m.detail} for m in self.missing],
        }


def _scan(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _is_document_folder(path: Path) -> bool:
    return any(e.is_dir() and e.name in STRUCTURE_DIRS for e in _scan(path))


def _find_document_folders(root: Path) -> list[tuple[str, Path]]:
    """Return (name, folder) of every document folder within a few levels of root."""
    found: list[tuple[str, Path]] = []

    def visit(folder: Path, depth: int) -> None:
        if DOCUMENT_NAME.match(folder.name):
            nested = folder / folder.name
            if nested.is_dir() and _is_document_folder(nested):
                found.append((folder.name, nested))
                return
            if _is_document_folder(folder):
                found.append((folder.name, folder))
                return
        if depth >= _MAX_SEARCH_DEPTH:
            return
        for entry in sorted(_scan(folder), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith("."):
                visit(Path(entry.path), depth + 1)

    visit(root, 0)
    return found


def _frames_by_code(folder: Path, suffix: str) -> dict[str, dict[int, Path]]:
    """Map clip code -> {frame number: file} for folder/CC/CCNN_KK.<suffix>."""
    result: dict[str, dict[int, Path]] = {}
    for sub in _scan(folder):
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        code = sub.name.upper()
        frames = result.setdefault(code, {})
        for entry in _scan(Path(sub.path)):
            m = _FRAME_FILE.match(entry.name)
            if m and m.group(1).upper() == code and m.group(4).lower() in suffix:
                frames[int(m.group(3))] = Path(entry.path)
    return result


def _read_document(name: str, folder: Path) -> tuple[Document, set[str]]:
    # Clip ids are CCNN (the video's stem, e.g. TA01): unique across a dataset, and
    # the name MIDV users know a clip by.
    videos: dict[str, Path] = {}
    for entry in _scan(folder / "videos"):
        m = _VIDEO_NAME.match(entry.name)
        # Anything but a folder: a FIFO or a link to a device named like a video is the
        # clip's video, and probing it says what is wrong (rather than "no video file").
        if m and m.group(3).lower() in VIDEO_EXTENSIONS and not entry.is_dir():
            videos[m.group(1).upper()] = Path(entry.path)
    truths = _frames_by_code(folder / "ground_truth", "json")
    images = _frames_by_code(folder / "images", "tif tiff png jpg jpeg")
    template_json = folder / "ground_truth" / f"{name}.json"
    template_image = next(
        (folder / "images" / f"{name}{ext}" for ext in (".tif", ".tiff", ".png", ".jpg")
         if (folder / "images" / f"{name}{ext}").is_file()),
        None,
    )
    codes = set(videos) | {c for c, f in truths.items() if f}
    clips = [
        Clip(
            id=f"{code}{name[:2]}",
            document=name,
            code=code,
            video=videos.get(code),
            ground_truth=truths.get(code, {}),
            images=images.get(code, {}),
        )
        for code in codes
    ]
    present = os.path.lexists(template_json) and not template_json.is_dir()  # a FIFO too: reading says what it is
    doc = Document(name, folder, template_image, template_json if present else None, clips)
    return doc, codes


def _note_missing(dataset: Dataset) -> None:
    catalog = dataset.catalog
    assert catalog is not None
    present = {d.name for d in dataset.documents}
    for name in catalog.documents:
        if name not in present:
            dataset.missing.append(Missing("document", name, "document folder not present"))
    expected = range(1, catalog.frames_per_clip + 1)
    for doc in dataset.documents:
        if doc.template_image is None:
            dataset.missing.append(Missing("template_image", doc.name, f"no images/{doc.name}.tif"))
        if doc.template_json is None:
            dataset.missing.append(Missing("template_json", doc.name, f"no ground_truth/{doc.name}.json"))
        codes = {c.code for c in doc.clips}
        for code in catalog.clip_codes:
            if code not in codes:
                dataset.missing.append(Missing("clip", f"{code}{doc.name[:2]}", "no video and no ground truth"))
        for clip in doc.clips:
            if clip.video is None:
                dataset.missing.append(Missing("video", clip.id, "no video file in videos/"))
            absent = [k for k in expected if k not in clip.ground_truth]
            if absent and len(absent) < len(expected):
                numbers = ", ".join(f"{k:02d}" for k in absent)
                dataset.missing.append(
                    Missing("ground_truth", clip.id, f"ground truth of frame(s) {numbers} missing")
                )
            elif absent:
                dataset.missing.append(Missing("ground_truth", clip.id, "no ground truth"))


def _discover_plain(root: Path) -> Dataset:
    clips: list[Clip] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            rel = (rel_dir / name).as_posix()
            document = rel_dir.as_posix() if str(rel_dir) != "." else ""
            clips.append(Clip(id=rel, document=document, code=path.stem, video=path))
    if not clips:
        raise DatasetError("no MIDV document folders and no video files found", path=root)
    return Dataset(root, None, [], clips, [])


def discover(root: str | Path, catalog: str | None = None) -> Dataset:
    """Find every document, clip, video and annotation file under `root`.

    `catalog` names the dataset ('midv500', 'midv2019'); by default it is guessed from
    the clip codes found. Raises DatasetError if root is not a folder or holds nothing.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError("no such folder", path=root)
    if not root.is_dir():
        raise DatasetError("not a folder", path=root)
    folders = _find_document_folders(root)
    if not folders:
        return _discover_plain(root)
    documents: list[Document] = []
    all_codes: set[str] = set()
    for name, folder in folders:
        doc, codes = _read_document(name, folder)
        documents.append(doc)
        all_codes |= codes
    cat = get_catalog(catalog) if catalog else (catalog_for_clip_codes(all_codes) or MIDV500)
    order = {code: i for i, code in enumerate(cat.clip_codes)}
    clips: list[Clip] = []
    for doc in sorted(documents, key=lambda d: d.name):
        doc.clips.sort(key=lambda c: (order.get(c.code, len(order)), c.code))
        for clip in doc.clips:
            kind = cat.clip_kind(clip.code)
            if kind is not None:
                clip.catalog = cat.name
                clip.condition = kind.condition.name
                clip.device = kind.device.name
            clips.append(clip)
    documents.sort(key=lambda d: d.name)
    dataset = Dataset(root, cat, documents, clips, [])
    _note_missing(dataset)
    return dataset


def select(dataset: Dataset, docs: list[str] | tuple[str, ...] = (), clips: list[str] | tuple[str, ...] = ()) -> list[Clip]:
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
