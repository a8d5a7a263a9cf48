"""Synthesize datasets in the exact MIDV-500 (and MIDV-2019, MIDV-2020) layout, for tests, benchmarks and demos.

Each clip is rendered frame by frame (a document template moving over a surface) and
encoded to H.264 as the phones stored it: Apple clips as QuickTime ``.MOV`` with
landscape frames and a display rotation, Samsung clips as upright ``.mp4``. The ground
truth of annotated frame k is the quad of exactly the source frame the reader picks for
it (:func:`midvbatch.video.reader.source_indices`), so frames and ground truth agree to
the pixel, up to rounding and compression.

MIDV-2020 (``catalog="midv2020"``) has its own layout of five collections, annotated in
VGG Image Annotator 2.0 files (see :func:`synthesize`); document NN of a type is the same
document (one template) in all of them.

A seed decides every byte: same options and seed, same files (on the same FFmpeg/x264
build); x264 runs with a fixed thread count so the machine's core count does not matter.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from midvbatch.dataset.synth import render
from midvbatch.dataset.catalog import (
    MIDV2020_COLLECTIONS,
    Catalog,
    ClipKind,
    Midv2020Catalog,
    document_number,
    get_catalog,
)
from midvbatch.dataset.groundtruth import Quad, write_frame_quad, write_template
from midvbatch.errors import DatasetError, SynthError, shown
from midvbatch.fileio import JSON_LIMIT, read_json, write_atomic
from midvbatch.geometry import homography, rectangle, transform
from midvbatch.video import ffmpeg_reason
from midvbatch.video.reader import read_annotated_frames, read_frames_at, source_indices
from midvbatch.video.writer import VideoWriter

MIN_SIDE, MAX_SIDE = 16, 7680  # pixels per side of a frame
MAX_PIXELS = 7680 * 4320  # 8K UHD: within H.264's largest level (6.2), and a frame of 100 MB as BGR
MAX_SECONDS = 600.0  # MIDV clips last seconds; ten minutes is already 18,000 frames at 30 fps
MAX_FPS = 240.0
MAX_SEED = 2**63 - 1
MAX_IMAGES = 100  # MIDV-2020 numbers its documents 00..99

# What clips and seconds default to (SynthConfig's None), by catalog; every other catalog
# writes all its clips, 3.2 s long (the 3 s its annotated frames span, and a little more).
DEFAULT_CLIPS = {"midv2020": "templates,scan_*,photo/00-09,clips/0[01]"}
DEFAULT_SECONDS = {"midv2020": 1.2}  # 36 frames at 30 fps: annotated frames 1, 7, ..., 31


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize: which documents and clips, frame size, length, seed.

    `docs` is a count N (the catalog's first N documents, also given as a digit
    string) or glob patterns matched against document names ('0[1-5]_*'; several
    separated by commas). `clips` is glob patterns on clip codes ('T*', 'CA,KS');
    None is the catalog's default (DEFAULT_CLIPS): all clips, for MIDV-2020
    'templates,scan_*,photo/00-09,clips/0[01]'. `width` x `height` is the annotated
    frame size as displayed (portrait): each side even (H.264 yuv420p needs it) and
    MIN_SIDE..MAX_SIDE pixels, at most MAX_PIXELS in all. `seconds` is at most
    MAX_SECONDS, None for the catalog's default (DEFAULT_SECONDS: 3.2, MIDV-2020 1.2);
    `fps` at most MAX_FPS, `seed` 0..MAX_SEED. `trajectories` names a COCO JSON of real
    MIDV-500 quads to move the documents along instead of random motion.

    MIDV-2020 only: the clip codes are 'templates', 'scan_upright', 'scan_rotated',
    'photo/00-09' .. 'photo/95-99' (a block of photos) and 'clips/00' .. 'clips/99';
    `images` (1..MAX_IMAGES) is how many documents (00, 01, ...) the templates and each
    scan collection hold, and how many photos of each photo block (its first ones) are
    written. Clips and photos are `width` x `height`, scans an A4 page twice as high;
    `with_frames` is not needed (a clip's annotated frames are always written as JPEG)
    and `trajectories` not allowed.
    """

    docs: str | int = 2
    clips: str | None = None
    width: int = 180
    height: int = 320
    seconds: float | None = None
    fps: float = 30.0
    seed: int = 0
    with_frames: bool = False
    trajectories: str | Path | None = None
    catalog: str = "midv500"
    images: int = 2


