"""Text fields in each annotated frame: the template's fields carried onto the frame's document.

A template gives each field's quad in the template picture's pixels (MIDV-500/2019:
``ground_truth/NN_name.json``; MIDV-2020: its templates' annotations). The document's
corners in the template are the picture's corners; the homography from them to the
frame's document quad (in document order: top-left, top-right, bottom-right, bottom-left)
carries every field's quad into the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midvbatch.dataset.groundtruth import Quad, Template
from midvbatch.geometry import homography, rectangle, transform


@dataclass(frozen=True)
class FrameField:
    """One field of the document seen in a frame."""

    name: str
    quad: Quad  # in the frame's pixels, in the field's own corner order
    value: str | None  # the true text; None for a field without text (photo, signature) or an empty one ('*')
    has_text: bool  # the template gives a value for it ('*' included)


def fields_in_frame(template: Template, template_size: tuple[float, float], document: Quad) -> dict[str, FrameField]:
    """Carry each field of `template` onto the frame where the document lies at `document`.

    `template_size` is (width, height) of the template picture, whose corners are the
    document's. Returns {} when no homography exists (three corners of the document quad
    on one line); a field whose corners fall on the frame's horizon is left out.
    """
    width, height = template_size
    h = homography(rectangle(width, height), np.asarray(document.points, np.float64))
    if h is None:
        return {}
    out: dict[str, FrameField] = {}
    for name, field in template.fields.items():
        corners = transform(h, np.asarray(field.quad.points, np.float64))
        if not np.isfinite(corners).all():
            continue
        quad = Quad(tuple((float(x), float(y)) for x, y in corners))
        out[name] = FrameField(name, quad, field.value, field.has_text)
    return out
