"""Read every text field in every frame, then give one answer per field for the whole clip.

A processor of text fields: midvbatch hands it each field's place in the frame
(``frame.fields``) and a rectified crop (``frame.field_image``); it returns what it read
per frame, and after the clip (``finish_clip``) its combined answer, which midvbatch
scores like the frames'. The reading here is the built-in Tesseract reader; put your
own recognizer in ``read``.
"""

from collections import Counter

from midvbatch.pipeline import ClipInfo, Frame, Processor
from midvbatch.pipeline.ocr import OcrProcessor


class VoteFields(Processor):
    """Read each field per frame; per clip, the reading seen most often, confident readings counting more."""

    def __init__(self, height: int = 48):
        self.height = height  # pixels: the crops' height
        self.reader = OcrProcessor(height=height)
        self.votes: dict[str, Counter] = {}

    def setup(self) -> None:
        self.reader.setup()  # once per worker: start the recognizer

    def close(self) -> None:
        self.reader.close()

    def read(self, crop) -> dict:
        return self.reader.read_line(crop)  # {"text": ..., "confidence": 0..1, "alternatives": [...]}

    def process_frame(self, frame: Frame) -> dict:
        if frame.number == 1 or not self.votes:
            self.votes = {}  # a new clip
        fields = {}
        for name, field in frame.fields.items():
            if not field.has_text:  # the photo, the signature
                continue
            crop = frame.field_image(name, height=self.height)
            if crop is None:  # no area in this frame
                continue
            fields[name] = self.read(crop)
            self.votes.setdefault(name, Counter())[fields[name]["text"]] += fields[name]["confidence"]
        return {"fields": fields}

    def finish_clip(self, clip: ClipInfo) -> dict:
        answer = {name: votes.most_common(1)[0][0] for name, votes in self.votes.items() if votes}
        self.votes = {}
        return {"fields": answer}


def make(height: int = 48) -> VoteFields:
    """Factory: the engine calls it with the run's --option values."""
    return VoteFields(height=height)