@dataclass
class SynthReport:
    """What :func:`synthesize` wrote."""

    root: Path
    documents: list[str]  # MIDV-2020: document types
    clips: int  # MIDV-2020: clip codes written per type, summed (a template or scan collection, a photo block, a clip)
    frames: int  # annotated frames with ground truth (MIDV-2020: annotated images and clip frames)
    seconds: float  # wall time


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),
    progress: Callable[[str], None] | None = None,
    *,
    overwrite: bool = False,
) -> SynthReport:
    """Write a synthetic dataset under `out_dir` in the catalog's layout.

    Writes, per document NAME and clip code CC: ``NAME/videos/CCDD.ext``,
    ``NAME/ground_truth/NAME.json``, ``NAME/images/NAME.tif``,
    ``NAME/ground_truth/CC/CCDD_KK.json`` for the annotated frames and, with
    `config.with_frames`, ``NAME/images/CC/CCDD_KK.tif`` (decoded from the written video,
    as MIDV-500's were extracted with FFmpeg). Every file is written under a temporary
    name and renamed into place. If any of these files exists already, SynthError is
    raised before anything is written, unless `overwrite` (the CLI's ``--force``).
    `progress` is called with 'NAME/CC' after each clip. Raises SynthError for options
    that cannot be honoured (checked before anything is written) or an unwritable folder.

    MIDV-2020 writes, per document type TYPE, document number NN and annotated frame
    number FFFFFF: ``COLLECTION/images/TYPE/NN.jpg`` and ``COLLECTION/annotations/TYPE.json``
    for the templates, scan_upright, scan_rotated and photo collections;
    ``clips_video/video/TYPE/NN.mp4`` (upright H.264), ``clips/images/TYPE/NN/FFFFFF.jpg``
    (its frames 1, 7, 13, ..., decoded from the written video) and
    ``clips/annotations/TYPE/NN.json``. The annotations are VIA 2.0 project files as
    MIDV-2020's: each image keyed by file name and byte size, with a "face" rect and the
    "doc_quad" polygon (corners in document order); a template's whole image is its
    document, and its text fields are rects with their values. `progress` is called with
    'TYPE/CODE' after each clip code ('alb_id/photo/00-09').
    """
    started = time.perf_counter()
    catalog, documents, codes, rate, seconds = _check(config)
    if isinstance(catalog, Midv2020Catalog):
        return _synthesize_2020(out_dir, catalog, documents, codes, rate, seconds, config, progress, overwrite)
    trajectories = _load_trajectories(Path(config.trajectories), codes) if config.trajectories else None
    root = _output_root(out_dir)

    n = max(1, round(seconds * rate))
    times = [float(Fraction(i) / rate) for i in range(n)]
    picks = source_indices(times, catalog.sample_fps, catalog.frames_per_clip)
    if len(picks) < catalog.frames_per_clip:
        raise SynthError(
            f"{seconds:g} s at {config.fps:g} fps is too short for {catalog.frames_per_clip} annotated frames"
        )
    if not overwrite:
        _refuse_existing(root, _outputs(catalog, documents, codes, picks, config))
    report = SynthReport(root, list(documents), 0, 0, 0.0)
    for index, document in enumerate(documents):
        number = document_number(document)
        with _writing(root):
            template = _write_template(root / document, document, number, config.seed)
        for code in codes:
            # Real trajectories: alternate between the file's documents that have this clip.
            real = trajectories[code][index % len(trajectories[code])] if trajectories else None
            kind = catalog.clip_kind(code)
            assert kind is not None  # _check chose the codes from the catalog's
            clip = _Clip(catalog, document, number, kind, np.asarray(times), picks, rate)
            with _writing(root):
                clip.write(root / document, template, config, real)
            report.clips += 1
            report.frames += len(picks)
            if progress is not None:
                progress(f"{document}/{code}")
    report.seconds = time.perf_counter() - started
    return report


