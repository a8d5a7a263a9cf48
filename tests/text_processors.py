"""Processors that return text fields, for tests/test_text_fields.py (loaded as `text_processors:NAME`)."""

from __future__ import annotations

from midvbatch.pipeline import Processor


class Corrupt(Processor):
    """Reads the truth (field_values = True) and returns it damaged in known ways:

    field01: lower-cased with its last character replaced by '#' in odd frames (right in even ones);
    field02: not returned at all; field03: the truth with the letter O for every digit 0;
    every other field: the truth. Confidence 0.9 in even frames, 0.1 in odd ones.
    """

    field_values = True

    def process_frame(self, frame):
        template = frame.clip.templates[frame.number]
        out = {}
        confidence = 0.9 if frame.number % 2 == 0 else 0.1
        for name, field in template.fields.items():
            if field.value is None or name == "field02":
                continue
            text = field.value
            if name == "field01" and frame.number % 2:
                text = text.lower()[:-1] + "#"
            elif name == "field03":
                text = text.replace("0", "O")
            out[name] = {"text": text, "confidence": confidence}
        return {"fields": out}


class Peek(Processor):
    """Reports what a processor that did not ask for values sees of the fields."""

    def process_frame(self, frame):
        template = frame.clip.templates.get(frame.number)
        crop = frame.field_image("field01", height=40) if "field01" in frame.fields else None
        return {
            "names": sorted(frame.fields),
            "values": sorted({str(f.value) for f in frame.fields.values()}),
            "template_values": sorted({str(f.value) for f in template.fields.values()}) if template else [],
            "crop": list(crop.shape) if crop is not None else None,
        }


class Unruly(Processor):
    """Returns malformed fields: a number, an unknown name, a list for a confidence; field01 right."""

    field_values = True

    def process_frame(self, frame):
        template = frame.clip.templates[frame.number]
        return {
            "fields": {
                "field01": template.fields["field01"].value,
                "field02": 12345,
                "no_such_field": "X",
                "field03": {"text": template.fields["field03"].value, "confidence": [1]},
            }
        }


class NotAnObject(Processor):
    """Returns "fields" as a list."""

    def process_frame(self, frame):
        return {"fields": ["a", "b"]}


class Combined(Processor):
    """Reads nothing per frame; after the clip, returns its own clip result: field01 right, field02 wrong."""

    field_values = True

    def process_frame(self, frame):
        self.template = frame.clip.templates[frame.number]
        return None

    def finish_clip(self, clip):
        return {"fields": {"field01": self.template.fields["field01"].value, "field02": "WRONG"}}


class Hostile(Processor):
    """Returns, in every frame, each kind of value later commands could not read, beside good ones:

    field01 a lone surrogate (as a decoder fed bytes gives), field02 a NaN confidence, field03 a
    confidence of 1e308, field04 a reading of 10 MB, field05 right with confidence 0.9; "boxes" with
    NaN and infinity; in odd frames a quad with a corner at 1e308, in even ones the true quad.
    Its clip result: field01 right with a NaN confidence, field02 with a lone surrogate.
    """

    field_values = True

    def process_frame(self, frame):
        values = {name: f.value for name, f in frame.clip.templates[frame.number].fields.items()}
        self.values = values
        quad = [[1e308, 0], [1, 0], [1, 1], [0, 1]] if frame.number % 2 else frame.quad.to_list()
        return {
            "quad": quad,
            "fields": {
                "field01": {"text": "POP\ud800ESCU", "confidence": 0.5},
                "field02": {"text": values["field02"], "confidence": float("nan")},
                "field03": {"text": values["field03"], "confidence": 1e308},
                "field04": "X" * 10_000_000,
                "field05": {"text": values["field05"], "confidence": 0.9},
            },
            "boxes": [[1.0, float("nan")], [float("inf"), 2.0]],
        }

    def finish_clip(self, clip):
        return {
            "fields": {
                "field01": {"text": self.values["field01"], "confidence": float("nan")},
                "field02": "CLA\udcffIRE",
            }
        }


class Unstorable(Processor):
    """Fails in a way whose words cannot be stored as they are: `mode` "message" raises an error whose
    message holds a lone surrogate; "artifact" asks for an artifact named with one."""

    def __init__(self, mode: str = "message"):
        self.mode = mode

    def process_frame(self, frame):
        if self.mode == "artifact":
            frame.clip.artifact("read-\udcffx.txt").write_text("x")
        raise ValueError("could not read POP\ud800ESCU")


class Alternatives(Processor):
    """Reads the truth and returns every field by its per-character alternatives alone, with known noise:
    each position is the true character at 0.6 and a wrong one ('#') at 0.3 and the empty label at 0.1,
    but in frames 1 and 2 field01's last position prefers '#' (0.7 against 0.3), and field03 is given as
    text (no alternatives). Frame 3's field02 has a position whose memberships sum to 0 (left out, noted)."""

    field_values = True

    def process_frame(self, frame):
        template = frame.clip.templates[frame.number]
        out = {}
        for name, field in template.fields.items():
            if field.value is None:
                continue
            if name == "field03":
                out[name] = field.value
                continue
            positions = [{c: 0.6, "#": 0.3, "": 0.1} for c in field.value]
            if name == "field01" and frame.number in (1, 2) and positions:
                positions[-1] = {field.value[-1]: 0.3, "#": 0.7}
            if name == "field02" and frame.number == 3 and positions:
                positions[0] = {"A": 0, "B": 0}
            out[name] = {"alternatives": positions}
        return {"fields": out}
