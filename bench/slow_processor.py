"""A processor that takes a fixed time per frame outside Python's lock, as a model on a GPU or in native code does."""

import time


class Slow:
    """Waits `seconds` per frame (time.sleep releases the GIL, as inference runtimes do) and returns the frame's size."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def process_frame(self, frame):
        time.sleep(self.seconds)
        return {"height": frame.image.shape[0]}


def make(seconds: float = 0.01):
    """Factory: --option seconds=S."""
    return Slow(seconds)
