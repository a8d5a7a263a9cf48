"""MIDV-2020 read: its collections discovered, its VIA annotations read as quads and templates.

The layout is :mod:`midvbatch.dataset.formats.midv2020.layout`'s. Each still-image
collection of a type is one task (a "clip" of pictures): templates, scan_upright and
scan_rotated one per type, photos one per block of numbers taken in one condition with
one phone (the readme's table). A clip's annotated frames are every 6th frame of its
video, decoded from the video when there is one, else read from the JPEGs. Any subset of
the collections is a dataset: what is there is used, what is missing is listed. A folder
holding a single collection (``images/`` and ``annotations/`` directly) is read as that
collection.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from midvbatch.dataset.catalog import MIDV2020, MIDV2020_COLLECTIONS, MIDV2020_IMAGE_COLLECTIONS, Midv2020Catalog
from midvbatch.dataset.formats.base import Archive, ArchiveSource, DatasetFormat, FormatWriter
from midvbatch.dataset.formats.midv2020.layout import (
    ANNOTATIONS,
    COLLECTION_LAYOUT,
    FRAME_STEP,
    IMAGES,
    PICTURE_EXTENSIONS,
    VIDEO,
    VIDEO_COLLECTION,
    annotation_file,
    picture_file,
    pictures_folder,
)
from midvbatch.dataset.formats.midv2020.via import ViaImage, doc_quad, numbered, read_via, template_of, unnumbered
from midvbatch.dataset.groundtruth import Quad, Template
from midvbatch.dataset.model import (
    ERROR,
    VIDEO_EXTENSIONS,
    WARNING,
    Clip,
    Dataset,
    Document,
    FrameRule,
    Missing,
    Problem,
)
from midvbatch.dataset.names import ascii_number
from midvbatch.errors import DatasetError, GroundTruthError, VideoError
from midvbatch.fileio import Identity, file_identity
from midvbatch.video.image import image_size

IMAGE_EXTENSIONS = frozenset(PICTURE_EXTENSIONS)


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _numbered_files(folder: Path, extensions: frozenset[str], problems: list[Problem]) -> dict[int, Path]:
    """Files of `folder` named by a number in ASCII digits ('05.jpg', '000007.jpg'), by that number. A file
    of those extensions named otherwise ('²³.jpg', 'cover.jpg'), or a second name of a number ('5.jpg'
    beside '05.jpg'), is one warning in `problems`, and the rest is read."""
    out: dict[int, Path] = {}
    for entry in _entries(folder):
        stem, dot, ext = entry.name.rpartition(".")
        if not dot or f".{ext.lower()}" not in extensions or entry.name.startswith(".") or not entry.is_file():
            continue
        _number(entry, ascii_number(stem), out, "file", problems)
    return out


def _number(entry: os.DirEntry, number: int | None, out: dict[int, Path], what: str, problems: list[Problem]) -> None:
    """File `entry` under `number` in `out`, unless it has no number or the number has a file already (one line)."""
    if number is None:
        problems.append(Problem(WARNING, "name", entry.path, "not named by a number in ASCII digits: ignored"))
    elif number in out:
        problems.append(
            Problem(
                WARNING, "duplicate", entry.path, f"a second {what} numbered {number} ({out[number]} is used): ignored"
            )
        )
    else:
        out[number] = Path(entry.path)


def _collection_of(folder: Path) -> str | None:
    """Which collection a folder holding images/ and annotations/ directly is (None: not one)."""
    if folder.name in MIDV2020_COLLECTIONS:
        return folder.name
    annotations = folder / ANNOTATIONS
    if not annotations.is_dir():
        return None
    kinds = {
        ("dir" if e.is_dir() else "file") for e in _entries(annotations) if e.name.split(".")[0] in MIDV2020.documents
    }
    if "dir" in kinds:
        return "clips"
    return "photo" if "file" in kinds else None


def collections(root: Path) -> dict[str, Path]:
    """The collection folders under `root` (or `root` itself when it is one), by collection name."""
    found = {name: root / name for name in (*MIDV2020_COLLECTIONS, VIDEO_COLLECTION) if (root / name).is_dir()}
    if not found and ((root / IMAGES).is_dir() or (root / ANNOTATIONS).is_dir()):
        own = _collection_of(root)
        if own is not None:
            found[own] = root
    if not found and (root / VIDEO).is_dir():
        found[VIDEO_COLLECTION] = root
    return found


def _types_in(*folders: Path) -> list[str]:
    names: set[str] = set()
    for folder in folders:
        for entry in _entries(folder):
            stem = entry.name.split(".")[0]
            if stem in MIDV2020.documents:
                names.add(stem)
    return sorted(names)


class Midv2020Format(DatasetFormat):
    name = "midv2020"
    title = "MIDV-2020"
    summary = "10 document types x 100 documents: templates, upright and rotated scans, photos, 1,000 video clips"
    catalog = MIDV2020

    def detect(self, root: Path) -> float:
        found = collections(root)
        if not found:
            return 0.0
        types = set()
        for folder in found.values():
            types.update(_types_in(folder / IMAGES, folder / ANNOTATIONS, folder / VIDEO))
        return 2.0 + len(found) if types else 0.0

    def discover(self, root: Path) -> Dataset:
        found = collections(root)
        if not found:
            raise DatasetError(
                "holds no MIDV-2020 collection (templates/, scan_upright/, scan_rotated/, photo/, clips/, "
                "clips_video/ with images/, annotations/ or video/)",
                path=root,
            )
        clips: list[Clip] = []
        missing: list[Missing] = []
        problems: list[Problem] = []  # names without a number, second files of a number
        for collection in MIDV2020_IMAGE_COLLECTIONS:
            if collection in found:
                clips += _picture_groups(collection, found[collection], missing, problems)
        if "clips" in found or VIDEO_COLLECTION in found:
            clips += _video_clips(found, missing, problems)
        for collection in (*MIDV2020_COLLECTIONS, VIDEO_COLLECTION):
            if collection not in found:
                missing.append(Missing("collection", collection, f"no {collection}/ collection"))
        if not clips:
            raise DatasetError("holds MIDV-2020 collection folders but no annotated image or clip in them", path=root)
        templates = found.get("templates")
        if templates is not None:
            _give_templates(clips, templates)
        documents = []
        for name in sorted({c.document for c in clips}):
            template_images = (
                _numbered_files(pictures_folder(templates, name), IMAGE_EXTENSIONS, []) if templates else {}
            )
            template_json = annotation_file(templates, name) if templates else None
            documents.append(
                Document(
                    name,
                    root,
                    template_images[min(template_images)] if template_images else None,
                    template_json if template_json is not None and template_json.is_file() else None,
                    [c for c in clips if c.document == name],
                )
            )
        return Dataset(root, self.name, MIDV2020, documents, clips, missing, problems)

    def read_quads(self, files: Mapping[int, str | Path]) -> dict[int, Quad]:
        """Read the doc_quad of each frame from its VIA file (read once per file), frames found by number.

        Templates may carry no doc_quad: their frames are then left out (unscored)."""
        by_file: dict[str, list[int]] = {}
        for number, path in files.items():
            by_file.setdefault(str(path), []).append(int(number))
        out: dict[int, Quad] = {}
        for path, numbers in by_file.items():
            images = numbered(read_via(path))
            template = Path(path).parent.parent.name == "templates"
            for number in numbers:
                image = images.get(number)
                if image is None:
                    raise GroundTruthError(f"no annotation of image {number}", path=path)
                if template and image.region("doc_quad") is None:
                    continue
                out[number] = doc_quad(image, path)
        return out

    def read_templates(self, template: str, frames: Iterable[int]) -> dict[int, Template]:
        """Read each frame's document template from the templates' VIA file, its picture's size from the picture.

        `template` is ``templates/annotations/TYPE.json`` (document NN is frame NN: scans
        and photos) or ``...TYPE.json#NN`` (every frame shows document NN: a clip). A
        document without annotation or picture gets a template with no fields that says so
        in ``problems``; a file that cannot be read raises GroundTruthError."""
        path, _, fixed = template.partition("#")
        frames = list(frames)
        documents = {int(fixed)} if fixed else set(frames)
        annotated, signature = _template_annotations(path)
        templates, doc_type = Path(path).parent.parent, Path(path).stem
        read = {d: _template(path, signature, d, annotated, _picture(templates, doc_type, d)) for d in documents}
        return {number: read[int(fixed) if fixed else number] for number in frames}

    def writer(self) -> FormatWriter:
        """Write synthetic MIDV-2020 datasets (:class:`~midvbatch.dataset.formats.midv2020.writer.Midv2020Writer`)."""
        from midvbatch.dataset.formats.midv2020.writer import Midv2020Writer  # drawing and encoding: only when writing

        assert isinstance(self.catalog, Midv2020Catalog)
        return Midv2020Writer(self.catalog)

    def archives(self) -> ArchiveSource:
        """One tar archive per collection (the TIFF originals of the scans are left out: same pictures)."""
        assert self.catalog is not None
        names = (*MIDV2020_COLLECTIONS, VIDEO_COLLECTION)
        return ArchiveSource(
            self.catalog.archive_base, tuple(Archive(n, f"{n}.tar") for n in names), layout=COLLECTION_LAYOUT
        )

    def check_layout(self, dataset: Dataset) -> list[Problem]:
        """Missing parts (not whole collections: partial downloads are the norm), frames off the
        6-frame grid, pictures without annotation, annotations of absent pictures."""
        problems = []
        for m in dataset.missing:
            if m.kind != "collection":
                problems.append(Problem(WARNING, "missing", m.where, m.detail))
        read: dict[Path, dict[int, str]] = {}
        pictures: dict[Path, set[str]] = {}  # annotation file -> the names of the pictures it should annotate
        for clip in dataset.clips:
            if clip.code.startswith("clips/"):
                off = [n for n in clip.frame_rule.numbers if (n - 1) % FRAME_STEP]
                if off:
                    where = clip.images.get(off[0]) or next(iter(clip.ground_truth.values()), clip.id)
                    problems.append(
                        Problem(
                            ERROR,
                            "frame_mismatch",
                            str(where),
                            f"frame {off[0]:06d} is off the 6-frame grid (1, 7, 13, ...)"
                            + (f", and {len(off) - 1} more" if len(off) > 1 else ""),
                            clip.id,
                        )
                    )
            annotation = next(iter(clip.ground_truth.values()), None)
            if annotation is None or not clip.images:
                continue
            pictures.setdefault(annotation, set()).update(p.name for p in clip.images.values())
            if annotation not in read:
                try:
                    images = read_via(annotation)
                except GroundTruthError:
                    images = {}  # check_clip names the file
                read[annotation] = {n: image.filename for n, image in numbered(images).items()}
                problems += [Problem(WARNING, "name", str(annotation), m) for m in unnumbered(images)]
            names = read[annotation]
            if not names:
                continue
            for number in sorted(set(clip.images) - set(names)):
                problems.append(
                    Problem(ERROR, "ground_truth", str(clip.images[number]), f"no annotation in {annotation}", clip.id)
                )
        for annotation, names in read.items():
            absent = sorted(name for name in names.values() if name not in pictures[annotation])
            if absent:
                problems.append(
                    Problem(
                        WARNING,
                        "missing",
                        str(annotation),
                        f"annotates {len(absent)} picture(s) not in images/: {', '.join(absent[:3])}"
                        + (" ..." if len(absent) > 3 else ""),
                    )
                )
        return problems + _template_problems(dataset)


def _template_problems(dataset: Dataset) -> list[Problem]:
    """Each malformed text field of the templates' annotations (left out of the text scores): a warning."""
    problems = []
    for doc in dataset.documents:
        if doc.template_json is None:
            continue
        try:
            images = numbered(read_via(doc.template_json))
        except GroundTruthError:
            continue  # the templates clip's own check names the file
        for image in images.values():
            for message in template_of(image, doc.template_json, (0, 0)).problems:
                problems.append(Problem(WARNING, "template", str(doc.template_json), message))
    return problems


