"""MIDV-2020: its layout (:mod:`.layout`), read (:mod:`.reader`) and written (:mod:`.writer`), annotated in
VGG Image Annotator 2.0 files (:mod:`.via`)."""

from midvbatch.dataset.formats.midv2020.layout import (
    COLLECTION_LAYOUT,
    FRAME_STEP,
    PICTURE_EXTENSIONS,
    VIDEO_COLLECTION,
)
from midvbatch.dataset.formats.midv2020.reader import IMAGE_EXTENSIONS, MIDV2020_FORMAT, Midv2020Format, collections

__all__ = [
    "COLLECTION_LAYOUT",
    "FRAME_STEP",
    "IMAGE_EXTENSIONS",
    "MIDV2020_FORMAT",
    "PICTURE_EXTENSIONS",
    "VIDEO_COLLECTION",
    "Midv2020Format",
    "collections",
]
