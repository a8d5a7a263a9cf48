"""Score outputs produced elsewhere: `midvbatch import PREDICTIONS DATASET --out RUN`.

A system that is not a Python processor (a C++ SDK, a phone app, a job on another
machine) has files of outputs only. An import reads such a file a record at a time (a
file of gigabytes is never held: its records wait in a temporary SQLite file,
engine.ledger.StagedPredictions), names each record's clip and frame in the dataset,
writes them clip by clip into the run folder (RUN/imported/), and runs the `replay`
processor (pipeline/replay.py) over the dataset: an ordinary run, scored by the same code
as a processor's, which report, export, status and compare read like any other.

Formats, detected from the content or named: midvbatch's own JSON lines (what ``export
--format jsonl`` writes, with or without ``--fields``); COCO results (a list of
``{"image_id", "category_id", "segmentation" | "keypoints", "score"}``, its images named by
the COCO file of ``export --format coco``, or a COCO file with its own ``images``); the
Smart Engines per-image localization report (``export --format smartengines``); CSV with
``clip,frame,x1,y1,...,y4`` and/or ``clip,frame,field,text[,confidence]``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from midvbatch.config import build_config
from midvbatch.dataset import Clip, Dataset, discover, get_format
from midvbatch.engine.ledger import StagedPredictions
from midvbatch.engine.run import RunSummary
from midvbatch.engine.run import run as run_config
from midvbatch.engine.run.folder import RunFolder
from midvbatch.errors import MidvBatchError, PredictionsError
from midvbatch.fileio import (
    RECORD_LIMIT,
    atomic_output,
    check_regular_file,
    finite_numbers,
    json_items,
    loads,
    open_regular,
)
from midvbatch.pipeline.replay import INDEX_SUFFIX
from midvbatch.runfolder import IMPORTED

FORMATS = ("jsonl", "coco", "smartengines", "csv")
SHOWN = 5  # findings of each kind named one by one; the rest counted
HEAD = 1 << 16  # bytes read to tell the format
TRUTH_TOLERANCE = 0.01  # pixels: a Smart Engines report's ground truth agrees with the dataset's within this
QUAD_COLUMNS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")
ID_CARD = 1  # COCO category of a document (export --format coco); 2 is a text field
TEXT_FIELD = 2
CLIP = -1  # the frame number a clip's own result is kept under (a picture's frames may be numbered from 0)

Where = tuple  # ("clip", id, frame or CLIP), ("path", a frame's file name), ("image", a COCO image id)


@dataclass
class Finding:
    """Records of one kind that were not taken as they were: how many, and the first few."""

    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN:
            self.shown.append(line)


@dataclass
class ImportSummary:
    """What an import read and how the run that scored it ended."""

    source: str
    format: str
    sha256: str
    records: int  # records read
    frames: int  # frames and clips given a prediction
    unknown: Finding  # records for a clip or frame the dataset does not have: left out
    unusable: Finding  # quads that are not 4 finite points: those frames scored as "no prediction"
    truth: Finding  # Smart Engines reports: ground truth that differs from the dataset's
    run: RunSummary | None = None

    def to_dict(self) -> dict:
        """A JSON-ready record (what `midvbatch import --json` prints)."""
        kinds = {"unknown": self.unknown, "unusable": self.unusable, "truth_differs": self.truth}
        return {
            "source": self.source,
            "format": self.format,
            "sha256": self.sha256,
            "records": self.records,
            "frames": self.frames,
            **{k: {"count": f.count, "first": f.shown} for k, f in kinds.items()},
            "run": self.run.to_dict() if self.run is not None else None,
        }


@dataclass(frozen=True)
class _Part:
    place: str  # FILE:LINE, for the messages
    where: Where
    part: str  # "result", "quad" or "field:NAME"
    value: Any


class _Frames:
    """The dataset's annotated frames: which clip and frame a record names."""

    def __init__(self, dataset: Dataset):
        self.clips = {clip.id: clip for clip in dataset.clips}
        self._by_name: dict[str, tuple[str, int]] | None = None
        self._truths: dict[str, dict] = {}

    @staticmethod
    def numbers(clip: Clip) -> range | tuple[int, ...]:
        return clip.frame_rule.numbers or range(1, clip.frame_rule.count + 1)

    def check(self, clip_id: str, frame: int) -> str | None:
        """None if the dataset has this clip and annotated frame (CLIP: the clip's own result), else why not."""
        clip = self.clips.get(clip_id)
        if clip is None:
            return f"no clip {clip_id!r} in the dataset"
        if frame != CLIP and frame not in self.numbers(clip):
            return f"clip {clip_id} has no annotated frame {frame}"
        return None

    def by_name(self, name: str) -> tuple[str, int] | None:
        """The clip and frame of a frame's file name (./images/01_alb_id/CA/CA01_01.tif: CA01, 1): the longest
        tail of its path, without the extension, that is a frame id of the dataset (Clip.frame_id)."""
        if self._by_name is None:
            self._by_name = {c.frame_id(n): (c.id, n) for c in self.clips.values() for n in self.numbers(c)}
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts:
            return None
        stem, dot, _ = parts[-1].rpartition(".")
        parts[-1] = stem if dot else parts[-1]
        for start in range(len(parts)):
            found = self._by_name.get("/".join(parts[start:]))
            if found is not None:
                return found
        return None

    def truth(self, clip_id: str, frame: int) -> list | None:
        """The dataset's ground-truth quad of a frame (None: it has none)."""
        if clip_id not in self._truths:
            clip = self.clips[clip_id]
            quads = get_format(clip.format).read_quads(clip.ground_truth) if clip.ground_truth else {}
            self._truths = {clip_id: {n: q.to_list() for n, q in quads.items()}}  # one clip at a time
        return self._truths[clip_id].get(frame)


