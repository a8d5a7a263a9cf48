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
from enum import StrEnum
from pathlib import Path
from typing import Any

from midvbatch.accelerators import is_out_of_memory
from midvbatch.dataset.formats import get_format
from midvbatch.dataset.groundtruth import Template
from midvbatch.dataset.visibility import subsets
from midvbatch.errors import (
    MidvBatchError,
    PermanentError,
    ProcessorError,
    TransientError,
    VideoError,
    shortage,
    shown,
)
from midvbatch.pipeline.prediction import Positions, storable, take_alternatives, valid_text
from midvbatch.pipeline.prefetch import Prefetch
from midvbatch.pipeline.processor import Capabilities, ClipInfo, Frame
from midvbatch.pipeline.spec import ClipOutcome, TaskSpec
from midvbatch.scoring import ID1, score_frame
from midvbatch.scoring.stream import FieldStreams
from midvbatch.scoring.text import empty_fields, levenshtein, normalize, score_fields
from midvbatch.video.frames import read_clip_frames
from midvbatch.video.reader import AnnotatedFrame

TRACEBACK_TAIL = 3000  # characters of traceback kept


def _check_json(value: Any, what: str, notes: _Notes) -> Any:
    """`value` as stored (pipeline/prediction.py); what was changed or left out is noted."""
    return storable(value, what, notes.add)


def _score(predicted: Any, truth, shape: tuple[int, ...], clip: ClipInfo) -> dict:
    """Score a predicted quad against the frame's ground truth (the MIDV-500 protocol)."""
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
        # (a confidence that is not a number from 0 to 1 was noted and left out as the result was stored)
        read[name] = (text, float(confidence) if isinstance(confidence, (int, float)) else None)
    return read, malformed


def _score_text(
    result: Any,
    template_of: Callable[[], Template | None],
    notes: _Notes,
    taken: Mapping[str, Positions | None] | None = None,
    streams: FieldStreams | None = None,
) -> dict | None:
    """Score a result's "fields" against its template (`template_of()`, asked only then):
    {"fields": {...}, "empty_fields": n}, or None (nothing to score). `taken`: the fields' alternatives
    (take_alternatives; None: malformed, that reading left out); with `streams`, each field's reading is
    also combined with the clip's frames before (see _stream)."""
    if not isinstance(result, dict) or "fields" not in result:
        return None
    template = template_of()
    read, malformed = _read_fields(result["fields"], template, notes)
    if template is None:
        return None
    taken = taken or {}
    malformed |= {name for name, positions in taken.items() if positions is None}
    scored = score_fields(read, template, skip=malformed)
    out: dict[str, Any] = {"fields": scored, "empty_fields": empty_fields(template)}
    if streams is not None and scored:
        for name, record in scored.items():
            _stream(record, streams, name, taken.get(name))
        out["stream"] = 1  # the fields carry where the clip stands (see _stream)
    return out


def _stream(record: dict[str, Any], streams: FieldStreams, name: str, positions: Positions | None) -> None:
    """Add to a field's scored `record` where the clip's frames so far stand, combined with their alternatives
    (scoring.stream): ``combined`` (where it is not this frame's text) with its ``combined_distance``, and
    ``expected`` (D_n) unless every reading so far was the same text (D_n is then 0.1 / (n + 1), n the field's
    readings so far: a good reader's fields cost nothing). A frame without the field adds no reading."""
    truth = record["truth"]
    if record.get("missing"):
        step = streams.last(name, truth)
    else:
        step = streams.add(name, truth, positions, record["text"])
    if step is None:
        return
    if step.text != record["text"]:
        record["combined"] = step.text
        record["combined_distance"] = levenshtein(normalize(step.text), normalize(truth))
    if not step.uniform and step.expected_distance is not None:
        record["expected"] = step.expected_distance


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


