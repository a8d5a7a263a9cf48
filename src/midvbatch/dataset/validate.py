"""Check a dataset before a run of hours: structure, ground truth, videos, archives.

Each finding is a :class:`Problem` with a severity: ``error`` (the clip or file cannot be
used as it is), ``warning`` (usable, but not as the dataset intends: the irregular
template files real MIDV-500 has), ``note`` (for information: documents not present in a
partial dataset, extra files). Only errors make validation fail.

:func:`check_clip` is the per-clip part, also used by ``midvbatch run`` to set invalid
clips aside before they reach a worker.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from midvbatch.dataset.archive import file_md5, parse_md5_list
from midvbatch.dataset.catalog import MIDV500, Catalog, get_catalog
from midvbatch.dataset.groundtruth import (
    Quad,
    load_frame_quad,
    parse_template,
    read_ground_truth_json,
)
from midvbatch.dataset.layout import STRUCTURE_DIRS, Clip, Dataset, discover
from midvbatch.errors import GroundTruthError, MidvBatchError, VideoError
from midvbatch.fileio import IMAGE_LIMIT, TEXT_LIMIT, read_bytes
from midvbatch.geometry import segments_cross
from midvbatch.video.probe import VideoInfo, probe
from midvbatch.video.reader import read_annotated_frames, sample_slot

ERROR, WARNING, NOTE = "error", "warning", "note"
PSNR_THRESHOLD = 30.0  # dB: a decoded frame and its extracted TIFF of the same instant agree better
PLAUSIBLE_MARGIN = 2.0  # corners within this many frame sizes beyond the frame's edges


@dataclass(frozen=True)
class Problem:
    """One finding: how bad, what kind, which file, what is wrong."""

    severity: str  # error | warning | note
    kind: str  # missing | ground_truth | quad | template | video | decode | frame_mismatch | archive | extra
    path: str
    message: str
    clip: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class ValidationReport:
    """Everything validation found, and what it looked at."""

    root: str
    catalog: str | None
    clips: int
    deep: bool
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity error."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and notes allowed)."""
        return not self.errors

    def counts(self) -> dict[str, dict[str, int]]:
        """Return {severity: {kind: count}}."""
        out: dict[str, dict[str, int]] = {}
        for (severity, kind), n in sorted(Counter((p.severity, p.kind) for p in self.problems).items()):
            out.setdefault(severity, {})[kind] = n
        return out

    def to_dict(self) -> dict:
        """Return a JSON-ready report."""
        return {
            "root": self.root, "catalog": self.catalog, "clips": self.clips, "deep": self.deep, "ok": self.ok,
            "counts": self.counts(), "problems": [asdict(p) for p in self.problems],
        }


# ---------------------------------------------------------------------------------- quads


def quad_problem(quad: Quad, width: int, height: int) -> str | None:
    """Say what is wrong with a ground-truth quad for a W x H frame, or None.

    Degenerate (no area), self-intersecting (corners out of order), or implausibly far
    from the frame (corners out of view are normal; kilometres away are not).
    """
    a, b, c, d = quad.points
    if segments_cross(a, b, c, d) or segments_cross(b, c, d, a):
        return f"self-intersecting quad (corners out of order): {quad.to_list()}"
    if quad.area() < 1.0:
        return f"degenerate quad (area {quad.area():.1f} px²): {quad.to_list()}"
    mx, my = PLAUSIBLE_MARGIN * width, PLAUSIBLE_MARGIN * height
    for x, y in quad.points:
        if not (-mx <= x <= width + mx and -my <= y <= height + my):
            return f"corner ({x}, {y}) implausibly far outside the {width}x{height} frame"
    return None


# ---------------------------------------------------------------------------------- clips