# ---------------------------------------------------------------- values


def _number(value: Any) -> float | None:
    """A finite number, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _quad(points: Any, place: str, unusable: Finding) -> list[list[float]] | None:
    """Four finite (x, y) points, from [[x, y] * 4] or a flat [x1, y1, ... x4, y4]; None (named) otherwise."""
    if type(points) is list and len(points) == 4 and all(type(p) is list and len(p) == 2 for p in points):
        if finite_numbers(v for point in points for v in point):  # (the usual form: no call per number)
            return [[float(x), float(y)] for x, y in points]
    flat: list[Any] = []
    if isinstance(points, (list, tuple)):
        for point in points:
            flat.extend(point if isinstance(point, (list, tuple)) else [point])
    numbers = [_number(v) for v in flat]
    if len(numbers) != 8 or any(v is None for v in numbers):
        shown = json.dumps(points, default=str)[:80]
        unusable.add(f"{place}: the quad {shown} is not 4 points of finite numbers: scored as no prediction")
        return None
    return [[numbers[i], numbers[i + 1]] for i in range(0, 8, 2)]  # type: ignore[list-item]


def _whole(value: Any, what: str, place: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PredictionsError(f"{what} {value!r} is not a whole number", path=place)
    try:
        return int(value)
    except ValueError:
        raise PredictionsError(f"{what} {value!r} is not a whole number", path=place) from None


def _field_value(text: Any, confidence: Any, place: str) -> dict:
    if not isinstance(text, str):
        raise PredictionsError(f"a field's text must be a string, not {type(text).__name__}", path=place)
    if confidence in (None, ""):
        return {"text": text}
    number = _number(confidence)
    if number is None:
        raise PredictionsError(f"confidence {confidence!r} is not a finite number", path=place)
    return {"text": text, "confidence": number}


# ---------------------------------------------------------------- the formats


@dataclass
class _Reading:
    """What the parsers share: the file's name, where problems go, the COCO images file."""

    path: str
    unusable: Finding
    images: str | None = None
    image_names: dict[Any, str] = field(default_factory=dict)


