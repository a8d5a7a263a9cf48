"""Pictures for the synthesizer: document templates, scenes, trajectories, frames.

Everything here is pure image work driven by a numpy ``Generator``, so a seed decides
every pixel. Coordinates: a *quad* is a (4, 2) float array of corners in document order
(TL, TR, BR, BL); the document's homography maps template pixels into the frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from midvbatch.dataset.catalog import ID1, ID3, physical_template_size
from midvbatch.dataset.groundtruth import MISSING_VALUE, Quad
from midvbatch.dataset.synth.names import mrz_letters, pool
from midvbatch.geometry import rectangle

# Sizes in pixels at 10 px/mm: ISO/IEC 7810 ID-1 (cards) and ID-3 (passport pages).

_WORDS = ("NOTE", "TODO", "INVOICE", "12:45", "MENU", "PAID", "OK", "TEL", "2019", "SALE")
# Faces from the DejaVu copy matplotlib ships: they cover Latin, Greek and Cyrillic.
_SANS, _MONO = "DejaVuSans.ttf", "DejaVuSansMono.ttf"
_INK, _LABEL_INK, _WHITE = (20, 20, 20), (90, 90, 90), (255, 255, 255)
# MIDV-2020's names for the fields _field_values draws, by label (its templates name
# their fields so); a label without one keeps its number (field01, ...).
_FIELD_NAMES = {
    "Type": "type",
    "Code": "code",
    "Passport No": "number",
    "Document No": "number",
    "Surname": "surname",
    "Given names": "name",
    "Nationality": "nationality",
    "Date of birth": "birth_date",
    "Sex": "gender",
    "Place of birth": "birth_place",
    "Date of issue": "issue_date",
    "Date of expiry": "expiry_date",
}
_TITLES = {
    "id": "IDENTITY CARD",
    "drvlic": "DRIVING LICENCE",
    "passport": "PASSPORT",
    "internalpassport": "INTERNAL PASSPORT",
    "passportcard": "PASSPORT CARD",
    "homereturn": "HOME RETURN PERMIT",
    "bordercrossing": "BORDER CROSSING CARD",
    "ssn82": "SOCIAL SECURITY",
    "new": "",
    "old": "",
}


def synthetic_template_size(document: str) -> tuple[int, int]:
    """Return (width, height) of the template the synthesizer draws for a document: its physical format from the
    catalog (catalog.physical_template_size, the table the metrics read too); a stand-in for the few whose format
    the catalog does not know for sure (a passport page for an internal passport, else an ID-1 card)."""
    known = physical_template_size(document)
    if known is not None:
        return known
    # a picture to be drawn needs a size (the metrics read it back from the picture): the likeliest format
    kind = document.split("_", 2)[-1]
    return ID3 if "passport" in kind else ID1


def _to_quad(template_size: tuple[int, int], quad: np.ndarray) -> np.ndarray:
    """Return the homography taking a template's corners (pixel edges) onto `quad`, as float64.

    OpenCV's solver on float32 corners, not geometry.homography (float64): the two differ
    in the last bits, which moves about one pixel value in 250,000 by one level and so
    every byte of the encoded videos; a seed keeps giving the same files.
    """
    src = rectangle(*template_size).astype(np.float32)
    return cv2.getPerspectiveTransform(src, quad.astype(np.float32)).astype(np.float64)


# --- text -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    """Load a DejaVu face (a file of matplotlib's) at `size` pixels per em. Pillow's basic layout,
    not libraqm's: Latin, Greek and Cyrillic need no shaping, and pixels then do not depend on it."""
    import matplotlib  # here, not above: its import costs ~0.2 s, which only drawing should pay

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / face
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


def _fitting_font(face: str, texts: list[str], box_w: float, box_h: float) -> ImageFont.FreeTypeFont:
    """Return `face` at the largest size at which each of `texts` fits a box_w x box_h box: one
    size for all. Its line (ascent to descent) fits the height, so all texts share a baseline."""

    def extent(font: ImageFont.FreeTypeFont) -> tuple[float, float]:
        return max((font.getbbox(t, anchor="ls")[2] for t in texts if t), default=1), sum(font.getmetrics())

    wide, high = extent(_font(face, 100))  # sizes scale about linearly; hinting costs a few steps more
    size = max(1, int(100 * min(box_w / wide, box_h / high)))
    while size > 1:
        wide, high = extent(_font(face, size))
        if wide <= box_w and high <= box_h:
            break
        size -= 1
    return _font(face, size)


def _put_text(
    image: np.ndarray, text: str, x: int, baseline: int, font: ImageFont.FreeTypeFont, colour: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """Draw `text` antialiased, its baseline starting at (x, baseline), clipped to the BGR image;
    return its ink box (x0, y0, x1, y1), exclusive and unclipped, or None if it inks nothing.

    Pillow draws a coverage mask and numpy blends `colour` through it, so colours are exact.
    """
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor="ls"))
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)))
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor="ls")
    ink = mask.getbbox()  # tighter than the font's box, which starts at the pen, not the ink
    if ink is None:
        return None
    mx, my = x + left, baseline + top  # the mask's top-left in the image
    x0, y0 = max(mx, 0), max(my, 0)
    x1, y1 = min(mx + mask.width, image.shape[1]), min(my + mask.height, image.shape[0])
    if x1 > x0 and y1 > y0:
        cover = np.asarray(mask)[y0 - my : y1 - my, x0 - mx : x1 - mx, None] * np.float32(1 / 255)
        roi = image[y0:y1, x0:x1]
        roi[:] = (roi + (np.array(colour, np.float32) - roi) * cover + 0.5).astype(np.uint8)
    return mx + ink[0], my + ink[1], mx + ink[2], my + ink[3]


