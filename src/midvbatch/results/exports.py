"""Export a run's results: one record per frame (frame processors) or per clip (clip processors).

Export formats are a registry (:func:`export_registry`): the built-ins jsonl, csv, coco,
smartengines and parquet (the table of results/table.py), and entry points of group ``midvbatch.exports``, each an :class:`Export`.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from midvbatch.errors import ConfigError, LedgerError, MidvBatchError
from midvbatch.fileio import atomic_output
from midvbatch.plugins import EXPORTS, Registry, builtin_names, unknown_name
from midvbatch.results.reader import open_run, recorded_dataset
from midvbatch.results.stopping import field_stream
from midvbatch.runfolder import claim_output, record_output

FORMATS = builtin_names(EXPORTS)  # the built-in export formats, what --format offers

Writer = Callable[[IO[Any]], int]  # writes an export to a stream (text, or bytes for a binary one); returns its records


@dataclass(frozen=True)
class ExportOptions:
    """What an export is asked for besides the run: --predictions, --subset, --fields."""

    predictions: bool = False  # coco: the predicted quads instead of the ground truth
    subset: str | None = None  # smartengines: that visibility subset's runlist
    fields: bool = False  # one record per text field scored


@dataclass(frozen=True)
class Export:
    """An export format: `prepare(run_dir, options)` reads what it must before the output is opened and
    returns the Writer that writes the export."""

    prepare: Callable[[str | Path, ExportOptions], Writer]
    takes_fields: bool = True  # whether --fields applies to it
    binary: bool = False  # written as bytes, to a file only (--out)


def new_export_registry() -> Registry[Export]:
    """Return a new registry of export formats: the built-ins, entry points of group midvbatch.exports,
    nothing registered; its errors are ConfigError."""
    return Registry(EXPORTS, "export format", error=ConfigError, unknown=unknown_name("export format", "use "))


@functools.cache
def export_registry() -> Registry[Export]:
    """Return this process's registry of export formats (made on first use; see new_export_registry)."""
    return new_export_registry()


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (min_d is inf without a homography) with None: strict JSON has no Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def result_records(run_dir: str | Path) -> Iterator[dict]:
    """Yield the records of every done clip, in queue order; frames first, then clip results."""
    with open_run(run_dir) as run:
        for frame in run.frames():
            record = {
                "clip": frame.clip,
                "document": frame.document,
                "frame": frame.number,
                "time": frame.time,
                "seconds": frame.seconds,
                "result": frame.result,
            }
            if frame.scores is not None:
                record["scores"] = frame.scores
            yield record
        for clip in run.clips("done"):
            if clip.result is not None:
                yield {
                    "clip": clip.clip,
                    "document": clip.document,
                    "frame": None,
                    "time": None,
                    "seconds": clip.seconds,
                    "result": clip.result,
                }


RECORD_LEAD = ("clip", "document", "frame", "time", "seconds")  # the CSV's first columns, then every result's
FIELD_LEAD = ("clip", "document", "frame", "field")
FIELD_COLUMNS = ("truth", "text", "confidence", "type", "correct", "distance", "ngld", "cer", "missing")
STREAM_COLUMNS = ("combined", "expected", "stops")  # a frame's field: where the clip stands (field_records)


def field_records(run_dir: str | Path) -> Iterator[dict]:
    """Yield one record per text field scored: of every frame, then of every clip result, in queue order.

    Each: clip, document, frame (None for a clip result), field, the field's scores (truth, text, confidence,
    type, correct, distance, ngld, cer, missing) and, for a frame, where the clip's frames so far stand
    (combined: the readings combined with their alternatives, expected: D_n; scoring.stream) and the frame each
    stopping rule stops the field at, per threshold of the default sweep (stops: {"expected_distance": {"0.1":
    7, ...}, ...}; results.stopping), the same in every record of the clip's field."""
    with open_run(run_dir) as run:
        clip: list = []
        for frame in run.frames():
            if clip and clip[-1].clip != frame.clip:
                yield from _clip_field_records(clip)
                clip = []
            clip.append(frame)
        yield from _clip_field_records(clip)
        for done in run.clips("done"):
            for name, scores in done.fields.items():
                yield _field_record(done.clip, done.document, None, name, scores)


