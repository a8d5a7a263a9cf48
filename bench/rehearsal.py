"""The full-size rehearsal: all of MIDV-500 (50 documents, 500 clips, 15,000 annotated frames) at its real
frame size, 1080x1920, through the default pipeline on every core, killed with SIGKILL three times along
the way and resumed, then checked: every frame scored exactly once.

  dataset   synthesized once with `midvbatch synth --docs 50 --size 1080x1920 --seed 500` (two halves at
            once, one per core, then put together), kept in MIDVBATCH_REHEARSAL_DATASET (default
            ~/.cache/midvbatch/rehearsal-midv500-1080x1920) and reused while its marker file says it is whole.
  run       `midvbatch run DATASET --out RUN --pipeline localize --workers CORES --decode-threads 1`, every
            option a figure depends on pinned (bench_engine.run_args); SIGKILL to the orchestrator when 25%,
            50% and 75% of the clips are done (its workers die with it), then the same command again.
  figures   total wall time (the four runs and the restarts between them), frames/s, parallel
            efficiency (the sum of every done clip's decode + localize + score seconds, divided by the
            workers, against the wall time), clips run again after a kill, the orchestrator's and the
            workers' peak resident memory (sampled every 50 ms, and the ledger's per-clip peaks), the disk
            the run folder and the dataset take; then the checks: 500 clips done, 15,000 frame rows,
            15,000 distinct (clip, frame), 15,000 exported records, every frame scored.

It takes long (about 15 minutes to synthesize on 2 cores, then the run): `make rehearsal`, not `make
test`. RUN goes to a temporary folder unless MIDVBATCH_REHEARSAL_OUT names one (it must not exist).

    python bench/rehearsal.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_engine import MIDVBATCH, env, run_args  # noqa: E402

SIZE = "1080x1920"
SEED = 500
HALVES = ("0[1-9]_*,1?_*,2[0-5]_*", "2[6-9]_*,3?_*,4?_*,50_*")  # documents 01-25 and 26-50
CLIPS, FRAMES = 500, 15_000
KILL_AT = (0.25, 0.50, 0.75)  # share of clips done at each SIGKILL
SAMPLE = 0.05  # seconds between memory readings
MARKER = ".rehearsal.json"


def dataset_root() -> Path:
    default = Path.home() / ".cache" / "midvbatch" / f"rehearsal-midv500-{SIZE}"
    return Path(os.environ.get("MIDVBATCH_REHEARSAL_DATASET", default))


def synthesize(root: Path) -> None:
    """Write the dataset once: two synth processes (a half of the documents each), then put together."""
    marker = root / MARKER
    wanted = {"docs": 50, "size": SIZE, "seed": SEED}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        print(f"dataset: {root} (synthesized before, reused)", flush=True)
        return
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists and is not a whole rehearsal dataset (no {MARKER}): remove it or set "
                         "MIDVBATCH_REHEARSAL_DATASET to a new folder")
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parts = [root.parent / f".{root.name}.part{i}" for i in range(len(HALVES))]
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    procs = [subprocess.Popen([*MIDVBATCH, "synth", str(part), "--docs", docs, "--size", SIZE, "--seed", str(SEED)],
                              env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for part, docs in zip(parts, HALVES, strict=True)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"synth failed:\n{err}")
    for part in parts:
        for document in sorted(part.iterdir()):
            document.rename(root / document.name)
        part.rmdir()
    videos = len(list(root.glob("*/videos/*")))
    if videos != CLIPS:
        raise SystemExit(f"{root}: {videos} videos synthesized, not {CLIPS}")
    marker.write_text(json.dumps(wanted))
    print(f"dataset: synthesized {root} ({CLIPS} clips of {SIZE}) in {time.perf_counter() - start:.0f} s, "
          f"{_size(root) / 2**30:.2f} GiB", flush=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _done(run_dir: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'done'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


class Peaks:
    """The highest resident memory seen of the orchestrator and of any one of its workers."""

    def __init__(self) -> None:
        self.orchestrator = self.worker = 0

    def sample(self, proc: psutil.Process) -> None:
        try:
            self.orchestrator = max(self.orchestrator, proc.memory_info().rss)
            for child in proc.children(recursive=True):
                try:
                    self.worker = max(self.worker, child.memory_info().rss)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass


def run_segment(args: list[str], run_dir: Path, peaks: Peaks, kill_at: int | None) -> tuple[float, int]:
    """Run the command until it ends, or SIGKILL it once `kill_at` clips are done; return (seconds, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    last_count = 0.0
    while proc.poll() is None:
        peaks.sample(watched)
        now = time.perf_counter()
        if kill_at is not None and now - last_count >= 0.5:
            last_count = now
            if _done(run_dir) >= kill_at:
                children = watched.children(recursive=True)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                psutil.wait_procs(children, timeout=15)  # they follow their orchestrator (PR_SET_PDEATHSIG)
                break
        time.sleep(SAMPLE)
    proc.communicate()
    return time.perf_counter() - start, proc.returncode


def check_once(run_dir: Path) -> dict:
    """Every clip done, every frame recorded, scored and exported exactly once."""
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        states = dict(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())
        rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT task || '/' || frame) FROM frames").fetchone()
        scored = db.execute("SELECT COUNT(*) FROM frames WHERE scores IS NOT NULL").fetchone()[0]
        work = db.execute("SELECT stage_seconds, peak_rss, attempts FROM tasks WHERE state = 'done'").fetchall()
        starts = [m for (m,) in db.execute("SELECT message FROM events WHERE message LIKE 'run started by pid%'")]
    finally:
        db.close()
    exported = subprocess.run([*MIDVBATCH, "export", str(run_dir)], env=env(), capture_output=True, text=True,
                              check=True).stdout.splitlines()
    keys = {(json.loads(line)["clip"], json.loads(line)["frame"]) for line in exported}
    stage_sum = 0.0
    for stages, _, _ in work:
        seconds = json.loads(stages or "{}")
        stage_sum += sum(seconds.get(k, 0.0) for k in ("ground_truth", "decode", "process_frame", "score"))
    facts = {
        "states": states,
        "frame_rows": rows[0],
        "distinct_frames": rows[1],
        "scored": scored,
        "exported": len(exported),
        "exported_distinct": len(keys),
        "stage_seconds": stage_sum,
        "ledger_peak_rss": max((peak or 0) for _, peak, _ in work),
        "starts": len(starts),
        "recovered": sum(int(m.rsplit(" ", 2)[-2]) for m in starts),  # "..., 125 done, 4 recovered"
    }
    ok = (states == {"done": CLIPS} and rows[0] == rows[1] == scored == FRAMES
          and len(exported) == len(keys) == FRAMES)
    facts["exactly_once"] = ok
    return facts