TEMPLATE_FILES_KEPT = 16  # template files a process keeps parsed, about 1 MiB each: one serves all clips of a type
TEMPLATES_KEPT = 1024  # documents' templates a process keeps read (MIDV-2020 has 1,000), a few kB each


def _template_annotations(path: str) -> tuple[dict[int, ViaImage], Identity | None]:
    """The templates' VIA file `path` read (numbered), kept while the file is unchanged: a type's
    hundred clips share one file of a few hundred kB, which a worker then parses once, not per clip;
    and the file's signature (None: it could not be read)."""
    signature = file_identity(path)
    if signature is None:
        return numbered(read_via(path)), None  # read_via says what is wrong with it
    return _parsed_templates(path, signature), signature


@functools.lru_cache(maxsize=TEMPLATE_FILES_KEPT)
def _parsed_templates(path: str, signature: Identity) -> dict[int, ViaImage]:
    return numbered(read_via(path))


def _template(
    path: str, signature: Identity | None, document: int, annotated: dict[int, ViaImage], picture: Path | None
) -> Template:
    """Document `document`'s template, kept while its annotation file and picture are unchanged (a type's clips
    and its scans and photos show the same hundred documents: each template picture's size is read once)."""
    picture_signature = file_identity(picture) if picture is not None else None
    if signature is None or picture is None or picture_signature is None:
        return _document_template(path, document, annotated.get(document), picture)
    return _kept_template(path, signature, document, str(picture), picture_signature)


