"""A processor that does nothing, to measure the engine's own cost per clip."""


class Noop:
    """Returns a constant per clip without reading the video."""

    def process_clip(self, clip):
        return {"ok": 1}


def make():
    """Factory."""
    return Noop()
