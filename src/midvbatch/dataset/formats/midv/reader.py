"""MIDV-500 and MIDV-2019 read: discovery of document folders, their checks, the two formats.

The layout is :mod:`midvbatch.dataset.formats.midv.layout`'s; clip codes (CC) are a
condition letter and a device letter, and the catalog says which.
"""

from __future__ import annotations

import os
from pathlib import Path

from midvbatch.dataset.catalog import DOCUMENT_NAME, MIDV500, MIDV2019, Catalog
from midvbatch.dataset.formats._walk import walk
from midvbatch.dataset.formats.base import Archive, ArchiveSource, DatasetFormat, FormatWriter, midv_template_picture
from midvbatch.dataset.formats.midv.layout import (
    FRAME_NAME,
    GROUND_TRUTH,
    IMAGES,
    STRUCTURE_DIRS,
    VIDEO_NAME,
    VIDEOS,
    template_files,
)
from midvbatch.dataset.groundtruth import parse_template, read_ground_truth_json
from midvbatch.dataset.model import (
    ERROR,
    NOTE,
    VIDEO_EXTENSIONS,
    WARNING,
    Clip,
    Copy,
    Dataset,
    Document,
    FrameRule,
    Missing,
    Problem,
)
from midvbatch.errors import DatasetError, GroundTruthError

_MAX_SEARCH_DEPTH = 3  # levels below the root searched for document folders
_DETECT_SAMPLE = 5  # document folders whose clip codes detection looks at


