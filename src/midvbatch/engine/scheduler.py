"""The queue order: priority rules first, then the longest estimated work first.

A clip's priority is the sum of the weights of the rules it matches (``clip=H*:10``
matches clip codes, ``doc=05_*:5`` document names, ``id=TA01:3`` clip ids). Among equal
priorities, the clip with the most estimated work goes first, so that a run does not
end waiting on one long straggler. Work is estimated from the video's file size, which
for phone video grows with length and frame size and costs one stat() per clip.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

from midvbatch.config import PriorityRule, Settings
from midvbatch.dataset.model import Clip, Dataset, select


@dataclass(frozen=True)
class PlannedClip:
    """A clip in the queue, with what decided its place."""

    clip: Clip
    priority: int
    cost: float  # estimated work, megabytes of video
    frames: int  # annotated frames to read

    def to_dict(self, position: int) -> dict:
        """Return a JSON-ready record."""
        return {
            "position": position,
            "clip": self.clip.id,
            "document": self.clip.document,
            "video": str(self.clip.video) if self.clip.video else None,
            "priority": self.priority,
            "cost_mb": round(self.cost, 3),
            "frames": self.frames,
        }


def clip_priority(clip: Clip, rules: list[PriorityRule]) -> int:
    """Return the sum of the weights of the rules `clip` matches."""
    total = 0
    for rule in rules:
        value = {"clip": clip.code, "doc": clip.document, "id": clip.id}[rule.key]
        if fnmatch.fnmatchcase(value, rule.pattern):
            total += rule.weight
    return total


def estimated_cost(clip: Clip) -> float:
    """Return the estimated work of a clip: its video's size in megabytes (0 if none)."""
    return max(video_size(clip), 0) / 1e6


def video_size(clip: Clip) -> int:
    """The size in bytes of the clip's video; -1 when it has none or it cannot be read."""
    if clip.video is None:
        return -1
    try:
        return os.stat(clip.video).st_size
    except OSError:
        return -1


def plan(dataset: Dataset, settings: Settings) -> list[PlannedClip]:
    """Return the selected clips in the order a run takes them (a run orders them in SQL by the same key: see
    engine/run/discovery.py)."""
    rules = list(settings.priority)
    planned = []
    for clip in select(dataset, list(settings.docs), list(settings.clips)):
        planned.append(PlannedClip(clip, clip_priority(clip, rules), estimated_cost(clip), clip.frame_rule.count))
    planned.sort(key=lambda p: (-p.priority, -p.cost, p.clip.id))
    if settings.limit is not None:
        planned = planned[: settings.limit]
    return planned
