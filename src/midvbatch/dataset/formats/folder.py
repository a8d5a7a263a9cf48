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
            clips.extend(c for entry in folder.files if (c := self._clip(root, folder.path, entry)) is not None)
        if not clips:
            raise DatasetError(NO_CLIPS, path=root)
        return Dataset(root, self.name, None, [], clips, [], problems)

    def discover_parts(self, root: Path, size: int) -> Iterator[Dataset]:
        part: list[Clip] = []
        problems: list[Problem] = []
        found = 0
        for folder, entry in files(root, problems):  # one entry at a time, in no order
            clip = self._clip(root, folder, entry)
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

    def _clip(self, root: Path, folder: Path, entry: os.DirEntry) -> Clip | None:
        """The clip of a file of `folder` (under `root`); None when it is no video."""
        path = Path(entry.path)
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            return None
        rel_dir = folder.relative_to(root)
        rel = (rel_dir / entry.name).as_posix()
        document = rel_dir.as_posix() if str(rel_dir) != "." else ""
        return Clip(id=rel, document=document, code=path.stem, video=path, format=self.name)


NO_CLIPS = "no MIDV document folders and no video files found"
FOLDER_FORMAT = FolderFormat()