# Where synthesize writes, under a document's folder: the writers and the check that
# nothing is overwritten name the files through these.
def _template_files(folder: Path, document: str) -> tuple[Path, Path]:
    """(image, JSON) of a document's template."""
    return folder / "images" / f"{document}.tif", folder / "ground_truth" / f"{document}.json"


def _video_file(folder: Path, kind: ClipKind, number: int) -> Path:
    return folder / "videos" / f"{kind.code}{number:02d}{kind.device.container}"


def _truth_file(folder: Path, code: str, frame_id: str) -> Path:
    return folder / "ground_truth" / code / f"{frame_id}.json"


def _frame_file(folder: Path, code: str, frame_id: str) -> Path:
    return folder / "images" / code / f"{frame_id}.tif"


def _outputs(
    catalog: Catalog, documents: list[str], codes: list[str], picks: list[int], config: SynthConfig
) -> Iterator[Path]:
    """Yield every file :func:`synthesize` writes, relative to its output folder."""
    for document in documents:
        number, folder = document_number(document), Path(document)
        yield from _template_files(folder, document)
        for code in codes:
            kind = catalog.clip_kind(code)
            assert kind is not None  # _check chose the codes from the catalog's
            yield _video_file(folder, kind, number)
            for k in range(1, len(picks) + 1):
                frame_id = catalog.frame_id(code, document, k)
                yield _truth_file(folder, code, frame_id)
                if config.with_frames:
                    yield _frame_file(folder, code, frame_id)


def _refuse_existing(root: Path, outputs: Iterator[Path]) -> None:
    """Raise SynthError, naming the first and counting them all, if any of `outputs` exists under `root`."""
    if not root.is_dir():
        return
    taken = [path for path in outputs if os.path.lexists(root / path)]
    if taken:
        raise SynthError(
            f"holds a dataset already: {len(taken)} of the files to write exist ({taken[0].as_posix()} "
            f"first); use --force to overwrite them, or choose an empty folder",
            path=root,
        )


def parse_size(text: str) -> tuple[int, int]:
    """Read a frame size like '180x320' (width x height); raise SynthError if it is not one.

    The bounds (MIN_SIDE, MAX_SIDE, MAX_PIXELS) are checked with the rest of the options.
    """
    m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text or "")
    if not m:
        raise SynthError(
            f"{shown(text)} is not a size like 180x320 (width x height in pixels, each {MIN_SIDE} to {MAX_SIDE})"
        )
    return int(m.group(1)), int(m.group(2))


@contextmanager
def _writing(root: Path) -> Iterator[None]:
    """Turn a failure to write (disk full, no permission) into a SynthError naming the file."""
    try:
        yield
    except av.FFmpegError as exc:
        raise SynthError(f"cannot encode video: {ffmpeg_reason(exc)}", path=root) from None
    except OSError as exc:
        raise SynthError(f"cannot write: {exc.strerror or exc}", path=exc.filename or root) from None


def _output_root(out_dir: str | Path) -> Path:
    """Return `out_dir` as a Path; SynthError if it exists and is not a folder."""
    root = Path(out_dir)
    try:
        if root.exists() and not root.is_dir():
            raise SynthError("exists and is not a folder", path=root)
    except OSError as exc:  # a name too long, a loop of links
        raise SynthError(f"cannot use as the output folder: {exc.strerror or exc}", path=root) from None
    return root


