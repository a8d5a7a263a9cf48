"""What to synthesize: the options (:class:`SynthConfig`), checked and resolved into a :class:`Selection`.

Everything a user can get wrong is refused here, with a SynthError saying what to give
instead, before anything is written.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from midvbatch.dataset.catalog import Catalog, Midv2020Catalog, get_catalog
from midvbatch.dataset.synth.trajectories import RealClip, load_trajectories
from midvbatch.errors import DatasetError, SynthError, shown

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


@dataclass(frozen=True)
class Selection:
    """A :class:`SynthConfig` resolved against its catalog: what a format's writer writes.

    `documents` and `codes` are in catalog order; `rate` is the frame rate as a fraction
    (30000/1001 for 29.97), `seconds` the clip length (the catalog's default filled in);
    `trajectories` the real quads to follow, per clip code (None: random motion).
    """

    documents: list[str]
    codes: list[str]
    rate: Fraction
    seconds: float
    trajectories: dict[str, list[RealClip]] | None = None


class Written(NamedTuple):
    """What a format's writer wrote: clips (or clip codes) and annotated frames."""

    clips: int
    frames: int


def check(config: SynthConfig) -> tuple[Catalog, Selection]:
    """Validate `config` and resolve it: its catalog and the selection to write.

    Raises SynthError for an option that cannot be honoured, or a trajectories file that
    cannot be read (naming it).
    """
    catalog, documents, codes, rate, seconds = _check(config)
    trajectories = load_trajectories(Path(config.trajectories), codes) if config.trajectories else None
    return catalog, Selection(documents, codes, rate, seconds, trajectories)


def parse_frame_size(text: str) -> tuple[int, int]:
    """Read a frame size like '180x320' (width x height); raise SynthError if it is not one.

    The bounds (MIN_SIDE, MAX_SIDE, MAX_PIXELS) are checked with the rest of the options.
    """
    m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text or "")
    if not m:
        raise SynthError(
            f"{shown(text)} is not a size like 180x320 (width x height in pixels, each {MIN_SIDE} to {MAX_SIDE})"
        )
    return int(m.group(1)), int(m.group(2))


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
