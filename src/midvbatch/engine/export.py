"""Export a run's results: one record per frame (frame processors) or per clip (clip processors)."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from midvbatch.errors import LedgerError, MidvBatchError
from midvbatch.fileio import atomic_output
from midvbatch.results.reader import open_run
from midvbatch.runfolder import check_output_path

FORMATS = ("jsonl", "csv", "coco", "smartengines")


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


def _flatten(record: dict) -> dict:
    flat = {k: v for k, v in record.items() if k not in ("result", "scores")}
    for key, value in (record.get("scores") or {}).items():
        flat[f"scores.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    result = record["result"]
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
) -> int:
    """Write the run's results to `out` (default stdout); return the record count.

    Formats: jsonl and csv (one record per frame), coco (ground truth, or with
    `predictions` the predicted quads), smartengines (report.json for the reference
    evaluation; with `subset`, that subset's runlist instead).
    """
    if fmt not in FORMATS:
        raise LedgerError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    if not Path(run_dir).is_dir():
        raise LedgerError("no such run folder", path=run_dir)
    if out:
        check_output_path(out)  # never over the run folder's own files
    if fmt == "smartengines" and subset is not None:
        ids = runlist(run_dir, subset)
        text = "".join(f"{i}\n" for i in ids)
        count = len(ids)
    elif fmt == "coco":
        document = coco_document(run_dir, predictions)
        text, count = json.dumps(document), len(document["annotations"])
    elif fmt == "smartengines":
        records = smartengines_report(run_dir)
        text, count = json.dumps(records, indent=1), len(records)
    else:
        text = None
    if not out:
        return _write_results(sys.stdout, run_dir, fmt, text, count if text is not None else 0)
    try:
        with atomic_output(
            out, "w", into_special=True, newline="", encoding="utf-8"
        ) as stream:  # a reader never sees half a file
            return _write_results(stream, run_dir, fmt, text, count if text is not None else 0)
    except OSError as exc:
        raise LedgerError(f"cannot write: {exc.strerror or exc}", path=out) from None


def _write_results(stream: IO[str], run_dir: str | Path, fmt: str, text: str | None, count: int) -> int:
    if text is not None:
        stream.write(text if text.endswith("\n") or not text else text + "\n")
    elif fmt == "jsonl":
        count = 0
        for record in result_records(run_dir):
            stream.write(json.dumps(json_safe(record), ensure_ascii=False) + "\n")
            count += 1
    else:
        rows = [_flatten(r) for r in result_records(run_dir)]  # columns come from every result
        columns: dict[str, None] = dict.fromkeys(["clip", "document", "frame", "time", "seconds"])
        for row in rows:
            columns.update(dict.fromkeys(row))
        writer = csv.DictWriter(stream, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        count = len(rows)
    return count


# ---------------------------------------------------------------- formats of other tools

COCO_CATEGORY = {"name": "id_card", "id": 1}


def _annotated_frames(run_dir: str | Path) -> Iterator[dict]:
    """Yield, for every scored or done frame of the run: ids, sizes, ground truth, prediction, subsets."""
    from midvbatch.dataset import clip_frame_truths, discover

    with open_run(run_dir) as run:
        dataset_dir, dataset_format = run.meta.dataset, run.meta.format
        predicted: dict[tuple[str, int], Any] = {(f.clip, f.number): f.quad for f in run.frames()}
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
        for truth in clip_frame_truths(clip):
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
            }


def _bbox(points, width: int, height: int) -> list[float]:
    xs = [min(max(p[0], 0), width) for p in points]
    ys = [min(max(p[1], 0), height) for p in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def coco_document(run_dir: str | Path, predictions: bool = False) -> dict:
    """Return COCO instance segmentation of the run's frames: ground truth, or the predicted quads.

    As the `midv500` package writes it: per frame an image (file_name DOC/images/CC/CCDD_KK.tif,
    width, height) and an annotation with `segmentation` the quad as given (unclipped), `bbox`
    clipped to the frame and `area` the bbox's.
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for frame in _annotated_frames(run_dir):
        image_id = len(images)
        images.append(
            {"file_name": frame["file_name"], "height": frame["height"], "width": frame["width"], "id": image_id}
        )
        points = frame["predicted"] if predictions else frame["truth"].to_list()
        if not points:
            continue
        bbox = _bbox(points, frame["width"], frame["height"])
        annotations.append(
            {
                "iscrowd": 0,
                "image_id": image_id,
                "category_id": 1,
                "ignore": 0,
                "id": len(annotations),
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "segmentation": [[v for p in points for v in p]],
            }
        )
    return {"images": images, "annotations": annotations, "categories": [COCO_CATEGORY]}


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