@functools.lru_cache(maxsize=TEMPLATES_KEPT)
def _kept_template(path: str, signature: Identity, document: int, picture: str, _: Identity) -> Template:
    return _document_template(path, document, _parsed_templates(path, signature).get(document), Path(picture))


def _give_templates(clips: list[Clip], templates: Path) -> None:
    """Point each clip at its type's template annotations (document NN: frame NN, or the clip's NN)."""
    for clip in clips:
        path = annotation_file(templates, clip.document)
        if not path.is_file():
            continue
        collection, _, number = clip.code.partition("/")
        clip.template = f"{path}#{number}" if collection == "clips" else str(path)


def _picture(collection: Path, doc_type: str, number: int) -> Path | None:
    """Picture `number` of a type in a collection (NN.jpg, or .jpeg, .png, .tif, .tiff); None if absent."""
    for extension in PICTURE_EXTENSIONS:
        path = picture_file(collection, doc_type, number, extension)
        if path.is_file():
            return path
    return None


def _document_template(path: str, document: int, image: ViaImage | None, picture: Path | None) -> Template:
    if image is None or picture is None:
        missing = "annotation" if image is None else "picture"
        return Template(Path(path), {}, None, (f"no template {missing} of document {document:02d}",))
    try:
        size = image_size(picture)
    except VideoError as exc:
        return Template(Path(path), {}, None, (str(exc),))
    return template_of(image, path, size)


