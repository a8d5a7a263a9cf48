"""Ground truth of the MIDV family: per-frame document quads and template fields.

Per-frame file ``ground_truth/CC/CCDD_KK.json``: ``{"quad": [[x, y], x 4]}``, pixel
coordinates of the document's corners in the annotated frame, in document order
(top-left, top-right, bottom-right, bottom-left). Corners may lie outside the frame and
are kept exactly as given.

Template file ``ground_truth/NN_name.json``: ``{"field01": {"value": "...", "quad":
[...]}, ..., "photo": {"quad": [...]}}``: field quads in the template image; photo and
signature have no value, and a value of ``*`` means the field is empty on the document.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from midvbatch.errors import GroundTruthError, shown
from midvbatch.fileio import MiB, read_json, write_atomic
from midvbatch.geometry import signed_area

MISSING_VALUE = "*"
GROUND_TRUTH_LIMIT = 1 * MiB  # a per-frame file is ~100 bytes, a template a few kB


@dataclass(frozen=True)
class Quad:
    """Four corners (x, y) in document order; coordinates as the file gives them."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) != 4:
            raise ValueError("a quad has four corners")

    @classmethod
    def from_list(cls, corners) -> Quad:
        """Build a quad from [[x, y], ...] or a flat [x0, y0, x1, y1, ...]."""
        values = list(corners)
        if len(values) == 8 and not isinstance(values[0], (list, tuple)):
            values = [values[i : i + 2] for i in range(0, 8, 2)]
        return cls(tuple((v[0], v[1]) for v in values))

    def to_list(self) -> list[list[float]]:
        """Return [[x, y] x 4], ints staying ints (for JSON)."""
        return [[x, y] for x, y in self.points]

    def signed_area(self) -> float:
        """Shoelace area: positive when the corners run clockwise on screen (y down)."""
        return signed_area(self.points)

    def area(self) -> float:
        """Area enclosed by the quad, in square pixels."""
        return abs(self.signed_area())

    def scaled(self, sx: float, sy: float | None = None) -> Quad:
        """Return the quad with x scaled by sx and y by sy (default sx)."""
        sy = sx if sy is None else sy
        return Quad(tuple((x * sx, y * sy) for x, y in self.points))


@dataclass(frozen=True)
class TemplateField:
    """One field of a template: its quad, and its text unless it is a photo or signature."""

    name: str
    quad: Quad
    value: str | None  # None: no text (photo, signature) or '*' in the file (empty field)
    has_text: bool  # the file gives a value ('*' included)


@dataclass(frozen=True)
class Template:
    """The fields of a document template, by name, in file order.

    `size` is (width, height) of the template picture whose pixels the field quads are in
    (its corners are the document's); None where it is not known. `problems` names the
    fields left out as malformed (a quad of 3 points, a value that is not text), when the
    template was read leniently.
    """

    path: Path
    fields: dict[str, TemplateField]
    size: tuple[int, int] | None = None
    problems: tuple[str, ...] = ()

    def without_values(self) -> Template:
        """The same template with every value hidden (None): what a processor may see."""
        hidden = {name: replace(f, value=None) for name, f in self.fields.items()}
        return replace(self, fields=hidden)

    def text_fields(self) -> list[TemplateField]:
        """Fields with a value to read (not photo/signature, not '*')."""
        return [f for f in self.fields.values() if f.value is not None]


def read_ground_truth_json(path: str | Path) -> Any:
    """Read a ground-truth JSON file with limits and return what it holds.

    Raises GroundTruthError naming the file for anything but a regular file of at most
    GROUND_TRUTH_LIMIT bytes holding JSON (a FIFO, a device, nesting too deep, a number
    too long included), without blocking.
    """
    return read_json(path, GROUND_TRUTH_LIMIT, GroundTruthError)


