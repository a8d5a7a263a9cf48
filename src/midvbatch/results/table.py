"""A run's results as a table: one row per frame (or per text field), the form pandas, polars and DuckDB load.

`columns(run, fields=False)` gives the table as plain columns (name -> list), read in one pass
over the run's frames; `RunResults.to_pandas()` makes a DataFrame of it and `export --format
parquet` a Parquet file (pyarrow). The columns are documented in docs/api.md (FRAME_COLUMNS,
FIELD_COLUMNS below).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Protocol

from midvbatch.errors import ConfigError
from midvbatch.results.figures import condition_label, device_label
from midvbatch.results.records import ClipResult, FrameResult, RunMeta, clip_kinds
from midvbatch.results.stopping import filled_expected


class RunResults(Protocol):
    """What the table reads of a run (results.reader.RunResults, which imports this module)."""

    meta: RunMeta

    def frames(self) -> Iterator[FrameResult]: ...

    def clips(self, states: str) -> Iterator[ClipResult]: ...


# name -> what it holds, in the table's order
FRAME_COLUMNS: dict[str, str] = {
    "clip": "the clip's id (TA01; a plain folder's video path)",
    "document": "the document type (01_alb_id)",
    "condition": "the clip's condition as the report groups it ('T (table)'; '-' without a catalog)",
    "device": "the phone ('A (Apple iPhone 5)')",
    "collection": "MIDV-2020's collection (clips, photo, scan_upright, ...; '-' elsewhere)",
    "frame": "the annotated frame's number",
    "time": "seconds from the clip's start of the decoded frame",
    "seconds": "the processor's time on the frame",
    "quad": "the predicted quad as JSON ([[x, y] x 4]), or null",
    "scored": "whether the quad was scored (the processor returned one, and the frame has ground truth)",
    "missing": "scored, and no prediction: the protocol's failure",
    "iou": "IoU of prediction and truth in the frame",
    "iou_gt": "IoU in the template's coordinates (the headline metric)",
    "mean_iou": "the mean_iou metric",
    "min_d": "the largest corner distance relative to the template's diagonal (null where none is defined)",
    "correct": "iou_gt >= 0.9: the headline's verdict",
    "subsets": "the visibility subsets the frame belongs to, comma-separated",
}
FIELD_COLUMNS: dict[str, str] = {
    "clip": FRAME_COLUMNS["clip"],
    "document": FRAME_COLUMNS["document"],
    "condition": FRAME_COLUMNS["condition"],
    "device": FRAME_COLUMNS["device"],
    "collection": FRAME_COLUMNS["collection"],
    "frame": "the annotated frame's number; null for a clip's own (combined) result",
    "field": "the field's name",
    "type": "its type (date, number, name, mrz, other)",
    "truth": "its true value",
    "text": "what was read ('' where nothing was)",
    "confidence": "the reading's confidence, where given",
    "correct": "the reading equals the truth once both are normalized",
    "distance": "Levenshtein distance of the normalized strings",
    "ngld": "normalized generalized Levenshtein distance",
    "cer": "character error rate",
    "missing": "the field was not returned",
    "combined": "the clip's readings so far combined with their per-character alternatives (null: not worked out)",
    "expected": "the expected-distance estimate D_n after this frame (null at the first reading)",
}


def columns(run: RunResults, fields: bool = False) -> dict[str, list[Any]]:
    """The run's table as columns: one row per frame of its done clips (FRAME_COLUMNS), or with `fields` one per
    text field scored, of frames and then of clips' own results (FIELD_COLUMNS)."""
    kind = clip_kinds(run.meta.format)
    table: dict[str, list[Any]] = {name: [] for name in (FIELD_COLUMNS if fields else FRAME_COLUMNS)}
    groups: dict[str, tuple[str, str, str]] = {}
    readings: dict[tuple[str, str], int] = {}  # (clip, field) -> readings so far, for D_n where not stored

    def where(clip: str, code: str) -> tuple[str, str, str]:
        if clip not in groups:
            k = kind(code)
            groups[clip] = (condition_label(k), device_label(k), (k.collection if k is not None else None) or "-")
        return groups[clip]

    for frame in run.frames():
        condition, device, collection = where(frame.clip, frame.code)
        lead = {"clip": frame.clip, "document": frame.document, "condition": condition, "device": device,
                "collection": collection}  # fmt: skip
        if fields:
            for name, record in frame.fields.items():
                key = (frame.clip, name)
                readings[key] = readings.get(key, 0) + (not record["missing"])
                expected = filled_expected(record, readings[key])
                _add(table, {**lead, "frame": frame.number, "field": name, **_field(record), "expected": expected})
            continue
        score = frame.score
        scores = frame.scores or {}
        _add(
            table,
            {
                **lead,
                "frame": frame.number,
                "time": frame.time,
                "seconds": frame.seconds,
                "quad": json.dumps(frame.quad) if frame.quad is not None else None,
                "scored": score is not None,
                "missing": score is not None and score.min_d is None,
                "iou": frame.iou,
                "iou_gt": frame.iou_gt,
                "mean_iou": frame.mean_iou,
                "min_d": frame.min_d if frame.min_d is not None and math.isfinite(frame.min_d) else None,
                "correct": scores.get("correct") if score is not None else None,
                "subsets": ",".join(frame.subsets),
            },
        )
    if fields:
        for clip in run.clips("done"):
            condition, device, collection = where(clip.clip, clip.code)
            for name, record in clip.fields.items():
                _add(table, {"clip": clip.clip, "document": clip.document, "condition": condition, "device": device,
                             "collection": collection, "frame": None, "field": name, **_field(record)})  # fmt: skip
    return table


def _field(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("type", "truth", "text", "confidence", "correct", "distance", "ngld",
                                             "cer", "missing", "combined")}  # fmt: skip


def _add(table: dict[str, list[Any]], row: dict[str, Any]) -> None:
    for name, values in table.items():
        values.append(row.get(name))


def to_pandas(run: RunResults, fields: bool = False) -> Any:
    """The run's table (columns) as a pandas DataFrame; ConfigError when pandas is not installed."""
    try:
        import pandas
    except ImportError:
        raise ConfigError("pandas is not installed: pip install 'midvbatch[tables]'") from None
    return pandas.DataFrame(columns(run, fields))


def arrow_table(run: RunResults, fields: bool = False) -> Any:
    """The run's table (columns) as a pyarrow Table; ConfigError when pyarrow is not installed."""
    try:
        import pyarrow
    except ImportError:
        raise ConfigError("pyarrow is not installed: pip install 'midvbatch[tables]'") from None
    return pyarrow.table(columns(run, fields))