def _picture_groups(collection: str, folder: Path, missing: list[Missing], problems: list[Problem]) -> Iterator[Clip]:
    """One clip per type (templates, scans) or per photo block, its pictures as frames."""
    images_root, annotations = folder / IMAGES, folder / ANNOTATIONS
    for name in _types_in(images_root, annotations):
        pictures = _numbered_files(images_root / name, IMAGE_EXTENSIONS, problems)
        annotation = annotation_file(folder, name)
        has_truth = annotation.is_file()
        if not has_truth:
            missing.append(Missing("ground_truth", f"{collection}/{name}", f"no annotations/{name}.json"))
        if not pictures:
            missing.append(Missing("images", f"{collection}/{name}", f"no pictures in images/{name}/"))
            continue
        groups: dict[str, dict[int, Path]] = {}
        for number, path in pictures.items():
            code = MIDV2020.photo_block(number) if collection == "photo" else collection
            groups.setdefault(code or f"photo/{number:02d}", {})[number] = path
        for code, members in groups.items():
            block = code.partition("/")[2]
            clip_id = f"photo/{name}/{block}" if block else f"{collection}/{name}"
            yield _clip(clip_id, name, code, None, members, annotation if has_truth else None, 2)


def _video_clips(found: dict[str, Path], missing: list[Missing], problems: list[Problem]) -> Iterator[Clip]:
    clips_folder = found.get("clips")
    video_roots = [f / VIDEO for f in (found.get(VIDEO_COLLECTION), clips_folder) if f is not None]
    images_root = clips_folder / IMAGES if clips_folder else None
    annotations = clips_folder / ANNOTATIONS if clips_folder else None
    names = _types_in(*(p for p in (images_root, annotations) if p is not None), *video_roots)
    for name in names:
        videos: dict[int, Path] = {}
        for video_root in video_roots:  # clips_video/video/ first, then clips/video/: a second video is one line
            for number, path in _numbered_files(video_root / name, VIDEO_EXTENSIONS, problems).items():
                if number in videos:
                    used = f"{videos[number]} is used"
                    problems.append(
                        Problem(
                            WARNING, "duplicate", str(path), f"a second video of clip {number:02d} ({used}): ignored"
                        )
                    )
                else:
                    videos[number] = path
        folders: dict[int, Path] = {}
        for entry in _entries(images_root / name) if images_root else []:
            if entry.is_dir() and not entry.name.startswith("."):
                _number(entry, ascii_number(entry.name), folders, "folder", problems)
        notes = _numbered_files(annotations / name, frozenset({".json"}), problems) if annotations else {}
        for number in sorted(set(videos) | set(folders) | set(notes)):
            clip_id = f"clips/{name}/{number:02d}"
            pictures = _numbered_files(folders[number], IMAGE_EXTENSIONS, problems) if number in folders else {}
            annotation = notes.get(number)
            if annotation is None:
                missing.append(Missing("ground_truth", clip_id, f"no annotations/{name}/{number:02d}.json"))
            frames = set(pictures)
            if not frames and annotation is not None:
                try:
                    images = read_via(annotation)
                except GroundTruthError:
                    images = {}  # validate and the run name the file
                frames = set(numbered(images))
                problems += [Problem(WARNING, "name", str(annotation), m) for m in unnumbered(images)]
            if not frames:
                missing.append(Missing("images", clip_id, "no annotated frame named (no JPEGs, no annotation)"))
                continue
            if number not in videos:
                missing.append(Missing("video", clip_id, "no video (clips_video/): frames read from the JPEGs"))
            yield _clip(clip_id, name, f"clips/{number:02d}", videos.get(number), pictures, annotation, 6, frames)


def _clip(
    clip_id: str,
    document: str,
    code: str,
    video: Path | None,
    pictures: dict[int, Path],
    annotation: Path | None,
    digits: int,
    frames: set[int] | None = None,
) -> Clip:
    numbers = sorted(frames if frames is not None else pictures)
    kind = MIDV2020.clip_kind(code)
    return Clip(
        id=clip_id,
        document=document,
        code=code,
        video=video,
        format="midv2020",
        condition=kind.condition.name if kind else None,
        device=kind.device.name if kind else None,
        ground_truth={n: annotation for n in numbers} if annotation is not None else {},
        images=dict(pictures),
        frame_rule=FrameRule.by_number(numbers),
        frame_size=None,  # read from the files: the clips are 2160 x 3840 as reported, pictures vary
        frame_digits=digits,
    )


MIDV2020_FORMAT = Midv2020Format()
