"""A field read frame after frame: readings with per-character alternatives combined, and when to stop.

Two published methods, written here from their papers (docs/scoring.md cites them):

- **Combination with alternatives** (K. Bulatov, "A method to reduce errors of string
  recognition based on combination of several recognition results with per-character
  alternatives", Bulletin of the South Ural State University, series Mathematical
  Modelling, Programming & Computer Software, 2019). A reading is a sequence of *cells*;
  a cell is a distribution over characters and the empty label (here the empty string),
  its memberships summing to 1. Two cells are ``d(a, b) = 1/2 sum |a(c) - b(c)|`` apart
  (over every label; one absent from a cell counts 0); leaving a cell unaligned costs its
  distance to the pure-empty cell, ``1 - a(empty)``. The first reading is the combined
  result R with weight W = 1; each next reading x is aligned with R by an edit distance
  under these costs, the aligned cells averaged ``(W r + x) / (W + 1)`` (a cell left
  unaligned averaged with a pure-empty cell in the other's place), and W grows by one. A
  reading without characters takes part as one pure-empty cell. The combined string
  writes, for each cell, its best non-empty label (ties: the first in sorted order) when
  that label's membership exceeds 0.6 times the cell's empty membership.
- **The generalised distance** of two cell sequences A and B: the alignment cost G above,
  ``rho = 2G / (|A| + |B| + G)`` counted in cells (0 for two empty sequences).
- **Stopping by the expected distance** (K. Bulatov, N. Razumnyi, V. V. Arlazarov, "On
  optimal stopping strategies for text recognition in a video stream as an application of a
  monotone sequential decision model", IJDAR 22, 2019, arXiv 1910.04107): after n readings
  with combined result R_n, ``D_n = (0.1 + sum over i <= n of rho(R_n + x_i, R_n)) / (n + 1)``,
  where ``R_n + x_i`` is R_n (weight n) combined once more with reading i; the rule stops at
  the first n >= 2 with D_n <= T.

On the trace back of an alignment, a match is taken only when strictly cheaper than both
gaps, else R's cell is left unaligned when strictly cheaper than leaving x's, else x's.

A field's stream (:class:`Stream`) is worked out where the clip runs, one frame at a time
in frame order, as a phone would: the readings of the clip so far are held, each frame
costs one combination and, for D_n, one combination and one distance per distinct reading
so far (readings that are equal cell for cell are worked out once and counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EMPTY = ""  # the empty label
WRITE_RATIO = 0.6  # a cell's best label is written when its membership exceeds this times the empty membership
PRIOR = 0.1  # the constant of the expected-distance estimate's numerator


ALPHABET_LIMIT = 4096  # labels a field's stream tells apart (a recognizer's alphabet is a few hundred)
OTHER = "\ufffd"  # the one label of every label past ALPHABET_LIMIT
COST_CELLS = 1 << 22  # cell-distance terms worked out at once; more (long results, large alphabets): row by row


class Alphabet:
    """The labels a field's stream has met, each with its column: the empty label is column 0. Past
    ALPHABET_LIMIT labels (no recognizer has so many; a processor gone wrong may), every new label is one,
    OTHER, so that a stream's cells stay bounded."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {EMPTY: 0}
        self.labels: list[str] = [EMPTY]

    def column(self, label: str) -> int:
        column = self.index.get(label)
        if column is None:
            if len(self.labels) >= ALPHABET_LIMIT:
                label = OTHER
                column = self.index.get(label)
                if column is not None:
                    return column
            column = self.index[label] = len(self.labels)
            self.labels.append(label)
        return column

    def __len__(self) -> int:
        return len(self.labels)


def _widen(cells: np.ndarray, width: int) -> np.ndarray:
    """`cells` with zero columns added up to `width` labels (labels met since it was made)."""
    if cells.shape[1] >= width:
        return cells
    return np.pad(cells, ((0, 0), (0, width - cells.shape[1])))


def reading_cells(positions: Sequence[Mapping[str, float]], alphabet: Alphabet) -> np.ndarray:
    """A reading's cells over `alphabet` (labels added as met): one row per position, normalised to sum 1;
    a reading without positions is one pure-empty cell. Memberships must be finite and non-negative
    with a positive sum per position (prediction.alternatives checks a processor's)."""
    if not positions:
        cells = np.zeros((1, len(alphabet)))
        cells[0, 0] = 1.0
        return cells
    columns = [[(alphabet.column(label), float(m)) for label, m in position.items()] for position in positions]
    cells = np.zeros((len(columns), len(alphabet)))
    for row, entries in enumerate(columns):
        for column, membership in entries:
            cells[row, column] += membership
    return cells / cells.sum(axis=1, keepdims=True)


def text_cells(text: str, alphabet: Alphabet) -> np.ndarray:
    """A reading given as text only: each character a cell certain of it."""
    return reading_cells([{character: 1.0} for character in text], alphabet)


