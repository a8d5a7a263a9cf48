"""VGG Image Annotator (VIA) 2.0 project files, as MIDV-2020 annotates its images.

A project file is JSON (UTF-8) with ``_via_img_metadata``: one entry per image, keyed by
its file name followed by its size in bytes (``"00.jpg1190677"``), each ``{"filename",
"size", "regions": [...]}``. A region has ``shape_attributes`` (``{"name": "polygon",
"all_points_x": [...], "all_points_y": [...]}`` or ``{"name": "rect", "x", "y", "width",
"height"}``) and ``region_attributes`` (``field_name``, and ``value`` for text fields).
MIDV-2020 marks the document's corners with the polygon ``doc_quad``, in the document's
own corner order (in rotated scans the first corner can be anywhere in the image).

Read here (``read_via``, and the quads and templates in what it returns) and written
(``image_entry``, ``write_via``: the synthesizer's files, with the settings MIDV-2020's have).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.dataset.groundtruth import MISSING_VALUE, Quad, Template, TemplateField
from midvbatch.dataset.names import ascii_number
from midvbatch.errors import GroundTruthError, shown
from midvbatch.fileio import MiB, finite_numbers, read_json, write_atomic
from midvbatch.geometry import homography, rectangle, transform

VIA_LIMIT = 16 * MiB  # a clip's file is ~20 kB, a collection's ~65 kB, a template's with its fields ~100 kB
DOC_QUAD = "doc_quad"


@dataclass(frozen=True)
class Region:
    """One annotated region: its field name, text value (None when it has none), shape and points."""

    field_name: str
    value: str | None
    shape: str  # "polygon" | "rect"
    points: tuple[tuple[float, float], ...]  # a rect as its 4 corners, clockwise from top-left
    bad_value: str | None = None  # a value given that is not text (12345, ["A"], null), as shown in messages


@dataclass(frozen=True)
class ViaImage:
    """One image's annotation."""

    filename: str
    size: int | None
    regions: tuple[Region, ...]

    def region(self, field_name: str) -> Region | None:
        """Return the first region named `field_name`, None if there is none."""
        return next((r for r in self.regions if r.field_name == field_name), None)