def _batched(capabilities: Capabilities, batch_size: int) -> bool:
    """Whether frames go to process_batch: it is the processor's only frame method, or batches were asked for."""
    if not capabilities.process_batch:
        return False
    return batch_size > 1 or not capabilities.process_frame


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
    streams: FieldStreams | None = None,
) -> dict:
    """A frame's record: its result as stored, its time, and its scores (quad and text fields) when it has any.

    The result and the scores go as the JSON text the ledger keeps: written here, in the worker, they cost the
    orchestrator nothing, and text crosses to it faster than the objects would."""
    result, taken = take_alternatives(result, notes.add)
    result = _check_json(result, method, notes)
    record = {
        "frame": decoded.number,
        "time": round(decoded.time, 6),
        "seconds": round(seconds, 6),
        "result": json.dumps(result),
    }
    scores: dict[str, Any] = {}
    if isinstance(result, dict) and "quad" in result and decoded.number in truth:
        scores = _score(result["quad"], truth[decoded.number], decoded.image.shape, clip)
    text = _score_text(result, functools.partial(templates.get, decoded.number), notes, taken, streams)
    if text is not None:
        scores.update(text)
    if scores:
        record["scores"] = json.dumps(scores)
    return record


def _classify(exc: BaseException) -> str:
    if is_out_of_memory(exc):
        return "oom"  # the device's memory: retried, on a fresh processor
    if shortage(exc):
        return "resources"  # the machine ran short of threads, processes, descriptors: the run waits, retries
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, (MemoryError,)):
        return "memory"
    if isinstance(exc, OSError):
        return "transient"
    return "error"  # unknown: retried until attempts run out


def spec_frames(spec: TaskSpec, pixels: bool = True) -> Generator[AnnotatedFrame, None, None]:
    """The annotated frames of a task's clip: decoded from its video (by time or by number), else read from its
    pictures; a VideoError (permanent: not retried) when it has neither. Without `pixels`: their numbers, times
    and sizes only (see video.frames.read_clip_frames), for a processor that reads no pixels."""
    return read_clip_frames(
        spec.video or None,
        count=spec.frames,
        fps=spec.fps,
        numbers=spec.frame_numbers,
        images={int(k): v for k, v in spec.images.items()},
        threads=spec.run.decode_threads,
        pixels=pixels,
    )


class _ClipState(StrEnum):
    """Where a clip of a task is: waiting, then reading (its frames arrive), then read (every frame arrived,
    some may wait in a batch), then done or failed."""

    WAITING = "waiting"
    READING = "reading"
    READ = "read"
    DONE = "done"
    FAILED = "failed"


_OPEN = (_ClipState.WAITING, _ClipState.READING, _ClipState.READ)


