"""Put one clip through a processor: read frames, call it, collect JSON-ready results.

Runs inside a worker (or inline). Never raises: every outcome, failure included, comes
back as a :class:`ClipOutcome`, small enough to cross a process boundary.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midvbatch.dataset.formats import get_format
from midvbatch.dataset.groundtruth import Template
from midvbatch.errors import MidvBatchError, PermanentError, ProcessorError, TransientError, shown
from midvbatch.pipeline.prefetch import Prefetch
from midvbatch.pipeline.processor import ClipInfo, Frame
from midvbatch.video.image import annotated_frames as read_frames
from midvbatch.video.reader import AnnotatedFrame

TRACEBACK_TAIL = 3000  # characters of traceback kept


@dataclass(frozen=True)
class TaskSpec:
    """The small description of one clip's work that a worker receives."""

    task_id: int
    attempt: int
    clip: str
    document: str
    code: str
    condition: str | None
    device: str | None
    video: str | None
    ground_truth: dict[int, str]  # frame number -> JSON path
    frames: int
    fps: float
    processor: str  # name or MODULE:FACTORY
    options: dict[str, Any]
    output_dir: str | None  # temporary folder for artifacts
    decode_threads: int | None = None  # FFmpeg threads; None: FFmpeg decides
    template_size: tuple[int, int] | None = None  # (w, h) for the scores; None: an ID-1 card
    working_dir: str | None = None  # the orchestrator's working directory: MODULE of MODULE:FACTORY is found there
    dataset_format: str = "midv500"  # the dataset format's registry name: it reads the ground truth
    frame_numbers: tuple[int, ...] = ()  # annotated frames by number (1-based, decode order); () : by time
    images: dict[int, str] = field(default_factory=dict)  # frame number -> picture, read when there is no video
    frame_digits: int = 2  # digits of a frame number in frame ids (the clip's Clip.frame_digits)
    template: str | None = None  # where its text fields are (Clip.template, read by the format); None: no fields
    batch_size: int = 1  # annotated frames per process_batch call
    prefetch: int = 0  # frames decoded ahead in a thread while the processor works; 0: none


@dataclass
class ClipOutcome:
    """What became of one clip: results, or the failure with its reason."""

    task_id: int
    ok: bool
    frames: list[dict] = field(default_factory=list)  # {"frame", "time", "seconds", "result"[, "scores"]}
    clip_result: dict | None = None
    clip_scores: dict | None = None  # the clip result's text fields scored: {"fields": {...}, "empty_fields": n}
    notes: list[str] = field(default_factory=list)  # what was left unscored and why (a malformed field ...)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    stage: str | None = None  # where it failed
    error_class: str | None = None  # transient | permanent | timeout | crash | memory ...
    error: str | None = None
    traceback: str | None = None
    exitcode: int | None = None
    signal: int | None = None
    pid: int | None = None


def _check_json(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProcessorError(f"{what} returned a value that cannot be stored as JSON: {exc}") from None
    return value


def _normal_quad(result: dict) -> dict:
    """Store a predicted quad as 4 [x, y] corners; one that is not 4 finite corners as None (kept in quad_raw)."""
    from midvbatch.scoring import as_corners

    raw = result["quad"]
    if raw is None:
        return result
    corners = as_corners(raw)
    fixed = dict(result)
    if corners is None:
        fixed["quad"], fixed["quad_raw"] = None, str(raw)[:200]  # as text: it may hold NaN
    else:
        fixed["quad"] = [[float(x), float(y)] for x, y in corners]
    return fixed


def _score(predicted: Any, truth, shape: tuple[int, ...], clip: ClipInfo) -> dict:
    """Score a predicted quad against the frame's ground truth (the MIDV-500 protocol)."""
    from midvbatch.dataset.visibility import subsets
    from midvbatch.scoring import ID1, score_frame

    size = clip.template_size or ID1  # the orchestrator sends it; an ID-1 card for direct callers
    scores = score_frame(predicted, truth, (shape[1], shape[0]), size).to_dict()
    scores["subsets"] = subsets(truth, shape[1], shape[0])
    return scores


class _Notes:
    """What a clip left unscored, each message once with the frames it came from counted."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, message: str) -> None:
        self.counts[message] = self.counts.get(message, 0) + 1

    def lines(self) -> list[str]:
        return [m if n == 1 else f"{m} (in {n} frames)" for m, n in self.counts.items()]


def _read_templates(spec: TaskSpec, numbers: list[int], notes: _Notes) -> dict[int, Template]:
    """The text fields of each frame (by the dataset's format); {} with a note when they cannot be read."""
    if not spec.template:
        return {}
    try:
        templates = get_format(spec.dataset_format).read_templates(spec.template, numbers)
    except MidvBatchError as exc:
        notes.add(f"text fields not scored: {exc}")
        return {}
    for template in {id(t): t for t in templates.values()}.values():
        for problem in template.problems:
            notes.add(f"{template.path}: {problem}; scored without it")
    return templates


def _read_fields(
    value: Any, template: Template | None, notes: _Notes
) -> tuple[dict[str, tuple[str, float | None]], set[str]]:
    """Check the "fields" a processor returned: (field name -> (text, confidence), names whose result is
    malformed). What is malformed is noted; such a field is left out of the frame's scores."""
    if not isinstance(value, dict):
        notes.add(f'"fields" must be an object of field name -> text, got {type(value).__name__}; not scored')
        return {}, set(template.fields) if template is not None else set()
    read: dict[str, tuple[str, float | None]] = {}
    malformed: set[str] = set()
    for name, given in value.items():
        if template is not None and name not in template.fields:
            known = ", ".join(template.fields) or "none"
            notes.add(f"unknown field {shown(name, 40)} returned (the document has: {known}); ignored")
            continue
        text, confidence = (given.get("text"), given.get("confidence")) if isinstance(given, dict) else (given, None)
        if not isinstance(text, str):
            notes.add(f"field {shown(name, 40)}: the result {shown(given, 40)} is not text; field not scored")
            malformed.add(name)
            continue
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))):
            notes.add(f"field {shown(name, 40)}: confidence {shown(confidence, 40)} is not a number; ignored")
            confidence = None
        read[name] = (text, float(confidence) if confidence is not None else None)
    return read, malformed


