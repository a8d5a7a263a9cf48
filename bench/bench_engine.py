"""The batch engine's figures, each against a baseline measured in the same run.

  overhead  the engine's cost per clip as a user sees it: the wall time of `midvbatch run`
            on 2,000 no-op clips minus that on 20, divided by 1,980 (best of 3 each), with
            the checks and with --no-check, on a folder of links to one small video and on
            a folder of 2,000 distinct copies of it; then the steady dispatch rate (first
            to last finished clip); baseline: the same 2,000 - 20 difference for GNU
            parallel -j2 running `true` and a Python no-op per clip (skipped with a note
            when `parallel` is not installed).
  frames    --pipeline frames --no-check on a 1080x1920 synthetic dataset vs a plain
            multiprocessing.Pool(2) reading the same annotated frames (midvbatch's reader, one
            thread each); then the same run with its checks, which the pool does not do.
  scaling   the frames pipeline (--no-check: the checks are a fixed cost, not what scales)
            with 2 workers vs 1 (one decoding thread each), and vs 1 worker with 2 decoding
            threads.
  memory    the orchestrator's peak RSS (psutil, sampled) with 100 vs 20,000 and 200,000 no-op clips, and
            each run's clips/s over the whole run.
  dask      the per-clip overhead of --pool dask (a real `dask scheduler` and two `dask
            worker` processes of one thread on 127.0.0.1) against --pool process (2 workers),
            by the same 400 - 20 no-op clips difference (best of 3 each, --no-check: the
            checks are the same for both); and that overhead as a share of a real clip's
            time (the frames pipeline, 1080x1920, 2 workers, per clip).

Every `midvbatch run` pins the options its figure depends on (see `run_args`), so a
changed default cannot change what a figure measures. frames and scaling synthesize a
20-clip 1080x1920 dataset once per invocation (about a minute); set
MIDVBATCH_BENCH_DATASET to a folder to keep it between invocations.

    python bench/bench_engine.py [overhead] [frames] [scaling] [memory] [overlap] [dask]
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
MIDVBATCH = [sys.executable, "-m", "midvbatch"]  # what the `midvbatch` console script runs
NOOP = "noop_processor:make"  # bench/noop_processor.py, on PYTHONPATH through env()
FEW, MANY = 20, 2000  # overhead: clips of the start-up run and of the long run
REPEAT = 3  # overhead: best of this many runs of each
TARGET_RATE = 2000  # clips/s, by the user's figure, checks included
MEMORY_FEW, MEMORY_MANY = 100, (20_000, 200_000)
TARGET_MEMORY = 30  # MiB: most the orchestrator may grow from MEMORY_FEW to the most of MEMORY_MANY clips
TARGET_FRAMES = 0.95  # --pipeline frames against multiprocessing.Pool(2): at least this ratio
TARGET_SCALING = 1.8  # 2 workers against 1 on 2 cores: at least this speed-up
TARGET_OVERLAP = 1.15  # wall with --prefetch against the longer of decoding alone and processing alone: at most
PREFETCH = 8  # frames read ahead in the overlap figure
DASK_FEW, DASK_MANY = 20, 400  # dask: clips of the short and the long run
TARGET_DASK_SHARE = 0.05  # dask: its per-clip overhead at most this share of a real clip's time


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(BENCH), e.get("PYTHONPATH", "")])
    return e


def run_args(dataset: Path, out: Path, *, workers: int, processor: str | None = None, pipeline: str | None = None,
             decode_threads: int = 1, check: bool = True, catalog: str | None = None,
             scheduler: str | None = None) -> list[str]:
    """Return a `midvbatch run` command line with every option a figure depends on given.

    Pinned: what runs (--processor or --pipeline), --workers, --pool process (--pool dask
    with `scheduler`),
    --decode-threads, --retries 0 (a failure ends the bench instead of being retried),
    --log-level warning, no admission floors (--min-free-disk 0, --min-free-memory 0),
    no worker memory limit (--worker-memory none); --no-check only when `check` is false;
    --catalog where the dataset has one.
    """
    if (processor is None) == (pipeline is None):
        raise ValueError("give a processor or a pipeline")
    what = ["--processor", processor] if processor else ["--pipeline", pipeline]
    args = [*MIDVBATCH, "run", str(dataset), "--out", str(out), *what, "--workers", str(workers),
            *(["--pool", "dask", "--scheduler", scheduler] if scheduler else ["--pool", "process"]),
            "--decode-threads", str(decode_threads), "--retries", "0",
            "--log-level", "warning", "--min-free-disk", "0", "--min-free-memory", "0", "--worker-memory", "none"]
    if catalog:
        args += ["--catalog", catalog]
    if not check:
        args.append("--no-check")
    return args


def plain_clips(root: Path, count: int, video: Path, copies: bool = False) -> Path:
    """A plain folder of `count` links to one small video, or of `count` copies of it."""
    folder = root / f"{'copies' if copies else 'links'}{count}"
    if folder.exists():
        return folder
    folder.mkdir()
    for i in range(count):
        clip = folder / f"c{i:06d}.mp4"
        if copies:
            shutil.copyfile(video, clip)
        else:
            clip.symlink_to(video)
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


def best_wall(commands: list[list[str]]) -> tuple[float, int]:
    """Run each command; return (the best wall seconds, the index of the best run)."""
    walls = [run_timed(command)[0] for command in commands]
    best = min(range(len(walls)), key=walls.__getitem__)
    return walls[best], best


def steady_rate(run_dir: Path) -> float:
    """Clips/s between the first and the last finished clip: the run without its start-up and checks."""
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    first, last, n = db.execute("SELECT MIN(finished_at), MAX(finished_at), COUNT(*) FROM tasks WHERE state='done'").fetchone()
    db.close()
    return (n - 1) / (last - first)


def small_video(root: Path) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    video = root / "small" / "01_alb_id" / "videos" / "TS01.mp4"
    if not video.exists():
        synthesize(root / "small", SynthConfig(docs=1, clips="TS", seed=1))
    return video


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def per_clip(walls: dict[int, float]) -> float:
    """Seconds per clip from the walls of FEW and MANY clips; exit if the noise swallowed the difference."""
    seconds = (walls[MANY] - walls[FEW]) / (MANY - FEW)
    if seconds <= 0:
        raise SystemExit(f"overhead: {MANY:,} clips took no longer than {FEW} ({walls[MANY]:.2f} s vs "
                         f"{walls[FEW]:.2f} s): the machine is too noisy for this figure; run it again")
    return seconds


def bench_overhead(tmp: Path) -> None:
    video = small_video(tmp)
    ours = {}
    steady = None
    for copies in (False, True):
        kind = f"{MANY:,} distinct files" if copies else "links to one file"
        few, many = plain_clips(tmp, FEW, video, copies), plain_clips(tmp, MANY, video, copies)
        for check in (True, False):
            label = "checks included" if check else "--no-check"
            walls = {}
            for count, clips in ((FEW, few), (MANY, many)):
                out = tmp / f"run-overhead-{clips.name}-{'check' if check else 'nocheck'}"
                walls[count], best = best_wall([run_args(clips, Path(f"{out}-{i}"), processor=NOOP, workers=2,
                                                         check=check) for i in range(REPEAT)])
                if count == MANY and not copies and check:
                    steady = steady_rate(Path(f"{out}-{best}"))
            seconds = ours[copies, check] = per_clip(walls)
            line = (f"overhead: midvbatch run, no-op clips, 2 workers, {kind}, {label}: "
                    f"{seconds * 1000:.2f} ms per clip, {1 / seconds:,.0f} clips/s "
                    f"(wall {walls[MANY]:.2f} s for {MANY:,} - {walls[FEW]:.2f} s for {FEW}, best of {REPEAT})")
            if check:
                line += (f" | target >= {TARGET_RATE:,} clips/s by the user's figure, checks included: "
                         f"{verdict(1 / seconds >= TARGET_RATE)}")
            print(line, flush=True)
    print(f"overhead: steady dispatch, first to last finished clip of the {MANY:,} (links, checks included; "
          f"without start-up and checks): {steady:,.0f} clips/s ({1000 / steady:.2f} ms per clip)", flush=True)
    if shutil.which("parallel") is None:
        print("overhead: baseline skipped: GNU parallel is not installed (apt install parallel)")
        return
    for label, command in (("true", "true {}"), ("python no-op", f"{sys.executable} -c pass {{}}")):
        walls = {}
        for count in (FEW, MANY):
            listing = tmp / f"clips{count}.txt"
            listing.write_text("".join(f"{p}\n" for p in sorted(plain_clips(tmp, count, video).iterdir())))
            walls[count], _ = best_wall([["parallel", "-j2", "--arg-file", str(listing), command]] * REPEAT)
        seconds = per_clip(walls)
        print(f"overhead: baseline GNU parallel -j2, {label} per clip: {seconds * 1000:.2f} ms per clip, "
              f"{1 / seconds:,.0f} clips/s by the same difference (midvbatch, links, checks included, is "
              f"{seconds / ours[False, True]:.1f}x that)", flush=True)


def _read_clip(video: str) -> int:
    from midvbatch.dataset import MIDV500
    from midvbatch.video import read_annotated_frames

    # What --pipeline frames --decode-threads 1 reads: the catalog's annotated frames, one thread
    frames = read_annotated_frames(video, count=MIDV500.frames_per_clip, fps=MIDV500.sample_fps, threads=1)
    return sum(1 for _ in frames)


def big_dataset(tmp: Path) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = Path(os.environ.get("MIDVBATCH_BENCH_DATASET", tmp / "big"))  # reuse one: it takes a minute
    if not root.exists():
        synthesize(root, SynthConfig(docs=2, clips="*", width=1080, height=1920, seed=2))
    return root


def frames_run(tmp: Path, dataset: Path, workers: int, decode_threads: int, check: bool = False) -> float:
    out = tmp / f"run-frames-{workers}-{time.monotonic_ns()}"
    wall, _ = run_timed(run_args(dataset, out, pipeline="frames", workers=workers, decode_threads=decode_threads,
                                 catalog="midv500", check=check))
    return wall


def bench_frames(tmp: Path) -> None:
    dataset = big_dataset(tmp)
    videos = sorted(str(p) for p in dataset.rglob("videos/*") if p.is_file())
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        frames = sum(pool.map(_read_clip, videos, chunksize=1))
    base = time.perf_counter() - start
    ours = frames_run(tmp, dataset, 2, 1)
    checked = frames_run(tmp, dataset, 2, 1, check=True)
    print(f"frames: {len(videos)} clips of 1080x1920, {frames} frames, 2 workers, 1 decoding thread each: "
          f"multiprocessing.Pool(2) {base:.2f} s ({frames / base:.0f} frames/s) | midvbatch run --pipeline frames "
          f"--no-check {ours:.2f} s ({frames / ours:.0f} frames/s) | ratio {base / ours:.2f} (both with start-up) "
          f"| target >= {TARGET_FRAMES}: {verdict(base / ours >= TARGET_FRAMES)}", flush=True)
    print(f"frames: the same run with the checks before it (a probe of each clip, its first frame decoded for the "
          f"display rotation; its {frames} ground-truth files parsed): {checked:.2f} s, ratio {base / checked:.2f}",
          flush=True)


def bench_scaling(tmp: Path) -> None:
    dataset = big_dataset(tmp)
    one = frames_run(tmp, dataset, 1, 1)
    two = frames_run(tmp, dataset, 2, 1)
    print(f"scaling: midvbatch run --pipeline frames --no-check, one decoding thread per worker: "
          f"1 worker {one:.2f} s, 2 workers {two:.2f} s: {one / two:.2f}x "
          f"| target >= {TARGET_SCALING}x: {verdict(one / two >= TARGET_SCALING)}", flush=True)
    threaded = frames_run(tmp, dataset, 1, 2)
    print(f"scaling: 1 worker with 2 decoding threads (what --decode-threads auto gives it on 2 cores) "
          f"{threaded:.2f} s: 2 workers with one thread each against that: {threaded / two:.2f}x", flush=True)


def bench_overlap(tmp: Path) -> None:
    """Decoding overlapped with processing (--prefetch) against one after the other, one worker."""
    dataset = big_dataset(tmp)
    frames = 600
    decode = frames_run(tmp, dataset, 1, 1)  # the frames pipeline: decoding alone, start-up included
    seconds = round(decode / frames, 4)  # a processor about as slow as decoding
    walls = {}
    for prefetch in (0, PREFETCH):
        out = tmp / f"run-overlap-{prefetch}"
        args = run_args(dataset, out, processor="slow_processor:make", workers=1, catalog="midv500", check=False)
        walls[prefetch], _ = run_timed([*args, "--option", f"seconds={seconds}", "--prefetch", str(prefetch),
                                        "--batch-size", "1"])
    longer = max(decode, seconds * frames)
    ratio = walls[PREFETCH] / longer
    print(f"overlap: 1 worker, 1 decoding thread, {frames} frames of 1080x1920, a processor of {seconds * 1000:.1f} ms "
          f"a frame outside the GIL: decoding alone {decode:.2f} s, processing alone {seconds * frames:.2f} s | "
          f"--prefetch 0 {walls[0]:.2f} s ({walls[0] / longer:.2f}x the longer), --prefetch {PREFETCH} "
          f"{walls[PREFETCH]:.2f} s ({ratio:.2f}x the longer) | target at most {TARGET_OVERLAP}x: "
          f"{verdict(ratio <= TARGET_OVERLAP)}", flush=True)


def bench_memory(tmp: Path) -> None:
    video = small_video(tmp)
    peaks, rates = {}, {}
    for count in (MEMORY_FEW, *MEMORY_MANY):
        clips = plain_clips(tmp, count, video)
        wall, peaks[count] = run_timed(run_args(clips, tmp / f"run-mem-{count}", processor=NOOP, workers=2),
                                       sample_rss=True)
        rates[count] = count / wall
    figures = ", ".join(f"{peaks[n] / 2**20:.1f} MiB with {n:,} ({rates[n]:,.0f} clips/s over the whole run)"
                        for n in (MEMORY_FEW, *MEMORY_MANY))
    grown = {n: (peaks[n] - peaks[MEMORY_FEW]) / 2**20 for n in MEMORY_MANY}
    most = MEMORY_MANY[-1]
    print(f"memory: orchestrator peak RSS (psutil, every 5 ms), no-op clips, 2 workers, checks included: {figures}; "
          + ", ".join(f"{grown[n]:+.1f} MiB at {n:,}" for n in MEMORY_MANY)
          + f" | target at most +{TARGET_MEMORY} MiB at {most:,}: {verdict(grown[most] <= TARGET_MEMORY)}", flush=True)


def _dask_cluster(tmp: Path) -> tuple[str, list[subprocess.Popen]]:
    """A `dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1, as a cluster runs."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    quiet = {"env": env(), "cwd": tmp, "start_new_session": True, "stdout": subprocess.DEVNULL,
             "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
                               ":0"], **quiet)]
    procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                "--dashboard-address", ":0", "--local-directory", str(tmp / f"dask-w{i}")], **quiet)
              for i in range(2)]
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def bench_dask(tmp: Path) -> None:
    import signal

    video = small_video(tmp)
    address, procs = _dask_cluster(tmp)
    try:
        costs = {}
        for pool, scheduler in (("process", None), ("dask", address)):
            walls = {}
            for count in (DASK_FEW, DASK_MANY):
                clips = plain_clips(tmp, count, video)
                walls[count], _ = best_wall([run_args(clips, tmp / f"run-dask-{pool}-{count}-{i}", processor=NOOP,
                                                      workers=2, check=False, scheduler=scheduler)
                                             for i in range(REPEAT)])
            costs[pool] = (walls[DASK_MANY] - walls[DASK_FEW]) / (DASK_MANY - DASK_FEW)
            print(f"dask: --pool {pool}, 2 workers, no-op clips, --no-check: {costs[pool] * 1000:.2f} ms per clip "
                  f"(wall {walls[DASK_MANY]:.2f} s for {DASK_MANY} - {walls[DASK_FEW]:.2f} s for {DASK_FEW}, "
                  f"best of {REPEAT})", flush=True)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    dataset = big_dataset(tmp)
    clips = sum(1 for p in dataset.rglob("videos/*") if p.is_file())
    real = frames_run(tmp, dataset, 2, 1) / clips
    share = costs["dask"] / real
    print(f"dask: per-clip overhead {costs['dask'] * 1000:.2f} ms, {costs['dask'] / costs['process']:.1f}x the "
          f"local pool's {costs['process'] * 1000:.2f} ms; a real clip (--pipeline frames, 1080x1920, 2 workers) "
          f"takes {real:.2f} s: the overhead is {share:.1%} of it | target at most {TARGET_DASK_SHARE:.0%}: "
          f"{verdict(share <= TARGET_DASK_SHARE)}", flush=True)


def main() -> None:
    benches = {
        "overhead": bench_overhead,
        "frames": bench_frames,
        "scaling": bench_scaling,
        "memory": bench_memory,
        "overlap": bench_overlap,
        "dask": bench_dask,
    }
    chosen = sys.argv[1:] or list(benches)
    unknown = [name for name in chosen if name not in benches]
    if unknown:
        raise SystemExit(f"unknown part {unknown[0]!r}: choose from {', '.join(benches)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            benches[name](Path(tmp))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