def _lines(text: IO[str], path: str) -> Iterator[tuple[int, str]]:
    number = 0
    while True:
        line = text.readline(RECORD_LIMIT + 1)
        if not line:
            return
        number += 1
        if len(line) > RECORD_LIMIT:
            raise PredictionsError(f"a line of more than {RECORD_LIMIT:,} characters", path=f"{path}:{number}")
        if line.strip():
            yield number, line


def _parse_jsonl(text: IO[str], reading: _Reading) -> Iterator[_Part]:
    """midvbatch's JSON lines: {"clip", "frame", "result"} per frame (frame null: the clip's own result), or with
    --fields {"clip", "frame", "field", "text", "confidence"}."""
    for number, line in _lines(text, reading.path):
        place = f"{reading.path}:{number}"
        try:
            record = loads(line)
        except (ValueError, RecursionError) as exc:
            raise PredictionsError(f"not a JSON line ({str(exc).splitlines()[0][:80]})", path=place) from None
        if not isinstance(record, dict) or not isinstance(record.get("clip"), str):
            raise PredictionsError('a record must be an object with "clip" (a string) and "frame"', path=place)
        frame = record.get("frame")
        where = ("clip", record["clip"], CLIP if frame is None else _whole(frame, "frame", place))
        if "field" in record:
            if record.get("text") is not None and not record.get("missing"):  # (a field not read: not a reading)
                value = _field_value(record["text"], record.get("confidence"), place)
                yield _Part(place, where, f"field:{record['field']}", value)
            continue
        if "result" not in record:
            raise PredictionsError('a record has neither "result" nor "field"', path=place)
        result = record["result"]
        if isinstance(result, dict) and result.get("quad") is not None:
            result = {**result, "quad": _quad(result["quad"], place, reading.unusable)}
        yield _Part(place, where, "result", result)


def _parse_csv(text: IO[str], reading: _Reading) -> Iterator[_Part]:
    """CSV with a header: clip,frame and x1..y4, and/or field,text[,confidence]."""
    old_limit = csv.field_size_limit(RECORD_LIMIT)
    try:
        rows = csv.reader(text)
        try:
            header = [name.strip() for name in next(rows)]
        except StopIteration:
            raise PredictionsError("empty file, expected a CSV header", path=reading.path) from None
        quads = all(c in header for c in QUAD_COLUMNS)
        fields = "field" in header and "text" in header
        results = [c for c in header if c.startswith("result.")]  # (what export --format csv writes: JSON cells)
        if "clip" not in header or "frame" not in header or not (quads or fields or results):
            raise PredictionsError(
                "the CSV header must name clip, frame and x1,y1,...,y4 and/or field,text[,confidence] (or the "
                "result.KEY columns of export --format csv); it names " + ",".join(header)[:120],
                path=reading.path,
            )
        column = {name: i for i, name in reversed(list(enumerate(header)))}
        for row in rows:
            place = f"{reading.path}:{rows.line_num}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise PredictionsError(f"{len(row)} columns where the header has {len(header)}", path=place)
            frame = row[column["frame"]]
            where = ("clip", row[column["clip"]], CLIP if frame == "" and results else _whole(frame, "frame", place))
            if results:
                yield _Part(place, where, "result", _csv_result(row, column, results, place, reading.unusable))
            if quads and any(row[column[c]].strip() for c in QUAD_COLUMNS):
                points = [row[column[c]] for c in QUAD_COLUMNS]
                yield _Part(place, where, "quad", _quad(points, place, reading.unusable))
            if fields and row[column["field"]].strip():
                confidence = row[column["confidence"]] if "confidence" in column else None
                value = _field_value(row[column["text"]], confidence, place)
                yield _Part(place, where, f"field:{row[column['field']].strip()}", value)
    except csv.Error as exc:
        raise PredictionsError(f"bad CSV: {exc}", path=f"{reading.path}:{rows.line_num}") from None
    finally:
        csv.field_size_limit(old_limit)


