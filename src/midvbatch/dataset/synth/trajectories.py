"""Real trajectories: documents moved along the quads of a real MIDV-500 clip (a COCO JSON file)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midvbatch.errors import SynthError
from midvbatch.fileio import JSON_LIMIT, read_json

# ASCII digits in names, as discovery reads them
_FRAME_FILE = re.compile(r"(?:^|/)(\d\d_[a-z0-9_]+)/images/([A-Z]{2})/[A-Z]{2}\d\d_(\d\d)\.\w+$", re.ASCII)


@dataclass
class RealClip:
    """The annotated quads of one real clip, scaled to fractions of its frame."""

    document: str
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # k -> (4, 2) in [0, 1] units


def load_trajectories(path: Path, codes: list[str]) -> dict[str, list[RealClip]]:
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
    clips: dict[tuple[str, str], RealClip] = {}
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
        clip = clips.setdefault((code, document), RealClip(document))
        clip.frames[k] = points.reshape(4, 2) / [w, h]
    result: dict[str, list[RealClip]] = {}
    for code in codes:
        result[code] = [clips[key] for key in sorted(clips) if key[0] == code]
        if not result[code]:
            have = ", ".join(sorted({c for c, _ in clips})) or "none"
            raise SynthError(f"trajectories file has no quads for clip {code} (it has: {have})", path=path)
    return result
