"""MIDV-500 and MIDV-2019's layout: where each file of a document folder lies, for reading and writing.

A dataset root holds document folders ``NN_name/`` (also found one level deeper,
``NN_name/NN_name/``, as some unzip tools leave them), each with::

    videos/CCNN.ext                 one video per clip (extension and its case vary)
    ground_truth/NN_name.json       template fields
    ground_truth/CC/CCNN_KK.json    per-frame quads, KK = 01..30
    images/NN_name.tif              template image
    images/CC/CCNN_KK.tif           the annotated frames, extracted (optional)

Clip codes (CC) are a condition letter and a device letter; the catalog says which.
Frame ids (CCNN_KK) are the catalog's (:meth:`~midvbatch.dataset.catalog.Catalog.frame_id`).
"""

from __future__ import annotations

import re
from pathlib import Path

from midvbatch.dataset.catalog import ClipKind

VIDEOS, GROUND_TRUTH, IMAGES = "videos", "ground_truth", "images"
STRUCTURE_DIRS = (VIDEOS, GROUND_TRUTH, IMAGES)
VIDEO_NAME = re.compile(r"^([A-Za-z]{2})([0-9]{2})(\.[A-Za-z0-9]+)$")  # ASCII digits only ('\d' takes '١')
FRAME_NAME = re.compile(r"^([A-Za-z]{2})([0-9]{2})_([0-9]{2})\.([A-Za-z0-9]+)$")


def template_files(folder: Path, document: str) -> tuple[Path, Path]:
    """(image, JSON) of a document's template: ``images/NN_name.tif``, ``ground_truth/NN_name.json``."""
    return folder / IMAGES / f"{document}.tif", folder / GROUND_TRUTH / f"{document}.json"


def video_file(folder: Path, kind: ClipKind, number: int) -> Path:
    """The video of a clip as its phone stored it: ``videos/CCNN.MOV`` (Apple) or ``.mp4`` (Samsung)."""
    return folder / VIDEOS / f"{kind.code}{number:02d}{kind.device.container}"


def truth_file(folder: Path, code: str, frame_id: str) -> Path:
    """The ground truth (quad) of an annotated frame: ``ground_truth/CC/CCNN_KK.json``."""
    return folder / GROUND_TRUTH / code / f"{frame_id}.json"


def frame_file(folder: Path, code: str, frame_id: str) -> Path:
    """An annotated frame, extracted: ``images/CC/CCNN_KK.tif``."""
    return folder / IMAGES / code / f"{frame_id}.tif"