def read_via(path: str | Path) -> dict[str, ViaImage]:
    """Read a VIA 2.0 project file and return its images by file name.

    Raises GroundTruthError naming the file (and the image) for anything malformed: not
    JSON, no ``_via_img_metadata``, an entry without a file name, a shape without its
    points or with a non-numeric coordinate. Unknown shapes (circles, points) are skipped.
    """
    path = Path(path)
    data = read_json(path, VIA_LIMIT, GroundTruthError)
    if not isinstance(data, dict) or not isinstance(data.get("_via_img_metadata"), dict):
        got = "an object without it" if isinstance(data, dict) else type(data).__name__
        raise GroundTruthError(f"not a VIA 2.0 project: no _via_img_metadata object ({got})", path=path)
    images: dict[str, ViaImage] = {}
    for key, entry in data["_via_img_metadata"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
            raise GroundTruthError(f"image entry {shown(key, 60)} has no filename", path=path)
        name = entry["filename"]
        size = entry.get("size")
        regions = entry.get("regions", [])
        if not isinstance(regions, list):
            raise GroundTruthError(f"{name}: regions must be a list, got {type(regions).__name__}", path=path)
        parsed = tuple(r for r in (_region(r, name, path) for r in regions) if r is not None)
        images[name] = ViaImage(name, size if isinstance(size, int) and not isinstance(size, bool) else None, parsed)
    return images


_RECT = ("x", "y", "width", "height")


def _number(value: Any, where: str, path: Path) -> float:
    if not finite_numbers((value,)):  # (an integer of hundreds of digits too: not a finite float)
        raise GroundTruthError(f"{where} has a coordinate {shown(value, 40)}, not a finite number", path=path)
    return value


def _as_json(value: Any, width: int = 40) -> str:
    """A value of the file as the file writes it (null, ["A", "B"]), cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else f"{text[: width - 4]}...{text[-1]}"


def _region(obj: Any, image: str, path: Path) -> Region | None:
    if not isinstance(obj, dict):
        raise GroundTruthError(f"{image}: a region must be an object, got {type(obj).__name__}", path=path)
    shape = obj.get("shape_attributes")
    attributes = obj.get("region_attributes") or {}
    if not isinstance(shape, dict) or not isinstance(attributes, dict):
        raise GroundTruthError(f"{image}: a region without shape_attributes", path=path)
    field_name = attributes.get("field_name")
    field_name = field_name if isinstance(field_name, str) else ""
    value = attributes.get("value")
    bad_value = _as_json(value) if "value" in attributes and not isinstance(value, str) else None
    value = value if isinstance(value, str) else None
    where = f"{image}: region {field_name or '(unnamed)'}"
    kind = shape.get("name")
    if kind == "polygon":
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
            raise GroundTruthError(f"{where}: all_points_x and all_points_y must be lists of one length", path=path)
        if finite_numbers((*xs, *ys)):
            return Region(field_name, value, "polygon", tuple(zip(xs, ys, strict=True)), bad_value)
        points = tuple((_number(x, where, path), _number(y, where, path)) for x, y in zip(xs, ys, strict=True))
        return Region(field_name, value, "polygon", points, bad_value)
    if kind == "rect":
        given: list[Any] = [shape.get(k) for k in _RECT]
        x, y, w, h = given
        if not finite_numbers(given):
            x, y, w, h = (_number(v, f"{where} ({k})", path) for k, v in zip(_RECT, given, strict=True))
        return Region(field_name, value, "rect", ((x, y), (x + w, y), (x + w, y + h), (x, y + h)), bad_value)
    return None


def doc_quad(image: ViaImage, path: str | Path) -> Quad:
    """Return the document quad of an image (its ``doc_quad`` region); GroundTruthError if absent or not 4 corners."""
    region = image.region(DOC_QUAD)
    if region is None:
        raise GroundTruthError(f"{image.filename}: no {DOC_QUAD} region", path=path)
    if len(region.points) != 4:
        raise GroundTruthError(
            f"{image.filename}: {DOC_QUAD} has {len(region.points)} points, a document has 4 corners", path=path
        )
    return Quad(region.points)


def _number_of(filename: str) -> int | None:
    """The number a file name's stem gives in ASCII digits ('000007.jpg' -> 7, '05.jpg' -> 5); None for another
    name ('².jpg' too: str.isdigit() says yes, int() says no)."""
    return ascii_number(filename.rsplit("/", 1)[-1].split(".", 1)[0])


def numbered(images: dict[str, ViaImage]) -> dict[int, ViaImage]:
    """Index images by the number their file name stem gives ('000007.jpg' -> 7, '05.jpg' -> 5); others left out,
    and of two names of one number ('5.jpg', '05.jpg') the first (``unnumbered`` says which)."""
    out: dict[int, ViaImage] = {}
    for name, image in images.items():
        number = _number_of(name)
        if number is not None:
            out.setdefault(number, image)
    return out


def unnumbered(images: dict[str, ViaImage]) -> list[str]:
    """Say each image ``numbered`` leaves out: a name that is no number, a second name of a number."""
    messages: list[str] = []
    first: dict[int, str] = {}
    for name in images:
        number = _number_of(name)
        if number is None:
            messages.append(
                f"image {shown(name, 60)} is not named by a number in ASCII digits: its annotation is ignored"
            )
        elif number in first:
            messages.append(
                f"images {shown(first[number], 60)} and {shown(name, 60)} are both number {number}: "
                f"the annotation of {shown(name, 60)} is ignored"
            )
        else:
            first[number] = name
    return messages


NO_TEXT = frozenset({"face", "photo", "signature"})  # regions that are pictures, not text


def template_of(image: ViaImage, path: str | Path, size: tuple[int, int]) -> Template:
    """The text fields of a template picture's annotation (MIDV-2020's templates), its size `size`.

    Every region but ``doc_quad`` is a field; face, photo and signature carry no text. A
    field shape of other than 4 corners or a name given twice is left out and named in
    ``problems``; an empty value (or '*') is an empty field."""
    fields: dict[str, TemplateField] = {}
    problems: list[str] = []
    for region in image.regions:
        name = region.field_name
        if name == DOC_QUAD:
            continue
        where = f"{image.filename}: field {shown(name or '(unnamed)', 60)}"
        if not name or name in fields:
            problems.append(f"{where} is {'unnamed' if not name else 'named twice'}")
            continue
        if len(region.points) != 4:
            problems.append(f"{where} has {len(region.points)} points, a field has 4 corners")
            continue
        has_text = name not in NO_TEXT
        if has_text and region.bad_value is not None:
            problems.append(f"{where} has the value {region.bad_value}, not text")
            continue
        value = region.value if has_text and region.value not in ("", MISSING_VALUE) else None
        fields[name] = TemplateField(name, Quad(region.points), value, has_text)
    if not fields:
        problems.append(f"{image.filename}: no fields")
    return Template(Path(path), fields, size, tuple(problems))


# --- writing -------------------------------------------------------------------------------

# A VIA 2.0 project's settings and attributes, as MIDV-2020's files have them.
_VIA_UI = {
    "annotation_editor_height": 25,
    "annotation_editor_fontsize": 0.8,
    "leftsidebar_width": 18,
    "image_grid": {
        "img_height": 80,
        "rshape_fill": "none",
        "rshape_fill_opacity": 0.3,
        "rshape_stroke": "yellow",
        "rshape_stroke_width": 2,
        "show_region_shape": True,
        "show_image_policy": "all",
    },
    "image": {
        "region_label": "__via_region_id__",
        "region_color": "__via_default_region_color__",
        "region_label_font": "10px Sans",
        "on_image_annotation_editor_placement": "NEAR_REGION",
    },
}

_VIA_ATTRIBUTES = {
    "region": {
        "field_name": {"type": "text", "description": "", "default_value": ""},
        "value": {"type": "text", "description": "", "default_value": ""},
        "features": {
            "type": "checkbox",
            "description": "",
            "options": {"ascenders": "", "descenders": "", "lowercase": ""},
            "default_options": {},
        },
    },
    "file": {},
}


def _rect(corners: np.ndarray) -> dict[str, int | str]:
    """A VIA rect bounding `corners`, in whole pixels."""
    x0, y0 = (round(float(v)) for v in corners.min(0))
    x1, y1 = (round(float(v)) for v in corners.max(0))
    return {"name": "rect", "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def image_entry(
    filename: str,
    size: int,
    quad: np.ndarray,
    template_size: tuple[int, int],
    face: Quad,
    text: Mapping[str, tuple[Quad, str | None]],
) -> dict:
    """One image's VIA entry: the face box, the document quad and (templates) the text fields."""
    onto = homography(rectangle(*template_size), quad)
    assert onto is not None  # the quads the synthesizer draws are never degenerate
    face_corners = transform(onto, np.array(face.points, np.float64))
    corners = [(round(float(x)), round(float(y))) for x, y in quad]
    regions: list[dict] = [
        {
            "shape_attributes": _rect(face_corners),
            "region_attributes": {"field_name": "face", "value": "", "features": {}},
        },
        {
            "shape_attributes": {
                "name": "polygon",
                "all_points_x": [x for x, _ in corners],
                "all_points_y": [y for _, y in corners],
            },
            "region_attributes": {"field_name": DOC_QUAD},
        },
    ]
    for name, (box, value) in text.items():
        if name != "face":
            regions.append(
                {
                    "shape_attributes": _rect(np.array(box.points, np.float64)),
                    "region_attributes": {"field_name": name, "value": value or ""},
                }
            )
    return {"filename": filename, "size": size, "regions": regions, "file_attributes": {}}


def write_via(path: Path, folder: str, entries: dict[str, dict]) -> None:
    """Write a VIA 2.0 project of `entries` (images keyed by file name and size), as MIDV-2020's are."""
    project = "midv2020-" + folder.split("/")[2].replace("_", "-")
    data = {
        "_via_settings": {
            "ui": _VIA_UI,
            "core": {"buffer_size": "18", "filepath": {}, "default_filepath": f"/mnt/midv-2020/{folder}/"},
            "project": {"name": project},
        },
        "_via_img_metadata": entries,
        "_via_attributes": _VIA_ATTRIBUTES,
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(entries),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