def main() -> None:
    root = dataset_root()
    synthesize(root)
    workers = os.cpu_count() or 1
    own = os.environ.get("MIDVBATCH_REHEARSAL_OUT")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(own) if own else Path(tmp) / "run"
        if run_dir.exists():
            raise SystemExit(f"{run_dir} exists: MIDVBATCH_REHEARSAL_OUT must name a new folder")
        args = run_args(root, run_dir, pipeline="localize", workers=workers, catalog="midv500")
        peaks = Peaks()
        segments = []
        start = time.perf_counter()
        for share in KILL_AT:
            seconds, code = run_segment(args, run_dir, peaks, kill_at=int(CLIPS * share))
            segments.append(seconds)
            print(f"run: killed with SIGKILL at {_done(run_dir)} of {CLIPS} clips done, after {seconds:.1f} s "
                  f"(exit {code})", flush=True)
        seconds, code = run_segment(args, run_dir, peaks, kill_at=None)
        segments.append(seconds)
        total = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"the last run ended with exit status {code}")
        facts = check_once(run_dir)
        ideal = facts["stage_seconds"] / workers
        disk = _size(run_dir)
        print(f"run: resumed to the end in {seconds:.1f} s; total {total:.1f} s for {FRAMES:,} frames "
              f"({FRAMES / total:.1f} frames/s) on {workers} workers, {len(KILL_AT)} SIGKILLs; "
              f"{facts['recovered']} clips were in flight at the kills and ran again", flush=True)
        print(f"efficiency: the done clips' own seconds (ground truth + decode + localize + score) "
              f"{facts['stage_seconds']:.1f} s / {workers} workers = {ideal:.1f} s against {total:.1f} s of wall time: "
              f"{ideal / total:.0%}", flush=True)
        print(f"memory: orchestrator peak RSS {peaks.orchestrator / 2**20:.0f} MiB, a worker's "
              f"{peaks.worker / 2**20:.0f} MiB (sampled; the ledger's highest clip peak "
              f"{facts['ledger_peak_rss'] / 2**20:.0f} MiB)", flush=True)
        print(f"disk: run folder {disk / 2**20:.1f} MiB (ledger, logs); dataset {_size(root) / 2**30:.2f} GiB", flush=True)
        print(f"exactly once: {facts['states']}, {facts['frame_rows']:,} frame rows, {facts['distinct_frames']:,} "
              f"distinct, {facts['scored']:,} scored, {facts['exported']:,} exported "
              f"({facts['exported_distinct']:,} distinct): {'yes' if facts['exactly_once'] else 'NO'}", flush=True)
        if not facts["exactly_once"]:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