def _scan(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _is_document_folder(path: Path) -> bool:
    """Whether `path` holds a folder of a document's structure (videos/, ground_truth/, images/): a stat each, not
    a listing (a folder of 200,000 videos is asked too)."""
    return any(os.path.isdir(path / name) for name in STRUCTURE_DIRS)


def _template_name(folder: Path) -> str | None:
    """The document name a folder's template files give (ground_truth/NN_name.json, images/NN_name.tif), if any."""
    for sub in (GROUND_TRUTH, IMAGES):
        for entry in _scan(folder / sub):
            stem = entry.name.rsplit(".", 1)[0]
            if "." in entry.name and DOCUMENT_NAME.match(stem) and entry.is_file():
                return stem
    return None


def _find_document_folders(
    root: Path, limit: int | None = None, problems: list[Problem] | None = None
) -> list[tuple[str, Path, tuple]]:
    """Return (name, folder, rank) of every document folder within a few levels of root, in walk order;
    the first `limit` of them only, when given (the rest is not walked). Each real folder is read once
    (links not followed go to `problems`). Of two copies of a document, the lower `rank` is used: real
    before reached through a link, shallower first, the inner of NN_name/NN_name/, then path order."""
    found: list[tuple[str, Path, tuple]] = []
    problems = [] if problems is None else problems
    for folder in walk(root, problems, max_depth=_MAX_SEARCH_DEPTH, with_files=False):
        if limit is not None and len(found) >= limit:
            break
        path, rank = folder.path, (folder.linked, folder.depth)
        if DOCUMENT_NAME.match(path.name):
            nested = path / path.name
            inner = nested.is_dir() and _is_document_folder(nested)
            if inner and os.path.realpath(nested) == os.path.realpath(path):  # NN_name/NN_name -> .
                problems.append(Problem(WARNING, "link", str(nested), f"a link to {path}, itself: not followed"))
                inner = False
            if inner:
                found.append((path.name, nested, (*rank, 0, str(nested))))
            if _is_document_folder(path) and (not inner or _codes_sample([(path.name, path)])):
                found.append((path.name, path, (*rank, 1, str(path))))  # with an inner one: a copy, if it has clips
            if inner or _is_document_folder(path):
                folder.subfolders.clear()
        elif _is_document_folder(path):  # unzipped under another name (MIDV-2019's zips have no NN_name/)
            name = _template_name(path)
            if name is not None:
                found.append((name, path, (*rank, 1, str(path))))
                folder.subfolders.clear()
    return found


def _first_of(files: list[Path], number: str, what: str, problems: list[Problem]) -> Path:
    """The file used of several named for one clip or frame (the document's own number first, then name
    order); each other one is a warning: a second copy, ignored."""
    ordered = sorted(files, key=lambda p: (p.name[2:4] != number, p.name, str(p)))
    for other in ordered[1:]:
        problems.append(Problem(WARNING, "duplicate", str(other), f"a second {what} ({ordered[0]} is used): ignored"))
    return ordered[0]


def _frames_by_code(
    folder: Path, suffixes: frozenset[str], number: str, problems: list[Problem]
) -> dict[str, dict[int, Path]]:
    """Map clip code -> {frame number: file} for folder/CC/CCNN_KK.<suffix>; two files of one frame
    (TA01_01.tif and TA01_01.png, ta/ beside TA/): the first used, the other one line."""
    found: dict[str, dict[int, list[Path]]] = {}
    for sub in _scan(folder):
        if not sub.is_dir() or len(sub.name) != 2:
            continue
        code = sub.name.upper()
        frames = found.setdefault(code, {})
        for entry in _scan(Path(sub.path)):
            m = FRAME_NAME.match(entry.name)
            if m and m.group(1).upper() == code and m.group(4).lower() in suffixes:
                frames.setdefault(int(m.group(3)), []).append(Path(entry.path))
    return {
        code: {
            k: files[0]
            if len(files) == 1
            else _first_of(files, number, f"file of frame {k:02d} of clip {code}{number}", problems)
            for k, files in sorted(frames.items())
        }
        for code, frames in found.items()
    }


def _read_document(name: str, folder: Path, problems: list[Problem]) -> tuple[Document, set[str]]:
    # Clip ids are CCNN (the video's stem, e.g. TA01): unique across a dataset, and
    # the name MIDV users know a clip by.
    number = name[:2]
    candidates: dict[str, list[Path]] = {}
    for entry in _scan(folder / VIDEOS):
        m = VIDEO_NAME.match(entry.name)
        # Anything but a folder: a FIFO or a link to a device named like a video is the
        # clip's video, and probing it says what is wrong (rather than "no video file").
        if m and m.group(3).lower() in VIDEO_EXTENSIONS and not entry.is_dir():
            candidates.setdefault(m.group(1).upper(), []).append(Path(entry.path))
    videos = {
        code: _first_of(files, number, f"video of clip {code}{number}", problems)
        for code, files in sorted(candidates.items())
    }
    truths = _frames_by_code(folder / GROUND_TRUTH, frozenset({"json"}), number, problems)
    images = _frames_by_code(folder / IMAGES, frozenset({"tif", "tiff", "png", "jpg", "jpeg"}), number, problems)
    template_json = template_files(folder, name)[1]
    template_image = midv_template_picture(template_json)
    codes = set(videos) | {c for c, f in truths.items() if f}
    present = os.path.lexists(template_json) and not template_json.is_dir()  # a FIFO too: reading says what it is
    clips = [
        Clip(
            id=f"{code}{number}",
            document=name,
            code=code,
            video=videos.get(code),
            ground_truth=truths.get(code, {}),
            images=images.get(code, {}),
            template=str(template_json) if present else None,
        )
        for code in codes
    ]
    doc = Document(name, folder, template_image, template_json if present else None, clips)
    return doc, codes


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


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
                dataset.missing.append(Missing("ground_truth", clip.id, f"ground truth of frame(s) {numbers} missing"))
            elif absent:
                dataset.missing.append(Missing("ground_truth", clip.id, "no ground truth"))


def _structure(dataset: Dataset) -> list[Problem]:
    problems = []
    catalog = dataset.catalog
    absent = [m.where for m in dataset.missing if m.kind == "document"]
    if absent:
        assert catalog is not None  # missing documents are only noted against a catalog
        problems.append(
            Problem(
                NOTE,
                "missing",
                str(dataset.root),
                f"{len(absent)} of the {len(catalog.documents)} documents of {catalog.title} "
                f"not present (a partial dataset): {', '.join(absent[:5])}" + (", ..." if len(absent) > 5 else ""),
            )
        )
    by_name = {d.name: d.folder for d in dataset.documents}
    by_number = {d.name[:2]: d.folder for d in dataset.documents}
    for m in dataset.missing:
        if m.kind == "document":
            continue
        if m.where in by_name:  # a document's template
            folder = by_name[m.where]
            image, json_file = template_files(folder, m.where)
            if m.kind == "template_image":
                path, what = image, "template image missing"
            else:
                path, what = json_file, "template JSON missing"
            problems.append(Problem(ERROR, "template", str(path), what))
            continue
        folder, clip = by_number.get(m.where[2:4], dataset.root), m.where
        path = {"video": folder / VIDEOS, "ground_truth": folder / GROUND_TRUTH / m.where[:2]}.get(m.kind, folder)
        problems.append(Problem(ERROR, "missing", str(path), f"{clip}: {m.detail}", clip))
    return problems


def _extra_files(dataset: Dataset) -> list[Problem]:
    problems = []
    said = {Path(p.path) for p in dataset.problems}  # a second video or frame file: said already
    for doc in dataset.documents:
        known = {doc.template_image, doc.template_json, *said}
        known |= {c.video for c in doc.clips}
        known |= {p for c in doc.clips for p in c.ground_truth.values()}
        known |= {p for c in doc.clips for p in c.images.values()}
        for entry in sorted(os.scandir(doc.folder), key=lambda e: e.name):
            if entry.name not in STRUCTURE_DIRS and not entry.name.startswith("."):
                problems.append(Problem(NOTE, "extra", entry.path, "not part of the dataset's layout"))
        for sub in STRUCTURE_DIRS:
            for dirpath, dirnames, filenames in os.walk(doc.folder / sub):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    path = Path(dirpath) / name
                    if path not in known and not name.startswith("."):
                        problems.append(Problem(NOTE, "extra", str(path), "unknown file"))
    return problems


def _templates(dataset: Dataset) -> list[Problem]:
    problems = []
    for doc in dataset.documents:
        if doc.template_json is None:
            continue
        try:
            data = read_ground_truth_json(doc.template_json)
        except GroundTruthError as exc:  # not a file, too large, not JSON: as good as missing
            problems.append(Problem(ERROR, "template", str(doc.template_json), exc.message))
            continue
        try:
            template = parse_template(data, doc.template_json, strict=False)
        except GroundTruthError as exc:
            # Real MIDV-500 has irregular template files: usable for frames, so a warning.
            problems.append(Problem(WARNING, "template", str(doc.template_json), exc.message))
            continue
        for message in template.problems:  # each field left out of the text scores
            problems.append(Problem(WARNING, "template", str(doc.template_json), message))
        for name, f in template.fields.items():
            if f.quad.area() < 1.0:
                problems.append(
                    Problem(WARNING, "template", str(doc.template_json), f"field {name[:60]!r} has no area")
                )
    return problems


def _codes_sample(folders: list[tuple[str, Path]]) -> set[str]:
    codes: set[str] = set()
    for _, folder in folders:
        for entry in _scan(folder / VIDEOS):
            m = VIDEO_NAME.match(entry.name)
            if m:
                codes.add(m.group(1).upper())
        codes |= {e.name.upper() for e in _scan(folder / GROUND_TRUTH) if e.is_dir() and len(e.name) == 2}
    return codes


class MidvFormat(DatasetFormat):
    """A dataset in the MIDV-500 layout (MIDV-500 itself, MIDV-2019): one catalog each."""

    def __init__(self, catalog: Catalog, summary: str, fallback: bool = False):
        self.catalog = catalog
        self.name = catalog.name
        self.title = catalog.title
        self.summary = summary
        self._fallback = fallback  # the format of document folders whose clip codes are no catalog's

    def detect(self, root: Path) -> float:
        folders = _find_document_folders(root, limit=_DETECT_SAMPLE)  # a sample: discover walks them all
        if not folders:
            return 0.0
        assert self.catalog is not None
        codes = _codes_sample([(name, folder) for name, folder, _ in folders])
        hits = sum(1 for code in codes if self.catalog.clip_kind(code) is not None)
        return hits + (0.5 if self._fallback else 0.0)

    def discover(self, root: Path) -> Dataset:
        cat = self.catalog
        assert cat is not None
        problems: list[Problem] = []
        folders = _find_document_folders(root, problems=problems)
        if not folders:
            raise DatasetError(
                f"holds no {cat.title} document folder (NN_name/ with videos/, ground_truth/, images/)", path=root
            )
        copies_of: dict[str, list[tuple[Path, tuple]]] = {}
        for name, folder, rank in folders:
            copies_of.setdefault(name, []).append((folder, rank))
        documents, copies = [], []
        for name, found in copies_of.items():  # two copies of a document: one used, each other one line
            (used, _), *others = sorted(found, key=lambda f: f[1])
            doc = _read_document(name, used, problems)[0]
            documents.append(doc)
            for other, _ in others:
                ignored = _read_document(name, other, [])[0]  # (its own duplicates: not said while it is ignored)
                copies.append(self._copy(root, doc, ignored))
        order = {code: i for i, code in enumerate(cat.clip_codes)}
        rule = FrameRule(cat.frames_per_clip, float(cat.sample_fps))
        size = (cat.frame_width, cat.frame_height)
        clips: list[Clip] = []
        for doc in sorted(documents, key=lambda d: d.name):
            doc.clips.sort(key=lambda c: (order.get(c.code, len(order)), c.code))
            for clip in doc.clips:
                clip.format, clip.frame_rule, clip.frame_size = self.name, rule, size
                kind = cat.clip_kind(clip.code)
                if kind is not None:
                    clip.condition = kind.condition.name
                    clip.device = kind.device.name
                clips.append(clip)
        documents.sort(key=lambda d: d.name)
        dataset = Dataset(root, self.name, cat, documents, clips, [], problems, copies)
        _note_missing(dataset)
        return dataset

    def _copy(self, root: Path, used: Document, ignored: Document) -> Copy:
        """A second copy of a document folder, its clips ready to run if --docs takes it."""
        cat = self.catalog
        assert cat is not None
        rule, size = FrameRule(cat.frames_per_clip, float(cat.sample_fps)), (cat.frame_width, cat.frame_height)
        order = {code: i for i, code in enumerate(cat.clip_codes)}
        ignored.clips.sort(key=lambda c: (order.get(c.code, len(order)), c.code))
        for clip in ignored.clips:
            clip.format, clip.frame_rule, clip.frame_size = self.name, rule, size
            kind = cat.clip_kind(clip.code)
            if kind is not None:
                clip.condition, clip.device = kind.condition.name, kind.device.name
        replaces = tuple(c.id for c in used.clips)
        where = _relative(used.folder, root), _relative(ignored.folder, root)
        return Copy(f"document {used.name}", where[0], where[1], tuple(ignored.clips), replaces)

    def check_layout(self, dataset: Dataset) -> list[Problem]:
        return _structure(dataset) + _templates(dataset) + _extra_files(dataset)

    def writer(self) -> FormatWriter:
        """Write synthetic datasets of this catalog (:class:`~midvbatch.dataset.formats.midv.writer.MidvWriter`)."""
        from midvbatch.dataset.formats.midv.writer import MidvWriter  # drawing and encoding: only when writing

        assert self.catalog is not None
        return MidvWriter(self.catalog)

    def archives(self) -> ArchiveSource:
        cat = self.catalog
        assert cat is not None
        return ArchiveSource(cat.archive_base, tuple(Archive(d, f"{d}.zip") for d in cat.documents))


MIDV500_FORMAT = MidvFormat(
    MIDV500, "50 identity documents x 10 clips (5 conditions x 2 phones), 30 annotated frames each", fallback=True
)
MIDV2019_FORMAT = MidvFormat(
    MIDV2019, "the MIDV-500 documents in strong distortion and low light, 2 newer phones in 4K"
)
