"""The processor that gives back predictions made elsewhere: what `midvbatch import` runs.

`midvbatch import` reads a file of another system's outputs (results/imports.py) and writes
them, clip by clip, into the run folder as a file of one JSON line per clip
(``{"clip": ID, "frames": {"1": result, ...}, "result": clip result}``) with an index of
where each clip's line starts. A run of this processor then scores them exactly as it
scores a processor's: each frame's result is the one the file gave, or "no prediction"
where it gave none. It reads no pixels, so the frames are not decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midvbatch.errors import ProcessorError
from midvbatch.fileio import loads, read_json
from midvbatch.pipeline.processor import ClipInfo, Frame, Processor

INDEX_SUFFIX = ".index.json"  # beside the predictions file: {"quads": bool, "fields": bool, "clips": {id: offset}}
MAX_LINE = 1 << 30  # bytes of one clip's line (a clip of 100,000 frames of 10 fields each fits)


class ReplayProcessor(Processor):
    """What `midvbatch import` runs: each frame's result read from a file of predictions made elsewhere.

    "No prediction" where the file has none.

    `predictions`: the file `midvbatch import` wrote into the run folder. `source`, `sha256`
    and `format` name the file it was read from; they are kept in the run's configuration.
    """

    pixels = False

    def __init__(self, predictions: str, source: str = "", sha256: str = "", format: str = "") -> None:
        self.path = Path(predictions)
        self.source, self.sha256, self.format = source, sha256, format
        self.index: dict[str, int] | None = None
        self.empty: dict[str, Any] = {}
        self.clip_id: str | None = None
        self.frames: dict[str, Any] = {}
        self.clip_result: Any = None

    def setup(self) -> None:
        """Read the index of the predictions file."""
        index = read_json(self.path.with_name(self.path.name + INDEX_SUFFIX), limit=1 << 30, error=ProcessorError)
        self.index = {str(k): int(v) for k, v in index["clips"].items()}
        # a frame without a prediction: the protocol scores it as "no prediction"
        self.empty = ({"quad": None} if index.get("quads") else {}) | ({"fields": {}} if index.get("fields") else {})

    def _load(self, clip: ClipInfo) -> None:
        if self.clip_id == clip.id:
            return
        if self.index is None:
            self.setup()
        assert self.index is not None
        self.clip_id, self.frames, self.clip_result = clip.id, {}, None
        offset = self.index.get(clip.id)
        if offset is None:
            return  # the file has nothing of this clip: every frame without a prediction
        try:
            with open(self.path, "rb") as stream:
                stream.seek(offset)
                line = loads(stream.readline(MAX_LINE))
        except (OSError, ValueError) as exc:
            raise ProcessorError(f"{self.path}: cannot read clip {clip.id}'s predictions ({exc})") from None
        if line.get("clip") != clip.id:
            raise ProcessorError(f"{self.path}: the index does not point at clip {clip.id}'s predictions")
        self.frames, self.clip_result = line.get("frames") or {}, line.get("result")

    def process_frame(self, frame: Frame) -> dict:
        """The frame's result as read, or "no prediction"."""
        self._load(frame.clip)
        return self.frames.get(str(frame.number), self.empty)

    def finish_clip(self, clip: ClipInfo) -> Any:
        """The clip's own result as read (a combined reading of its fields), if the file had one."""
        self._load(clip)
        return self.clip_result