def _csv_result(row: list[str], column: dict[str, int], results: list[str], place: str, unusable: Finding) -> dict:
    """A result from the result.KEY columns of export --format csv: each cell JSON where it parses, else text."""
    result: dict[str, Any] = {}
    for name in results:
        cell = row[column[name]]
        if cell == "":
            if name == "result.quad":  # (a quad of None is written empty: that frame has no prediction)
                result["quad"] = None
            continue
        try:
            result[name[len("result.") :]] = json.loads(cell)
        except (ValueError, RecursionError):
            result[name[len("result.") :]] = cell
    if result.get("quad") is not None:
        result["quad"] = _quad(result["quad"], place, unusable)
    return result


def _parse_coco(text: IO[str], reading: _Reading) -> Iterator[_Part]:
    """COCO results: annotations naming images by id (the images of the file itself, or of --images)."""
    if reading.images is not None:
        with _open_text(reading.images) as images:
            for key, line, value in json_items(images, reading.images, PredictionsError):
                if key == "images":
                    _coco_image(value, f"{reading.images}:{line}", reading.image_names)
    waiting: list[_Part] = []
    for key, line, value in json_items(text, reading.path, PredictionsError):
        place = f"{reading.path}:{line}"
        if key == "images":
            _coco_image(value, place, reading.image_names)
        elif key in (None, "annotations"):
            waiting.append(_coco_annotation(value, place, reading))
            if reading.image_names:  # (once the images are known, nothing need wait)
                yield from waiting
                waiting.clear()
    if waiting and not reading.image_names:
        raise PredictionsError(
            "COCO results name their images by id: give --images, the COCO file of the frames they refer to "
            "(midvbatch export --format coco)",
            path=reading.path,
        )
    yield from waiting


def _coco_image(value: Any, place: str, names: dict[Any, str]) -> None:
    if not isinstance(value, dict) or "id" not in value or not isinstance(value.get("file_name"), str):
        raise PredictionsError('a COCO image must be an object with "id" and "file_name"', path=place)
    names[value["id"]] = value["file_name"]


def _coco_annotation(value: Any, place: str, reading: _Reading) -> _Part:
    if not isinstance(value, dict) or "image_id" not in value:
        raise PredictionsError('a COCO result must be an object with "image_id"', path=place)
    where = ("image", value["image_id"])
    attributes = value.get("attributes")
    if value.get("category_id") == TEXT_FIELD and isinstance(attributes, dict) and "field" in attributes:
        text = _field_value(attributes.get("text"), attributes.get("confidence"), place)
        return _Part(place, where, f"field:{attributes['field']}", text)
    if "segmentation" in value:
        polygon = value["segmentation"]
        if isinstance(polygon, list) and len(polygon) == 1 and isinstance(polygon[0], list):
            polygon = polygon[0]  # a polygon of one part
    elif "keypoints" in value:
        polygon = value["keypoints"]  # (x, y, visibility) * 4; anything else: no prediction, named by _quad
        if isinstance(polygon, list):
            polygon = [v for i, v in enumerate(polygon) if i % 3 != 2]
    else:
        raise PredictionsError('a COCO result has neither "segmentation" nor "keypoints"', path=place)
    return _Part(place, where, "quad", _quad(polygon, place, reading.unusable))


def _parse_smartengines(text: IO[str], reading: _Reading) -> Iterator[_Part]:
    """The Smart Engines per-image localization report: a list (or an object of lists) of records."""
    for _, line, value in json_items(text, reading.path, PredictionsError):
        place = f"{reading.path}:{line}"
        if not isinstance(value, dict) or not isinstance(value.get("origin_image_path"), str):
            raise PredictionsError('a record must be an object with "origin_image_path"', path=place)
        where = ("path", value["origin_image_path"])
        quad = None
        if value.get("system_result_quad_exists"):
            quad = _quad(value.get("system_result_quad"), place, reading.unusable)
        yield _Part(place, where, "quad", quad)
        if "ground_truth_quad" in value:
            yield _Part(place, where, "truth", value["ground_truth_quad"])


