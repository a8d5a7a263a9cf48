"""The batch engine's figures, each against a baseline measured in the same run.

  overhead  2,000 clips through a no-op process_clip processor, 2 workers, durable
            ledger: clips/s after start-up; the same 2,000 no-op jobs under GNU
            parallel -j2 (a shell `true`, and a Python no-op) for comparison.
  frames    --pipeline frames on a 1080x1920 synthetic dataset vs a plain
            multiprocessing pool reading the same annotated frames with PyAV.
  scaling   the frames pipeline with 2 workers vs 1.
  memory    the orchestrator's peak RSS with 100 vs 20,000 clips.

    python bench/bench_engine.py [overhead] [frames] [scaling] [memory]
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
MIDVBATCH = [sys.executable, "-m", "midvbatch.cli"]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(BENCH), e.get("PYTHONPATH", "")])
    return e


def plain_clips(root: Path, count: int, video: Path) -> Path:
    """A plain folder of `count` links to one small video."""
    folder = root / f"clips{count}"
    folder.mkdir()
    for i in range(count):
        (folder / f"c{i:06d}.mp4").symlink_to(video)
    return folder


def run_timed(args: list[str], sample_rss: bool = False) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in bytes of that process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    if sample_rss:
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, p.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.005)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{err}")
    return time.perf_counter() - start, peak


def steady_rate(run_dir: Path) -> float:
    """Clips/s between the first and the last finished clip: the run without its start-up."""
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    first, last, n = db.execute("SELECT MIN(finished_at), MAX(finished_at), COUNT(*) FROM tasks WHERE state='done'").fetchone()
    db.close()
    return (n - 1) / (last - first)


def small_video(root: Path) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    synthesize(root / "small", SynthConfig(docs=1, clips="TS", seed=1))
    return root / "small" / "01_alb_id" / "videos" / "TS01.mp4"


def bench_overhead(tmp: Path) -> None:
    clips = plain_clips(tmp, 2000, small_video(tmp))
    out = tmp / "run-overhead"
    wall, _ = run_timed([*MIDVBATCH, "run", str(clips), "--out", str(out), "--processor", "noop_processor:make",
                         "--workers", "2"])
    rate = steady_rate(out)
    print(f"overhead: midvbatch 2000 no-op clips, 2 workers: {rate:,.0f} clips/s after start-up "
          f"({1000 / rate:.2f} ms per clip; {wall:.2f} s wall with start-up)")
    if shutil.which("parallel") is None:
        print("overhead: GNU parallel not installed (apt install parallel): comparison skipped")
        return
    names = [str(p) for p in sorted(clips.iterdir())]
    listing = tmp / "clips.txt"
    listing.write_text("\n".join(names) + "\n")
    for label, command in (("true", "true {}"), ("python no-op", f"{sys.executable} -c 'pass' {{}}")):
        wall, _ = run_timed(["parallel", "-j2", "--arg-file", str(listing), command])
        print(f"overhead: GNU parallel -j2, {label} per clip: {2000 / wall:,.0f} clips/s "
              f"(midvbatch is {rate / (2000 / wall):.1f}x)")


def _read_clip(video: str) -> int:
    from midvbatch.video import read_annotated_frames

    return sum(1 for _ in read_annotated_frames(video, threads=1))  # 2 workers on 2 cores: 1 thread each


def big_dataset(tmp: Path, clips: str) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = Path(os.environ.get("MIDVBATCH_BENCH_DATASET", tmp / "big"))  # reuse one: it takes a minute
    if not root.exists():
        synthesize(root, SynthConfig(docs=2, clips=clips, width=1080, height=1920, seed=2))
    return root


def frames_run(tmp: Path, dataset: Path, workers: int, decode_threads: str = "auto") -> float:
    out = tmp / f"run-frames-{workers}-{time.monotonic_ns()}"
    wall, _ = run_timed([*MIDVBATCH, "run", str(dataset), "--out", str(out), "--workers", str(workers),
                         "--decode-threads", decode_threads])
    return wall


def bench_frames(tmp: Path) -> None:
    dataset = big_dataset(tmp, "*")
    videos = sorted(str(p) for p in dataset.rglob("videos/*") if p.is_file())
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        frames = sum(pool.map(_read_clip, videos, chunksize=1))
    base = time.perf_counter() - start
    ours = frames_run(tmp, dataset, 2)
    print(f"frames: {len(videos)} clips of 1080x1920, {frames} frames: multiprocessing.Pool(2) {base:.2f} s "
          f"({frames / base:.0f} frames/s) | midvbatch --pipeline frames {ours:.2f} s ({frames / ours:.0f} frames/s) "
          f"| ratio {base / ours:.2f} (both with start-up)")


def bench_scaling(tmp: Path) -> None:
    dataset = big_dataset(tmp, "*")
    one = frames_run(tmp, dataset, 1, "1")
    two = frames_run(tmp, dataset, 2, "1")
    print(f"scaling: frames pipeline, one decoding thread per worker: 1 worker {one:.2f} s, "
          f"2 workers {two:.2f} s: {one / two:.2f}x")
    auto = frames_run(tmp, dataset, 1)
    print(f"scaling: 1 worker with --decode-threads auto (2 threads) {auto:.2f} s: 2 workers are "
          f"{auto / two:.2f}x faster than that")


def bench_memory(tmp: Path) -> None:
    video = small_video(tmp)
    peaks = {}
    for count in (100, 20_000):
        clips = plain_clips(tmp, count, video)
        _, peaks[count] = run_timed([*MIDVBATCH, "run", str(clips), "--out", str(tmp / f"run-mem-{count}"),
                                     "--processor", "noop_processor:make", "--workers", "2"], sample_rss=True)
    print(f"memory: orchestrator peak RSS {peaks[100] / 2**20:.1f} MiB with 100 clips, "
          f"{peaks[20_000] / 2**20:.1f} MiB with 20,000: +{(peaks[20_000] - peaks[100]) / 2**20:.1f} MiB")


def main() -> None:
    chosen = sys.argv[1:] or ["overhead", "frames", "scaling", "memory"]
    benches = {"overhead": bench_overhead, "frames": bench_frames, "scaling": bench_scaling, "memory": bench_memory}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            benches[name](Path(tmp))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