def _score_text(result: Any, template_of: Callable[[], Template | None], notes: _Notes) -> dict | None:
    """Score a result's "fields" against its template (`template_of()`, asked only then):
    {"fields": {...}, "empty_fields": n}, or None (nothing to score)."""
    from midvbatch.scoring.text import empty_fields, score_fields

    if not isinstance(result, dict) or "fields" not in result:
        return None
    template = template_of()
    read, malformed = _read_fields(result["fields"], template, notes)
    if template is None:
        return None
    return {"fields": score_fields(read, template, skip=malformed), "empty_fields": empty_fields(template)}


class _Templates(Mapping[int, Template]):
    """A clip's templates by frame number, read on first use: a processor that reads no field and
    returns none costs no template read (a JSON file and a picture's header per clip)."""

    def __init__(self, read: Callable[[], dict[int, Template]]) -> None:
        self._read: Callable[[], dict[int, Template]] | None = read
        self._templates: dict[int, Template] = {}

    def _loaded(self) -> dict[int, Template]:
        if self._read is not None:
            self._templates, self._read = self._read(), None
        return self._templates

    def __getitem__(self, number: int) -> Template:
        return self._loaded()[number]

    def __iter__(self) -> Iterator[int]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def _hidden(templates: Mapping[int, Template]) -> dict[int, Template]:
    """The templates without their values (each distinct template hidden once)."""
    hidden: dict[int, Template] = {}
    return {n: hidden.setdefault(id(t), t.without_values()) for n, t in templates.items()}


def _one_template(templates: Mapping[int, Template]) -> Template | None:
    """The template every frame of the clip shows (a video of one document); None for pictures of many."""
    distinct = {id(t): t for t in templates.values()}
    return next(iter(distinct.values())) if len(distinct) == 1 else None


def _batched(processor: Any, batch_size: int) -> bool:
    """Whether frames go to process_batch: it is the processor's only frame method, or batches were asked for."""
    if not hasattr(processor, "process_batch"):
        return False
    return batch_size > 1 or not hasattr(processor, "process_frame")


def _batch_results(results: Any, frames: int) -> list[Any]:
    """Check what process_batch returned: one result per frame given, in order; ProcessorError otherwise."""
    if not isinstance(results, (list, tuple)):
        raise ProcessorError(
            f"process_batch must return a list of results, one per frame, not {type(results).__name__}"
        )
    if len(results) != frames:
        raise ProcessorError(f"process_batch returned {len(results)} results for {frames} frames")
    return list(results)


def _frame_record(
    decoded: AnnotatedFrame,
    result: Any,
    seconds: float,
    method: str,
    truth: dict,
    templates: Mapping[int, Template],
    clip: ClipInfo,
    notes: _Notes,
) -> dict:
    """A frame's record: its result as stored, its time, and its scores (quad and text fields) when it has any."""
    if isinstance(result, dict) and "quad" in result:
        result = _normal_quad(result)
    record = {
        "frame": decoded.number,
        "time": round(decoded.time, 6),
        "seconds": round(seconds, 6),
        "result": _check_json(result, method),
    }
    scores: dict[str, Any] = {}
    if isinstance(result, dict) and "quad" in result and decoded.number in truth:
        scores = _score(result["quad"], truth[decoded.number], decoded.image.shape, clip)
    text = _score_text(result, functools.partial(templates.get, decoded.number), notes)
    if text is not None:
        scores.update(text)
    if scores:
        record["scores"] = scores
    return record


def _classify(exc: BaseException) -> str:
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, (MemoryError,)):
        return "memory"
    if isinstance(exc, OSError):
        return "transient"
    return "error"  # unknown: retried until attempts run out


