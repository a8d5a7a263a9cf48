"""Text fields in each annotated frame: the template's fields carried onto the frame's document.

A template gives each field's quad in the template picture's pixels (MIDV-500/2019:
``ground_truth/NN_name.json``; MIDV-2020: its templates' annotations). The document's
corners in the template are the picture's corners; the homography from them to the
frame's document quad (in document order: top-left, top-right, bottom-right, bottom-left)
carries every field's quad into the frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from midvbatch.dataset.groundtruth import Quad, Template
from midvbatch.dataset.model import Clip
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


MAX_CROP_ASPECT = 40  # a field crop at most this many times wider than high (an MRZ line is about 15)


def field_crop(image: np.ndarray, quad: Quad, height: int = 32) -> np.ndarray | None:
    """Return the field at `quad` in `image`, rectified to `height` pixels high (the width keeps
    the field's aspect ratio); None when the quad has no area or no homography exists.

    For OCR of a field without geometry of one's own: the corners are taken in the field's
    order (top-left, top-right, bottom-right, bottom-left), so the text comes out upright.
    """
    import cv2

    if height < 1:
        raise ValueError(f"height must be at least 1, not {height}")
    corners = np.asarray(quad.points, np.float64)
    top, bottom = np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3])
    left, right = np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1])
    tall = (left + right) / 2
    if tall <= 0 or quad.area() <= 0:
        return None
    width = int(min(max(1, round(height * (top + bottom) / 2 / tall)), MAX_CROP_ASPECT * height))
    h = homography(corners, rectangle(width, height))
    if h is None:
        return None
    crop: np.ndarray = cv2.warpPerspective(
        image, h, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )
    return crop


def clip_fields(clip: Clip, numbers: Iterable[int]) -> dict[int, dict[str, FrameField]]:
    """The fields of `clip` in each of its annotated frames `numbers`, values included: the
    clip's format reads the templates and the document quads. A frame without template or
    document quad gets {}. Raises GroundTruthError/VideoError naming a file that cannot be read.

    For readers of a finished run (the report's crops, the COCO export's field boxes);
    workers carry the fields through Frame.fields instead."""
    from midvbatch.dataset.formats import get_format

    wanted = list(numbers)
    if clip.template is None:
        return {n: {} for n in wanted}
    fmt = get_format(clip.format)
    templates = fmt.read_templates(clip.template, wanted)
    quads = fmt.read_quads({n: clip.ground_truth[n] for n in wanted if n in clip.ground_truth})
    out: dict[int, dict[str, FrameField]] = {}
    for n in wanted:
        template, quad = templates.get(n), quads.get(n)
        out[n] = fields_in_frame(template, template.size, quad) if template and template.size and quad else {}
    return out
