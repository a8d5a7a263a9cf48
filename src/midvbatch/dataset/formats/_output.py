"""A format's output checked as a processor's is: every clip a Clip whose fields hold what they say.

A plugin's ``discover()`` may give a string where a clip belongs, a frame rate of NaN or
1e308, a frame count of -5, or two clips with one id. Each such clip is one line naming
it and what is wrong, and is set aside (two of one id: the first is used); the others run.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midvbatch.dataset.catalog import Catalog
from midvbatch.dataset.model import ERROR, Clip, Copy, Dataset, Document, FrameRule, Missing, Problem
from midvbatch.errors import DatasetError, shown

MAX_FPS = 1000.0  # frames per second a sampling rule may ask for
MAX_FRAMES = 1_000_000  # annotated frames of one clip
MAX_FRAME_NUMBER = 10**9
MAX_FRAME_SIDE = 100_000  # pixels
MAX_TEXT = 1000  # characters of an id, a document or a clip code


def checked(dataset: Dataset, fmt: str, trusted: bool = False) -> Dataset:
    """Return `dataset` with every clip that is not a well-formed Clip set aside, and each said in `problems`;
    two clips of one id: the first kept, the second a `Copy`. Raises DatasetError when `clips` is no list.

    `trusted` (a built-in format, whose clips are made right): only ids are checked, so that
    100,000 clips cost no more than a dictionary."""
    given = (dataset.root, dataset.format, dataset.catalog)
    if (
        not isinstance(given[0], (str, os.PathLike))
        or not isinstance(given[1], str)
        or not (given[2] is None or isinstance(given[2], Catalog))
    ):
        raise DatasetError(
            f"dataset format {fmt}: discover() gave a Dataset whose root, format or catalog is "
            f"{shown(given, 80)}, not a path, a name and a Catalog or None"
        )
    root = dataset.root = Path(dataset.root)
    for name in ("clips", "documents", "missing", "problems", "copies"):
        value = getattr(dataset, name)
        if not isinstance(value, (list, tuple)):
            raise DatasetError(
                f"dataset format {fmt}: discover() gave a Dataset whose {name} is {type(value).__name__}, not a list",
                path=root,
            )
        setattr(dataset, name, list(value))
    problems = [p for p in dataset.problems if isinstance(p, Problem)]
    kept: dict[str, Clip] = {}
    for clip in dataset.clips:
        trouble = None if trusted else _trouble(clip)
        if trouble is not None:
            where = _source(clip, root) if isinstance(clip, Clip) else None
            named = f"clip {shown(clip.id, 80)}" if isinstance(clip, Clip) else shown(clip, 60)
            problems.append(
                Problem(
                    ERROR,
                    "format",
                    str(root / where) if where else str(root),
                    f"dataset format {fmt} gave {named}: {trouble}; set aside",
                    clip.id if isinstance(clip, Clip) and isinstance(clip.id, str) else None,
                )
            )
            continue
        first = kept.get(clip.id)
        if first is None:
            kept[clip.id] = clip
            continue
        used, ignored = _source(first, root) or ".", _source(clip, root) or "."
        dataset.copies.append(Copy(f"clip {clip.id}", used, ignored, (clip,), (clip.id,)))
    dataset.clips = list(kept.values())
    for name, kind in (("documents", Document), ("missing", Missing)):
        good = [item for item in getattr(dataset, name) if isinstance(item, kind)]
        if len(good) < len(getattr(dataset, name)):
            bad = next(item for item in getattr(dataset, name) if not isinstance(item, kind))
            problems.append(
                Problem(
                    ERROR, "format", str(root), f"dataset format {fmt} gave {shown(bad, 60)} in its {name}; left out"
                )
            )
            setattr(dataset, name, good)
    dataset.problems = problems
    dataset.copies = [c for c in dataset.copies if isinstance(c, Copy)]
    return dataset


def _source(clip: Clip, root: Path) -> str | None:
    """The file a clip comes from (its video, else its first ground-truth file or picture), relative to the root."""
    files = [clip.video]
    for table in (clip.ground_truth, clip.images):
        files += list(table.values()) if isinstance(table, Mapping) else []
    path = next((p for p in files if isinstance(p, (str, os.PathLike))), None)
    if path is None:
        return None
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _trouble(clip: Any) -> str | None:
    """What is wrong with a clip a format gave (None: nothing); turns str paths into Paths and lists into tuples."""
    if not isinstance(clip, Clip):
        return f"a {type(clip).__name__}, not a Clip"
    for name in ("id", "document", "code", "format"):
        text = getattr(clip, name)
        if not isinstance(text, str):
            return f"its {name} is {shown(text)}, not text"
        if not text.isprintable() or len(text) > MAX_TEXT or (not text and name in ("id", "format")):
            return f"its {name} {shown(text)} is not one line of 1 to {MAX_TEXT} printable characters"
    for name in ("condition", "device", "template"):
        if getattr(clip, name) is not None and not isinstance(getattr(clip, name), str):
            return f"its {name} is {shown(getattr(clip, name))}, not text or None"
    if clip.video is not None and not isinstance(clip.video, Path):
        if not isinstance(clip.video, (str, os.PathLike)):
            return f"its video is {shown(clip.video)}, not a path"
        clip.video = Path(clip.video)
    for name in ("ground_truth", "images"):
        files = getattr(clip, name)
        if not isinstance(files, Mapping):
            return f"its {name} is {type(files).__name__}, not a mapping of frame numbers to files"
        plain = True  # int keys, Path values: kept as they are (100,000 clips x 30 frames)
        for number, path in files.items():
            if not _whole(number, 0, MAX_FRAME_NUMBER):
                return f"its {name} has a frame number {shown(number)}, not a whole number 0..{MAX_FRAME_NUMBER}"
            if not isinstance(path, (str, os.PathLike)):
                return f"its {name} gives frame {number} {shown(path)}, not a path"
            plain = plain and type(number) is int and isinstance(path, Path)
        if not plain:
            setattr(clip, name, {int(number): Path(path) for number, path in files.items()})
    trouble = _rule_trouble(clip.frame_rule)
    if trouble is not None:
        return trouble
    rule = clip.frame_rule
    if type(rule.count) is not int or type(rule.fps) is not float or type(rule.numbers) is not tuple:
        clip.frame_rule = FrameRule(int(rule.count), float(rule.fps), tuple(int(n) for n in rule.numbers))
    if clip.frame_size is not None:
        size = clip.frame_size
        if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_whole(v, 1, MAX_FRAME_SIDE) for v in size):
            return f"its frame_size is {shown(size)}, not (width, height) in pixels, 1..{MAX_FRAME_SIDE}"
        clip.frame_size = (int(size[0]), int(size[1]))
    if not _whole(clip.frame_digits, 1, 12):
        return f"its frame_digits is {shown(clip.frame_digits)}, not a whole number 1..12"
    return None


def _rule_trouble(rule: Any) -> str | None:
    if not isinstance(rule, FrameRule):
        return f"its frame_rule is {type(rule).__name__}, not a FrameRule"
    if not isinstance(rule.numbers, (tuple, list)) or not all(_whole(n, 0, MAX_FRAME_NUMBER) for n in rule.numbers):
        return f"its frame numbers {shown(rule.numbers)} are not whole numbers 0..{MAX_FRAME_NUMBER}"
    fps = rule.fps
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps < 0:
        return f"its frame rate (fps) is {shown(fps)}, not a finite number of frames per second"
    if fps > MAX_FPS:
        return f"its frame rate (fps) {shown(fps)} is above {MAX_FPS:g}"
    if rule.numbers:
        if not _whole(rule.count, len(rule.numbers), len(rule.numbers)):
            return f"its frame count {shown(rule.count)} differs from its {len(rule.numbers)} frame numbers"
        return None
    if not fps:
        return "its frame rule has neither a frame rate nor frame numbers"
    if not _whole(rule.count, 1, MAX_FRAMES):
        return f"its frame count is {shown(rule.count)}, not a whole number 1..{MAX_FRAMES}"
    return None


def _whole(value: Any, low: int, high: int) -> bool:
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        return False
    return low <= int(value) <= high
