"""A folder of videos: any folder, every video file under it one clip without ground truth."""

from __future__ import annotations

from pathlib import Path

from midvbatch.dataset.formats._walk import walk
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
            rel_dir = folder.path.relative_to(root)
            for entry in folder.files:
                path = Path(entry.path)
                if path.suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                rel = (rel_dir / entry.name).as_posix()
                document = rel_dir.as_posix() if str(rel_dir) != "." else ""
                clips.append(Clip(id=rel, document=document, code=path.stem, video=path, format=self.name))
        if not clips:
            raise DatasetError("no MIDV document folders and no video files found", path=root)
        return Dataset(root, self.name, None, [], clips, [], problems)


FOLDER_FORMAT = FolderFormat()