def _needed_seconds(catalog: Catalog) -> float:
    """The shortest clip from which the sampler yields every annotated frame."""
    return (catalog.frames_per_clip - 0.5) / catalog.sample_fps


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images of one size, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def check_clip(clip: Clip, catalog: Catalog | None = None, *, deep: bool = False,
               psnr_threshold: float = PSNR_THRESHOLD,
               probe_video: Callable[[Path], VideoInfo] = probe) -> list[Problem]:
    """Check one clip's video and ground truth; return its problems (never raises for bad files).

    `probe_video` reads the container (check_clips passes one that probes each file once).
    """
    catalog = catalog or (get_catalog(clip.catalog) if clip.catalog else MIDV500)
    problems: list[Problem] = []

    def add(severity, kind, path, message):
        problems.append(Problem(severity, kind, str(path), message, clip.id))

    width, height = catalog.frame_width, catalog.frame_height
    video_ok = False
    if clip.video is not None:
        try:
            info = probe_video(clip.video)
            width, height = info.display_width, info.display_height
            video_ok = True
            if info.duration is not None and sample_slot(info.duration, catalog.sample_fps) < catalog.frames_per_clip:
                add(ERROR, "video", clip.video, f"too short: {info.duration:.2f} s, the {catalog.frames_per_clip} "
                                                f"annotated frames need {_needed_seconds(catalog):.2f} s")
                video_ok = False
        except VideoError as exc:
            add(ERROR, "video", clip.video, exc.message)
    for number in sorted(clip.ground_truth):
        path = clip.ground_truth[number]
        try:
            quad = load_frame_quad(path)
        except GroundTruthError as exc:
            add(ERROR, "ground_truth", path, exc.message)
            continue
        trouble = quad_problem(quad, width, height)
        if trouble:
            add(ERROR, "quad", path, trouble)
    if deep and video_ok:
        try:
            for frame in read_annotated_frames(clip.video, count=catalog.frames_per_clip, fps=catalog.sample_fps):
                tif = clip.images.get(frame.number)
                if tif is None:
                    continue
                try:
                    extracted = _read_image(tif)
                except MidvBatchError as exc:
                    add(ERROR, "frame_mismatch", tif, exc.message)
                    continue
                if extracted is None:
                    add(ERROR, "frame_mismatch", tif, "unreadable image")
                elif extracted.shape != frame.image.shape:
                    add(ERROR, "frame_mismatch", tif, f"size {extracted.shape[1]}x{extracted.shape[0]} differs "
                                                      f"from the video's {frame.image.shape[1]}x{frame.image.shape[0]}")
                else:
                    value = psnr(extracted, frame.image)
                    if value < psnr_threshold:
                        add(ERROR, "frame_mismatch", tif,
                            f"does not match annotated frame {frame.number} decoded from {clip.video.name} "
                            f"(PSNR {value:.1f} dB < {psnr_threshold:g}): the annotation may belong to another frame")
        except VideoError as exc:
            add(ERROR, "decode", clip.video, exc.message)
    return problems


def _read_image(path: Path) -> np.ndarray | None:
    """Decode an extracted frame (None if OpenCV cannot); raise MidvBatchError for a FIFO, device, huge file."""
    import cv2

    raw = read_bytes(path, IMAGE_LIMIT, what="an image file")
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None


# ------------------------------------------------------------------------------- dataset


def _structure(dataset: Dataset) -> list[Problem]:
    problems = []
    catalog = dataset.catalog
    absent = [m.where for m in dataset.missing if m.kind == "document"]
    if absent:
        problems.append(Problem(NOTE, "missing", str(dataset.root),
                                f"{len(absent)} of the {len(catalog.documents)} documents of {catalog.title} "
                                f"not present (a partial dataset): {', '.join(absent[:5])}"
                                + (", ..." if len(absent) > 5 else "")))
    by_name = {d.name: d.folder for d in dataset.documents}
    by_number = {d.name[:2]: d.folder for d in dataset.documents}
    for m in dataset.missing:
        if m.kind == "document":
            continue
        if m.where in by_name:  # a document's template
            folder = by_name[m.where]
            if m.kind == "template_image":
                path, what = folder / "images" / f"{m.where}.tif", "template image missing"
            else:
                path, what = folder / "ground_truth" / f"{m.where}.json", "template JSON missing"
            problems.append(Problem(ERROR, "template", str(path), what))
            continue
        folder, clip = by_number.get(m.where[2:4], dataset.root), m.where
        path = {"video": folder / "videos", "ground_truth": folder / "ground_truth" / m.where[:2]}.get(m.kind, folder)
        problems.append(Problem(ERROR, "missing", str(path), f"{clip}: {m.detail}", clip))
    return problems


def _extra_files(dataset: Dataset) -> list[Problem]:
    problems = []
    for doc in dataset.documents:
        known = {doc.template_image, doc.template_json}
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
            template = parse_template(data, doc.template_json)
        except GroundTruthError as exc:
            # Real MIDV-500 has irregular template files: usable for frames, so a warning.
            problems.append(Problem(WARNING, "template", str(doc.template_json), exc.message))
            continue
        for name, f in template.fields.items():
            if f.quad.area() < 1.0:
                problems.append(Problem(WARNING, "template", str(doc.template_json), f"field {name[:60]!r} has no area"))
    return problems


