"""Intervals and tests for figures of runs: how sure a figure, or a difference of two, is.

A figure of a run (an accuracy, a mean error) is a ratio of sums over frames: frames
correct over frames scored, the sum of an error over the frames it was measured on. The
frames of one clip are not independent (one document, one background, one hand, one
phone), so the unit of resampling is the clip (or the document): the percentile bootstrap
over clusters (Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993, chapters 6,
13 and 14; resampling whole clusters as in Davison and Hinkley, *Bootstrap Methods and
their Application*, 1997, section 3.8). Two runs of the same dataset are compared with a
*paired* bootstrap: each resample draws clips once and computes both runs' figures on the
same clips, so that what the clips share cancels out. The frame-level accuracies of two
runs are also tested with the exact McNemar test (McNemar, Psychometrika 12, 1947): of the
frames that changed, how unlikely a split at least as uneven is when either way is as likely.

Every resample is drawn at once with numpy (a block of resamples as a matrix of how many
times each unit was drawn), not in a Python loop per resample; one set of resamples serves
every figure of the same units. The same seed gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000  # resamples of a bootstrap, by default
SEED = 20261207  # the default seed: the same runs give the same intervals
LEVEL = 0.95  # the intervals' confidence
_CHUNK = 2_000_000  # index cells drawn at a time (resamples x units): about 16 MB

Values = Sequence[float] | np.ndarray  # one number per unit


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval; `low` and `high` are None where no unit had a measure."""

    value: float | None
    low: float | None
    high: float | None

    def to_list(self) -> list[float | None]:
        """[low, high], as JSON carries it (``ci``)."""
        return [self.low, self.high]


def ratio_interval(
    numerators: Values,
    denominators: Values,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """The figure sum(numerators) / sum(denominators), one pair per unit (clip), and its percentile bootstrap
    interval over the units. A resample whose units measured nothing (denominators summing to 0) is left out."""
    figures = {"": (numerators, denominators)}
    return ratio_intervals(figures, resamples=resamples, seed=seed, level=level)[""]


def ratio_intervals(
    figures: Mapping[str, tuple[Values, Values]],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Interval]:
    """ratio_interval for several figures of the same units at once (each (numerators, denominators) over the
    same clips, in the same order): one set of resamples serves them all."""
    names = list(figures)
    if not names:
        return {}
    pairs = [_arrays(*figures[name]) for name in names]
    if len({len(num) for num, _ in pairs}) > 1:
        raise ValueError("the figures need the same units")
    stats = _resampled(pairs, resamples, seed)
    out = {}
    for name, (num, den), values in zip(names, pairs, stats, strict=True):
        value = _ratio(num.sum(), den.sum())
        out[name] = Interval(None, None, None) if value is None else _interval(value, values, level)
    return out


def paired_difference(
    a: tuple[Values, Values],
    b: tuple[Values, Values],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """B's figure minus A's, each sum(numerators) / sum(denominators) over the same units (clips, in the same
    order), and the percentile interval of the difference from a paired bootstrap: each resample draws the
    units once for both runs."""
    return paired_differences({"": (a, b)}, resamples=resamples, seed=seed, level=level)[""]


def paired_differences(
    figures: Mapping[str, tuple[tuple[Values, Values], tuple[Values, Values]]],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Interval]:
    """paired_difference for several figures of the same units at once (every figure's (A, B) pair over the same
    clips, in the same order): one set of resamples serves them all, so a comparison of many figures costs
    about one bootstrap."""
    names = list(figures)
    if not names:
        return {}
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    values: dict[str, tuple[float | None, float | None]] = {}
    for name in names:
        (num_a, den_a), (num_b, den_b) = (_arrays(*side) for side in figures[name])
        pairs += [(num_a, den_a), (num_b, den_b)]
        values[name] = (_ratio(num_a.sum(), den_a.sum()), _ratio(num_b.sum(), den_b.sum()))
    if len({len(num) for num, _ in pairs}) > 1:
        raise ValueError(f"paired figures need the same units: {sorted({len(num) for num, _ in pairs})} of them")
    stats = _resampled(pairs, resamples, seed)
    out = {}
    for i, name in enumerate(names):
        fig_a, fig_b = values[name]
        if fig_a is None or fig_b is None:
            out[name] = Interval(None, None, None)
        else:
            out[name] = _interval(fig_b - fig_a, stats[2 * i + 1] - stats[2 * i], level)
    return out


def mcnemar_exact(became_correct: int, became_wrong: int) -> float:
    """The two-sided p-value of the exact McNemar test: of the n = `became_correct` + `became_wrong` frames whose
    verdict changed between two runs, the chance of a split at least as uneven if each way had chance 1/2
    (twice the smaller tail of Binomial(n, 1/2), at most 1; 1 when nothing changed)."""
    if became_correct < 0 or became_wrong < 0:
        raise ValueError("counts of frames cannot be negative")
    n, k = became_correct + became_wrong, min(became_correct, became_wrong)
    if n == 0:
        return 1.0
    # the tail P(X <= k), summed in log space: comb(n, i) / 2**n overflows a float for n of tens of thousands
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top - n * math.log(2)) * math.fsum(math.exp(x - top) for x in logs)
    return min(1.0, 2.0 * tail)


def _arrays(numerators: Values, denominators: Values) -> tuple[np.ndarray, np.ndarray]:
    num, den = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError("one numerator and one denominator per unit")
    return num, den


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _resampled(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int) -> list[np.ndarray]:
    """Each (numerators, denominators)'s ratio on `resamples` resamples of the units, the same draws for every
    pair (NaN where a resample measured nothing).

    A resample is held as how many times it drew each unit (a row of counts), so every pair's
    sums over a block of resamples are one matrix product."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    units = len(pairs[0][0])
    rng = np.random.default_rng(seed)
    out = [np.full(resamples, np.nan) for _ in pairs]
    if units == 0:
        return out
    step = max(1, _CHUNK // max(units, 1))
    sides = np.stack([side for pair in pairs for side in pair], axis=1)  # units x (2 per pair)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        draws = rng.integers(0, units, size=(rows, units)) + (np.arange(rows) * units)[:, None]
        counts = np.bincount(draws.ravel(), minlength=rows * units).reshape(rows, units).astype(np.float64)
        sums = counts @ sides  # rows x (2 per pair)
        for i, stats in enumerate(out):
            num, den = sums[:, 2 * i], sums[:, 2 * i + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[start : start + rows] = np.where(den > 0, num / den, np.nan)
    return out


def _interval(value: float, stats: np.ndarray, level: float) -> Interval:
    kept = stats[~np.isnan(stats)]
    if not len(kept):
        return Interval(value, None, None)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(kept, [tail, 1.0 - tail])
    return Interval(value, float(low), float(high))