def parse_quad(obj: Any, path: Path, where: str = '"quad"') -> Quad:
    """Check that `obj` is four [x, y] pairs of finite numbers and return it as a Quad."""
    if not isinstance(obj, list) or len(obj) != 4:
        size = f"{len(obj)} items" if isinstance(obj, list) else type(obj).__name__
        raise GroundTruthError(f"{where} must be a list of 4 [x, y] corners, got {size}", path=path)
    for i, corner in enumerate(obj):
        if not isinstance(corner, list) or len(corner) != 2:
            raise GroundTruthError(f"{where} corner {i + 1} must be [x, y], got {shown(corner, 60)}", path=path)
        for value in corner:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GroundTruthError(
                    f"{where} corner {i + 1} has a non-numeric coordinate {shown(value, 60)}", path=path
                )
            if not math.isfinite(value):
                raise GroundTruthError(f"{where} corner {i + 1} has a coordinate {value}", path=path)
    return Quad(tuple((c[0], c[1]) for c in obj))


def load_frame_quad(path: str | Path) -> Quad:
    """Read a per-frame ground-truth file; raise GroundTruthError naming the file if malformed."""
    path = Path(path)
    data = read_ground_truth_json(path)
    if not isinstance(data, dict):
        raise GroundTruthError(f'expected a JSON object with "quad", got {type(data).__name__}', path=path)
    if "quad" not in data:
        raise GroundTruthError('missing "quad"', path=path)
    return parse_quad(data["quad"], path)


def load_template(path: str | Path, strict: bool = True) -> Template:
    """Read a template ground-truth file; raise GroundTruthError naming the file if malformed.

    With `strict` false, a malformed field is left out and named in ``problems`` instead,
    and a template without fields is a problem too: the other fields stay usable."""
    path = Path(path)
    return parse_template(read_ground_truth_json(path), path, strict)


def parse_template(data: Any, path: str | Path, strict: bool = True) -> Template:
    """Check the parsed JSON of a template file and return it as a Template; raise GroundTruthError.

    With `strict` false only a file that is not an object of fields raises; see load_template."""
    path = Path(path)
    if not isinstance(data, dict):
        raise GroundTruthError(f"expected a JSON object of fields, got {type(data).__name__}", path=path)
    fields: dict[str, TemplateField] = {}
    problems: list[str] = []
    for name, spec in data.items():
        try:
            fields[name] = _parse_field(name, spec, path)
        except GroundTruthError as exc:
            if strict:
                raise
            problems.append(exc.message)
    if not fields and not strict:
        problems.append("no fields")
    return Template(path, fields, problems=tuple(problems))


def _parse_field(name: str, spec: Any, path: Path) -> TemplateField:
    if not isinstance(spec, dict):
        raise GroundTruthError(f'field {shown(name, 60)} must be an object with "quad"', path=path)
    if "quad" not in spec:
        raise GroundTruthError(f'field {shown(name, 60)} is missing "quad"', path=path)
    quad = parse_quad(spec["quad"], path, where=f'field {shown(name, 60)} "quad"')
    has_text = "value" in spec
    value = spec.get("value")
    if has_text and value is not None and not isinstance(value, str):
        raise GroundTruthError(f"field {shown(name, 60)} value must be text, got {shown(value, 60)}", path=path)
    if value == MISSING_VALUE:
        value = None
    return TemplateField(name, quad, value, has_text)


def write_frame_quad(path: str | Path, quad: Quad) -> None:
    """Write a per-frame ground-truth file in the dataset's own format (atomically: temporary file, rename)."""
    write_atomic(path, json.dumps({"quad": quad.to_list()}))


def write_template(path: str | Path, fields: dict[str, tuple[Quad, str | None]]) -> None:
    """Write a template file atomically; a field whose value is None gets no "value" key (photo)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (quad, value) in fields.items():
        spec: dict[str, Any] = {"quad": quad.to_list()}
        if value is not None:
            spec = {"value": value, **spec}
        out[name] = spec
    write_atomic(path, json.dumps(out, ensure_ascii=False, indent=1))
