"""Processors for the tests, loaded by the engine as `processors:NAME` (tests/ on PYTHONPATH)."""

from __future__ import annotations

import os
import time

from midvbatch.pipeline import Processor


class MeanColour(Processor):
    """Per frame: the image's mean colour and whether a ground-truth quad was given; counts setup calls."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.setups = 0

    def setup(self):
        self.setups += 1

    def process_frame(self, frame):
        if self.delay:
            time.sleep(self.delay)
        b, g, r = (float(v) for v in frame.image.reshape(-1, 3).mean(axis=0))
        return {
            "id": frame.id, "mean": [round(b, 2), round(g, 2), round(r, 2)], "has_quad": frame.quad is not None,
            "setups": self.setups, "pid": os.getpid(),
        }


def mean_colour(delay: float = 0.0):
    """Factory of MeanColour."""
    return MeanColour(delay)


class ClipSize:
    """A clip processor: reads nothing, reports the video's size on disk."""

    def process_clip(self, clip):
        return {"bytes": os.path.getsize(clip.video), "document": clip.document}


class NotJson(Processor):
    """Returns something that cannot be stored."""

    def process_frame(self, frame):
        return {"image": frame.image}
