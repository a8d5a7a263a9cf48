"""MIDV-2020 at full size on 2 cores: the run, the orchestrator's memory, and reading the results.

Synthesizes (once; about 6 minutes) a MIDV-2020-size dataset at 72x128: 1,000 clips of
13.7 s at 30 fps with 69 annotated frames each (every 6th: 69,000 in all, where MIDV-2020
has 68,409), their JPEGs and videos, and 4,000 scans, photos and templates. Then:

  run       `midvbatch run --pipeline ground-truth` (every clip frame decoded by number from
            its video, every picture read, all scored) on one document type (100 clips and
            400 pictures) and on all ten, 2 workers, one decoding thread each; wall time,
            frames/s, and the
            orchestrator's peak RSS (psutil, every 5 ms). Baseline: the one-type run (the
            memory target: at most +30 MiB from 1/10 of the dataset to all of it).
  results   on the full run: `status --json`, `report` as md, json, csv and html, `export`
            as jsonl and csv, each timed. Baseline: reading every frame row of the run's
            ledger with sqlite3 and writing it as JSON lines (what any export must do).
  import    `midvbatch import` of the run's `export jsonl` into a new run folder (2 workers):
            every record read, staged, written clip by clip, and scored again. Baseline: the
            export's own time (target: at most 3x).
  compare   `midvbatch compare` of the run and its import, 2,000 resamples, every group.
            Baseline: the sqlite3 one above (target: at most 20x).

Every `midvbatch run` pins the options it depends on (bench_engine.run_args). Set
MIDVBATCH_BENCH_MIDV2020 to a folder to keep the dataset between invocations.

    python bench/bench_scale.py
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import MIDVBATCH, run_args, run_timed  # noqa: E402

TARGET_MEMORY = 30  # MiB: most the orchestrator may grow from one type to all ten
TARGET_RESULTS = 20.0  # at most this many times the sqlite3 baseline, for every status/report/export
TARGET_IMPORT = 3.0  # `midvbatch import` of the run's JSON lines: at most this many times `export jsonl`
TARGET_COMPARE = 20.0  # `midvbatch compare` of two such runs: at most this many times the sqlite3 baseline


def dataset(root: Path) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    ds = root / "midv2020"
    if not (ds / "clips_video").is_dir():
        started = time.perf_counter()
        synthesize(ds, SynthConfig(catalog="midv2020", docs=10, clips="*", images=100, seconds=13.7,
                                   width=72, height=128, seed=0), overwrite=True)
        print(f"synthesized: {time.perf_counter() - started:.0f} s")
    return ds


def frames_done(run: Path) -> int:
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    finally:
        db.close()


def baseline(run: Path, out: Path) -> float:
    """Read every frame row of the ledger with sqlite3 and write it as JSON lines."""
    start = time.perf_counter()
    db = sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True)
    cursor = db.execute("SELECT * FROM frames")
    names = [d[0] for d in cursor.description]
    with open(out, "w") as f:
        for row in cursor:
            f.write(json.dumps(dict(zip(names, row, strict=True))) + "\n")
    db.close()
    return time.perf_counter() - start


def main() -> None:
    keep = os.environ.get("MIDVBATCH_BENCH_MIDV2020")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(keep) if keep else Path(tmp)
        ds = dataset(root)
        runs = {}
        for label, docs in (("one type", ["--docs", "alb_id"]), ("all ten types", [])):
            out = Path(tmp) / f"run-{len(docs)}"
            args = run_args(ds, out, workers=2, pipeline="ground-truth", catalog="midv2020") + docs
            wall, peak = run_timed(args, sample_rss=True)
            frames = frames_done(out)
            runs[label] = (wall, peak, frames, out)
            print(f"run: {label}, --pipeline ground-truth, 2 workers: {frames:,} frames in {wall:.1f} s "
                  f"({frames / wall:,.0f} frames/s), orchestrator peak RSS {peak / 2**20:.1f} MiB")
        grown = (runs["all ten types"][1] - runs["one type"][1]) / 2**20
        met = "met" if grown <= TARGET_MEMORY else "NOT met"
        print(f"memory: orchestrator peak RSS {runs['one type'][2]:,} -> {runs['all ten types'][2]:,} frame results: "
              f"{grown:+.1f} MiB | target at most +{TARGET_MEMORY} MiB: {met}")
        full = runs["all ten types"][3]
        base = baseline(full, Path(tmp) / "baseline.jsonl")
        print(f"results: baseline sqlite3 rows -> JSON lines: {base:.2f} s for {runs['all ten types'][2]:,} frames")
        commands = {
            "status --json": ["status", full, "--json"],
            "report md": ["report", full],
            "report json": ["report", full, "--format", "json"],
            "report csv": ["report", full, "--format", "csv"],
            "report html": ["report", full, "--format", "html", "--out", Path(tmp) / "r.html"],
            "export jsonl": ["export", full, "--out", Path(tmp) / "e.jsonl"],
            "export csv": ["export", full, "--format", "csv", "--out", Path(tmp) / "e.csv"],
        }
        took_by = {}
        for label, command in commands.items():
            took, _ = run_timed([*MIDVBATCH, *map(str, command)])
            took_by[label] = took
            ratio = took / base
            met = "met" if ratio <= TARGET_RESULTS else "NOT met"
            print(f"results: {label}: {took:.2f} s ({ratio:.1f}x the baseline) | target at most "
                  f"{TARGET_RESULTS:g}x: {met}")
        imported = Path(tmp) / "imported"
        took, _ = run_timed([*MIDVBATCH, "import", str(Path(tmp) / "e.jsonl"), str(ds), "--out", str(imported),
                             "--workers", "2"])
        ratio = took / took_by["export jsonl"]
        met = "met" if ratio <= TARGET_IMPORT else "NOT met"
        print(f"import: the export's JSON lines ({frames_done(imported):,} frames) scored again, 2 workers: "
              f"{took:.2f} s ({ratio:.1f}x export jsonl) | target at most {TARGET_IMPORT:g}x: {met}")
        took, _ = run_timed([*MIDVBATCH, "compare", str(full), str(imported), "--resamples", "2000", "--format",
                             "json", "--out", str(Path(tmp) / "compare.json")])
        ratio = took / base
        met = "met" if ratio <= TARGET_COMPARE else "NOT met"
        print(f"compare: the run and its import, 2,000 resamples, every group: {took:.2f} s ({ratio:.1f}x the "
              f"baseline) | target at most {TARGET_COMPARE:g}x: {met}")


if __name__ == "__main__":
    main()
