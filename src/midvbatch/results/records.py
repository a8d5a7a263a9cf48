"""The typed records of a run folder: a run's identity, its clips, its frames.

They hold what the ledger holds, nothing more: a frame is recorded only once its clip is
done (a clip's frames and its ``done`` mark are committed together), so a frame has no
error of its own; a clip that failed says why in its ``error_class`` and ``error``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midvbatch.dataset.catalog import CATALOGS, Catalog, ClipKind
from midvbatch.dataset.formats import get_format
from midvbatch.errors import MidvBatchError
from midvbatch.pipeline.prediction import read_stored
from midvbatch.scoring import FrameScore
from midvbatch.scoring.text import field_scores


def clip_kinds(format: str | None) -> Callable[[str], ClipKind | None]:
    """Return code -> ClipKind ('TA' -> table, Apple iPhone 5) in the catalog of the run's dataset
    `format`, None for a code it does not know or a format without a catalog.

    The catalog is looked up once and each code resolved once (a report resolves every
    frame's). Runs of an earlier midvbatch did not record their format (None): the first
    catalog that knows the code answers, as it did then.
    """
    catalogs: tuple[Catalog, ...] = tuple(CATALOGS.values())
    if format is not None:
        try:
            catalog = get_format(format).catalog
        except MidvBatchError:  # a plugin format no longer installed
            catalog = None
        catalogs = (catalog,) if catalog is not None else ()

    @functools.cache
    def kind(code: str) -> ClipKind | None:
        return next((k for c in catalogs if (k := c.clip_kind(code)) is not None), None)

    return kind


def _whole(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores as stored, their text fields' records made whole (the ledger keeps them short: field_scores)."""
    if "fields" in scores:
        stream = bool(scores.get("stream"))
        scores["fields"] = {name: field_scores(record, stream) for name, record in scores["fields"].items()}
    return scores


@dataclass(frozen=True)
class RunMeta:
    """A run's identity: what ran on what.

    `dataset` is the dataset folder as the run recorded it (absolute), `processor` the
    --processor value or the pipeline's name; `run_id` is None for a folder an earlier
    midvbatch wrote without a marker.
    """

    run_dir: str  # as given to open_run
    run_id: str | None
    dataset: str | None
    processor: str | None
    fingerprint: str | None  # hash of the options that change results (see RunConfig.result_fingerprint)
    created: float | None  # when the run folder was made, seconds since the epoch
    version: str | None  # the midvbatch that made it
    format: str | None = None  # the dataset format the run read the dataset with; None: not recorded (older runs)


@dataclass(frozen=True)
class FrameResult:
    """One annotated frame of a done clip: the processor's output, its time, its scores.

    `scores` is None when the frame was not scored (the processor returns neither ``quad``
    nor ``fields``, or the frame has no ground truth). `iou`, `iou_gt`, `mean_iou`, `min_d`
    and `correct` are None when the quad was not scored; `min_d` is ``inf`` when no
    homography exists. `fields` holds the text fields scored (empty when none were).
    """

    clip: str  # clip id, CCDD for MIDV
    document: str
    code: str  # clip code, "TA"
    number: int  # 1-based annotated frame number
    time: float | None  # seconds from the clip's start of the decoded frame
    seconds: float | None  # the processor's time on this frame
    result: Any  # what process_frame returned, as stored (JSON)
    scores: dict[str, Any] | None = field(
        default=None, repr=False
    )  # iou, iou_gt, ..., correct, subsets; fields, empty_fields

    @property
    def id(self) -> str:
        """The frame's name as the dataset gives it: CCDD_KK."""
        return f"{self.clip}_{self.number:02d}"

    @property
    def quad(self) -> list[list[float]] | None:
        """The predicted quad, [[x, y] x 4], or None when the processor returned none."""
        return self.result.get("quad") if isinstance(self.result, dict) else None

    @property
    def _located(self) -> dict[str, Any] | None:
        """The scores when the quad was scored."""
        s = self.scores
        return s if s is not None and "iou" in s else None

    @property
    def score(self) -> FrameScore | None:
        """The four MIDV-500 scores, or None when the quad was not scored."""
        s = self._located
        return None if s is None else FrameScore(s["iou"], s["iou_gt"], s["mean_iou"], s["min_d"])

    @property
    def iou(self) -> float | None:
        """IoU of prediction and ground truth in the frame."""
        s = self._located
        return None if s is None else s["iou"]

    @property
    def iou_gt(self) -> float | None:
        """IoU in the template's coordinates: the MIDV-500 headline metric."""
        s = self._located
        return None if s is None else s["iou_gt"]

    @property
    def mean_iou(self) -> float | None:
        """The mean_iou metric of the MIDV-500 protocol."""
        s = self._located
        return None if s is None else s["mean_iou"]

    @property
    def min_d(self) -> float | None:
        """The largest corner distance relative to the template's diagonal, corners matched best."""
        s = self._located
        return None if s is None else s["min_d"]

    @property
    def correct(self) -> bool | None:
        """Whether iou_gt passes 0.9."""
        s = self._located
        return None if s is None else s.get("correct")

    @property
    def subsets(self) -> tuple[str, ...]:
        """The visibility subsets the frame's ground truth belongs to (empty when not scored)."""
        return tuple((self.scores or {}).get("subsets", ()))

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """The text fields scored, by name: truth, text, confidence, type, correct, distance, ngld, cer, missing."""
        return (self.scores or {}).get("fields", {})

    @classmethod
    def from_row(cls, row: Any, result: bool = True) -> FrameResult:
        """Build from a row of Ledger.frame_results(); without `result`, the processor's output is not read (None):
        for what needs the scores only."""
        scores = row["scores"]
        return cls(
            row["clip"],
            row["document"],
            row["code"],
            row["frame"],
            row["time"],
            row["seconds"],
            read_stored(row["result"]) if result else None,
            _whole(read_stored(scores)) if scores is not None else None,
        )


@dataclass(frozen=True)
class ClipResult:
    """One clip of a run: where it stands, how long it took, and why it failed if it did.

    `state` is one of pending, running, done, failed (will be retried), dead (will not).
    Timings and peak memory are those of its last attempt; `stage_seconds` is the wall
    time per stage of a done clip (decode, process_frame, score, ...).
    """

    clip: str
    document: str
    code: str
    condition: str | None  # "table", from the catalog; None outside MIDV structure
    device: str | None  # "Apple iPhone 5"
    video: str | None
    state: str
    attempts: int
    frames: int  # annotated frames the clip should give
    frames_done: int  # frames recorded
    stage: str | None  # the stage it was at (running) or failed in
    error_class: str | None  # transient, permanent, error, crash, timeout, memory, invalid ...
    error: str | None  # the failure's one-line reason
    exitcode: int | None
    signal: int | None
    traceback: str | None = field(repr=False)
    started_at: float | None  # seconds since the epoch
    finished_at: float | None
    seconds: float | None  # wall time of the last attempt
    cpu_seconds: float | None
    peak_rss: int | None  # the worker's peak resident memory, bytes
    stage_seconds: dict[str, float]
    result: Any  # what process_clip (or finish_clip) returned; None otherwise
    scores: dict[str, Any] | None = field(default=None, repr=False)  # the result's text fields scored, as for a frame
    not_before: float | None = None  # a failed clip: when it may be retried (seconds since the epoch)

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """The clip result's text fields scored, by name, as FrameResult.fields (empty when none were)."""
        return (self.scores or {}).get("fields", {})

    @classmethod
    def from_row(cls, row: Any, kind: ClipKind | None = None) -> ClipResult:
        """Build from a row of Ledger.clip_rows(); `kind` is its clip code resolved (see clip_kinds)."""
        clip_result = row["clip_result"]
        return cls(
            row["clip"],
            row["document"],
            row["code"],
            kind.condition.name if kind else None,
            kind.device.name if kind else None,
            row["video"],
            row["state"],
            row["attempts"],
            row["frames"],
            row["frames_done"],
            row["stage"],
            row["error_class"],
            row["error"],
            row["exitcode"],
            row["signal"],
            row["traceback"],
            row["started_at"],
            row["finished_at"],
            row["wall_seconds"],
            row["cpu_seconds"],
            row["peak_rss"],
            json.loads(row["stage_seconds"] or "{}"),
            read_stored(clip_result) if clip_result is not None else None,
            _whole(read_stored(row["clip_scores"])) if row["clip_scores"] is not None else None,
            row["not_before"],
        )