def _check(config: SynthConfig) -> tuple[Catalog, list[str], list[str], Fraction, float]:
    """Validate `config`; return catalog, documents, clip codes, the frame rate and the clip length."""
    try:
        catalog = get_catalog(config.catalog)
    except DatasetError as exc:
        raise SynthError(exc.message) from None
    midv2020 = isinstance(catalog, Midv2020Catalog)
    for name in ("width", "height"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE or value % 2:
            raise SynthError(
                f"{name} must be an even number of pixels from {MIN_SIDE} to {MAX_SIDE} "
                f"(H.264 yuv420p needs even sizes), got {shown(value)}"
            )
    if config.width * config.height > MAX_PIXELS:
        raise SynthError(
            f"a {config.width}x{config.height} frame has {config.width * config.height:,} pixels, more than "
            f"8K video's {MAX_PIXELS:,} (4320x7680)"
        )
    if isinstance(config.fps, bool) or not isinstance(config.fps, (int, float)) or not 0 < config.fps <= MAX_FPS:
        raise SynthError(f"fps must be a positive number up to {MAX_FPS:g}, got {shown(config.fps)}")
    seconds = DEFAULT_SECONDS.get(catalog.name, 3.2) if config.seconds is None else config.seconds
    if midv2020:  # every 6th frame is annotated from the first: any length of a frame or more
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_SECONDS:
            raise SynthError(f"seconds must be more than 0 and at most {MAX_SECONDS:g}, got {shown(seconds)}")
    else:
        need = catalog.annotated_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not need <= seconds <= MAX_SECONDS:
            raise SynthError(
                f"seconds must be at least {need:g} (the annotated frames span the "
                f"first {need:g} s of a clip) and at most {MAX_SECONDS:g}, got {shown(seconds)}"
            )
    if isinstance(config.images, bool) or not isinstance(config.images, int) or not 1 <= config.images <= MAX_IMAGES:
        raise SynthError(f"images must be a whole number from 1 to {MAX_IMAGES}, got {shown(config.images)}")
    if midv2020 and config.trajectories:
        raise SynthError(
            "trajectories move MIDV-500 and MIDV-2019 clips along real quads; MIDV-2020 clips cannot follow them"
        )
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed <= MAX_SEED:
        raise SynthError(f"seed must be a whole number from 0 to {MAX_SEED}, got {shown(config.seed)}")
    rate = Fraction(config.fps).limit_denominator(1001)
    if rate <= 0:
        raise SynthError(f"fps must be a positive number, got {config.fps!r}")
    clips = DEFAULT_CLIPS.get(catalog.name, "*") if config.clips is None else config.clips
    return catalog, _select_documents(catalog, config.docs), _select_clips(catalog, clips), rate, seconds


def _select_documents(catalog: Catalog, docs: str | int) -> list[str]:
    """Resolve `docs` (a count or comma-separated globs) to document names, catalog order."""
    total = len(catalog.documents)
    count_given = isinstance(docs, int) and not isinstance(docs, bool)
    if count_given or isinstance(docs, str) and docs.strip().isascii() and docs.strip().isdecimal():
        # At most 9 digits are read: int() of thousands of digits is slow, then refused.
        count = docs if isinstance(docs, int) else int(docs.strip()) if len(docs.strip()) <= 9 else None
        if count is None or not 1 <= count <= total:
            raise SynthError(f"docs must be 1..{total} ({catalog.title} has {total} documents), got {shown(docs)}")
        return list(catalog.documents[:count])
    if not isinstance(docs, str) or not docs.strip():
        raise SynthError(f"docs must be a count or a name pattern like '0[1-5]_*', got {shown(docs)}")
    chosen = _matching(catalog.documents, docs)
    if not chosen:
        raise SynthError(
            f"docs pattern {shown(docs)} matches no {catalog.title} document (names look like {catalog.documents[0]!r})"
        )
    return chosen


def _matching(names, patterns: str) -> list[str]:
    """Return the names matching any of the comma-separated globs, in their own order."""
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]


