"""A real neural model in batches: examples/onnx_text_detector.py (PP-OCRv4's text detector on ONNX Runtime)
with --batch-size 1, 8 and 32, each against batch 1 measured in the same run.

  model     the detector alone, in this process, on frames already decoded in memory: frames/s at batch
            1, 8 and 32 (one ONNX Runtime thread; each size warmed up first), what batching gives the
            model itself on this CPU.
  runs      `midvbatch run --processor examples.onnx_text_detector:make` on the same clips, 2 workers,
            --batch-size 1, 8, 32: frames/s from start to finish, start-up included.

Pinned: the 1080x1920 synthetic dataset of bench_engine.py (MIDVBATCH_BENCH_DATASET to reuse one), its
first CLIPS clips, the detector's options (side=480, threads=1), --workers 2, --decode-threads 1,
--prefetch 8 and --batch-across-clips at every batch size (so that a batch of 32 is not cut at a
clip's 30 frames and the three runs take their clips alike). Skips, saying so, without onnxruntime and
rapidocr-onnxruntime (.ci/onnx installs them).

    python bench/bench_models.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # examples/
sys.path.insert(0, str(BENCH))

from bench_engine import big_dataset, run_args, run_timed  # noqa: E402

BATCHES = (1, 8, 32)
CLIPS = 10  # 300 annotated frames a run
MODEL_FRAMES = 64  # decoded frames the model alone goes through at each batch size
OPTIONS = ["--option", "side=480", "--option", "threads=1"]


def bench_model(dataset: Path) -> dict[int, float]:
    from examples.onnx_text_detector import make

    from midvbatch import open_dataset

    frames = []
    for frame in open_dataset(dataset).frames():
        frames.append(frame)
        if len(frames) == MODEL_FRAMES:
            break
    detector = make(side=480, threads=1)
    detector.setup()
    rates = {}
    for size in BATCHES:
        detector.process_batch(frames[:size])  # warm-up: ONNX Runtime plans and allocates for a new shape
        start = time.perf_counter()
        for first in range(0, len(frames), size):
            detector.process_batch(frames[first : first + size])
        rates[size] = len(frames) / (time.perf_counter() - start)
    base = rates[1]
    print("model: the detector alone, 1 ONNX Runtime thread, 1080x1920 frames scaled to 480 wide, "
          f"{len(frames)} frames: " + ", ".join(f"batch {s} {r:.1f} frames/s ({r / base:.2f}x)" for s, r in rates.items()),
          flush=True)
    return rates


def bench_runs(tmp: Path, dataset: Path) -> None:
    frames = CLIPS * 30
    rates = {}
    for size in BATCHES:
        args = run_args(dataset, tmp / f"run-{size}", processor="examples.onnx_text_detector:make", workers=2,
                        catalog="midv500", check=False)
        wall, _ = run_timed([*args, *OPTIONS, "--batch-size", str(size), "--batch-across-clips", "--prefetch", "8",
                             "--limit", str(CLIPS)])
        rates[size] = frames / wall
    base = rates[1]
    print(f"runs: midvbatch run, 2 workers, {frames} frames of 1080x1920, --prefetch 8 --batch-across-clips: "
          + ", ".join(f"batch {s} {r:.2f} frames/s ({r / base:.2f}x)" for s, r in rates.items()), flush=True)


def main() -> None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("rapidocr_onnxruntime") is None:
        print("models: skipped: onnxruntime or rapidocr-onnxruntime is not installed (.ci/onnx installs them)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        dataset = big_dataset(Path(tmp))
        bench_model(dataset)
        bench_runs(Path(tmp), dataset)


if __name__ == "__main__":
    main()
