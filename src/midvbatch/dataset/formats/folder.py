"""A folder of videos: any folder, every video file under it one clip without ground truth."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from midvbatch.dataset.formats._walk import files, walk
from midvbatch.dataset.formats.base import DatasetFormat
from midvbatch.dataset.model import VIDEO_EXTENSIONS, Clip, Dataset, Problem
from midvbatch.errors import DatasetError


class FolderFormat(DatasetFormat):
    """Every video file under the root (hidden folders skipped) is a clip, its id its relative path."""

    name = "folder"
    title = "Folder of videos"
    summary = "any folder; every video file under it is a clip without ground truth (processors run, nothing is scored)"

    def detect(self, root: Path) -> float:
        return 0.1  # the fallback: whatever no other format claims

    def discover(self, root: Path) -> Dataset:
        clips: list[Clip] = []
        problems: list[Problem] = []
        for folder in walk(root, problems):  # each real folder once: a link back up is one line, not a loop
            place = _Place(root, folder.path)
            clips.extend(c for entry in folder.files if (c := place.clip(entry, self.name)) is not None)
        if not clips:
            raise DatasetError(NO_CLIPS, path=root)
        return Dataset(root, self.name, None, [], clips, [], problems)

    def discover_parts(self, root: Path, size: int) -> Iterator[Dataset]:
        part: list[Clip] = []
        problems: list[Problem] = []
        found = 0
        place = _Place(root, root)
        for folder, entry in files(root, problems):  # one entry at a time, in no order
            if folder is not place.folder:
                place = _Place(root, folder)
            clip = place.clip(entry, self.name)
            if clip is None:
                continue
            part.append(clip)
            found += 1
            if len(part) >= size:
                yield Dataset(root, self.name, None, [], part, [], [])
                part = []
        if not found:
            raise DatasetError(NO_CLIPS, path=root)
        yield Dataset(root, self.name, None, [], part, [], problems)


class _Place:
    """A folder under the root, named once for all its videos: their ids' folder and their document."""

    def __init__(self, root: Path, folder: Path):
        self.folder = folder
        rel_dir = folder.relative_to(root)
        self.prefix = "" if str(rel_dir) == "." else rel_dir.as_posix() + "/"
        self.document = self.prefix[:-1]

    def clip(self, entry: os.DirEntry, fmt: str) -> Clip | None:
        """The clip of a file of the folder; None when it is no video."""
        name = entry.name
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem or "." + suffix.lower() not in VIDEO_EXTENSIONS:
            return None
        return Clip(id=self.prefix + name, document=self.document, code=stem, video=Path(entry.path), format=fmt)


NO_CLIPS = "no MIDV document folders and no video files found"
FOLDER_FORMAT = FolderFormat()
