"""The video stream's cost: combining readings with per-character alternatives and D_n after every frame.

The issue's size: 1,000 clips x 10 fields x 30 frames, every reading different (a recognizer's
per-character alternatives: the true character at 0.3-1.0 and four others at 0-0.3 per position,
now and then a position dropped), fields of 3 to 20 characters; what a run's workers do, on 2
processes (scoring.stream.Stream, D_n at every frame). The baseline, measured in the same run:
the same decisions written plainly from the papers (cells as dictionaries, every term of D_n
worked out afresh), on a sample of the clips; it also checks that both give the same D_n.

Pinned: the workload's seed, 2 processes, 30 frames, the sample of 20 fields for the baseline.
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

CLIPS, FIELDS, FRAMES, PROCESSES = 1000, 10, 30, 2
SAMPLE = 20  # fields whose D_n the plain baseline works out
TARGET_RATIO = 0.2  # at most this share of the plain baseline's time per field
TARGET_MINUTES = 10  # the whole workload on 2 processes
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"


def readings(clip: int, field: int) -> list[list[dict[str, float]]]:
    rng = np.random.default_rng(clip * 1000 + field)
    truth = "".join(rng.choice(list(LETTERS), int(rng.integers(3, 21))))
    out = []
    for _ in range(FRAMES):
        positions = []
        for c in truth:
            if rng.uniform() < 0.03:
                continue
            alts = {c: float(rng.uniform(0.3, 1.0))}
            for other in rng.choice(list(LETTERS), 4):
                alts[str(other)] = alts.get(str(other), 0.0) + float(rng.uniform(0.0, 0.3))
            positions.append(alts)
        out.append(positions)
    return out


def run_clip(clip: int) -> int:
    from midvbatch.scoring.stream import Stream

    decisions = 0
    for field in range(FIELDS):
        stream = Stream()
        for reading in readings(clip, field):
            stream.add(reading)
            decisions += 1
    return decisions


# --- the plain baseline: the papers' definitions, cells as dictionaries --------------------------------------


def _dist(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _table(r: list[dict], x: list[dict]) -> list[list[float]]:
    t = [[0.0] * (len(x) + 1) for _ in range(len(r) + 1)]
    for j in range(1, len(x) + 1):
        t[0][j] = t[0][j - 1] + 1.0 - x[j - 1].get("", 0.0)
    for i in range(1, len(r) + 1):
        t[i][0] = t[i - 1][0] + 1.0 - r[i - 1].get("", 0.0)
        for j in range(1, len(x) + 1):
            t[i][j] = min(t[i - 1][j - 1] + _dist(r[i - 1], x[j - 1]), t[i - 1][j] + 1.0 - r[i - 1].get("", 0.0),
                          t[i][j - 1] + 1.0 - x[j - 1].get("", 0.0))  # fmt: skip
    return t


def _combine(r: list[dict], w: int, x: list[dict]) -> list[dict]:
    t, i, j, out = _table(r, x), len(r), len(x), []
    empty = {"": 1.0}
    while i or j:
        match = t[i - 1][j - 1] + _dist(r[i - 1], x[j - 1]) if i and j else float("inf")
        up = t[i - 1][j] + 1.0 - r[i - 1].get("", 0.0) if i else float("inf")
        left = t[i][j - 1] + 1.0 - x[j - 1].get("", 0.0) if j else float("inf")
        if match < up and match < left:
            a, b, i, j = r[i - 1], x[j - 1], i - 1, j - 1
        elif up < left:
            a, b, i = r[i - 1], empty, i - 1
        else:
            a, b, j = empty, x[j - 1], j - 1
        out.append({k: (w * a.get(k, 0.0) + b.get(k, 0.0)) / (w + 1) for k in set(a) | set(b)})
    return out[::-1]


def _rho(a: list[dict], b: list[dict]) -> float:
    g = _table(a, b)[-1][-1]
    total = len(a) + len(b) + g
    return 2 * g / total if total else 0.0


def plain_field(positions_per_frame: list[list[dict[str, float]]]) -> list[float | None]:
    xs = [[{k: v / sum(p.values()) for k, v in p.items()} for p in reading] or [{"": 1.0}]
          for reading in positions_per_frame]  # fmt: skip
    out: list[float | None] = [None]
    r = xs[0]
    for n in range(2, len(xs) + 1):
        r = _combine(r, n - 1, xs[n - 1])
        out.append((0.1 + sum(_rho(_combine(r, n, x), r) for x in xs[:n])) / (n + 1))
    return out


def main() -> None:
    from midvbatch.scoring.stream import Stream

    sample = [(clip, field) for clip in range(SAMPLE // 2) for field in range(2)]
    started = time.perf_counter()
    plain = [plain_field(readings(c, f)) for c, f in sample]
    plain_seconds = (time.perf_counter() - started) / len(sample)
    started = time.perf_counter()
    ours = []
    for c, f in sample:
        stream = Stream()
        ours.append([stream.add(r).expected_distance for r in readings(c, f)])
    ours_sample = (time.perf_counter() - started) / len(sample)
    worst = max(abs(a - b) for p, o in zip(plain, ours, strict=True) for a, b in zip(p[1:], o[1:], strict=True))
    print(
        f"check: D_n of {len(sample)} fields x {FRAMES} frames, plainly and by midvbatch: largest difference "
        f"{worst:.1e} | {'equal' if worst < 1e-9 else 'NOT equal'}"
    )
    ratio = ours_sample / plain_seconds
    met = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"per field of {FRAMES} frames (D_n at each): plain {plain_seconds * 1000:.0f} ms, midvbatch "
        f"{ours_sample * 1000:.1f} ms ({ratio:.3f}x) | target at most {TARGET_RATIO}x: {met}"
    )
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        decisions = sum(pool.map(run_clip, range(CLIPS), chunksize=10))
    wall = time.perf_counter() - started
    met = "met" if wall <= TARGET_MINUTES * 60 else "NOT met"
    print(
        f"workload: {CLIPS:,} clips x {FIELDS} fields x {FRAMES} frames ({decisions:,} decisions) on {PROCESSES} "
        f"processes: {wall:.0f} s ({wall / 60:.1f} min) | target at most {TARGET_MINUTES} min: {met}"
    )


if __name__ == "__main__":
    main()