def _archives(root: Path) -> list[Problem]:
    problems = []
    for folder in (root, root / ".fetch"):
        listing = folder / "md5.txt"
        if not os.path.lexists(listing):
            continue
        try:
            sums = parse_md5_list(read_bytes(listing, TEXT_LIMIT, what="an md5 list").decode("utf-8", "replace"))
        except MidvBatchError as exc:
            problems.append(Problem(ERROR, "archive", str(listing), exc.message))
            continue
        for archive in sorted(folder.glob("*.zip")):
            expected = sums.get(archive.name)
            if expected is None:
                problems.append(Problem(NOTE, "archive", str(archive), "not listed in md5.txt"))
                continue
            try:
                digest = file_md5(archive)
            except MidvBatchError as exc:
                problems.append(Problem(ERROR, "archive", str(archive), exc.message))
                continue
            if digest != expected:
                problems.append(Problem(ERROR, "archive", str(archive), f"md5 differs from md5.txt ({expected})"))
    return problems


def validate(root: str | Path, *, deep: bool = False, catalog: str | None = None, jobs: int = 2,
             psnr_threshold: float = PSNR_THRESHOLD,
             progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Validate the dataset under `root`; return every problem found (raises only for an unusable root).

    `deep` also decodes every annotated frame and compares it with its extracted TIFF.
    Clips are checked `jobs` at a time (FFmpeg releases the GIL while decoding).
    """
    dataset = discover(root, catalog=catalog)
    report = ValidationReport(str(dataset.root), dataset.catalog.name if dataset.catalog else None,
                              len(dataset.clips), deep)
    if dataset.catalog is not None:
        report.problems += _structure(dataset)
        report.problems += _templates(dataset)
        report.problems += _extra_files(dataset)
    report.problems += _archives(dataset.root)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for clip, problems in zip(dataset.clips, pool.map(
                lambda c: check_clip(c, dataset.catalog, deep=deep, psnr_threshold=psnr_threshold), dataset.clips)):
            report.problems += problems
            if progress is not None:
                progress(clip.id)
    return report


class _ProbeOnce:
    """probe(), once per file: clips that are links to one video (a subset assembled with
    symlinks, a benchmark) share one reading, keyed by the file's device, inode, size and time."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int, int, int], VideoInfo | VideoError] = {}

    def __call__(self, path: Path) -> VideoInfo:
        try:
            st = os.stat(path)
        except OSError:
            return probe(path)  # says what is wrong with it
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        found = self._seen.get(key)
        if found is None:
            try:
                found = probe(path)
            except VideoError as exc:
                found = exc
            self._seen[key] = found
        if isinstance(found, VideoError):
            raise VideoError(found.message, path=path)
        return dataclasses.replace(found, path=str(path)) if found.path != str(path) else found


def _return_freed_memory() -> None:
    """Hand the decoders' freed buffers back to the system (glibc keeps them per thread otherwise)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def check_clips(clips: Iterable[Clip], jobs: int = 2) -> dict[str, list[Problem]]:
    """Fast checks of many clips at once (no decoding): {clip id: errors}, only clips with errors.

    Each video file is probed once, in `jobs` threads (FFmpeg works outside the GIL).
    """
    clips = list(clips)
    probe_once = _ProbeOnce()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda c: check_clip(c, probe_video=probe_once), clips))
    _return_freed_memory()
    out = {}
    for clip, problems in zip(clips, results):
        errors = [p for p in problems if p.severity == ERROR]
        if clip.video is None:  # validate() reports this with the dataset's structure
            errors.insert(0, Problem(ERROR, "missing", str(clip.document or "."), "no video file", clip.id))
        if errors:
            out[clip.id] = errors
    return out


def clip_signature(clip: Clip) -> str:
    """A fingerprint of a clip's files (names, sizes, modification times): unchanged files, same signature."""
    parts = []
    for path in [clip.video, *(clip.ground_truth[k] for k in sorted(clip.ground_truth))]:
        if path is None:
            parts.append("-")
            continue
        try:
            st = os.stat(path)
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}:missing")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


__all__ = ["ERROR", "NOTE", "WARNING", "Problem", "ValidationReport", "check_clip", "check_clips", "clip_signature",
           "psnr", "quad_problem", "validate"]
