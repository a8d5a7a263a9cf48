"""Combining readings with per-character alternatives, the generalised distance, and the stopping rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from midvbatch.scoring.stream import (
    Alphabet,
    Stream,
    best_string,
    combine,
    distance,
    expected_distance_stop,
    fixed_stop,
    reading_cells,
    rho,
    stable_stop,
    text_cells,
)


def cells(alphabet: Alphabet, *positions: dict[str, float]) -> np.ndarray:
    return reading_cells(list(positions), alphabet)


def as_dicts(result: np.ndarray, alphabet: Alphabet) -> list[dict[str, float]]:
    return [{alphabet.labels[c]: round(v, 9) for c, v in enumerate(row) if v} for row in result.tolist()]


def test_stream_cell_distance_and_gap_costs():
    a = Alphabet()
    one, half = cells(a, {"A": 1.0}), cells(a, {"A": 1.0, "B": 1.0})  # the second normalised to 0.5 / 0.5
    assert distance(one, half) == pytest.approx(0.5)
    assert distance(one, cells(a, {"": 1.0})) == pytest.approx(1.0)  # a letter onto the empty cell
    # leaving a cell unaligned costs 1 minus its empty membership
    gap = text_cells("", a)  # the empty reading: one pure-empty cell, 0 to leave unaligned
    assert distance(cells(a, {"": 3.0, "C": 1.0}), gap) == pytest.approx(0.25)
    assert distance(cells(a, {"": 1.0, "C": 3.0}), gap) == pytest.approx(0.75)
    assert distance(cells(a, {"": 1.0, "C": 3.0}, {"D": 1.0}), gap) == pytest.approx(1.75)


def test_stream_an_insertion_is_averaged_with_the_empty_cell_and_written_while_above_the_ratio():
    a = Alphabet()
    r = combine(text_cells("ABC", a), 1, text_cells("ABXC", a))
    assert as_dicts(r, a) == [{"A": 1}, {"B": 1}, {"": 0.5, "X": 0.5}, {"C": 1}]
    assert best_string(r, a) == "ABXC"  # 0.5 > 0.6 * 0.5
    r = combine(r, 2, text_cells("ABC", a))  # the X cell is left unaligned: 0.5, where matching it to C costs 1
    assert as_dicts(r, a) == [{"A": 1}, {"B": 1}, {"": round(2 / 3, 9), "X": round(1 / 3, 9)}, {"C": 1}]
    assert best_string(r, a) == "ABC"  # 1/3 is not above 0.6 * 2/3
    assert rho(text_cells("ABC", a), text_cells("ABXC", a)) == pytest.approx(2 * 1 / (3 + 4 + 1))


def test_stream_a_deletion_keeps_the_cell_half_empty():
    a = Alphabet()
    r = combine(text_cells("ABC", a), 1, text_cells("AC", a))
    assert as_dicts(r, a) == [{"A": 1}, {"": 0.5, "B": 0.5}, {"C": 1}]
    assert best_string(r, a) == "ABC"


def test_stream_ties_take_the_first_label_in_sorted_order_and_gaps_before_a_tied_match():
    a = Alphabet()
    for first, second in (("B", "A"), ("A", "B")):
        r = combine(text_cells(first, a), 1, text_cells(second, a))  # matched: cost 1 against 2 for two gaps
        assert as_dicts(r, a) == [{"A": 0.5, "B": 0.5}] and best_string(r, a) == "A"
    # "A" against the empty reading: the match and both gaps cost 1; the tie is not a match: x's cell is left
    # unaligned (traced back first, so it comes after R's), then R's
    r = combine(text_cells("A", a), 1, text_cells("", a))
    assert as_dicts(r, a) == [{"": 0.5, "A": 0.5}, {"": 1}]
    assert best_string(r, a) == "A"


def test_stream_empty_readings_take_part_as_one_empty_cell():
    a = Alphabet()
    assert text_cells("", a).tolist() == [[1.0]] and reading_cells([], a).tolist() == [[1.0]]
    stream = Stream()
    assert stream.add(text="").text == ""
    assert stream.add(text="AB").text == "AB"  # 0.5 / 0.5 with the empty cells
    assert rho(text_cells("", a), text_cells("", a)) == 0.0
    assert rho(np.zeros((0, 1)), np.zeros((0, 1))) == 0.0


def random_reading(rng: np.random.Generator, length: int) -> list[dict[str, float]]:
    letters = list("ABC0O1l")
    return [
        {str(c): float(rng.uniform(0.01, 1.0)) for c in rng.choice(letters, rng.integers(1, 4), replace=False)}
        for _ in range(length)
    ]


@pytest.mark.parametrize("seed", range(12))
def test_stream_combining_a_reading_with_itself_changes_nothing(seed):
    rng = np.random.default_rng(seed)
    reading = random_reading(rng, int(rng.integers(1, 9)))
    stream = Stream(expected=False)
    first = stream.add(reading)
    cells_first = stream.result.copy()
    for _ in range(int(rng.integers(2, 12))):
        assert stream.add(reading).text == first.text
    assert stream.result.shape == cells_first.shape
    np.testing.assert_allclose(stream.result, cells_first, atol=1e-12)


def brute_expected(readings: list[list[dict[str, float]]]) -> list[float | None]:
    """D_n worked out as the paper writes it: every reading combined once more with R_n, one by one."""
    a, out = Alphabet(), []
    xs = [reading_cells(r, a) for r in readings]
    width = len(a)
    xs = [np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in xs]
    result = xs[0]
    for n in range(1, len(xs) + 1):
        if n > 1:
            result = combine(result, n - 1, xs[n - 1])
        if n < 2:
            out.append(None)
            continue
        total = 0.1 + sum(rho(combine(result, n, x), result) for x in xs[:n])
        out.append(total / (n + 1))
    return out


def test_stream_expected_distance_matches_the_formula_and_repeats_are_counted():
    rng = np.random.default_rng(7)
    base = random_reading(rng, 6)
    readings = [base, random_reading(rng, 6), base, random_reading(rng, 5), base, base, random_reading(rng, 7)]
    stream = Stream()
    got = [stream.add(r).expected_distance for r in readings]
    want = brute_expected(readings)
    assert got[0] is None and want[0] is None
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-12)
    # the same reading again and again: nothing to gain, D_n = 0.1 / (n + 1)
    stream = Stream()
    assert [stream.add(text="ABC").expected_distance for _ in range(4)] == [None, 0.1 / 3, 0.1 / 4, 0.1 / 5]


def test_stream_stopping_rules():
    assert expected_distance_stop([None, 0.5, 0.2, 0.05, 0.01], 0.1) == 4
    assert expected_distance_stop([None, 0.05], 0.1) == 2  # never before the second frame
    assert expected_distance_stop([None, 0.5, 0.4], 0.1) == 3  # never low enough: the last frame
    assert expected_distance_stop([None], 0.1) == 1
    assert stable_stop(["A", "B", "B", "B", "C"], 2) == 4  # unchanged over frames 2-4
    assert stable_stop(["A", "B", "B", "C"], 2) == 4 and stable_stop(["A", "A"], 1) == 2
    assert fixed_stop(30, 5) == 5 and fixed_stop(3, 5) == 3


@pytest.mark.parametrize(
    "texts", [["ABC", "ABC", "ABC", "ABXC", "ABC", "ABC"], ["", "", "AB", "", "AB"], ["A8", "A8", "A8"], ["X"]]
)
def test_stream_equal_text_readings_skip_the_alignments_and_give_the_same_steps(texts):
    # text readings go the short way while they are all equal; given as one-hot alternatives, every one is
    # aligned: the steps must be the same
    short, aligned = Stream(), Stream()
    for text in texts:
        a, b = short.add(text=text), aligned.add([{c: 1.0} for c in text])
        assert a.text == b.text
        assert (a.expected_distance is None) == (b.expected_distance is None)
        if a.expected_distance is not None:
            assert a.expected_distance == pytest.approx(b.expected_distance, rel=1e-12, abs=1e-15)


@pytest.fixture(scope="module")
def alternatives_run(tmp_path_factory):
    """Clips TA01 and TA18 read by text_processors:Alternatives (every field by its alternatives alone)."""
    from conftest import midvbatch

    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("stream")
    for docs in ("01_*", "18_*"):
        synthesize(root / "ds", SynthConfig(docs=docs, clips="TA", seed=3))
    done = midvbatch(
        "run", root / "ds", "--out", root / "run", "--processor", "text_processors:Alternatives", "--workers", "1"
    )
    assert done.returncode == 0, done.stderr
    return root / "run"


def processor_reading(truth: str, field: str, frame: int) -> list[dict[str, float]] | str | None:
    """What text_processors.Alternatives returns (None: the reading it gives malformed, left out)."""
    if field == "field03":
        return truth
    if field == "field02" and frame == 3:
        return None
    positions = [{c: 0.6, "#": 0.3, "": 0.1} for c in truth]
    if field == "field01" and frame in (1, 2) and positions:
        positions[-1] = {truth[-1]: 0.3, "#": 0.7}
    return positions


def test_stream_report_figures_follow_the_readings_frame_by_frame(alternatives_run):
    from conftest import midvbatch

    from midvbatch import open_run
    from midvbatch.scoring.text import ngld, normalize

    sweep = "expected_distance=0.05,0.03,0.02;stable=2;fixed=3"
    report = midvbatch("report", alternatives_run, "--format", "json", "--stop-thresholds", sweep)
    assert report.returncode == 0, report.stderr
    stream = json.loads(report.stdout)["text"]["stream"]
    # worked out here from what the processor returned, frame by frame
    series: dict[tuple[str, str], list] = {}
    with open_run(alternatives_run) as run:
        for frame in run.frames():
            for name, record in frame.fields.items():
                series.setdefault((frame.clip, name), []).append((frame.number, record))
    curves, stops = [], {}
    for (clip, name), frames in series.items():
        stream_here, rows = Stream(), []
        truth = frames[0][1]["truth"]
        for number, record in frames:
            given = processor_reading(truth, name, number)
            assert given is not None  # (the malformed reading is no record)
            step = stream_here.add(text=given) if isinstance(given, str) else stream_here.add(given)
            assert record["combined"] == step.text
            if step.expected_distance is None or step.uniform:  # (the same text every frame: not stored)
                assert record["expected"] is None
            else:  # (the worker's memberships were normalised twice: a last bit may differ)
                assert record["expected"] == pytest.approx(step.expected_distance, rel=1e-12)
            rows.append((ngld(step.text, truth), normalize(step.text) == normalize(truth), step))
        curves.append(rows)
        texts = [s.text for _, _, s in rows]
        values = [s.expected_distance for _, _, s in rows]
        for t in (0.05, 0.03, 0.02):
            stops.setdefault(("expected_distance", t), []).append(expected_distance_stop(values, t))
        stops.setdefault(("stable", 2), []).append(stable_stop(texts, 2))
        stops.setdefault(("fixed", 3), []).append(fixed_stop(len(rows), 3))
    assert any(r[1] is False for rows in curves for r in rows)  # the noise shows
    # export --fields gives each clip and field's stop frame per rule and threshold, in every record of it
    exported = [json.loads(line) for line in midvbatch("export", alternatives_run, "--fields").stdout.splitlines()]
    keys = list(series)
    for record in (r for r in exported if r["frame"] is not None):
        k = keys.index((record["clip"], record["field"]))
        for (rule, t), frames_at in stops.items():
            assert record["stops"][rule][f"{t:g}"] == frames_at[k], (record, rule, t)
    # the table (pandas, parquet) carries the same combined result and D_n, the uniform case filled in
    with open_run(alternatives_run) as run:
        table = run.to_pandas(fields=True)
    rows = table[table["frame"].notna()]
    frame_records = [r for r in exported if r["frame"] is not None]
    assert list(rows["combined"]) == [r["combined"] for r in frame_records]
    for value, record in zip(rows["expected"], frame_records, strict=True):
        assert (value != value) if record["expected"] is None else value == pytest.approx(record["expected"])
    longest = max(len(rows) for rows in curves)
    want = [np.mean([rows[min(k, len(rows)) - 1][0] for rows in curves]) for k in range(1, longest + 1)]
    np.testing.assert_allclose(stream["overall"]["ngld"]["alternatives"], want, rtol=1e-12)
    assert stream["overall"]["fields"] == len(curves) and stream["clips"] == 2
    points = {(p["rule"], p["threshold"]): p for p in stream["rules"]}
    assert set(points) == set(stops)
    for key, frames_at in stops.items():
        at = [rows[n - 1] for rows, n in zip(curves, frames_at, strict=True)]
        assert points[key]["mean_frames"] == pytest.approx(np.mean(frames_at), rel=1e-12), key
        assert points[key]["mean_ngld"] == pytest.approx(np.mean([a[0] for a in at]), rel=1e-12, abs=1e-15), key
        assert points[key]["accuracy"] == pytest.approx(np.mean([a[1] for a in at]), rel=1e-12), key


def test_stream_malformed_alternatives_are_one_warning_per_clip_and_left_out(alternatives_run):
    from midvbatch import open_run

    log = "".join(p.read_text() for p in (alternatives_run / "logs").iterdir())
    message = "field 'field02': alternatives position 0: the memberships sum to 0; reading left out"
    assert log.count(message) == 2  # TA01 and TA18, once each
    with open_run(alternatives_run) as run:
        frames = [f for f in run.frames() if f.clip == "TA01"]
    assert "field02" not in frames[2].fields and "field02" in frames[3].fields
    assert frames[0].fields["field01"]["text"].endswith("#")  # the best label of each position, as text
    assert "alternatives" not in json.dumps(frames[0].result)  # taken out: not stored


@pytest.mark.parametrize(
    "sweep, message",
    [
        ("expected_distance=", "expected_distance takes 1 to 100 thresholds"),
        ("expected_distance=nan", "thresholds are finite numbers, at least 0"),
        ("fixed=1e400", "thresholds are finite numbers, at least 0"),
        ("fixed=99999999999999999999", "fixed counts frames: whole numbers from 1 to 1,000,000"),
        ("stable=0", "stable counts frames: whole numbers from 1 to 1,000,000"),
        ("stable=2.5", "stable counts frames"),
        ("=1", "is not RULE=V,V,..."),
        ("typo=0.1", "is not RULE=V,V,..."),
        ("fixed=a,b", "fixed: 'a,b' is not a list of numbers"),
        ("fixed=" + ",".join(["1"] * 101), "fixed takes 1 to 100 thresholds"),
    ],
)
def test_stream_bad_stop_thresholds_are_one_line(alternatives_run, sweep, message):
    from conftest import midvbatch

    done = midvbatch("report", alternatives_run, "--stop-thresholds", sweep)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr, done.stderr


@pytest.mark.parametrize(
    "given, problem",
    [
        ("abc", "must be a list of {character: membership}"),
        ([[1, 2]], "position 0 must be a non-empty {character: membership}"),
        ([{}], "position 0 must be a non-empty"),
        ([{"A": 0, "B": 0}], "the memberships sum to 0"),
        ([{"A": -1}], "the membership of 'A' is -1"),
        ([{"A": float("nan")}], "the membership of 'A' is nan"),
        ([{"A": True}], "the membership of 'A' is not a number"),
        ([{"A": 10**400}], "the membership of 'A' is too large"),
        ([{"A": 1e308, "B": 1e308}], "the memberships sum to inf"),
        ([{1: 0.5}], "1 is not a character"),
        ([{"ABCDEFGHIJ": 1}], "is not a character"),
        ([{"\ud800": 1}], "is not a character"),
        ([{"A": 1}] * 257, "257 positions, more than 256"),
    ],
)
def test_stream_malformed_alternatives_are_named_and_the_reading_left_out(given, problem):
    from midvbatch.pipeline.prediction import take_alternatives

    notes: list[str] = []
    kept, taken = take_alternatives({"fields": {"f": {"alternatives": given}, "g": "OK"}}, notes.append)
    assert taken == {"f": None} and kept["fields"] == {"g": "OK"}
    assert len(notes) == 1 and notes[0].startswith("field 'f': alternatives ") and problem in notes[0], notes
    assert notes[0].endswith("; reading left out")


def test_stream_alternatives_are_normalised_and_give_the_text():
    from midvbatch.pipeline.prediction import take_alternatives

    kept, taken = take_alternatives(
        {"fields": {"f": {"alternatives": [{"A": 3, "B": 1}, {"": 2, "x": 1}, {"Z": 1, "Y": 1}], "confidence": 0.5}}},
        print,
    )
    assert taken["f"] == [{"A": 0.75, "B": 0.25}, {"": 2 / 3, "x": 1 / 3}, {"Z": 0.5, "Y": 0.5}]
    assert kept["fields"]["f"] == {"confidence": 0.5, "text": "AY"}  # the empty label writes nothing; ties: sorted


def test_stream_alphabet_is_bounded_and_large_cost_matrices_go_row_by_row(monkeypatch):
    from midvbatch.scoring import stream

    alphabet = Alphabet()
    columns = [alphabet.column(chr(0x4E00 + k)) for k in range(stream.ALPHABET_LIMIT + 10)]
    assert len(alphabet) == stream.ALPHABET_LIMIT + 1 and alphabet.labels[-1] == stream.OTHER
    assert set(columns[stream.ALPHABET_LIMIT - 1 :]) == {stream.ALPHABET_LIMIT}  # every label past it: one
    # the cell distances worked out a row at a time are the same numbers
    rng = np.random.default_rng(3)
    a, b = rng.random((9, 40)), rng.random((7, 40))
    whole = stream._alignment(a, b)
    monkeypatch.setattr(stream, "COST_CELLS", 1)
    assert stream._alignment(a, b) == whole