def _select_clips(catalog: Catalog, clips: str) -> list[str]:
    """Resolve comma-separated globs on clip codes to codes, catalog order (TA, TS, KA, ...)."""
    if not isinstance(clips, str) or not clips.strip():
        raise SynthError(f"clips must be a clip code pattern like 'T*', got {shown(clips)}")
    if isinstance(catalog, Midv2020Catalog):
        chosen = _matching(catalog.clip_codes, clips.lower())
        codes = "templates, scan_upright, scan_rotated, photo/00-09 .. photo/95-99, clips/00 .. clips/99"
    else:
        chosen = _matching(catalog.clip_codes, clips.upper())
        codes = ", ".join(catalog.clip_codes)
    if not chosen:
        raise SynthError(f"clips pattern {shown(clips)} matches no {catalog.title} clip code (codes: {codes})")
    return chosen


# --- real trajectories ------------------------------------------------------------------

# ASCII digits in names, as discovery reads them
_FRAME_FILE = re.compile(r"(?:^|/)(\d\d_[a-z0-9_]+)/images/([A-Z]{2})/[A-Z]{2}\d\d_(\d\d)\.\w+$", re.ASCII)


@dataclass
class _RealClip:
    """The annotated quads of one real clip, scaled to fractions of its frame."""

    document: str
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # k -> (4, 2) in [0, 1] units


def _load_trajectories(path: Path, codes: list[str]) -> dict[str, list[_RealClip]]:
    """Read a COCO JSON of real quads; return, per needed clip code, its real clips by document.

    Raises SynthError naming the file if it is unreadable, not COCO, or lacks a clip code.
    """
    try:
        data = read_json(path, JSON_LIMIT, SynthError)  # regular files only, size capped: never hangs
    except SynthError as exc:
        raise SynthError(f"trajectories file: {exc.message}", path=path) from None

    def bad(why: str) -> SynthError:
        return SynthError(f"not a COCO file of document quads: {why}", path=path)

    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise bad('expected an object with "images" and "annotations" lists')
    images: dict[object, tuple[str, str, int, float, float]] = {}
    for image in data["images"]:
        try:
            match = _FRAME_FILE.search(str(image["file_name"]))
            size = float(image["width"]), float(image["height"])
            if match and min(size) > 0:
                images[image["id"]] = (match[1], match[2], int(match[3]), *size)
        except (KeyError, TypeError, ValueError):
            raise bad(f"image entry {str(image)[:80]} lacks id, file_name, width or height") from None
    clips: dict[tuple[str, str], _RealClip] = {}
    for ann in data["annotations"]:
        try:
            where = images.get(ann["image_id"])
            points = np.array(ann["segmentation"][0], np.float64)
        except (KeyError, TypeError, ValueError, IndexError):
            raise bad(f"annotation {str(ann)[:80]} lacks image_id or segmentation") from None
        if where is None:
            continue
        if points.shape != (8,) or not np.isfinite(points).all():
            raise bad(f"annotation of image {ann['image_id']!r} is not a quad of 8 numbers")
        document, code, k, w, h = where
        clip = clips.setdefault((code, document), _RealClip(document))
        clip.frames[k] = points.reshape(4, 2) / [w, h]
    result: dict[str, list[_RealClip]] = {}
    for code in codes:
        result[code] = [clips[key] for key in sorted(clips) if key[0] == code]
        if not result[code]:
            have = ", ".join(sorted({c for c, _ in clips})) or "none"
            raise SynthError(f"trajectories file has no quads for clip {code} (it has: {have})", path=path)
    return result


# --- writing ------------------------------------------------------------------------------


