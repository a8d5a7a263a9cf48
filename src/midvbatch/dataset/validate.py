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
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from midvbatch.dataset.archive import file_md5, parse_md5_list
from midvbatch.dataset.formats import discover, get_format
from midvbatch.dataset.groundtruth import Quad
from midvbatch.dataset.model import ERROR, NOTE, WARNING, Clip, Problem
from midvbatch.errors import GroundTruthError, MidvBatchError, VideoError
from midvbatch.fileio import IMAGE_LIMIT, TEXT_LIMIT, Identity, file_identity, read_bytes
from midvbatch.geometry import segments_cross
from midvbatch.video.frames import read_clip_frames
from midvbatch.video.image import image_size, read_image
from midvbatch.video.probe import VideoInfo, probe
from midvbatch.video.reader import sample_slot

PSNR_THRESHOLD = 30.0  # dB: a decoded frame and its extracted TIFF of the same instant agree better
PLAUSIBLE_MARGIN = 2.0  # corners within this many frame sizes beyond the frame's edges


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
            "root": self.root,
            "catalog": self.catalog,
            "clips": self.clips,
            "deep": self.deep,
            "ok": self.ok,
            "counts": self.counts(),
            "problems": [asdict(p) for p in self.problems],
        }


# ---------------------------------------------------------------------------------- quads


def quad_problem(quad: Quad, width: int | None, height: int | None) -> str | None:
    """Say what is wrong with a ground-truth quad for a W x H frame, or None.

    Degenerate (no area), self-intersecting (corners out of order), or implausibly far
    from the frame (corners out of view are normal; kilometres away are not).
    """
    a, b, c, d = quad.points
    if segments_cross(a, b, c, d) or segments_cross(b, c, d, a):
        return f"self-intersecting quad (corners out of order): {quad.to_list()}"
    if quad.area() < 1.0:
        return f"degenerate quad (area {quad.area():.1f} px²): {quad.to_list()}"
    if not width or not height:
        return None  # the frame size is unknown: no plausibility to judge
    mx, my = PLAUSIBLE_MARGIN * width, PLAUSIBLE_MARGIN * height
    for x, y in quad.points:
        if not (-mx <= x <= width + mx and -my <= y <= height + my):
            return f"corner ({x}, {y}) implausibly far outside the {width}x{height} frame"
    return None


# ---------------------------------------------------------------------------------- clips


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images of one size, in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


_Add = Callable[[str, str, "str | Path", str], None]  # add(severity, kind, path, message): one of the clip's problems


def check_clip(
    clip: Clip,
    *,
    deep: bool = False,
    psnr_threshold: float = PSNR_THRESHOLD,
    probe_video: Callable[[Path], VideoInfo] = probe,
) -> list[Problem]:
    """Check one clip's video and ground truth; return its problems (never raises for bad files).

    The clip's frame rule says how long its video must be; its format reads its ground
    truth. `probe_video` reads the container (check_clips passes one that probes each
    file once).
    """
    problems: list[Problem] = []

    def add(severity: str, kind: str, path: str | Path, message: str) -> None:
        problems.append(Problem(severity, kind, str(path), message, clip.id))

    width, height = clip.frame_size or (None, None)
    video_ok = False
    if clip.video is not None:
        video_ok, size = _check_video(clip, clip.video, probe_video, add)
        if size is not None:
            width, height = size
    if not _check_ground_truth(clip, width, height, add):
        return problems
    if deep and clip.video is None and clip.frame_rule.numbers:  # the pictures are the frames: each must decode
        _check_pictures(clip, add)
    if deep and video_ok:
        assert clip.video is not None  # video_ok: the clip's video was probed
        _check_extracted_frames(clip, clip.video, psnr_threshold, add)
    return problems