class _ClipRun:
    """One clip of a task on its way through the processor: its outcome is filled in as it goes (see _ClipState)."""

    def __init__(
        self,
        spec: TaskSpec,
        processor: Any,
        report: Callable[[int, str], None],
        clock: Callable[[], float],
        accelerator: str | None = None,
        capabilities: Capabilities | None = None,
    ):
        self.spec = spec
        self.accelerator = accelerator
        self.processor = processor
        self.capabilities = capabilities if capabilities is not None else Capabilities.of(processor)
        self.report = report
        self.clock = clock
        self.outcome = ClipOutcome(spec.task_id, ok=False)
        self.notes = _Notes()
        self.state = _ClipState.WAITING
        self.stage = "ground_truth"
        self.read = 0  # frames received
        self.waiting = 0  # frames received and not processed yet (in the batch being gathered)
        self.start = self.cpu_start = 0.0
        self.truth: dict = {}
        self.templates: Mapping[int, Template] = {}
        self.streams = FieldStreams()  # its text fields read frame after frame (scoring.stream)
        self.clip_alternatives: dict[str, Positions | None] = {}  # those of its clip result's fields

    @property
    def open(self) -> bool:
        """Still going: neither done nor failed."""
        return self.state in _OPEN

    def set_stage(self, stage: str, shown: str | None = None) -> None:
        self.stage = stage
        self.report(self.spec.task_id, shown or stage)

    def add_seconds(self, stage: str, seconds: float) -> None:
        stages = self.outcome.stage_seconds
        stages[stage] = stages.get(stage, 0.0) + seconds

    def begin(self) -> None:
        """Start the clip: read its ground truth and make its ClipInfo (raises what they raise)."""
        self.start, self.cpu_start = self.clock(), time.process_time()
        self.state = _ClipState.READING
        self.set_stage("ground_truth")
        spec = self.spec
        self.truth = get_format(spec.dataset_format).read_quads(spec.ground_truth) if spec.ground_truth else {}
        numbers = list(spec.frame_numbers) or list(range(1, spec.frames + 1))
        templates = self.templates = _Templates(lambda: _read_templates(spec, numbers, self.notes))
        reveal = self.capabilities.field_values
        self.clip = ClipInfo(
            id=spec.clip,
            document=spec.document,
            code=spec.code,
            condition=spec.condition,
            device=spec.device,
            video=Path(spec.video) if spec.video else None,
            frames=spec.frames,
            fps=spec.fps,
            ground_truth=self.truth,
            output_dir=Path(spec.output_dir) if spec.output_dir else None,
            template_size=spec.template_size,
            frame_digits=spec.frame_digits,
            templates=templates if reveal else _Templates(lambda: _hidden(templates)),
            accelerator=self.accelerator,
        )
        self.add_seconds("ground_truth", self.clock() - self.start)

    def call(self, method: str) -> None:
        """Ask the processor for the clip's own result (process_clip, or finish_clip after the frames)."""
        self.set_stage(method)
        t0 = self.clock()
        result, self.clip_alternatives = take_alternatives(getattr(self.processor, method)(self.clip), self.notes.add)
        self.outcome.clip_result = _check_json(result, method, self.notes)
        self.add_seconds(method, self.clock() - t0)

    def record(self, decoded: AnnotatedFrame, result: Any, seconds: float, method: str) -> None:
        """Check, score and keep one frame's result (raises ProcessorError for a result that cannot be stored)."""
        self.stage = "score"
        t0 = self.clock()
        self.outcome.frames.append(
            _frame_record(
                decoded, result, seconds, method, self.truth, self.templates, self.clip, self.notes, self.streams
            )
        )
        self.add_seconds("score", self.clock() - t0)

    def finish(self) -> None:
        """Every frame was processed: the clip's result, its text scores, done."""
        if self.capabilities.finish_clip:
            self.call("finish_clip")
        self.outcome.clip_scores = _score_text(
            self.outcome.clip_result, lambda: _one_template(self.templates), self.notes, self.clip_alternatives
        )
        self.outcome.ok, self.outcome.stage = True, None
        self.end(_ClipState.DONE)
        self.report(self.spec.task_id, "finished")

    def fail(self, exc: BaseException, stage: str | None = None) -> None:
        """End the clip with `exc` as its reason, its traceback kept."""
        outcome = self.outcome
        outcome.ok, outcome.stage = False, stage or self.stage
        outcome.error_class = _classify(exc)
        if isinstance(exc, SystemExit):  # sys.exit() in a processor ends its clip, not midvbatch
            outcome.error = f"the processor called sys.exit({exc.code!r})"
        else:
            outcome.error = str(exc) if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}"
        outcome.error = valid_text(outcome.error)  # a message may carry what the processor read, surrogates too
        outcome.traceback = valid_text("".join(traceback.format_exception(exc))[-TRACEBACK_TAIL:])
        if self.state == _ClipState.WAITING:
            self.start, self.cpu_start = self.clock(), time.process_time()
        self.end(_ClipState.FAILED)

    def end(self, state: _ClipState) -> None:
        self.state = state
        self.outcome.notes = self.notes.lines()
        self.outcome.wall_seconds = self.clock() - self.start
        self.outcome.cpu_seconds = time.process_time() - self.cpu_start


_END_OF_CLIP = None  # a clip's frames are all read