def _write_template(folder: Path, document: str, number: int, seed: int) -> np.ndarray:
    """Write the template image and JSON of a document; return the image."""
    for sub in ("videos", "ground_truth", "images"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    image, fields = render.render_template(document, number, np.random.default_rng([seed, number, 0, 0]))
    image_file, json_file = _template_files(folder, document)
    _imwrite(image_file, image)
    write_template(json_file, fields)
    return image


def _imwrite(path: Path, image: np.ndarray) -> int:
    """Write an image atomically, in the format its suffix names; return its size in bytes."""
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise SynthError("cannot encode image", path=path)
    write_atomic(path, data.tobytes())
    return len(data)


@dataclass
class _Clip:
    """One clip to write: where it sits in the dataset and its frame timing."""

    catalog: Catalog
    document: str
    number: int
    kind: ClipKind
    times: np.ndarray  # source frame times, seconds
    picks: list[int]  # source frame index of each annotated frame
    rate: Fraction

    def trajectory(
        self,
        config: SynthConfig,
        template: np.ndarray,
        real: _RealClip | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Return the document's quad in every source frame, (n, 4, 2) display pixels."""
        w, h = config.width, config.height
        if real is None:
            aspect = template.shape[0] / template.shape[1]
            return render.random_trajectory(self.kind.condition.code, aspect, w, h, self.times, rng)
        # Real annotated frame k becomes our annotated frame k: place it at the time of
        # the source frame the reader picks for k, so its ground truth is the real quad.
        ks = [k for k in sorted(real.frames) if 1 <= k <= len(self.picks)]
        knot_times = np.array([self.times[self.picks[k - 1]] for k in ks])
        knots = np.stack([real.frames[k] for k in ks]) * [w, h]
        return render.interpolate_quads(knot_times, knots, self.times)

    def write(self, folder: Path, template: np.ndarray, config: SynthConfig, real: _RealClip | None) -> Path:
        """Write the clip's video, ground truth and (optionally) frames; return the video path."""
        code, w, h = self.kind.code, config.width, config.height
        code_index = self.catalog.clip_codes.index(code)
        rng = np.random.default_rng([config.seed, self.number, 1, code_index])
        quads = self.trajectory(config, template, real, rng)

        (folder / "ground_truth" / code).mkdir(parents=True, exist_ok=True)
        wanted: dict[int, list[str]] = {}
        for k, i in enumerate(self.picks, start=1):
            frame_id = self.catalog.frame_id(code, self.document, k)
            corners = tuple((int(round(x)), int(round(y))) for x, y in quads[i])
            write_frame_quad(_truth_file(folder, code, frame_id), Quad(corners))
            wanted.setdefault(i, []).append(frame_id)
        if config.with_frames:
            (folder / "images" / code).mkdir(parents=True, exist_ok=True)

        scene = render.make_scene(self.kind.condition.code, template, quads, self.times, w, h, rng)
        video = _video_file(folder, self.kind, self.number)
        # Apple clips: landscape pictures with a -90 degree display rotation, as iPhones store them
        rotation = -90 if self.kind.device.rotated else 0
        with VideoWriter(video, self.rate, w, h, display_rotation=rotation) as writer:
            for i in range(len(self.times)):
                writer.write(render.render_frame(scene, quads[i], i, w, h))
        if config.with_frames:
            # As in MIDV-500, the extracted frames are decoded from the video, not the
            # pristine renders: a decoded annotated frame and its TIFF are the same picture.
            for frame in read_annotated_frames(video, count=len(self.picks), fps=self.catalog.sample_fps):
                for frame_id in wanted.get(frame.source_index, ()):
                    _imwrite(_frame_file(folder, code, frame_id), frame.image)
        return video


# --- MIDV-2020 ----------------------------------------------------------------------------

FRAME_STEP = 6  # MIDV-2020 annotates every 6th frame of a clip: 1, 7, 13, ...
# How render draws each MIDV-2020 condition: surface and motion (T table, K keyboard,
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
# A VIA 2.0 project's settings and attributes, as MIDV-2020's files have them.
_VIA_UI = {
    "annotation_editor_height": 25,
    "annotation_editor_fontsize": 0.8,
    "leftsidebar_width": 18,
    "image_grid": {
        "img_height": 80,
        "rshape_fill": "none",
        "rshape_fill_opacity": 0.3,
        "rshape_stroke": "yellow",
        "rshape_stroke_width": 2,
        "show_region_shape": True,
        "show_image_policy": "all",
    },
    "image": {
        "region_label": "__via_region_id__",
        "region_color": "__via_default_region_color__",
        "region_label_font": "10px Sans",
        "on_image_annotation_editor_placement": "NEAR_REGION",
    },
}
_VIA_ATTRIBUTES = {
    "region": {
        "field_name": {"type": "text", "description": "", "default_value": ""},
        "value": {"type": "text", "description": "", "default_value": ""},
        "features": {
            "type": "checkbox",
            "description": "",
            "options": {"ascenders": "", "descenders": "", "lowercase": ""},
            "default_options": {},
        },
    },
    "file": {},
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


# Where _synthesize_2020 writes, relative to the dataset root.
def _image_2020(collection: str, doc_type: str, number: int) -> Path:
    return Path(collection, "images", doc_type, f"{number:02d}.jpg")


def _via_2020(collection: str, doc_type: str) -> Path:
    return Path(collection, "annotations", f"{doc_type}.json")


def _clip_video_2020(doc_type: str, number: int) -> Path:
    return Path("clips_video", "video", doc_type, f"{number:02d}.mp4")


def _clip_frame_2020(doc_type: str, number: int, frame: int) -> Path:
    return Path("clips", "images", doc_type, f"{number:02d}", f"{frame:06d}.jpg")


def _clip_via_2020(doc_type: str, number: int) -> Path:
    return Path("clips", "annotations", doc_type, f"{number:02d}.json")


def _outputs_2020(doc_types: list[str], units: list[_Unit], frames: list[int]) -> Iterator[Path]:
    """Yield every file :func:`_synthesize_2020` writes, relative to its output folder, once."""
    seen: set[Path] = set()
    for doc_type in doc_types:
        for unit in units:
            for number in unit.numbers:
                if unit.collection == "clips":
                    paths = [_clip_video_2020(doc_type, number), _clip_via_2020(doc_type, number)]
                    paths += [_clip_frame_2020(doc_type, number, k) for k in frames]
                else:
                    paths = [_image_2020(unit.collection, doc_type, number), _via_2020(unit.collection, doc_type)]
                for path in paths:
                    if path not in seen:
                        seen.add(path)
                        yield path


def _synthesize_2020(
    out_dir: str | Path,
    catalog: Midv2020Catalog,
    doc_types: list[str],
    codes: list[str],
    rate: Fraction,
    seconds: float,
    config: SynthConfig,
    progress: Callable[[str], None] | None,
    overwrite: bool,
) -> SynthReport:
    """Write a synthetic MIDV-2020 dataset (see :func:`synthesize`)."""
    started = time.perf_counter()
    root = _output_root(out_dir)
    units = _units(codes, config.images)
    by_collection: dict[str, list[_Unit]] = {}
    for unit in units:
        by_collection.setdefault(unit.collection, []).append(unit)
    n = max(1, round(seconds * rate))
    frames = list(range(1, n + 1, FRAME_STEP))
    if not overwrite:
        _refuse_existing(root, _outputs_2020(doc_types, units, frames))
    report = SynthReport(root, list(doc_types), 0, 0, 0.0)
    for doc_type in doc_types:
        writer = _Writer2020(root, catalog, doc_type, config, rate, n, frames)
        for collection, group in by_collection.items():
            entries: dict[str, dict] = {}
            for unit in group:
                with _writing(root):
                    report.frames += writer.write(unit, entries)
                report.clips += 1
                if progress is not None:
                    progress(f"{doc_type}/{unit.code}")
            if collection != "clips":
                with _writing(root):
                    _write_via(root / _via_2020(collection, doc_type), f"{collection}/images/{doc_type}", entries)
    report.seconds = time.perf_counter() - started
    return report


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
        assert kind is not None  # _check chose the codes from the catalog's
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
            path = self.root / _image_2020(unit.collection, self.doc_type, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            size = _imwrite(path, picture)
            entries[f"{path.name}{size}"] = _via_image(path.name, size, quad, (tw, th), fields["face"][0], text)
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
        video = self.root / _clip_video_2020(self.doc_type, number)
        video.parent.mkdir(parents=True, exist_ok=True)
        with VideoWriter(video, self.rate, w, h) as writer:
            for i in range(self.n):
                writer.write(render.render_frame(scene, quads[i], i, w, h))
        # The JPEGs are decoded from the video, as MIDV-2020's were cut from its clips: frame
        # number k of the annotation is the video's k-th decoded frame.
        entries: dict[str, dict] = {}
        folder = self.root / _clip_frame_2020(self.doc_type, number, 1).parent
        folder.mkdir(parents=True, exist_ok=True)
        for frame in read_frames_at(video, self.frames, threads=1):
            path = self.root / _clip_frame_2020(self.doc_type, number, frame.number)
            size = _imwrite(path, frame.image)
            quad = quads[frame.number - 1]
            entries[f"{path.name}{size}"] = _via_image(path.name, size, quad, (tw, th), fields["face"][0], {})
        via = self.root / _clip_via_2020(self.doc_type, number)
        via.parent.mkdir(parents=True, exist_ok=True)
        _write_via(via, f"clips/images/{self.doc_type}/{number:02d}", entries)
        return len(entries)


def _rect(corners: np.ndarray) -> dict[str, int | str]:
    """A VIA rect bounding `corners`, in whole pixels."""
    x0, y0 = (round(float(v)) for v in corners.min(0))
    x1, y1 = (round(float(v)) for v in corners.max(0))
    return {"name": "rect", "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def _via_image(
    filename: str, size: int, quad: np.ndarray, template_size: tuple[int, int], face: Quad, text: _Fields
) -> dict:
    """One image's VIA entry: the face box, the document quad and (templates) the text fields."""
    onto = homography(rectangle(*template_size), quad)
    assert onto is not None  # the quads render draws are never degenerate
    face_corners = transform(onto, np.array(face.points, np.float64))
    corners = [(round(float(x)), round(float(y))) for x, y in quad]
    regions: list[dict] = [
        {
            "shape_attributes": _rect(face_corners),
            "region_attributes": {"field_name": "face", "value": "", "features": {}},
        },
        {
            "shape_attributes": {
                "name": "polygon",
                "all_points_x": [x for x, _ in corners],
                "all_points_y": [y for _, y in corners],
            },
            "region_attributes": {"field_name": "doc_quad"},
        },
    ]
    for name, (box, value) in text.items():
        if name != "face":
            regions.append(
                {
                    "shape_attributes": _rect(np.array(box.points, np.float64)),
                    "region_attributes": {"field_name": name, "value": value or ""},
                }
            )
    return {"filename": filename, "size": size, "regions": regions, "file_attributes": {}}


def _write_via(path: Path, folder: str, entries: dict[str, dict]) -> None:
    """Write a VIA 2.0 project of `entries` (images keyed by file name and size), as MIDV-2020's are."""
    project = "midv2020-" + folder.split("/")[2].replace("_", "-")
    data = {
        "_via_settings": {
            "ui": _VIA_UI,
            "core": {"buffer_size": "18", "filepath": {}, "default_filepath": f"/mnt/midv-2020/{folder}/"},
            "project": {"name": project},
        },
        "_via_img_metadata": entries,
        "_via_attributes": _VIA_ATTRIBUTES,
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(entries),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
