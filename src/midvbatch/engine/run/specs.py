"""What a worker is handed: a `TaskSpec` for each clip, built from the clip as discovery found it.

Also how the run cuts its clips into tasks (one clip each, or a few when workers read
ahead or batch across clips) and how many bytes of frames a worker then holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from midvbatch.config import Settings
from midvbatch.dataset.model import Clip, Document
from midvbatch.engine.run.events import Queued
from midvbatch.errors import ConfigError
from midvbatch.pipeline.spec import TaskSpec, WorkerOptions

# with read-ahead or batches across clips a worker is handed clips a few at a time, a task of about
# TASK_FRAMES annotated frames (4 MIDV-500 clips), at most MAX_TASK_CLIPS clips
TASK_FRAMES = 120
MAX_TASK_CLIPS = 64


class Specs:
    """The specs of a run's clips, and how it cuts them into tasks."""

    def __init__(self, settings: Settings, documents: Iterable[Document], working_dir: str):
        self.settings = settings
        self.template_images = {d.name: d.template_image for d in documents if d.template_image}
        self.working_dir = working_dir  # where MODULE of --processor MODULE:FACTORY was found
        self._templates: dict[str, tuple[int, int]] = {}
        self._run: WorkerOptions | None = None  # what every clip's worker is asked (one object, shared by the specs)
        self.task_clips = 1  # clips per task (see plan_tasks)
        self.frames_held = 0  # bytes of frames a worker holds beyond one: its read-ahead and batch

    def spec(self, row: Queued, clip: Clip, attempt: int, output_dir: Path, threads: int) -> TaskSpec:
        """The spec of an attempt at a queued clip, as this run's discovery found it; FFmpeg decodes on `threads`
        threads (the run's option, lowered when the machine runs short)."""
        if self._run is None or self._run.decode_threads != threads:
            options = self.settings.shared(WorkerOptions) | {"decode_threads": threads}
            self._run = WorkerOptions(
                **options | {"options": dict(options["options"]), "working_dir": self.working_dir}
            )
        return TaskSpec.of(
            clip,
            task_id=row.id,
            attempt=attempt,
            run=self._run,
            output_dir=str(output_dir),
            template_size=self._template_size(clip.document),
        )

    def _template_size(self, document: str) -> tuple[int, int]:
        """The template rectangle of a document for scoring, cached per document."""
        if document not in self._templates:
            from midvbatch.scoring import document_template_size

            self._templates[document] = document_template_size(document, self.template_images.get(document))
        return self._templates[document]

    def plan_tasks(self, typical_frames: int, largest_frame: int | None, total_memory: int) -> None:
        """How many clips a task holds (self.task_clips) and the frames a worker holds in memory (self.frames_held).

        A task holds one clip, unless workers read ahead or batch across clips: then about
        TASK_FRAMES annotated frames (twice the batch size when batches cross clips), so that
        the read-ahead and the batches go on from one clip to the next. Raises ConfigError
        when the frames a worker would hold pass its memory limit (`total_memory`: the machine's). The clips
        have `typical_frames` annotated frames (their median), the largest frame `largest_frame` pixels (None:
        unknown, taken as 1920x1080).
        """
        settings, typical = self.settings, max(1, typical_frames)
        if settings.prefetch or settings.batch_across_clips:
            frames = max(TASK_FRAMES, 2 * settings.batch_size if settings.batch_across_clips else 0)
            self.task_clips = min(MAX_TASK_CLIPS, max(2, -(-frames // typical)))
        else:
            self.task_clips = 1
        largest = largest_frame or 1920 * 1080
        # beyond the frame every worker holds: BGR bytes
        self.frames_held = (settings.prefetch + settings.batch_size - 1) * largest * 3
        limit = settings.worker_memory_limit(total_memory)
        if self.frames_held and self.frames_held >= min(limit or total_memory, total_memory):
            raise ConfigError(
                f"--prefetch {settings.prefetch} and --batch-size {settings.batch_size} hold about "
                f"{self.frames_held / 2**20:,.0f} MiB of frames per worker, more than "
                + (f"the worker memory limit of {limit / 2**20:,.0f} MiB" if limit else "the machine's memory")
                + ": lower them"
                + (" or raise --worker-memory" if limit else "")
            )

    def task_line(self) -> str:
        """How workers take their clips, for the run's first line: batches, read-ahead, clips per task."""
        settings, parts = self.settings, []
        if settings.batch_size > 1:
            across = " across clips" if settings.batch_across_clips else ""
            parts.append(f"batches of up to {settings.batch_size} frames{across}")
        if settings.prefetch:
            parts.append(f"{settings.prefetch} frames read ahead")
        if self.task_clips > 1:
            parts.append(f"workers take up to {self.task_clips} clips at a time")
        return "".join(f", {part}" for part in parts)