def _alignment(a: np.ndarray, b: np.ndarray) -> tuple[list[list[float]], list[list[float]], list[float], list[float]]:
    """The edit-distance table of aligning cell sequences `a` and `b`, with the costs it was made of."""
    if a.shape[0] * b.shape[0] * a.shape[1] <= COST_CELLS:
        cost = (0.5 * np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2)).tolist()
    else:  # the same sums a row at a time: memory bounded by one row
        cost = [(0.5 * np.abs(row[None, :] - b).sum(axis=1)).tolist() for row in a]
    gap_a, gap_b = (1.0 - a[:, 0]).tolist(), (1.0 - b[:, 0]).tolist()
    m, n = len(gap_a), len(gap_b)
    first = [0.0] * (n + 1)
    for j in range(n):
        first[j + 1] = first[j] + gap_b[j]
    table = [first]
    previous = first
    for i in range(m):
        g, row_cost = gap_a[i], cost[i]
        row = [previous[0] + g]
        left = row[0]
        for j in range(n):
            match = previous[j] + row_cost[j]
            up = previous[j + 1] + g
            left = left + gap_b[j]
            left = match if match < left else left
            left = up if up < left else left
            row.append(left)
        table.append(row)
        previous = row
    return table, cost, gap_a, gap_b


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """The alignment cost G of two cell sequences (over one alphabet's columns)."""
    width = max(a.shape[1], b.shape[1])
    table = _alignment(_widen(a, width), _widen(b, width))[0]
    return table[-1][-1]


def rho(a: np.ndarray, b: np.ndarray) -> float:
    """The generalised distance 2G / (|A| + |B| + G) of two cell sequences, counted in cells (0 for two empty)."""
    g = distance(a, b)
    total = len(a) + len(b) + g
    return 2.0 * g / total if total else 0.0


def _trace(table: Sequence[Sequence[float]], cost: Sequence[Sequence[float]], gap_r: Sequence[float],
           gap_x: Sequence[float], i: int, j: int) -> list[tuple[int, int]]:  # fmt: skip
    """The alignment traced back from (i, j): (i, j) of each output cell in order, -1 where a side has none. A
    match only when strictly cheaper than both gaps, else R's cell unaligned when strictly cheaper, else x's."""
    steps: list[tuple[int, int]] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            match = table[i - 1][j - 1] + cost[i - 1][j - 1]
            up = table[i - 1][j] + gap_r[i - 1]
            left = table[i][j - 1] + gap_x[j - 1]
            if match < up and match < left:
                i, j = i - 1, j - 1
                steps.append((i, j))
                continue
            if up < left:
                i -= 1
                steps.append((i, -1))
            else:
                j -= 1
                steps.append((-1, j))
        elif i > 0:
            i -= 1
            steps.append((i, -1))
        else:
            j -= 1
            steps.append((-1, j))
    steps.reverse()
    return steps


def _merge(r: np.ndarray, weight: float, x: np.ndarray, steps: list[tuple[int, int]]) -> np.ndarray:
    """The aligned cells averaged (weight * r + x) / (weight + 1), a pure-empty cell where a side has none."""
    width = r.shape[1]
    padded_r = np.zeros((len(r) + 1, width))
    padded_x = np.zeros((len(x) + 1, width))
    padded_r[:-1], padded_x[:-1] = r, x
    padded_r[-1, 0] = padded_x[-1, 0] = 1.0  # index -1: the pure-empty cell
    rows = np.array(steps, dtype=np.int64)
    return (weight * padded_r[rows[:, 0]] + padded_x[rows[:, 1]]) / (weight + 1.0)


def combine(r: np.ndarray, weight: float, x: np.ndarray) -> np.ndarray:
    """The combined result `r` of weight `weight` with reading `x` (weight 1) added: the new cells."""
    width = max(r.shape[1], x.shape[1])
    r, x = _widen(r, width), _widen(x, width)
    table, cost, gap_r, gap_x = _alignment(r, x)
    return _merge(r, weight, x, _trace(table, cost, gap_r, gap_x, len(r), len(x)))


def best_string(cells: np.ndarray, alphabet: Alphabet) -> str:
    """The combined string: each cell's best non-empty label (ties: the first in sorted label order),
    written when its membership exceeds WRITE_RATIO times the cell's empty membership."""
    labels = alphabet.labels
    out = []
    for cell in cells.tolist():
        best, best_label = -1.0, None
        for column in range(1, len(cell)):
            value = cell[column]
            if value > best or (value == best and best_label is not None and labels[column] < best_label):
                best, best_label = value, labels[column]
        if best_label is not None and best > WRITE_RATIO * cell[0]:
            out.append(best_label)
    return "".join(out)