def _draw_text(
    image: np.ndarray, text: str, x: int, y_top: int, box_h: int, font: ImageFont.FreeTypeFont, colour: tuple[int, ...]
) -> Quad:
    """Draw `text` from x, its line centred in a box of height `box_h` whose top is y_top; return
    the quad around its ink, with a margin of a tenth of the font size (2 px at least)."""
    ascent, descent = font.getmetrics()
    baseline = y_top + (box_h - ascent - descent) // 2 + ascent
    x0, y0, x1, y1 = _put_text(image, text, x, baseline, font, colour) or (x, baseline - ascent, x, baseline)
    pad = max(2, round(font.size / 10))
    return _box_quad(x0 - pad, y0 - pad, x1 + pad, y1 + pad)


def _box_quad(x0: int, y0: int, x1: int, y1: int) -> Quad:
    return Quad(((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


# --- the template -----------------------------------------------------------------------


def _date(rng: np.random.Generator, first: int, last: int) -> str:
    return f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.{rng.integers(first, last + 1)}"


def _field_values(document: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Invent (label, value) pairs for the document's kind; plausible, never real."""
    country = document.split("_")[1].upper()
    surnames, given_names, places = pool(document)  # in the document's own letters (names.py)
    surname, given = str(rng.choice(surnames)), str(rng.choice(given_names))
    birth, city = _date(rng, 1950, 2000), str(rng.choice(places))
    sex = str(rng.choice(["M", "F"]))
    number = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVXYZ"), 2)) + "".join(str(d) for d in rng.integers(0, 10, 7))
    issue, expiry = _date(rng, 2010, 2016), _date(rng, 2021, 2029)
    kind = document.split("_", 2)[-1]
    if "passport" in kind and "passportcard" not in kind:
        pairs = [
            ("Type", "P"),
            ("Code", country),
            ("Passport No", number),
            ("Surname", surname),
            ("Given names", given),
            ("Nationality", country),
            ("Date of birth", birth),
            ("Sex", sex),
            ("Place of birth", city),
            ("Date of issue", issue),
            ("Date of expiry", expiry),
        ]
        mrz1 = f"P<{country}{mrz_letters(surname)}<<{mrz_letters(given)}".replace(" ", "<").ljust(44, "<")[:44]
        mrz2 = f"{number}<{rng.integers(0, 10)}{country}{birth[-2:]}{birth[3:5]}{birth[:2]}"
        pairs += [("", mrz1), ("", mrz2.ljust(44, "<")[:44])]
        return pairs
    if "drvlic" in kind:
        return [
            ("1.", surname),
            ("2.", given),
            ("3.", f"{birth} {city}"),
            ("4a.", issue),
            ("4b.", expiry),
            ("4c.", f"{city} CITY HALL"),
            ("5.", number),
            ("9.", str(rng.choice(["B", "A, B", "B, BE", "AM, B, C"]))),
        ]
    return [
        ("Surname", surname),
        ("Given names", given),
        ("Date of birth", birth),
        ("Sex", sex),
        ("Nationality", country),
        ("Document No", number),
        ("Date of expiry", expiry),
        ("Place of birth", city),
    ]


def render_template(
    document: str, number: int, rng: np.random.Generator, *, named: bool = False
) -> tuple[np.ndarray, dict[str, tuple[Quad, str | None]]]:
    """Draw a document's flat template; return (BGR image, fields for write_template).

    Text fields come first as field01.., then "photo" and, for some documents,
    "signature" (both without a value). Documents 18 and 29 get a few '*' values, as in
    MIDV-500, and those fields stay blank on the card. `named` names the fields as
    MIDV-2020 does instead ("surname", "name", ..., "mrz_line0", "face"); the picture
    is the same.
    """
    tw, th = synthetic_template_size(document)
    hue = int(rng.integers(0, 180))
    tint = cv2.cvtColor(np.array([[[hue, 40, 238]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(int)
    band = cv2.cvtColor(np.array([[[hue, 170, 120]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0].tolist()
    image = np.empty((th, tw, 3), np.uint8)
    image[:] = tint
    # Faint guilloche lines, as security printing has; light enough to keep text readable.
    xs = np.arange(0, tw, 4)
    for j in range(14):
        amp, period, phase = rng.uniform(8, 30), rng.uniform(120, 400), rng.uniform(0, 6.3)
        ys = th * (j + 0.5) / 14 + amp * np.sin(2 * np.pi * xs / period + phase)
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(image, [pts], False, (tint - 28).clip(0, 255).tolist(), 1, cv2.LINE_AA)

    band_h = int(th * 0.14)
    image[:band_h] = band
    country = document.split("_")[1].upper()
    words = [_TITLES.get(w, w.upper()) for w in document.split("_")[2:]]
    header = f"{country}  {' '.join(words)}"
    header_font = _fitting_font(_SANS, [header], tw * 0.9, band_h * 0.6)
    _draw_text(image, header, int(tw * 0.04), int(band_h * 0.2), int(band_h * 0.6), header_font, _WHITE)

    passport = (tw, th) == ID3
    pairs = _field_values(document, rng)
    mrz = pairs[-2:] if passport else []
    pairs = pairs[:-2] if passport else pairs
    missing: set[int] = set()
    if number in (18, 29):  # the real dataset marks empty fields of these two with '*'
        missing = {int(i) for i in rng.choice(np.arange(2, len(pairs)), 2, replace=False)}

    bottom = 0.78 if passport else 0.95
    px0, py0, px1, py1 = int(tw * 0.04), int(th * 0.2), int(tw * 0.3), int(th * (bottom - 0.18))
    photo = _render_photo(py1 - py0, px1 - px0, rng)
    image[py0:py1, px0:px1] = photo

    fields: dict[str, tuple[Quad, str | None]] = {}
    columns = 2 if len(pairs) > 8 else 1
    rows = math.ceil(len(pairs) / columns)
    area_x0, area_x1 = tw * 0.34, tw * 0.97
    area_y0, area_y1 = th * 0.18, th * bottom
    cell_w, cell_h = (area_x1 - area_x0) / columns, (area_y1 - area_y0) / rows
    box_w, box_h = int(cell_w * 0.92), int(cell_h * 0.55)
    label_font = _fitting_font(_SANS, [p[0] for p in pairs], cell_w * 0.6, cell_h * 0.3)
    value_font = _fitting_font(_SANS, [p[1] for p in pairs], box_w, box_h)
    for i, (label, value) in enumerate(pairs):
        col, row = divmod(i, rows)
        x, y = int(area_x0 + col * cell_w), int(area_y0 + row * cell_h)
        if label:
            _draw_text(image, label, x, y, int(cell_h * 0.3), label_font, _LABEL_INK)
        key = _FIELD_NAMES.get(label, f"field{i + 1:02d}") if named else f"field{i + 1:02d}"
        if i in missing:
            quad = _box_quad(x, y + int(cell_h * 0.35), x + box_w // 2, y + int(cell_h * 0.35) + box_h)
            fields[key] = (quad, MISSING_VALUE)
            continue
        quad = _draw_text(image, value, x, y + int(cell_h * 0.35), box_h, value_font, _INK)
        fields[key] = (quad, value)
    mrz_font = _fitting_font(_MONO, [m[1] for m in mrz], tw * 0.92, th * 0.07)
    for j, (_, line) in enumerate(mrz):
        y = int(th * (0.82 + 0.085 * j))
        quad = _draw_text(image, line, int(tw * 0.04), y, int(th * 0.07), mrz_font, _INK)
        fields[f"mrz_line{j}" if named else f"field{len(pairs) + j + 1:02d}"] = (quad, line)

    fields["face" if named else "photo"] = (_box_quad(px0, py0, px1, py1), None)
    if rng.random() < 0.6:
        sx0, sy0 = px0, py1 + int(th * 0.03)
        sx1, sy1 = px1, min(py1 + int(th * 0.15), int(th * (bottom + 0.02)))
        _draw_signature(image, sx0, sy0, sx1, sy1, rng)
        fields["signature"] = (_box_quad(sx0, sy0, sx1, sy1), None)
    return image, fields


def _render_photo(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a portrait placeholder: plain backdrop, head and shoulders silhouette."""
    photo = np.empty((h, w, 3), np.uint8)
    photo[:] = rng.integers(150, 215, 3)
    shade = rng.integers(60, 120, 3).tolist()
    shoulders, head = (int(w * 0.48), int(h * 0.36)), (int(w * 0.24), int(h * 0.22))
    cv2.ellipse(photo, (w // 2, int(h * 1.05)), shoulders, 0, 0, 360, shade, -1, cv2.LINE_AA)
    face = [min(255, c + 40) for c in shade]
    cv2.ellipse(photo, (w // 2, int(h * 0.42)), head, 0, 0, 360, face, -1, cv2.LINE_AA)
    cv2.rectangle(photo, (0, 0), (w - 1, h - 1), (80, 80, 80), 2)
    return photo


def _draw_signature(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, rng: np.random.Generator) -> None:
    t = np.linspace(0, 1, 60)
    xs = x0 + (x1 - x0) * (0.05 + 0.9 * t)
    ys = (y0 + y1) / 2 + (y1 - y0) * 0.3 * np.sin(2 * np.pi * t * rng.uniform(2, 5) + rng.uniform(0, 6))
    pts = np.stack([xs, ys], 1).astype(np.int32)
    cv2.polylines(image, [pts], False, (120, 40, 20), 2, cv2.LINE_AA)


# --- scenes -----------------------------------------------------------------------------


def render_background(condition: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Draw the surface a clip is filmed on (T, K, H, P, C), or a scanner's white lid (S), as a BGR image."""
    if condition == "S":
        lid = np.empty((height, width, 3), np.float32)
        lid[:] = rng.uniform(236, 250) + rng.uniform(-3, 3, 3)
        lid += rng.normal(0, 1.5, (height, width, 1)).astype(np.float32)
        return lid.clip(0, 255).astype(np.uint8)
    if condition == "K":
        return _keyboard(width, height, rng)
    if condition == "H":  # held in a hand: a blurred room behind
        room = _table(width, height, rng)
        for _ in range(6):
            c = rng.integers(40, 220, 3).tolist()
            cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.circle(room, (cx, cy), int(rng.uniform(0.1, 0.4) * width), c, -1)
        k = max(3, (width // 12) | 1)
        return cv2.GaussianBlur(room, (k, k), 0)
    image = _table(width, height, rng)
    if condition == "C":
        _clutter(image, rng)
    return image


def _table(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A wooden table top (grain along x) or a flat desk colour, with low noise."""
    scale = width / 180.0
    if rng.random() < 0.5:
        y = np.arange(height, dtype=np.float32)[:, None]
        x = np.arange(width, dtype=np.float32)[None, :]
        wobble = 6 * scale * np.sin(x / (70 * scale) + rng.uniform(0, 6))
        grain = np.sin((y + wobble) / (2.5 * scale) + 3 * np.sin(y / (40 * scale)))
        light = 0.75 + 0.12 * grain + 0.05 * np.sin(x / (150 * scale) + rng.uniform(0, 6))
        base = np.array([rng.uniform(40, 70), rng.uniform(90, 120), rng.uniform(150, 190)], np.float32)
        image = light[..., None] * base
    else:
        image = np.empty((height, width, 3), np.float32)
        image[:] = rng.integers(60, 200, 3)
    image += rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    return image.clip(0, 255).astype(np.uint8)


def _keyboard(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dark keyboard seen from above: rows of lighter keys, some with a letter."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = int(rng.integers(18, 35))
    key = max(6, int(width / rng.uniform(9, 13)))
    gap = max(2, key // 7)
    grey = int(rng.integers(45, 75))
    for row, y in enumerate(range(gap, height, key + gap)):
        x = gap - (row * key // 3) % (key + gap)
        while x < width:
            cv2.rectangle(image, (x, y), (x + key, y + key), (grey, grey, grey), -1, cv2.LINE_AA)
            if rng.random() < 0.7:
                letter = chr(int(rng.integers(65, 91)))
                _put_text(image, letter, x + key // 4, y + 2 * key // 3, _font(_SANS, key // 2), (170,) * 3)
            x += key + gap
    return image


def _clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Scatter coloured shapes and text snippets over a table, in place."""
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(40, 70))):
        colour = rng.integers(0, 256, 3).tolist()
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.uniform(0.03, 0.15) * w) + 1
        kind = rng.integers(0, 4)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.5, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(image, (x, y), size // 2 + 1, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (
                x + int(rng.integers(-2 * size, 2 * size)),
                y + int(rng.integers(-2 * size, 2 * size)),
            )
            cv2.line(image, (x, y), end, colour, max(1, size // 8), cv2.LINE_AA)
        else:
            word = str(rng.choice(_WORDS))
            _put_text(image, word, x, y, _font(_SANS, max(1, 3 * size // 4)), tuple(colour))


# --- motion -----------------------------------------------------------------------------


def _wave(rng: np.random.Generator, t: np.ndarray, low: float, high: float, parts: int = 2) -> np.ndarray:
    """A smooth random signal in [-1, 1]: a few sines between `low` and `high` Hz."""
    weights = rng.uniform(0.3, 1.0, parts)
    weights /= weights.sum()
    out = np.zeros_like(t)
    for wgt in weights:
        out += wgt * np.sin(2 * np.pi * rng.uniform(low, high) * t + rng.uniform(0, 2 * np.pi))
    return out


def random_trajectory(
    condition: str,
    aspect: float,
    width: int,
    height: int,
    times: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return (n, 4, 2) quads: a smoothly moving, tilting document of height/width `aspect`.

    The document fills about 50-80% of the frame width. It stays wholly inside the frame,
    except for condition P, where it leaves it on one side for most of the first 3 s.
    """
    t = np.asarray(times, np.float64)
    shake = 2.5 if condition == "H" else 1.0
    base_size = rng.uniform(0.65, 0.9) if condition == "P" else rng.uniform(0.5, 0.8)
    size = base_size * (1 + 0.03 * _wave(rng, t, 0.1, 0.4))
    angle = np.radians(rng.uniform(-8, 8) + 2 * _wave(rng, t, 0.1, 0.5) + 0.3 * shake * _wave(rng, t, 2, 4))
    steep = 0.4 if condition == "D" else 0.15  # MIDV-2019's D: strong projective distortion
    tilt_x = rng.uniform(-steep, steep) + 0.03 * _wave(rng, t, 0.1, 0.5)
    tilt_y = rng.uniform(-steep, steep) + 0.03 * _wave(rng, t, 0.1, 0.5)

    # A plane tilted away from the camera: depth grows along the tilt, projection divides.
    unit = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [1.0, aspect]
    depth = 1 + tilt_x[:, None] * unit[None, :, 0] + tilt_y[:, None] * unit[None, :, 1] / aspect
    flat = unit[None] / depth[..., None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rel = np.stack([cos * flat[..., 0] - sin * flat[..., 1], sin * flat[..., 0] + cos * flat[..., 1]], -1)
    rel *= (size * width)[:, None, None]

    margin = 0.02 * width
    half = np.array([width / 2 - margin, height / 2 - margin])
    extent = np.abs(rel).max(axis=(0, 1))
    if condition != "P":  # shrink, if need be, so the document always fits
        rel *= min(1.0, float((half / extent).min()))
        extent = np.abs(rel).max(axis=(0, 1))
    slack = np.maximum(half - extent, 0)
    base = np.array([width / 2, height / 2]) + rng.uniform(-0.5, 0.5, 2) * slack
    room = slack - np.abs(base - [width / 2, height / 2])
    drift = np.stack([_wave(rng, t, 0.05, 0.35, 3) * 0.85 + 0.15 * _wave(rng, t, 1.5, 3.0) for _ in range(2)], 1)
    drift *= np.minimum(room * rng.uniform(0.4, 1.0, 2), [0.2 * width, 0.1 * height] * np.array(shake))
    centre = base + drift
    if condition == "P":
        axis, sign = int(rng.integers(0, 2)), float(rng.choice([-1.0, 1.0]))
        edge = [width, height][axis] / 2 + sign * ([width, height][axis] / 2 - extent[axis])
        out = np.sin(np.pi * t / 3.0 * rng.uniform(0.85, 1.05) + rng.uniform(-0.45, 0.15))
        centre[:, axis] = edge + sign * rng.uniform(0.2, 0.45) * 2 * extent[axis] * out
    return rel + centre[:, None, :]


def scan_quad(size: tuple[int, int], width: int, height: int, rotated: bool, rng: np.random.Generator) -> np.ndarray:
    """Return the (4, 2) quad of a document of physical `size` (tenths of a mm) on a scanned A4 page.

    The page is width x height pixels (portrait, 210 mm wide). Upright, the document lies
    against the top-right corner, as on MIDV-2020's scans, turned by at most a degree;
    `rotated`, at any angle anywhere on the page, wholly inside it. Corners stay in the
    document's order, so a rotated document's first corner can be anywhere.
    """
    scale = width / 2100  # pixels per tenth of a millimetre
    w, h = size[0] * scale, size[1] * scale
    angle = math.radians(rng.uniform(0, 360) if rotated else rng.uniform(-1, 1))
    unit = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [w, h]
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rel = unit @ turn.T
    low, high = -rel.min(0) + 0.02 * width, [width, height] - rel.max(0) - 0.02 * width
    if rotated:
        centre = rng.uniform(low, np.maximum(high, low))
    else:
        centre = np.array([high[0] - rng.uniform(0, 0.02) * width, low[1] + rng.uniform(0, 0.02) * width])
    return rel + centre


def interpolate_quads(knot_times: np.ndarray, knot_quads: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Interpolate (k, 4, 2) quads at `knot_times` linearly to `times`, holding the ends."""
    flat = knot_quads.reshape(len(knot_quads), 8)
    out = np.stack([np.interp(times, knot_times, flat[:, j]) for j in range(8)], 1)
    return out.reshape(len(times), 4, 2)


# --- frames -----------------------------------------------------------------------------


@dataclass
class Scene:
    """What stays fixed over a clip: the surface, the document and the light."""

    background: np.ndarray  # BGR, larger than the frame so camera motion never shows an edge
    background_offset: np.ndarray  # where the frame's top-left sits in it, at the reference pose
    document: np.ndarray  # BGRA template, alpha 255, downscaled to about its size on screen
    document_scale: float  # document pixels per template pixel
    template_size: tuple[int, int]
    hand: np.ndarray | None  # BGR skin colour, or None when no hand
    hand_side: float  # -1 hand on the left edge of the document, +1 on the right
    noise: list[np.ndarray]  # int16 frames of sensor noise, used in turn
    light: np.ndarray  # (n, 2) gain and offset per frame
    reference_inverse: np.ndarray  # frame -> template at the pose the background is drawn for
    reference_centre: np.ndarray  # the document's centre in that pose


def make_scene(
    condition: str,
    template: np.ndarray,
    quads: np.ndarray,
    times: np.ndarray,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> Scene:
    """Prepare a clip's fixed parts for a trajectory of `quads` in a width x height frame.

    The background is drawn as seen when the document is at its mean quad.
    """
    th, tw = template.shape[:2]
    bg_w, bg_h = int(width * 1.5) // 2 * 2, int(height * 1.5) // 2 * 2
    background = render_background(condition, bg_w, bg_h, rng)
    # Anti-aliasing: shrink the template once to ~1.5x its largest on-screen size, so the
    # per-frame warp never skips template pixels.
    edges = np.linalg.norm(quads - np.roll(quads, -1, axis=1), axis=2)
    on_screen = max(float(edges.max()), 1.0)
    scale = min(1.0, 1.5 * on_screen / max(tw, th))
    small = template
    if scale < 1.0:
        size = (max(2, round(tw * scale)), max(2, round(th * scale)))
        small = cv2.resize(template, size, interpolation=cv2.INTER_AREA)
    document = cv2.cvtColor(small, cv2.COLOR_BGR2BGRA)
    hand = None
    if condition == "H":
        hand = np.array([rng.uniform(90, 130), rng.uniform(140, 175), rng.uniform(190, 230)])
    t = np.asarray(times, np.float64)
    dim = 0.4 if condition == "L" else 1.0  # MIDV-2019's L: low light, more sensor noise
    gain = dim * (1 + rng.uniform(-0.06, 0.06) + 0.04 * _wave(rng, t, 0.2, 0.8))
    offset = rng.uniform(-6, 6) * dim + np.zeros(len(t))
    sigma = 2.5 / dim**0.5
    noise = [rng.normal(0, sigma, (height, width, 3)).round().astype(np.int16) for _ in range(3)]
    reference = _to_quad((tw, th), quads.mean(0))
    return Scene(
        background=background,
        background_offset=np.array([(bg_w - width) / 2, (bg_h - height) / 2]),
        document=document,
        document_scale=small.shape[1] / tw,
        template_size=(tw, th),
        hand=hand,
        hand_side=float(rng.choice([-1.0, 1.0])),
        noise=noise,
        light=np.stack([gain, offset], 1),
        reference_inverse=np.linalg.inv(reference),
        reference_centre=quads.mean(axis=(0, 1)),
    )


def render_picture(
    condition: str, template: np.ndarray, quad: np.ndarray, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one still picture (a photo, a scan) of the template at `quad`: a scene of one frame."""
    scene = make_scene(condition, template, quad[None], np.zeros(1), width, height, rng)
    return render_frame(scene, quad, 0, width, height)


def render_frame(scene: Scene, quad: np.ndarray, index: int, width: int, height: int) -> np.ndarray:
    """Render source frame `index`: the document at `quad` over the moving background.

    The background moves with the document, as a table does when the phone moves; a held
    document (H) moves over a steadier background.
    """
    homography = _to_quad(scene.template_size, quad)
    camera = homography @ scene.reference_inverse
    if scene.hand is not None:  # the hand moves the document; the camera only shakes a bit
        shift = (quad.mean(0) - scene.reference_centre) * 0.3
        camera = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]])
    ox, oy = scene.background_offset
    to_bg = camera @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    frame = cv2.warpPerspective(scene.background, to_bg, (width, height), borderMode=cv2.BORDER_REFLECT_101)

    x0, y0 = np.floor(quad.min(0)).astype(int) - 1
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 > x0 and y1 > y0:  # warp into the document's bounding box only
        s = scene.document_scale
        into_roi = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ homography @ np.diag([1 / s, 1 / s, 1])
        # Transparent outside the document: alpha then anti-aliases its edges.
        doc = cv2.warpPerspective(scene.document, into_roi, (x1 - x0, y1 - y0), borderValue=0)
        alpha = doc[..., 3:].astype(np.uint16)
        roi = frame[y0:y1, x0:x1]
        roi[:] = ((doc[..., :3] * alpha + roi * (255 - alpha) + 127) // 255).astype(np.uint8)
    if scene.hand is not None:
        _draw_hand(frame, homography, scene)
    gain, offset = scene.light[index]
    frame = cv2.convertScaleAbs(frame, alpha=float(gain), beta=float(offset))
    return cv2.add(frame, scene.noise[index % len(scene.noise)], dtype=cv2.CV_8U)


def _draw_hand(frame: np.ndarray, homography: np.ndarray, scene: Scene) -> None:
    """Draw a palm beside the document and a thumb over its edge, moving with it."""
    tw, th = scene.template_size
    side = scene.hand_side
    edge = tw if side > 0 else 0.0
    parts = [  # (centre x, centre y, half axes, angle) in template pixels
        (edge + side * 0.3 * tw, 0.6 * th, (0.34 * tw, 0.42 * th), 0.0),
        (edge + side * 0.8 * tw, 0.75 * th, (0.5 * tw, 0.3 * th), 15.0 * side),
        (edge - side * 0.05 * tw, 0.42 * th, (0.12 * tw, 0.05 * th), -20.0 * side),
    ]
    colour = scene.hand
    assert colour is not None  # only called when the scene has a hand
    for k, (cx, cy, (ax, ay), ang) in enumerate(parts):
        poly = cv2.ellipse2Poly((int(cx), int(cy)), (int(ax), int(ay)), int(ang), 0, 360, 12)
        pts = np.concatenate([poly, np.ones((len(poly), 1))], 1) @ homography.T
        if (pts[:, 2] <= 1e-3).any():  # behind the camera under a steep tilt: skip it
            continue
        xy = (pts[:, :2] / pts[:, 2:]).round().astype(np.int32)
        shade = colour * (0.92 if k == 1 else 1.0 + 0.04 * k)
        cv2.fillPoly(frame, [xy], shade.clip(0, 255).tolist(), cv2.LINE_AA)
