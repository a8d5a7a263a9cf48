"""FFmpeg (PyAV) probing and frame reading."""

from midvbatch.video._open import ffmpeg_reason
from midvbatch.video.probe import VideoInfo, probe
from midvbatch.video.reader import AnnotatedFrame, read_annotated_frames, sample_slot

__all__ = ["AnnotatedFrame", "VideoInfo", "ffmpeg_reason", "probe", "read_annotated_frames", "sample_slot"]
