"""MIDV-2020's layout: 10 document types, 100 documents each, in five collections; where each file lies.

The dataset root holds one folder per collection, each as its archive unpacks::

    templates/    images/<TYPE>/NN.jpg            annotations/<TYPE>.json
    scan_upright/ images/<TYPE>/NN.jpg            annotations/<TYPE>.json
    scan_rotated/ images/<TYPE>/NN.jpg            annotations/<TYPE>.json
    photo/        images/<TYPE>/NN.jpg            annotations/<TYPE>.json
    clips/        images/<TYPE>/<NN>/000001.jpg   annotations/<TYPE>/<NN>.json
    clips_video/  video/<TYPE>/<NN>.mp4|MOV       (or clips/video/...)

Annotations are VIA 2.0 project files (:mod:`.via`). A clip's annotated
frames are every 6th frame of its video (1, 7, 13, ...), as its JPEGs and its annotation
name them; it is decoded from the video when there is one, else read from the JPEGs.
Each still-image collection of a type is one task (a "clip" of pictures): templates,
scan_upright and scan_rotated one per type, photos one per block of numbers taken in one
condition with one phone (the readme's table). Any subset of the collections is a
dataset: what is there is used, what is missing is listed. A folder holding a single
collection (``images/`` and ``annotations/`` directly) is read as that collection.
"""

from __future__ import annotations

from pathlib import Path

IMAGES, ANNOTATIONS, VIDEO = "images", "annotations", "video"
COLLECTION_LAYOUT = (IMAGES, ANNOTATIONS, VIDEO)  # what a collection's folder holds
VIDEO_COLLECTION = "clips_video"
FRAME_STEP = 6  # a clip's annotated frames: 1, 7, 13, ...
PICTURE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")  # MIDV-2020's are JPEG


# Paths under a collection's folder (`collection`: templates/, photo/, clips/, ...).
def pictures_folder(collection: Path, doc_type: str) -> Path:
    """A type's pictures (``images/TYPE/``); in clips/, a folder per clip."""
    return collection / IMAGES / doc_type


def picture_file(collection: Path, doc_type: str, number: int, extension: str = ".jpg") -> Path:
    """Picture NN of a type: ``images/TYPE/NN.jpg``."""
    return pictures_folder(collection, doc_type) / f"{number:02d}{extension}"


def annotation_file(collection: Path, doc_type: str) -> Path:
    """A still-image collection's annotations of a type: ``annotations/TYPE.json``."""
    return collection / ANNOTATIONS / f"{doc_type}.json"


def clip_frame_file(clips: Path, doc_type: str, number: int, frame: int) -> Path:
    """Annotated frame FFFFFF of clip NN: ``images/TYPE/NN/FFFFFF.jpg``."""
    return pictures_folder(clips, doc_type) / f"{number:02d}" / f"{frame:06d}.jpg"


def clip_annotation_file(clips: Path, doc_type: str, number: int) -> Path:
    """The annotations of clip NN's frames: ``annotations/TYPE/NN.json``."""
    return clips / ANNOTATIONS / doc_type / f"{number:02d}.json"


def clip_video_file(clips_video: Path, doc_type: str, number: int) -> Path:
    """The video of clip NN: ``video/TYPE/NN.mp4`` (MIDV-2020's are .mp4 or .MOV)."""
    return clips_video / VIDEO / doc_type / f"{number:02d}.mp4"