def _check_video(
    clip: Clip, video: Path, probe_video: Callable[[Path], VideoInfo], add: _Add
) -> tuple[bool, tuple[int, int] | None]:
    """Probe the clip's video and check it is long enough for its annotated frames: (usable, its displayed
    (width, height), None when it cannot be probed)."""
    rule = clip.frame_rule
    try:
        info = probe_video(video)
    except VideoError as exc:
        add(ERROR, "video", video, exc.message)
        return False, None
    size = (info.display_width, info.display_height)
    last = max(rule.numbers, default=0)  # frames named by number: the video must reach the last one
    frames, exact = _frame_count(info)
    if rule.numbers and frames is not None and frames + (0 if exact else 1) < last:
        about = "" if exact else "about "
        add(ERROR, "video", video, f"too short: {about}{frames} frames, the annotations go to frame {last}")
        return False, size
    if (
        not rule.numbers
        and rule.fps
        and info.duration is not None
        and sample_slot(info.duration, rule.fps) < rule.count
    ):
        add(
            ERROR,
            "video",
            video,
            f"too short: {info.duration:.2f} s, the {rule.count} annotated frames need {rule.needed_seconds:.2f} s",
        )
        return False, size
    return True, size


def _check_ground_truth(clip: Clip, width: int | None, height: int | None, add: _Add) -> bool:
    """Read each frame's ground-truth quad and check it against its frame (the video's size, or a picture's own);
    False when the clip's format cannot be had (nothing more is checked)."""
    if not clip.ground_truth:
        return True
    try:
        read_quads = get_format(clip.format).read_quads
    except MidvBatchError as exc:
        add(ERROR, "ground_truth", clip.video or clip.id, exc.message)
        return False
    quads: dict[int, Quad] = {}
    try:  # one reading: a format may keep every frame's quad in one file
        quads = read_quads(clip.ground_truth)
    except GroundTruthError:
        pass  # then frame by frame below, to name every bad file
    said: set[tuple[str, str]] = set()
    for number in sorted(clip.ground_truth):
        path = clip.ground_truth[number]
        try:
            quad = quads[number] if number in quads else read_quads({number: path})[number]
        except GroundTruthError as exc:
            if (str(path), exc.message) not in said:  # one file for many frames: said once
                said.add((str(path), exc.message))
                add(ERROR, "ground_truth", path, exc.message)
            continue
        w, h = width, height
        if clip.video is None and number in clip.images:  # a picture: its own size
            try:
                w, h = image_size(clip.images[number])
            except VideoError as exc:
                add(ERROR, "decode", clip.images[number], exc.message)
                continue
        trouble = quad_problem(quad, w, h)
        if trouble:
            add(
                ERROR, "quad", path, f"frame {clip.frame_id(number)}: {trouble}" if clip.frame_rule.numbers else trouble
            )
    return True


def _check_pictures(clip: Clip, add: _Add) -> None:
    """Decode each of the clip's pictures (a clip without video whose pictures are its frames)."""
    for number in sorted(clip.images):
        try:
            read_image(clip.images[number])
        except VideoError as exc:
            add(ERROR, "decode", clip.images[number], exc.message)


def _check_extracted_frames(clip: Clip, video: Path, psnr_threshold: float, add: _Add) -> None:
    """Decode the clip's annotated frames and compare each with its extracted picture, if it has one."""
    rule = clip.frame_rule
    try:
        for frame in read_clip_frames(video, count=rule.count, fps=rule.fps, numbers=rule.numbers):
            tif = clip.images.get(frame.number)
            if tif is not None:
                _compare_extracted(frame.number, frame.image, tif, video, psnr_threshold, add)
    except VideoError as exc:
        add(ERROR, "decode", video, exc.message)


def _compare_extracted(
    number: int, image: np.ndarray, tif: Path, video: Path, psnr_threshold: float, add: _Add
) -> None:
    """Check that the extracted picture `tif` is annotated frame `number` as decoded from `video` (`image`)."""
    try:
        extracted = _read_image(tif)
    except MidvBatchError as exc:
        add(ERROR, "frame_mismatch", tif, exc.message)
        return
    if extracted is None:
        add(ERROR, "frame_mismatch", tif, "unreadable image")
    elif extracted.shape != image.shape:
        add(
            ERROR,
            "frame_mismatch",
            tif,
            f"size {extracted.shape[1]}x{extracted.shape[0]} differs "
            f"from the video's {image.shape[1]}x{image.shape[0]}",
        )
    else:
        value = psnr(extracted, image)
        if value < psnr_threshold:
            add(
                ERROR,
                "frame_mismatch",
                tif,
                f"does not match annotated frame {number} decoded from {video.name} "
                f"(PSNR {value:.1f} dB < {psnr_threshold:g}): the annotation may belong to another frame",
            )