def annotated_frames(spec: TaskSpec) -> Generator[AnnotatedFrame, None, None]:
    """The annotated frames of a task's clip: decoded from its video (by time or by number), else read from its
    pictures; a VideoError (permanent: not retried) when it has neither."""
    return read_frames(
        spec.video or None,
        count=spec.frames,
        fps=spec.fps,
        numbers=spec.frame_numbers,
        images={int(k): v for k, v in spec.images.items()},
        threads=spec.decode_threads,
    )


def run_clip(
    spec: TaskSpec,
    processor: Any,
    report: Callable[[int, str], None] = lambda task, stage: None,
    clock: Callable[[], float] = time.perf_counter,
) -> ClipOutcome:
    """Run `processor` on the clip of `spec` and return the outcome; never raises."""
    outcome = ClipOutcome(spec.task_id, ok=False)
    stages = outcome.stage_seconds
    start = clock()
    cpu_start = time.process_time()
    stage = "ground_truth"
    notes = _Notes()
    try:
        report(spec.task_id, stage)
        truth = get_format(spec.dataset_format).read_quads(spec.ground_truth) if spec.ground_truth else {}
        numbers = list(spec.frame_numbers) or list(range(1, spec.frames + 1))
        templates = _Templates(lambda: _read_templates(spec, numbers, notes))
        reveal = bool(getattr(processor, "field_values", False))
        clip = ClipInfo(
            id=spec.clip,
            document=spec.document,
            code=spec.code,
            condition=spec.condition,
            device=spec.device,
            video=Path(spec.video) if spec.video else None,
            frames=spec.frames,
            fps=spec.fps,
            ground_truth=truth,
            output_dir=Path(spec.output_dir) if spec.output_dir else None,
            template_size=spec.template_size,
            frame_digits=spec.frame_digits,
            templates=templates if reveal else _Templates(lambda: _hidden(templates)),
        )
        stages[stage] = clock() - start

        def clip_result(method: str) -> None:  # process_clip, or finish_clip after the frames
            nonlocal stage
            stage = method
            report(spec.task_id, stage)
            t0 = clock()
            outcome.clip_result = _check_json(getattr(processor, method)(clip), method)
            stages[stage] = clock() - t0

        if hasattr(processor, "process_clip"):
            clip_result("process_clip")
        else:
            method = "process_batch" if _batched(processor, spec.batch_size) else "process_frame"
            size = spec.batch_size if method == "process_batch" else 1
            decode = process = scoring = 0.0
            t0 = clock()
            frames = annotated_frames(spec) if not spec.prefetch else Prefetch(annotated_frames(spec), spec.prefetch)
            number = 0
            try:
                while number < spec.frames:
                    batch: list[AnnotatedFrame] = []
                    stage = "decode"
                    while len(batch) < size and number < spec.frames:
                        number += 1
                        report(spec.task_id, f"decode {number}/{spec.frames}")
                        batch.append(next(frames))
                    t1 = clock()
                    decode += t1 - t0
                    stage = method
                    report(spec.task_id, f"{method} {number}/{spec.frames}")
                    given = [Frame(d.image, d.number, d.time, clip) for d in batch]
                    if method == "process_batch":
                        results = _batch_results(processor.process_batch(given), len(given))
                    else:
                        results = [processor.process_frame(given[0])]
                    t0 = clock()
                    process += t0 - t1
                    stage = "score"
                    for decoded, result in zip(batch, results, strict=True):
                        outcome.frames.append(
                            _frame_record(
                                decoded, result, (t0 - t1) / len(batch), method, truth, templates, clip, notes
                            )
                        )
                    t2 = clock()
                    scoring += t2 - t0
                    t0 = t2
            finally:
                frames.close()  # a processor that raised leaves no decoder (nor read-ahead thread) behind
            stages["decode"], stages[method] = decode, process
            if scoring:
                stages["score"] = scoring
            if hasattr(processor, "finish_clip"):
                clip_result("finish_clip")
        outcome.clip_scores = _score_text(outcome.clip_result, lambda: _one_template(templates), notes)
        outcome.ok = True
        outcome.stage = None
    except BaseException as exc:  # everything, so a worker never dies of a processor's error
        if isinstance(exc, KeyboardInterrupt):
            raise  # workers ignore SIGINT: this is a real Ctrl-C in an inline run, for the orchestrator
        outcome.stage = stage
        outcome.error_class = _classify(exc)
        if isinstance(exc, SystemExit):  # sys.exit() in a processor ends its clip, not midvbatch
            outcome.error = f"the processor called sys.exit({exc.code!r})"
        else:
            outcome.error = str(exc) if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}"
        outcome.traceback = traceback.format_exc()[-TRACEBACK_TAIL:]
    outcome.notes = notes.lines()
    outcome.wall_seconds = clock() - start
    outcome.cpu_seconds = time.process_time() - cpu_start
    return outcome
