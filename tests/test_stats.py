"""Bootstrap intervals over clips and the exact McNemar test, checked against values worked by hand and a
bootstrap written independently here (a plain loop over resamples, its own random numbers)."""

from __future__ import annotations

import math
import random

import pytest

from midvbatch.scoring.stats import Interval, mcnemar_exact, paired_difference, ratio_interval


def _loop_bootstrap(units: list[tuple[float, float, float, float]], resamples: int, seed: int) -> tuple[float, float]:
    """The 95% percentile interval of B - A, resampling units with a plain loop (no numpy)."""
    rng = random.Random(seed)
    diffs = []
    for _ in range(resamples):
        draw = [units[rng.randrange(len(units))] for _ in units]
        na, da, nb, db = (sum(u[i] for u in draw) for i in range(4))
        diffs.append(nb / db - na / da)
    diffs.sort()
    return diffs[int(0.025 * (resamples - 1))], diffs[int(0.975 * (resamples - 1))]


def _clips(seed: int, count: int, shift: float) -> list[tuple[float, float, float, float]]:
    """`count` clips of 30 frames: frames correct in run A and in run B, B better by about `shift`."""
    rng = random.Random(seed)
    clips = []
    for _ in range(count):
        hardness = rng.random()  # clips differ: the frames of one clip go together
        a = sum(rng.random() > hardness for _ in range(30))
        b = sum(rng.random() > hardness - shift for _ in range(30))
        clips.append((a, 30, b, 30))
    return clips


def test_stats_mcnemar_exact_against_values_worked_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)
    assert mcnemar_exact(30_000, 30_000) == 1.0
    exact = 2 * sum(math.comb(2000, i) for i in range(801)) / 2**2000  # whole numbers: exact
    assert mcnemar_exact(1200, 800) == pytest.approx(exact, rel=1e-9) and 0 < exact < 1e-15
    assert mcnemar_exact(20_000, 10_000) == 0.0  # about 1e-700: below the smallest float, no overflow on the way
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_stats_paired_interval_matches_an_independent_bootstrap_on_a_known_difference():
    clips = _clips(seed=7, count=60, shift=0.1)
    a = ([c[0] for c in clips], [c[1] for c in clips])
    b = ([c[2] for c in clips], [c[3] for c in clips])
    diff = paired_difference(a, b, resamples=4000)
    true_diff = sum(c[2] for c in clips) / sum(c[3] for c in clips) - sum(c[0] for c in clips) / sum(
        c[1] for c in clips
    )
    assert diff.value == pytest.approx(true_diff)
    low, high = _loop_bootstrap(clips, 4000, seed=1)
    assert diff.low == pytest.approx(low, abs=0.01) and diff.high == pytest.approx(high, abs=0.01)
    assert 0 < diff.low < diff.value < diff.high  # a real difference: the interval leaves out 0
    same = paired_difference(a, a)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # a run against itself: no difference at all


def test_stats_paired_is_narrower_than_the_runs_own_intervals_and_seeded():
    clips = _clips(seed=3, count=40, shift=0.02)
    a = ([c[0] for c in clips], [c[1] for c in clips])
    b = ([c[2] for c in clips], [c[3] for c in clips])
    own_a, own_b = ratio_interval(*a), ratio_interval(*b)
    diff = paired_difference(a, b)
    # what the clips share cancels out: the difference is surer than either figure alone
    assert diff.high - diff.low < min(own_a.high - own_a.low, own_b.high - own_b.low)
    assert paired_difference(a, b) == diff  # the same seed: the same interval
    assert paired_difference(a, b, seed=5) != diff
    assert own_a.low < own_a.value < own_a.high


def test_stats_nothing_measured_and_bad_shapes():
    assert ratio_interval([0, 0], [0, 0]) == Interval(None, None, None)
    assert ratio_interval([], []) == Interval(None, None, None)
    one = ratio_interval([3, 0], [4, 0])  # a clip without measure takes part in no resample's figure
    assert one.value == 0.75 and one.low == one.high == 0.75
    with pytest.raises(ValueError):
        paired_difference(([1], [2]), ([1, 2], [2, 2]))
    with pytest.raises(ValueError):
        ratio_interval([1, 2], [3])
    assert ratio_interval([1], [2], resamples=1).to_list() == [0.5, 0.5]