def _frame_count(info: VideoInfo) -> tuple[int | None, bool]:
    """How many frames a video holds: (the container's count, True), else (duration x rate, False), else (None, False)."""
    if info.frame_count:
        return info.frame_count, True
    if info.duration and info.fps and math.isfinite(info.duration * info.fps):
        return round(info.duration * info.fps), False
    return None, False


def _read_image(path: Path) -> np.ndarray | None:
    """Decode an extracted frame (None if OpenCV cannot); raise MidvBatchError for a FIFO, device, huge file."""
    import cv2

    raw = read_bytes(path, IMAGE_LIMIT, what="an image file")
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None


# ------------------------------------------------------------------------------- dataset


def _archives(root: Path) -> list[Problem]:
    problems = []
    for folder in (root, root / ".fetch"):
        listing = folder / "md5.txt"
        if not os.path.lexists(listing):
            continue
        try:
            sums = parse_md5_list(read_bytes(listing, TEXT_LIMIT, what="an md5 list"))
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


def validate(
    root: str | Path,
    *,
    deep: bool = False,
    catalog: str | None = None,
    jobs: int = 2,
    psnr_threshold: float = PSNR_THRESHOLD,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Validate the dataset under `root`; return every problem found (raises only for an unusable root).

    `deep` also decodes every annotated frame and compares it with its extracted TIFF.
    Clips are checked `jobs` at a time (FFmpeg releases the GIL while decoding).
    """
    dataset = discover(root, catalog)
    report = ValidationReport(
        str(dataset.root), dataset.catalog.name if dataset.catalog else None, len(dataset.clips), deep
    )
    report.problems += dataset.findings()  # links not followed, second copies, clips a format gave set aside
    said = set(report.problems)
    report.problems += [p for p in get_format(dataset.format).check_layout(dataset) if p not in said]
    report.problems += _archives(dataset.root)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for clip, problems in zip(
            dataset.clips,
            pool.map(lambda c: check_clip(c, deep=deep, psnr_threshold=psnr_threshold), dataset.clips),
            strict=True,
        ):
            report.problems += problems
            if progress is not None:
                progress(clip.id)
    return report


class _ProbeOnce:
    """probe(), once per file: clips that are links to one video (a subset assembled with
    symlinks, a benchmark) share one reading, keyed by the file's device, inode, size and time."""

    def __init__(self) -> None:
        self._seen: dict[Identity, VideoInfo | VideoError] = {}

    def __call__(self, path: Path) -> VideoInfo:
        key = file_identity(path)
        if key is None:
            return probe(path)  # says what is wrong with it
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
    for clip, problems in zip(clips, results, strict=True):
        errors = [p for p in problems if p.severity == ERROR]
        if clip.video is None and not clip.runs_from_pictures:  # validate() reports this with the structure
            errors.insert(0, Problem(ERROR, "missing", str(clip.document or "."), "no video file", clip.id))
        if errors:
            out[clip.id] = errors
    return out


def clip_signature(clip: Clip) -> str:
    """A fingerprint of a clip's files (names, sizes, modification times): unchanged files, same signature."""
    parts = []
    for path in dict.fromkeys([clip.video, *(clip.ground_truth[k] for k in sorted(clip.ground_truth))]):
        if path is None:
            parts.append("-")
            continue
        try:
            st = os.stat(path)
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}:missing")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


__all__ = [
    "ERROR",
    "NOTE",
    "WARNING",
    "Problem",
    "ValidationReport",
    "check_clip",
    "check_clips",
    "clip_signature",
    "psnr",
    "quad_problem",
    "validate",
]