def _task_frames(
    specs: list[TaskSpec], skip: set[int], pixels: bool = True
) -> Generator[tuple[int, AnnotatedFrame | BaseException | None], None, None]:
    """The annotated frames of a task's clips one after the other, as (clip index, frame), each clip's closed by
    (index, None). A clip's reading error comes in its place as (index, error). A clip whose index is put in
    `skip` (it failed) is read no further. Without `pixels`, the frames are not decoded (see spec_frames)."""
    for index, spec in enumerate(specs):
        if index in skip:
            continue
        try:
            frames = spec_frames(spec, pixels)
            try:
                for count, frame in enumerate(frames, 1):
                    if index in skip:
                        break
                    yield index, frame
                    if count == spec.frames:
                        break
            finally:
                frames.close()
        except Exception as exc:  # noqa: BLE001 (the clip's own failure, handed to it in order)
            yield index, exc
            continue
        yield index, _END_OF_CLIP


class _TaskLoop:
    """Put the frames of a task's clips through the processor, in batches when it takes them.

    Batches end with their clip unless the task asks for batches across clips. A batch that
    raises fails every clip with a frame in it; the other clips go on. With read-ahead, a
    thread decodes the next frames, past a clip's end into the next clip, while the processor
    works. A clip starts (its stage, its clock) when the one before it has all its frames read.
    """

    def __init__(self, runs: list[_ClipRun], capabilities: Capabilities) -> None:
        spec = runs[0].spec
        self.runs = runs
        self.processor = runs[0].processor
        self.clock = runs[0].clock
        self.across = spec.run.batch_across_clips
        self.method = "process_batch" if _batched(capabilities, spec.run.batch_size) else "process_frame"
        self.size = spec.run.batch_size if self.method == "process_batch" else 1
        self.skip: set[int] = set()  # clips that failed: read no further
        source = _task_frames([r.spec for r in runs], self.skip, capabilities.pixels)
        self.stream = Prefetch(source, spec.run.prefetch) if spec.run.prefetch else source
        self.batch: list[tuple[_ClipRun, AnnotatedFrame]] = []
        self.current = 0  # the clip being read (len(runs): none left)

    def run(self) -> None:
        """Read every clip's frames and put them through the processor; each clip's outcome is filled in."""
        runs = self.runs
        try:
            self.current = self.begin(0)
            t0 = self.clock()
            for index, item in self.stream:
                run = runs[index]
                if run.open:
                    run.add_seconds("decode", self.clock() - t0)
                    self.take(index, run, item)
                self.advance()
                t0 = self.clock()
            self.flush()
        except BaseException as exc:  # what no clip caused (the read-ahead itself): every open clip fails with it
            for run in runs:
                if run.open:
                    self.failed(run, exc)
        finally:
            self.stream.close()  # a processor that raised leaves no decoder (nor read-ahead thread) behind

    def take(self, index: int, run: _ClipRun, item: AnnotatedFrame | BaseException | None) -> None:
        """Take what the stream gave for clip `index` (open): a frame, its reading error, or its end."""
        if item is _END_OF_CLIP:
            self.end_of_clip(index, run)
        elif isinstance(item, BaseException):
            self.failed(run, item, "decode")
        else:
            run.read += 1
            run.waiting += 1
            self.batch.append((run, item))
            if len(self.batch) >= self.size:
                self.flush()

    def end_of_clip(self, index: int, run: _ClipRun) -> None:
        """Clip `index` has no more frames: it fails when it gave too few, else its batch goes (unless batches
        go across clips and a clip follows) and it finishes once none of its frames waits."""
        if run.read < run.spec.frames:
            missing = VideoError(f"gave {run.read} of {run.spec.frames} annotated frames", path=run.spec.video)
            self.failed(run, missing, "decode")
            return
        run.state = _ClipState.READ
        if not self.across or index == len(self.runs) - 1:
            self.flush()
        if run.state == _ClipState.READ and not run.waiting:
            self.finish(run)

    def advance(self) -> None:
        """Start the next clip once the one being read has all its frames read; show what is decoded next."""
        runs = self.runs
        if self.current < len(runs) and runs[self.current].state != _ClipState.READING:
            self.current = self.begin(self.current + 1)
        if self.current < len(runs) and runs[self.current].read < runs[self.current].spec.frames:
            reading = runs[self.current]
            reading.set_stage("decode", f"decode {reading.read + 1}/{reading.spec.frames}")

    def begin(self, first: int) -> int:
        """Start the first clip still waiting from `first` on; return its index (len(runs): none left)."""
        for index in range(first, len(self.runs)):
            run = self.runs[index]
            if run.state != _ClipState.WAITING:
                continue
            try:
                run.begin()
                return index
            except BaseException as exc:
                self.failed(run, exc)
        return len(self.runs)

    def failed(self, run: _ClipRun, exc: BaseException, stage: str | None = None) -> None:
        """End `run` with `exc`: its frames are read no further, those waiting in the batch dropped."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        run.fail(exc, stage)
        self.skip.add(self.runs.index(run))
        if run.waiting:
            self.batch[:] = [(r, d) for r, d in self.batch if r is not run]
            run.waiting = 0

    def finish(self, run: _ClipRun) -> None:
        """Finish `run` (its finish_clip, its text scores); what that raises fails it."""
        try:
            run.finish()
        except BaseException as exc:
            self.failed(run, exc)

    def flush(self) -> None:
        """Put the batch through the processor and record each frame's result; its clips that are read and have
        no frame left waiting finish."""
        batch, method = self.batch, self.method
        if not batch:
            return
        members = list(dict.fromkeys(r for r, _ in batch))
        for run in members:
            run.set_stage(method, f"{method} {run.read}/{run.spec.frames}")
        t1 = self.clock()
        try:
            given = [Frame(d.image, d.number, d.time, r.clip) for r, d in batch]
            if method == "process_batch":
                results = _batch_results(self.processor.process_batch(given), len(given))
            else:
                results = [self.processor.process_frame(given[0])]
        except BaseException as exc:  # the batch's clips fail, the task goes on
            for run in members:
                self.failed(run, exc, method)
            return
        share = (self.clock() - t1) / len(batch)
        for (run, decoded), result in zip(batch, results, strict=True):
            run.waiting -= 1
            if run.open:
                run.add_seconds(method, share)
                try:
                    run.record(decoded, result, share, method)
                except BaseException as exc:
                    self.failed(run, exc)
        batch.clear()
        for run in members:
            if run.state == _ClipState.READ and not run.waiting:
                self.finish(run)


def run_clips(
    specs: list[TaskSpec],
    processor: Any,
    report: Callable[[int, str], None] = lambda task, stage: None,
    clock: Callable[[], float] = time.perf_counter,
    accelerator: str | None = None,
    capabilities: Capabilities | None = None,
) -> list[ClipOutcome]:
    """Run `processor` on the clips of `specs`, in order, and return their outcomes; never raises.
    `accelerator` is the worker's device, for ClipInfo.accelerator; `capabilities` the processor's, as read when
    it was built (read here when not given).

    Each clip has its own outcome: one that fails does not stop the others. A process_clip
    processor gets the clips one by one; frames go to process_frame or, in batches, to
    process_batch (see _TaskLoop).
    """
    capabilities = capabilities if capabilities is not None else Capabilities.of(processor)
    runs = [_ClipRun(spec, processor, report, clock, accelerator, capabilities) for spec in specs]
    if capabilities.process_clip:
        for run in runs:
            try:
                run.begin()
                run.call("process_clip")
                run.finish()
            except BaseException as exc:  # everything, so a worker never dies of a processor's error
                if isinstance(exc, KeyboardInterrupt):
                    raise  # workers ignore SIGINT: this is a real Ctrl-C in an inline run, for the orchestrator
                run.fail(exc)
    elif runs:
        _TaskLoop(runs, capabilities).run()
    return [run.outcome for run in runs]
