"""A clip's work as a worker receives it (`TaskSpec`) and what comes back (`ClipOutcome`): plain records.

They cross process boundaries (pickled to a pool's or a Dask cluster's workers), and the
run's policy (engine/run/state.py) reads outcomes without importing the clip runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midvbatch.dataset.model import Clip


@dataclass(frozen=True)
class WorkerOptions:
    """What a run asks of every clip's worker, the same for all its clips."""

    processor: str  # name or MODULE:FACTORY
    options: dict[str, Any] = field(default_factory=dict)
    working_dir: str | None = None  # the orchestrator's working directory: MODULE of MODULE:FACTORY is found there
    decode_threads: int | None = None  # FFmpeg threads; None: FFmpeg decides
    batch_size: int = 1  # annotated frames per process_batch call
    prefetch: int = 0  # frames decoded ahead in a thread while the processor works; 0: none
    batch_across_clips: bool = False  # a batch may hold frames of the task's next clips


@dataclass(frozen=True)
class TaskSpec:
    """The small description of one clip's work that a worker receives. Build it with :meth:`of`."""

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
    run: WorkerOptions
    output_dir: str | None  # temporary folder for artifacts
    template_size: tuple[int, int] | None = None  # (w, h) for the scores; None: an ID-1 card
    dataset_format: str = "midv500"  # the dataset format's registry name: it reads the ground truth
    frame_numbers: tuple[int, ...] = ()  # annotated frames by number (1-based, decode order); () : by time
    images: dict[int, str] = field(default_factory=dict)  # frame number -> picture, read when there is no video
    frame_digits: int = 2  # digits of a frame number in frame ids (the clip's Clip.frame_digits)
    template: str | None = None  # where its text fields are (Clip.template, read by the format); None: no fields

    @classmethod
    def of(
        cls,
        clip: Clip,
        *,
        task_id: int,
        attempt: int,
        run: WorkerOptions,
        output_dir: str | None = None,
        template_size: tuple[int, int] | None = None,
    ) -> TaskSpec:
        """The spec of an attempt at `clip`, as discovery found it: the one way a clip becomes a spec."""
        rule = clip.frame_rule
        return cls(
            task_id=task_id,
            attempt=attempt,
            clip=clip.id,
            document=clip.document,
            code=clip.code,
            condition=clip.condition,
            device=clip.device,
            video=str(clip.video) if clip.video else None,
            ground_truth={k: str(p) for k, p in clip.ground_truth.items()},
            frames=rule.count,
            fps=float(rule.fps),
            run=run,
            output_dir=output_dir,
            template_size=template_size,
            dataset_format=clip.format,
            frame_numbers=rule.numbers,
            images={k: str(p) for k, p in clip.images.items()} if clip.runs_from_pictures else {},
            frame_digits=clip.frame_digits,
            template=clip.template,
        )


@dataclass
class ClipOutcome:
    """What became of one clip: results, or the failure with its reason."""

    task_id: int
    ok: bool
    # {"frame", "time", "seconds", "result"[, "scores"]}, the result and scores as JSON text (as the ledger keeps them)
    frames: list[dict] = field(default_factory=list)
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
    missing: str | None = None  # a path its worker cannot see (a Dask worker without the dataset mounted)
    artifacts: dict[str, bytes] = field(default_factory=dict)  # sent back instead of written (--artifacts return)