@dataclass(frozen=True)
class Step:
    """A stream after its n-th reading: the combined string, and D_n (None for n = 1: the rule waits for 2).
    ``uniform``: every reading so far was the same text (then the string is it and D_n = 0.1 / (n + 1))."""

    text: str
    expected_distance: float | None
    uniform: bool = False


Key = tuple  # a reading told apart from others: ("text", text) or ("alternatives", its positions' items)


class Stream:
    """A field's readings in a clip, in frame order: the combined result after each, and D_n.

    ``add`` takes a reading's alternatives (a list of {label: membership} per position, as
    prediction.alternatives checked them) or its text, and returns the Step after it.
    ``expected`` False skips D_n (the combination alone costs one alignment per reading).

    While every reading is the same text (a reader that reads the field right, or the same
    way wrong, frame after frame), nothing is aligned: n equal one-character-per-cell
    readings combine to themselves, each rho is 0 and D_n = 0.1 / (n + 1). The first
    reading that differs replays them through the combination, so the results are the
    method's exactly.
    """

    def __init__(self, expected: bool = True) -> None:
        self.alphabet = Alphabet()
        self.expected = expected
        self.result: np.ndarray | None = None
        self.weight = 0
        self.uniform: str | None = None  # the text every reading so far was, while no cell was worked out
        self.readings: dict[Key, list] = {}  # distinct readings: key -> [cells, count]

    def add(self, alternatives: Sequence[Mapping[str, float]] | None = None, text: str = "") -> Step:
        if alternatives is None and self.result is None and (self.uniform is None or self.uniform == text):
            self.uniform, self.weight = text, self.weight + 1
            self.readings[("text", text)] = [None, self.weight]
            return Step(text, PRIOR / (self.weight + 1) if self.expected and self.weight >= 2 else None, True)
        if self.result is None and self.uniform is not None:
            self._replay()
        if alternatives is None:
            key: Key = ("text", text)
            cells = text_cells(text, self.alphabet)
        else:
            key = ("alternatives", tuple(tuple(sorted(p.items())) for p in alternatives))
            cells = reading_cells(alternatives, self.alphabet)
        self._combine(cells)
        if self.expected:
            held = self.readings.setdefault(key, [cells, 0])
            held[1] += 1
        assert self.result is not None
        return Step(best_string(self.result, self.alphabet), self._expected() if self.expected else None)

    def _replay(self) -> None:
        """Work out the cells of the equal text readings taken so far."""
        text, count = self.uniform or "", self.weight
        cells = text_cells(text, self.alphabet)
        self.result, self.weight, self.uniform = None, 0, None
        for _ in range(count):
            self._combine(cells)
        if ("text", text) in self.readings:
            self.readings[("text", text)][0] = cells

    def _combine(self, cells: np.ndarray) -> None:
        if self.result is None:
            self.result, self.weight = cells, 1
        else:
            self.result, self.weight = combine(self.result, self.weight, cells), self.weight + 1

    def _expected(self) -> float | None:
        n = self.weight
        if n < 2:
            return None
        result = self.result
        assert result is not None
        total = PRIOR
        for cells, count in self.readings.values():
            total += count * rho(combine(result, n, cells), result)
        return total / (n + 1)


class FieldStreams:
    """A clip's text fields, each a Stream while its truth stays the same (in a clip of several documents,
    MIDV-2020's scans and photos, a field whose truth changes starts again)."""

    def __init__(self) -> None:
        self.streams: dict[str, tuple[str, Stream, Step]] = {}

    def add(self, name: str, truth: str, alternatives: Sequence[Mapping[str, float]] | None, text: str) -> Step:
        """Take field `name`'s reading of the next frame."""
        held = self.streams.get(name)
        stream = held[1] if held is not None and held[0] == truth else Stream()
        step = stream.add(alternatives, text)
        self.streams[name] = (truth, stream, step)
        return step

    def last(self, name: str, truth: str) -> Step | None:
        """Where field `name` stands when a frame gave no reading of it (None: no reading yet)."""
        held = self.streams.get(name)
        return held[2] if held is not None and held[0] == truth else None


def expected_distance_stop(values: Sequence[float | None], threshold: float) -> int:
    """The frame (1-based) the expected-distance rule stops at: the first n >= 2 with D_n <= `threshold`,
    else the last frame."""
    for n, value in enumerate(values, 1):
        if n >= 2 and value is not None and value <= threshold:
            return n
    return len(values)


def stable_stop(texts: Sequence[str | None], frames: int) -> int:
    """The frame the stable rule stops at: the first n whose combined string has not changed over the last
    `frames` frames (equal to those of frames n - frames .. n), else the last frame."""
    run = 0
    for n in range(2, len(texts) + 1):
        run = run + 1 if texts[n - 1] == texts[n - 2] else 0
        if run >= frames:
            return n
    return len(texts)


def fixed_stop(count: int, frames: int) -> int:
    """The frame the fixed rule stops at: after `frames` frames, or the clip's last."""
    return min(frames, count)


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None