PARSERS: dict[str, Callable[[IO[str], _Reading], Iterator[_Part]]] = {
    "jsonl": _parse_jsonl,
    "coco": _parse_coco,
    "smartengines": _parse_smartengines,
    "csv": _parse_csv,
}


def detect_format(path: str | Path) -> str:
    """Tell a predictions file's format from its first bytes; PredictionsError when it is none of FORMATS."""
    with open_regular(path, PredictionsError, "a file of predictions") as stream:
        head = stream.read(HEAD).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not head:
        raise PredictionsError("empty file, expected predictions", path=path)
    first = head.split("\n", 1)[0].strip()
    if head[0] == "{":
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        if isinstance(record, dict) and "clip" in record:
            return "jsonl"
    if re.match(r'\{\s*"(images|annotations|categories|info|licenses)"', head):
        return "coco"
    if head[0] in "[{":
        for key, _, value in _head_items(head):
            if key in ("images", "annotations", "categories") or isinstance(value, dict) and "image_id" in value:
                return "coco"
            if isinstance(value, dict) and "origin_image_path" in value:
                return "smartengines"
            break
    elif first.split(",")[0].strip().strip('"') == "clip":
        return "csv"
    shown = first[:60] + ("..." if len(first) > 60 else "")
    raise PredictionsError(
        f"not a file of predictions midvbatch reads ({', '.join(FORMATS)}): it begins {shown!r}; name its format "
        "with --format",
        path=path,
    )


def _head_items(head: str) -> Iterator[tuple[str | None, int, Any]]:
    """The first items of a JSON text's beginning (a cut-off value ends them)."""
    try:
        yield from json_items(io.StringIO(head), "", PredictionsError)
    except PredictionsError:
        return


# ---------------------------------------------------------------- the import


