"""Reading the 30 annotated frames of a 1080x1920 clip, against bare decoding (the baseline).

Synthesizes one Samsung (.mp4) and one Apple (.MOV, rotated) clip at MIDV-500's frame
size, then times, best of --repeat:
  baseline   PyAV decode of every frame of the first 3 s, one thread, no conversion
  reader     midvbatch's reader: MIDV-500's 30 annotated frames (10 per second) sampled,
             converted to BGR, turned upright; FFmpeg's frame threading with the thread
             count FFmpeg chooses (threads=None)
  reader-1t  the same on one thread (threads=1, what each of 2 workers uses on 2 cores)
and prints seconds and ratios to the baseline. Every setting is passed explicitly, so a
changed default in midvbatch or PyAV cannot change what a column measures.

    python bench/bench_decode.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av

from midvbatch.dataset import MIDV500, discover
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.video import read_annotated_frames


def bare_decode(path: Path, seconds: float = 3.0) -> int:
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one thread; PyAV's default (slice threading) timed the same on these clips
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            n += 1
            if frame.time is not None and frame.time >= seconds:
                break
    return n


def read(path: Path, threads: int | None) -> int:
    frames = read_annotated_frames(path, count=MIDV500.frames_per_clip, fps=MIDV500.sample_fps, threads=threads)
    return sum(1 for _ in frames)


def best(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(tmp, SynthConfig(docs=1, clips="TS,TA", width=1080, height=1920, seed=1))
        for clip in discover(tmp, "midv500").clips:
            base = best(lambda: bare_decode(clip.video), args.repeat)
            threaded = best(lambda: read(clip.video, threads=None), args.repeat)
            single = best(lambda: read(clip.video, threads=1), args.repeat)
            print(f"{clip.id} ({clip.video.suffix}, 1080x1920): baseline {base:.3f} s | "
                  f"reader {threaded:.3f} s ({threaded / base:.2f}x) | reader-1t {single:.3f} s ({single / base:.2f}x)")


if __name__ == "__main__":
    main()