def _clip_field_records(frames: list) -> Iterator[dict]:
    """The field records of one clip's frames (in frame order), with the stream's figures."""
    series: dict[str, list[dict]] = {}
    for frame in frames:
        for name, scores in frame.fields.items():
            series.setdefault(name, []).append(scores)
    streams = {name: field_stream(records) for name, records in series.items()}
    seen: dict[str, int] = {}  # the field's records yielded so far
    for frame in frames:
        for name, scores in frame.fields.items():
            expected, stops = streams[name]
            index = seen[name] = seen.get(name, -1) + 1
            record = _field_record(frame.clip, frame.document, frame.number, name, scores)
            record.update(combined=scores.get("combined"), expected=expected[index], stops=stops)
            yield record


def _field_record(clip: str, document: str, frame: int | None, name: str, scores: dict) -> dict:
    record: dict[str, Any] = {"clip": clip, "document": document, "frame": frame, "field": name}
    record.update({key: scores[key] for key in FIELD_COLUMNS})
    return record


def _flatten(record: dict) -> dict:
    flat = {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
        for k, v in record.items()
        if k not in ("result", "scores")
    }
    for key, value in (record.get("scores") or {}).items():
        flat[f"scores.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    result = record.get("result")
    if isinstance(result, dict):
        for key, value in result.items():
            flat[f"result.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    elif result is not None:
        flat["result"] = json.dumps(result)
    return flat


def export_results(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    predictions: bool = False,
    subset: str | None = None,
    fields: bool = False,
    force: bool = False,
) -> int:
    """Write the run's results to `out` (default stdout); return the record count.

    An existing `out` is replaced only if this run's report or export wrote it, or with
    `force`; never inside the run's dataset (runfolder.claim_output).

    Formats: jsonl and csv (one record per frame; with `fields`, one per text field
    scored), coco (ground truth, or with `predictions` the predicted quads; with `fields`,
    the text fields' quads too), smartengines (report.json for the reference evaluation;
    with `subset`, that subset's runlist instead), and those of plugins. An unknown format,
    or `fields` with a format it does not apply to, raises ConfigError.
    """
    export = export_registry().get(fmt)
    if fields and not export.takes_fields:
        raise ConfigError(f"--fields applies to the {_with_fields()} exports, not {fmt}")
    if not Path(run_dir).is_dir():
        raise LedgerError("no such run folder", path=run_dir)
    if export.binary and not out:
        raise ConfigError(f"the {fmt} export is binary: give --out FILE")
    if out:
        claim_output(out, run_dir, force=force, dataset=recorded_dataset(run_dir))  # never over what we did not write
    write = export.prepare(run_dir, ExportOptions(predictions, subset, fields))
    if not out:
        return write(sys.stdout)
    text = {} if export.binary else {"newline": "", "encoding": "utf-8", "errors": "replace"}
    try:
        with atomic_output(out, "wb" if export.binary else "w", into_special=True, **text) as stream:
            # (a reader never sees half a file)
            count = write(stream)
        record_output(run_dir, out)
        return count
    except OSError as exc:
        raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None


def _with_fields() -> str:
    """'jsonl, csv and coco': the export formats --fields applies to (a plugin that cannot load left out)."""
    names = [e.name for e in export_registry().describe() if e.value is not None and e.value.takes_fields]
    return names[0] if len(names) < 2 else f"{', '.join(names[:-1])} and {names[-1]}"


def _records(options: ExportOptions) -> tuple[Callable[[str | Path], Iterator[dict]], tuple[str, ...]]:
    return (field_records, FIELD_LEAD) if options.fields else (result_records, RECORD_LEAD)


def _jsonl(run_dir: str | Path, options: ExportOptions) -> Writer:
    records, _ = _records(options)

    def write(stream: IO[str]) -> int:
        count = 0
        for record in records(run_dir):
            stream.write(json.dumps(json_safe(record), ensure_ascii=False) + "\n")
            count += 1
        return count

    return write


def _csv(run_dir: str | Path, options: ExportOptions) -> Writer:
    records, lead = _records(options)

    def write(stream: IO[str]) -> int:
        rows = [_flatten(r) for r in records(run_dir)]  # columns come from every result
        columns: dict[str, None] = dict.fromkeys(lead)
        for row in rows:
            columns.update(dict.fromkeys(row))
        writer = csv.DictWriter(stream, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)

    return write


def _text(text: str, count: int) -> Writer:
    """A Writer of a text made before the output is opened (nothing written when making it fails)."""

    def write(stream: IO[str]) -> int:
        stream.write(text if text.endswith("\n") or not text else text + "\n")
        return count

    return write


def _coco(run_dir: str | Path, options: ExportOptions) -> Writer:
    document = coco_document(run_dir, options.predictions, options.fields)
    return _text(json.dumps(document), len(document["annotations"]))


def _smartengines(run_dir: str | Path, options: ExportOptions) -> Writer:
    if options.subset is not None:
        ids = runlist(run_dir, options.subset)
        return _text("".join(f"{i}\n" for i in ids), len(ids))
    reports = smartengines_report(run_dir)
    return _text(json.dumps(reports, indent=1), len(reports))


def _parquet(run_dir: str | Path, options: ExportOptions) -> Writer:
    from midvbatch.results.table import arrow_table

    with open_run(run_dir) as run:
        table = arrow_table(run, options.fields)

    def write(stream: IO[bytes]) -> int:
        import pyarrow.parquet

        pyarrow.parquet.write_table(table, stream)
        return int(table.num_rows)

    return write


JSONL = Export(_jsonl)
PARQUET = Export(_parquet, binary=True)
CSV = Export(_csv)
COCO = Export(_coco)
SMARTENGINES = Export(_smartengines, takes_fields=False)


# ---------------------------------------------------------------- formats of other tools

COCO_CATEGORY = {"name": "id_card", "id": 1}
COCO_FIELD_CATEGORY = {"name": "text_field", "id": 2}


def _annotated_frames(run_dir: str | Path, fields: bool = False) -> Iterator[dict]:
    """Yield, for every scored or done frame of the run: ids, sizes, ground truth, prediction, subsets;
    with `fields`, also the text fields in the frame (``fields``: name -> FrameField, values included)
    and what the processor read of them (``read``: name -> scores as stored)."""
    from midvbatch.dataset import clip_frame_truths, discover
    from midvbatch.dataset.fields import clip_fields

    with open_run(run_dir) as run:
        dataset_dir, dataset_format = run.meta.dataset, run.meta.format
        predicted: dict[tuple[str, int], Any] = {}
        read: dict[tuple[str, int], dict] = {}
        for f in run.frames():
            predicted[(f.clip, f.number)] = f.quad
            if fields and f.fields:
                read[(f.clip, f.number)] = f.fields
        done = [c.clip for c in run.clips("done")]
    if dataset_dir is None:
        raise LedgerError("the run does not say which dataset it ran on", path=run_dir)
    dataset = discover(dataset_dir, dataset_format)  # as the run read it
    templates = {d.name: d.template_image for d in dataset.documents}
    for clip_id in done:
        try:
            clip = dataset.clip(clip_id)
        except MidvBatchError:
            continue  # gone from the dataset since the run
        truths = list(clip_frame_truths(clip))
        in_frames = {}
        if fields:
            try:
                in_frames = clip_fields(clip, [t.number for t in truths])
            except MidvBatchError:
                in_frames = {}  # its template cannot be read: the frames go without fields (validate says why)
        for truth in truths:
            yield {
                "id": truth.id,
                "clip": clip,
                "frame": truth.number,
                "width": truth.width,
                "height": truth.height,
                "file_name": f"{clip.document}/images/{clip.code}/{truth.id}.tif",
                "truth": truth.quad,
                "subsets": truth.subsets,
                "predicted": predicted.get((clip_id, truth.number)),
                "template": templates.get(clip.document),
                "fields": in_frames.get(truth.number, {}),
                "read": read.get((clip_id, truth.number), {}),
            }


def _bbox(points, width: int, height: int) -> list[float]:
    xs = [min(max(p[0], 0), width) for p in points]
    ys = [min(max(p[1], 0), height) for p in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def coco_document(run_dir: str | Path, predictions: bool = False, fields: bool = False) -> dict:
    """Return COCO instance segmentation of the run's frames: ground truth, or the predicted quads.

    As the `midv500` package writes it: per frame an image (file_name DOC/images/CC/CCDD_KK.tif,
    width, height) and an annotation with `segmentation` the quad as given (unclipped), `bbox`
    clipped to the frame and `area` the bbox's. With `fields`, each text field in the frame
    is an annotation of category ``text_field`` too, its quad carried from the template
    through the ground-truth document quad, ``attributes`` its name and true value (with
    `predictions`: its name and what the processor read there, ``text`` and ``confidence``;
    a field it did not read is left out).
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for frame in _annotated_frames(run_dir, fields):
        image_id = len(images)
        images.append(
            {"file_name": frame["file_name"], "height": frame["height"], "width": frame["width"], "id": image_id}
        )
        points = frame["predicted"] if predictions else frame["truth"].to_list()
        if points:
            annotations.append(_coco_annotation(len(annotations), image_id, COCO_CATEGORY, points, frame))
        for name, field in frame["fields"].items():
            attributes = _field_attributes(name, field, frame["read"].get(name), predictions)
            if attributes is not None:
                annotation = _coco_annotation(
                    len(annotations), image_id, COCO_FIELD_CATEGORY, field.quad.to_list(), frame
                )
                annotations.append({**annotation, "attributes": attributes})
    categories = [COCO_CATEGORY, COCO_FIELD_CATEGORY] if fields else [COCO_CATEGORY]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco_annotation(number: int, image_id: int, category: dict, points: list, frame: dict) -> dict[str, Any]:
    bbox = _bbox(points, frame["width"], frame["height"])
    return {
        "iscrowd": 0,
        "image_id": image_id,
        "category_id": category["id"],
        "ignore": 0,
        "id": number,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "segmentation": [[v for p in points for v in p]],
    }


def _field_attributes(name: str, field: Any, read: dict | None, predictions: bool) -> dict | None:
    """A field annotation's attributes: its truth (None: a photo, signature or empty field), or what was read."""
    if not predictions:
        return {"field": name, "value": field.value, "has_text": field.has_text}
    if read is None or read.get("missing"):
        return None
    return {"field": name, "text": read["text"], "confidence": read["confidence"]}


def smartengines_report(run_dir: str | Path) -> list[dict]:
    """Return the report.json records the reference evaluation (run_stat.py) reads, one per frame."""
    from midvbatch.scoring import document_template_size

    records, sizes = [], {}
    for frame in _annotated_frames(run_dir):
        document = frame["clip"].document
        if document not in sizes:
            sizes[document] = list(document_template_size(document, frame["template"]))
        predicted = frame["predicted"]
        records.append(
            {
                "origin_image_path": frame["file_name"],
                "size": [frame["width"], frame["height"]],
                "template_size": sizes[document],
                "ground_truth_quad": frame["truth"].to_list(),
                "system_result_quad_exists": bool(predicted),
                "system_result_quad": predicted or [],
            }
        )
    return records


def runlist(run_dir: str | Path, subset: str) -> list[str]:
    """Return the ids (CCDD_KK) of the run's frames in a visibility subset, in the runlists' format."""
    from midvbatch.dataset.visibility import SUBSETS

    if subset not in SUBSETS:
        raise LedgerError(f"unknown subset {subset!r} (one of {', '.join(SUBSETS)})")
    return [f["id"] for f in _annotated_frames(run_dir) if subset in f["subsets"]]