class _Hashing(io.RawIOBase):
    """A file read through, its SHA-256 taken on the way."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.sha = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.sha.update(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open_text(path: str | Path) -> IO[str]:
    raw = open_regular(path, PredictionsError, "a file of predictions")
    return io.TextIOWrapper(io.BufferedReader(_Hashing(raw), 1 << 20), encoding="utf-8-sig", newline="")


@dataclass
class _Staging:
    """The records read, named by clip and frame, and what was found on the way."""

    frames: _Frames
    store: StagedPredictions
    unknown: Finding = field(default_factory=Finding)
    unusable: Finding = field(default_factory=Finding)
    truth: Finding = field(default_factory=Finding)
    records: int = 0

    def take(self, part: _Part, reading: _Reading) -> None:
        where = part.where
        if where[0] == "image":
            name = reading.image_names.get(where[1])
            if name is None:
                self.unknown.add(f"{part.place}: no image {where[1]!r} in the COCO images")
                return
            where = ("path", name)
        if where[0] == "path":
            found = self.frames.by_name(where[1])
            if found is None:
                self.unknown.add(f"{part.place}: no frame {where[1]!r} in the dataset")
                return
            clip, frame = found
        else:
            clip, frame = where[1], where[2]
            why = self.frames.check(clip, frame)
            if why is not None:
                self.unknown.add(f"{part.place}: {why}")
                return
        if part.part == "truth":
            self._check_truth(part, clip, frame)
            return
        self.records += 1
        holds = _holds(part.value) if part.part == "result" else 0
        # (a NaN or an infinity elsewhere than the quad is staged as such: the run leaves it out, with a note, as it
        # leaves out a processor's: pipeline/prediction.py)
        earlier = self.store.add(clip, frame, part.part, part.place, json.dumps(part.value), holds)
        if earlier is not None:
            what = "the clip's own result" if frame == CLIP else f"frame {frame}"
            kind = part.part.replace("field:", "field ")
            raise PredictionsError(f"two predictions ({kind}) for {what} of clip {clip}: {earlier} and {part.place}")

    def _check_truth(self, part: _Part, clip: str, frame: int) -> None:
        truth, given = self.frames.truth(clip, frame), part.value
        points = _quad(given, part.place, Finding())
        if truth is None or points is None:
            agree = truth is None and points is None
        else:
            flat = [v for point in truth for v in point]
            agree = len(flat) == 8 and all(
                abs(a - b) <= TRUTH_TOLERANCE for a, b in zip([v for p in points for v in p], flat, strict=True)
            )
        if not agree:
            self.truth.add(f"{part.place}: ground truth {json.dumps(given)[:80]} where the dataset has {truth}")


QUAD, FIELDS = 1, 2  # what a whole result holds (StagedPredictions' `holds`)


def _holds(value: Any) -> int:
    return (QUAD if "quad" in value else 0) | (FIELDS if "fields" in value else 0) if isinstance(value, dict) else 0


def _grouped(staged: StagedPredictions) -> Iterator[tuple[str, str, int, bool, bool]]:
    """Each clip's id, its line of the run's predictions file (JSON text), how many frames and clip results it
    gives, and whether it holds quads and fields.

    A frame given in parts (a quad, fields one by one) is "no prediction" in what the file
    gives of other frames and not of it: no quad where others have one, no field where others have some.
    A frame given whole (one result, nothing else) goes into the line as the text it was staged as."""
    kinds = staged.kinds()
    empty: dict[str, Any] = {"quad": None} if "quad" in kinds else {}
    if "field" in kinds:
        empty["fields"] = {}
    for clip, parts in staged.clips():
        count: dict[int, int] = {}
        for frame, _, _, _ in parts:
            count[frame] = count.get(frame, 0) + 1
        texts: dict[int, str] = {}
        frames: dict[int, Any] = {}
        quads = fields = False
        for frame, part, raw, holds in parts:
            if part == "result" and count[frame] == 1:
                texts[frame] = raw
                quads, fields = quads or bool(holds & QUAD), fields or bool(holds & FIELDS)
                continue
            value = json.loads(raw)
            if part == "result":
                parts_before = frames.get(frame)
                both = isinstance(value, dict) and isinstance(parts_before, dict)
                frames[frame] = {**value, **parts_before} if both else value  # type: ignore[dict-item]
                if isinstance(value, dict):
                    quads, fields = quads or "quad" in value, fields or "fields" in value
                continue
            if frame not in frames:  # (each frame its own "fields" mapping)
                frames[frame] = (
                    {} if frame == CLIP else {key: {} if value == {} else value for key, value in empty.items()}
                )
            result = frames[frame]
            if not isinstance(result, dict):
                continue  # a whole result that is not an object: the parts cannot go into it
            if part == "quad":
                result["quad"], quads = value, True
            else:
                result.setdefault("fields", {})[part[len("field:") :]] = value
                fields = True
        texts.update((n, json.dumps(r, ensure_ascii=False)) for n, r in frames.items())
        given = ", ".join(f'"{n}": {texts[n]}' for n in sorted(texts) if n != CLIP)
        own = texts.get(CLIP, "null")
        counted = len(texts) - (own == "null" and CLIP in texts)  # (a clip result of null is none)
        yield clip, f'{{"clip": {json.dumps(clip)}, "frames": {{{given}}}, "result": {own}}}', counted, quads, fields


def _write_staged(staged: StagedPredictions, target: Path, source: str, sha256: str, fmt: str) -> int:
    """Write the predictions clip by clip (a JSON line each) and their index; return the frames written."""
    offsets: dict[str, int] = {}
    quads = fields = False
    frames = 0
    with atomic_output(target, "wb") as stream:
        offset = 0
        for clip, line, given, has_quads, has_fields in _grouped(staged):
            data = (line + "\n").encode("utf-8")
            offsets[clip] = offset
            stream.write(data)
            offset += len(data)
            frames += given
            quads, fields = quads or has_quads, fields or has_fields
    index = {"source": source, "sha256": sha256, "format": fmt, "quads": quads, "fields": fields, "clips": offsets}
    with atomic_output(target.with_name(target.name + INDEX_SUFFIX), "w", encoding="utf-8") as stream:
        json.dump(index, stream)
    return frames


def import_predictions(
    predictions: str | Path,
    dataset: str | Path,
    out: str | Path,
    *,
    format: str | None = None,
    images: str | Path | None = None,
    strict: bool = False,
    restart: bool = False,
    workers: int | str | None = None,
    run: Callable[..., RunSummary] | None = None,
    read: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Score the predictions in the file `predictions` against `dataset`, into the run folder `out`.

    `format`: one of FORMATS, else told from the content. `images`: for COCO results, the
    COCO file whose image ids they use. Records for a clip or frame the dataset does not
    have are left out and counted (`strict`: an error, before anything is written); a quad
    that is not 4 finite points makes its frame "no prediction", named; two records for
    one frame are an error naming both. Frames without a record are scored as without
    prediction. `run(config, restart=...)` runs the scoring (default: engine.run.run; the
    CLI passes one with its progress and log); `read(summary)` is told what was read before the
    scoring starts. Importing the same file again into `out`
    resumes; another file into it is refused unless `restart`.
    """
    source = Path(os.path.abspath(predictions))
    check_regular_file(source, PredictionsError, "a file of predictions")
    if images is not None:
        images = os.path.abspath(images)
        check_regular_file(images, PredictionsError, "a COCO file")
    fmt = format or detect_format(source)
    if fmt not in PARSERS:
        raise PredictionsError(f"unknown predictions format {fmt!r} (one of {', '.join(FORMATS)})")
    frames = _Frames(discover(dataset))
    reading = _Reading(str(source), Finding(), str(images) if images is not None else None)
    staging = _Staging(frames, StagedPredictions(), unusable=reading.unusable)
    try:
        with _open_text(source) as text:
            try:
                for part in PARSERS[fmt](text, reading):
                    staging.take(part, reading)
                while text.read(1 << 20):  # (whatever a parser left unread, for the fingerprint)
                    pass
            except UnicodeDecodeError as exc:
                raise PredictionsError(f"not UTF-8 text (near byte {exc.start})", path=source) from None
            except OSError as exc:
                raise PredictionsError(f"cannot read: {exc.strerror or exc}", path=source) from None
            sha256 = text.buffer.raw.sha.hexdigest()  # type: ignore[attr-defined]
        if staging.unknown.count and strict:
            raise PredictionsError(
                f"{staging.unknown.count} record(s) for clips or frames the dataset does not have (--strict), first: "
                + staging.unknown.shown[0]
            )
        summary = ImportSummary(
            str(source), fmt, sha256, staging.records, 0, staging.unknown, staging.unusable, staging.truth
        )
        target = _claim(Path(os.path.abspath(out))) / IMPORTED / f"{sha256[:16]}.jsonl"
        target.parent.mkdir(exist_ok=True)
        summary.frames = _write_staged(staging.store, target, str(source), sha256, fmt)
    except OSError as exc:
        raise MidvBatchError(f"cannot write the imported predictions: {exc.strerror or exc}", path=out) from None
    finally:
        staging.store.close()
    options = {"predictions": str(target), "source": str(source), "sha256": sha256, "format": fmt}
    values: dict[str, Any] = {"dataset": str(dataset), "out": str(out), "processor": "replay", "options": options}
    if workers is not None:
        values["workers"] = workers
    if read is not None:
        read(summary)
    summary.run = (run or run_config)(build_config(values), restart=restart)
    return summary


def _claim(run_dir: Path) -> Path:
    """Claim the run folder (a new or empty folder, or a run folder) for the import's files; return it."""
    lock = RunFolder(run_dir).claim()
    lock.release()
    return run_dir
