"""Read the annotated frames of a clip, exactly as ``ffmpeg -r 10`` samples them.

Annotated frame k (1..30) of a MIDV clip is the frame that FFmpeg's constant-rate
sampling at 10 fps outputs at t = (k - 1) / 10 s. FFmpeg's ``fps`` filter decides that
as follows: every decoded frame's time is rounded to the nearest output tick
(half away from zero), and output tick n shows the *last* frame whose rounded tick is
at most n (a later frame landing on the same tick replaces an earlier one; a tick no
frame lands on repeats the previous frame; at the end, the last frame fills the ticks
before its end time, rounded the same way). :func:`sample_slot` is that rounding; the
reader streams, keeps one frame in memory, converts to BGR only the frames it yields,
and stops decoding once the last needed tick is decided.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from midvbatch.errors import VideoError
from midvbatch.video._open import open_video, video_failure
from midvbatch.video.probe import normalise_rotation


@dataclass
class AnnotatedFrame:
    """One annotated frame: its number, where it came from, and the image."""

    number: int  # 1-based, as in CCDD_KK
    time: float  # presentation time of the source frame, seconds from the clip's start
    source_index: int  # 0-based index of the source frame in decode order of the stream
    image: np.ndarray  # H x W x 3 uint8, BGR, rotation applied


def sample_slot(seconds: float, fps: float) -> int:
    """Return the output tick a frame at `seconds` lands on when sampling at `fps`.

    Rounds to nearest with halves away from zero, as FFmpeg's fps filter does.
    """
    x = seconds * fps
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def source_indices(times: list[float], fps: float, count: int, end: float | None = None) -> list[int]:
    """Return, for ticks 0..count-1, the index into `times` sampled at `fps` (pure rule).

    `times` are source frame times from the clip's start, increasing; `end` is when the
    last frame ends (default: one frame interval after it). Fewer than `count` indices
    come back when the clip is too short. Used by the synthesizer to annotate exactly
    the frames the reader will yield.
    """
    picks: list[int] = []
    pending: int | None = None
    for i, t in enumerate(times):
        slot = sample_slot(t, fps)
        if pending is not None:
            while len(picks) < min(slot, count):
                picks.append(pending)
        if len(picks) >= count:
            return picks
        pending = i
    if pending is not None:
        if end is None:
            end = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0 / fps)
        while len(picks) < min(sample_slot(end, fps), count):
            picks.append(pending)
    return picks


def _duration(frame: av.VideoFrame, stream, fps: float) -> float:
    """How long a frame is shown, in seconds."""
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    if stream.average_rate:
        return 1.0 / float(stream.average_rate)
    return 1.0 / fps


def _set_threads(stream, threads: int | None) -> None:
    """FFmpeg's frame threading for `threads` > 1, its own choice for None; 1: the calling thread only.

    (Left alone, a decoder starts a slice thread per core and one more, whatever the workers; so does the
    conversion to BGR: see _to_bgr.)
    """
    if threads is None or threads > 1:
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
    else:
        stream.codec_context.thread_count = 1


def _to_bgr(frame: av.VideoFrame, rotation: int, threads: int | None) -> np.ndarray:
    """The frame as BGR, turned by `rotation`; converted on `threads` threads (None: one per core, as FFmpeg's
    own choice; 1: the calling thread only)."""
    image: np.ndarray = frame.to_ndarray(format="bgr24", threads=threads or 0)
    if rotation:
        # The display matrix rotates counter-clockwise by `rotation` degrees.
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def read_annotated_frames(
    path: str | Path,
    *,
    count: int = 30,
    fps: float = 10.0,
    threads: int | None = None,
) -> Generator[AnnotatedFrame, None, None]:
    """Yield annotated frames 1..`count` of the video at `path`, sampled at `fps`.

    `threads` is FFmpeg's decoding threads: None lets FFmpeg choose (one per core),
    1 decodes on the calling thread only. With as many workers as cores, 1 is fastest.

    Raises VideoError naming the file if it cannot be opened or decoded, or if it ends
    before frame `count` (after yielding the frames it has); ResourceShortage (a transient
    error) when FFmpeg could not start its threads, open a file or get memory.
    """
    path = Path(path)
    container, stream = open_video(path)
    try:
        _set_threads(stream, threads)
        next_number = 1  # next annotated frame to yield
        pending: av.VideoFrame | None = None
        pending_index = -1
        pending_time = 0.0
        pending_end = 0.0
        start: float | None = None
        index = -1

        def emit() -> AnnotatedFrame:
            assert pending is not None  # called only once a frame is pending
            rotation = normalise_rotation(getattr(pending, "rotation", 0))
            return AnnotatedFrame(next_number, pending_time, pending_index, _to_bgr(pending, rotation, threads))

        try:
            for frame in container.decode(stream):
                index += 1
                t = frame.time if frame.time is not None else index / float(stream.average_rate or fps)
                if start is None:
                    start = t
                t -= start
                slot = sample_slot(t, fps)
                if pending is not None:
                    while next_number <= min(slot, count):
                        yield emit()
                        next_number += 1
                if next_number > count:
                    return
                pending, pending_index, pending_time = frame, index, t
                pending_end = t + _duration(frame, stream, fps)
        except av.FFmpegError as exc:
            raise video_failure(exc, f"decoding failed after frame {index + 1}", path) from None
        if pending is not None:
            while next_number <= min(sample_slot(pending_end, fps), count):
                yield emit()
                next_number += 1
        if next_number <= count:
            have = next_number - 1
            raise VideoError(
                f"video ends after {have} of {count} annotated frames ({count / fps:.1f} s at {fps:g} fps needed)",
                path=path,
            )
    finally:
        container.close()


def read_frames_at(
    path: str | Path,
    numbers: tuple[int, ...] | list[int],
    *,
    threads: int | None = None,
) -> Generator[AnnotatedFrame, None, None]:
    """Yield the frames of the video at `path` whose numbers (1-based, in decode order) are in `numbers`.

    For datasets that annotate frames by their index (MIDV-2020: 1, 7, 13, ... as its
    JPEG names 000001.jpg, 000007.jpg say). Decoding stops after the last one. Raises
    VideoError naming the file if it cannot be decoded or ends before the last number.
    """
    path = Path(path)
    wanted = sorted(set(numbers))
    if not wanted:
        return
    container, stream = open_video(path)
    try:
        _set_threads(stream, threads)
        at = 0
        index = -1
        start: float | None = None
        try:
            for frame in container.decode(stream):
                index += 1
                t = frame.time if frame.time is not None else index / float(stream.average_rate or 30)
                if start is None:
                    start = t
                if index + 1 == wanted[at]:
                    rotation = normalise_rotation(getattr(frame, "rotation", 0))
                    yield AnnotatedFrame(index + 1, t - start, index, _to_bgr(frame, rotation, threads))
                    at += 1
                    if at == len(wanted):
                        return
        except av.FFmpegError as exc:
            raise video_failure(exc, f"decoding failed after frame {index + 1}", path) from None
        raise VideoError(f"video ends after {index + 1} frames; frame {wanted[at]} is annotated", path=path)
    finally:
        container.close()
