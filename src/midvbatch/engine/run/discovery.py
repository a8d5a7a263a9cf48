"""A run's discovery: the dataset read a part at a time into a file of its own, and planned there.

A run of 200,000 clips must not hold 200,000 clips. Discovery reads the dataset a part at a
time (dataset.formats.discover_parts: a folder of videos streams its files), and each part's
clips go into a SQLite file in the system's temporary folder: each clip's record, whether the
selection chose it, its priority, estimated cost and frames, its line of the dataset's
fingerprint. There the queue order and --limit are applied, the fingerprint is taken and the
numbers that cut clips into tasks are read; the ledger then takes the clips from it in queue
order, a row at a time (`Discovered.enter`). The file is removed when the run has its clips.

The queue order is scheduler.plan's, in SQL: priority, then estimated cost, highest first,
then the clip's id. The SQL is the ledger module's (engine/ledger.py, FoundClips).
"""

from __future__ import annotations

import json
from pathlib import Path

from midvbatch.config import Settings
from midvbatch.dataset.formats import discover_parts
from midvbatch.dataset.model import Clip, Dataset, Document, Problem, choose, no_match
from midvbatch.engine.ledger import FoundClips, Ledger
from midvbatch.engine.run.resume import identity, identity_line
from midvbatch.engine.scheduler import clip_priority, video_size
from midvbatch.errors import DatasetError

PART = 5000  # clips read, and held, at a time


class Discovered:
    """The clips a run's discovery found, kept in a temporary SQLite file (see the module). Close it when done."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.documents: list[Document] = []
        self.findings: list[Problem] = []  # what discovery could not use as it found it
        self.root, self.format = Path(settings.dataset), ""
        self.store = FoundClips()

    @classmethod
    def read(cls, settings: Settings) -> Discovered:
        """Discover the dataset of `settings` and choose and plan its clips; bad input raises DatasetError."""
        found = cls(settings)
        try:
            for part in discover_parts(settings.dataset, settings.catalog, PART):
                found._add(part)
            found._plan()
        except BaseException:
            found.close()
            raise
        return found

    def _add(self, part: Dataset) -> None:
        settings = self.settings
        self.root, self.format = part.root, part.format
        chosen = choose(part, settings.docs, settings.clips)
        self.documents += part.documents
        self.findings += part.findings(chosen)
        use = {c.id: c for c in chosen}
        rows = []
        for clip in part.clips:
            size = video_size(clip)
            line = identity_line(clip, size)
            taken = use.pop(clip.id, None)
            if taken is not None and taken is not clip:  # a second copy --docs chose in its place
                clip, size = taken, video_size(taken)
            rows.append(self._row(clip, line, taken is not None, size))
        rows += (self._row(clip, None, True, video_size(clip)) for clip in use.values())  # copies of new ids
        self.store.add(rows)

    def _row(self, clip: Clip, line: str | None, chosen: bool, size: int) -> tuple:
        pixels = clip.frame_size[0] * clip.frame_size[1] if clip.frame_size else None
        return (
            clip.id,
            line,
            int(chosen),
            clip_priority(clip, self.settings.priority),
            max(size, 0) / 1e6,
            clip.frame_rule.count,
            pixels,
            clip.document,
            clip.code,
            str(clip.video) if clip.video is not None else None,
            json.dumps(clip.to_record()),
        )

    def _plan(self) -> None:
        """Keep the first --limit chosen clips in queue order; refuse a selection of none."""
        settings, store = self.settings, self.store
        chosen = store.chosen()
        if settings.limit is not None and settings.limit < chosen:
            store.keep_first(settings.limit)
        if not chosen and (settings.docs or settings.clips):
            raise no_match(self.root, settings.docs, settings.clips)
        if not chosen:
            raise DatasetError("no clips to run", path=settings.dataset)

    def identity(self) -> dict:
        """The dataset's identity (engine/run/resume.py): its fingerprint over every clip found, in id order."""
        count, lines = self.store.fingerprint_lines()
        return identity(self.root, self.format, lines, count)

    def typical_frames(self) -> int:
        """The median number of annotated frames of the clips found (at least 1)."""
        return self.store.typical_frames()

    def largest_frame(self) -> int | None:
        """The most pixels a frame of the clips found has, where their format says; None: none says."""
        return self.store.largest_frame()

    def enter(self, ledger: Ledger, discovery: str) -> None:
        """Enter the chosen clips in the ledger's queue, in queue order (those already there keep their state);
        every clip found that is there already gets its record as found now, and the mark of `discovery`."""
        self.store.enter(ledger, discovery)

    def close(self) -> None:
        """Remove discovery's file."""
        self.store.close()
