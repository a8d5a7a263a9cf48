"""`midvbatch compare`: runs of one dataset side by side, with paired intervals and the regression gate."""

from __future__ import annotations

import json
import random

import pytest
from conftest import midvbatch

from midvbatch.config import build_config
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.engine.run import run as run_config
from midvbatch.report import write_report
from midvbatch.results import open_run
from midvbatch.report.comparison import compare_output
from midvbatch.results.compare import compare_runs, gate
from midvbatch.errors import ConfigError


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """MIDV-500, one document (10 clips of 30 frames): the truth (perfect), and processors:Imperfect missing
    the document in every 7th frame (A) and in every 3rd (B: worse)."""
    root = tmp_path_factory.mktemp("compare")
    synthesize(root / "dataset", SynthConfig(docs=1, seed=5))
    out = {"dataset": root / "dataset"}
    for name, processor, options in (
        ("truth", "ground-truth", {}),
        ("a", "processors:Imperfect", {"miss": 7}),
        ("b", "processors:Imperfect", {"miss": 3}),
    ):
        config = build_config(
            {
                "dataset": str(root / "dataset"),
                "out": str(root / name),
                "processor": processor,
                "options": options,
                "workers": 0,
            }
        )
        assert run_config(config, install_signals=False).exit_code == 0
        out[name] = root / name
    return out


def _bootstrap_by_hand(a_dir, b_dir, resamples=3000, seed=1):
    """B - A of the headline accuracy, resampling clips with Python's random: written apart from the product."""

    def per_clip(run_dir):
        tallies = {}
        with open_run(run_dir) as run:
            for frame in run.frames():
                if frame.score is not None:
                    t = tallies.setdefault(frame.clip, [0, 0])
                    t[0] += frame.score.iou_gt >= 0.9 - 1e-10
                    t[1] += 1
        return tallies

    a, b = per_clip(a_dir), per_clip(b_dir)
    clips = sorted(a)
    rng = random.Random(seed)
    diffs = []
    for _ in range(resamples):
        drawn = [rng.choice(clips) for _ in clips]
        diffs.append(
            sum(b[c][0] for c in drawn) / sum(b[c][1] for c in drawn)
            - sum(a[c][0] for c in drawn) / sum(a[c][1] for c in drawn)
        )
    diffs.sort()
    return diffs[int(0.025 * resamples)], diffs[int(0.975 * resamples) - 1]


def test_compare_figures_equal_the_reports_and_the_interval_a_bootstrap_by_hand(runs):
    result = compare_runs([runs["a"], runs["b"]])
    [c] = result.comparisons
    report_a = json.loads(write_report(runs["a"], "json"))
    report_b = json.loads(write_report(runs["b"], "json"))
    for name in ("accuracy", "accuracy_min_d", "mean_iou_gt", "mean_iou"):
        f = c.figure(name)
        assert f.a == pytest.approx(report_a["overall"][name]) and f.b == pytest.approx(report_b["overall"][name])
    text = c.figure("text_accuracy")
    assert text.a == pytest.approx(report_a["text"]["overall"]["accuracy"]) and text.difference == 0
    accuracy = c.figure("accuracy")
    assert accuracy.difference < 0 and accuracy.units == 10 and accuracy.measured == 300
    low, high = _bootstrap_by_hand(runs["a"], runs["b"])
    assert accuracy.low == pytest.approx(low, abs=0.015) and accuracy.high == pytest.approx(high, abs=0.015)
    assert accuracy.high < 0  # B misses the document in 100 frames, A in 40: a difference, not noise
    # the frames that changed: those B misses and A found right (none the other way)
    assert accuracy.became_wrong > 0 and accuracy.became_correct == 0 and accuracy.p_value < 0.001
    # per group, and the clips that lost most
    assert {f.group for f in c.figures if f.grouping == "condition"} == {
        "C (clutter)",
        "H (hand)",
        "K (keyboard)",
        "P (partial)",
        "T (table)",
    }
    assert c.clips_worse and not c.clips_better and c.left_out["frames_only_a"] == 0
    # the same seed, the same interval; another seed, nearly
    again = compare_runs([runs["a"], runs["b"]]).comparisons[0].figure("accuracy")
    assert (again.low, again.high) == (accuracy.low, accuracy.high)
    other = compare_runs([runs["a"], runs["b"]], seed=3).comparisons[0].figure("accuracy")
    assert other.low == pytest.approx(accuracy.low, abs=0.02)
    # a run against itself: nothing changed
    same = compare_runs([runs["a"], runs["a"]]).comparisons[0].figure("accuracy")
    assert (same.difference, same.low, same.high, same.p_value) == (0, 0, 0, 1.0)


def test_compare_by_document_and_the_gate(runs, tmp_path):
    by_document = compare_runs([runs["a"], runs["b"]], unit="document").comparisons[0].figure("accuracy")
    assert by_document.units == 1  # one document: the interval has one unit to draw
    assert gate(compare_runs([runs["truth"], runs["a"]]), "accuracy") != []
    with pytest.raises(ConfigError, match="unknown figure"):
        gate(compare_runs([runs["truth"], runs["a"]]), "speed")
    # through the CLI: B worse than A fails the gate, A against the truth, a margin past the loss does not
    worse = midvbatch("compare", runs["a"], runs["b"], "--fail-if-worse", "accuracy")
    assert worse.returncode == 1 and "is worse than" in worse.stderr and "## A " in worse.stdout, worse.stderr
    better = midvbatch("compare", runs["b"], runs["a"], "--fail-if-worse", "accuracy", "--format", "json")
    assert better.returncode == 0, better.stderr
    record = json.loads(better.stdout)
    figure = next(f for f in record["comparisons"][0]["figures"] if f["figure"] == "accuracy" and not f["group"])
    assert figure["difference"] > 0 and figure["ci"][0] > 0 and record["unit"] == "clip"
    margin = midvbatch("compare", runs["a"], runs["b"], "--fail-if-worse", "accuracy:0.5")
    assert margin.returncode == 0, margin.stderr
    ngld = midvbatch("compare", runs["truth"], runs["a"], "--fail-if-worse", "mean_ngld")
    assert ngld.returncode == 1 and "mean_ngld" in ngld.stderr  # lower is better: the damaged fields raise it
    csv_out = tmp_path / "c.csv"
    wrote = midvbatch("compare", runs["a"], runs["b"], runs["truth"], "--format", "csv", "--out", csv_out)
    assert wrote.returncode == 0 and csv_out.read_text().count(str(runs["truth"])) > 10
    again = midvbatch("compare", runs["a"], runs["b"], "--format", "csv", "--out", csv_out)
    assert again.returncode == 0, again.stderr  # (written by compare: replaced)
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    refused = midvbatch("compare", runs["a"], runs["b"], "--out", mine)
    assert refused.returncode != 0 and mine.read_text() == "mine"
    for bad in (
        ["--fail-if-worse", "accuracy:-1"],
        ["--fail-if-worse", "accuracy:x"],
        ["--resamples", "0"],
        ["--unit", "frame"],
    ):
        said = midvbatch("compare", runs["a"], runs["b"], *bad)
        assert said.returncode != 0 and "Traceback" not in said.stderr
        assert said.stderr.strip().splitlines()[-1].startswith("Error"), said.stderr


def test_compare_refuses_runs_of_another_dataset(runs, tmp_path):
    synthesize(tmp_path / "other", SynthConfig(docs=1, seed=6))
    config = build_config(
        {
            "dataset": str(tmp_path / "other"),
            "out": str(tmp_path / "run"),
            "processor": "ground-truth",
            "workers": 0,
            "clips": ["T*"],
        }
    )
    assert run_config(config, install_signals=False).exit_code == 0
    said = midvbatch("compare", runs["a"], tmp_path / "run")
    assert said.returncode == 1 and "compare runs of the same dataset" in said.stderr
    with pytest.raises(Exception, match="no such run folder"):
        compare_output([runs["a"], tmp_path / "nothing"])


def test_report_figures_carry_their_intervals_over_clips(runs):
    report = json.loads(write_report(runs["b"], "json"))
    overall = report["overall"]
    for name in (
        "accuracy",
        "accuracy_min_d",
        "accuracy_iou",
        "accuracy_mean_iou",
        "mean_iou_gt",
        "mean_iou",
        "mean_mean_iou",
        "mean_min_d",
    ):
        low, high = overall["ci"][name]
        assert low <= overall[name] <= high, name
    assert overall["ci"]["accuracy"] == overall["ci"]["accuracy_iou_gt"]
    # the headline's interval against a bootstrap of the clips written here
    tallies = {}
    with open_run(runs["b"]) as run:
        for frame in run.frames():
            if frame.score is not None:
                t = tallies.setdefault(frame.clip, [0, 0])
                t[0] += frame.score.iou_gt >= 0.9 - 1e-10
                t[1] += 1
    rng, clips, values = random.Random(2), sorted(tallies), []
    for _ in range(3000):
        drawn = [rng.choice(clips) for _ in clips]
        values.append(sum(tallies[c][0] for c in drawn) / sum(tallies[c][1] for c in drawn))
    values.sort()
    assert overall["ci"]["accuracy"][0] == pytest.approx(values[75], abs=0.015)
    assert overall["ci"]["accuracy"][1] == pytest.approx(values[2924], abs=0.015)
    assert all(not agg["ci"] for agg in report["by_clip"].values())  # one clip: no interval over clips
    assert report["by_condition"]["T (table)"]["ci"]["accuracy"][0] is not None
    text = report["text"]["overall"]
    assert set(text["ci"]) == {"accuracy", "mean_ngld", "mean_cer"} and text["ci"]["accuracy"][0] <= text["accuracy"]
    markdown = write_report(runs["b"], "md")
    assert f"{overall['accuracy']:.3f}** [{overall['ci']['accuracy'][0]:.3f}, " in markdown


def test_compare_html_draws_the_frames_that_changed_most(runs, tmp_path):
    page = tmp_path / "compare.html"
    wrote = midvbatch("compare", runs["a"], runs["b"], "--format", "html", "--out", page)
    assert wrote.returncode == 0, wrote.stderr
    text = page.read_text()
    assert "<h2>A <code>" in text and "Clips that lost most (accuracy)" in text and "http://" not in text
    assert text.count("src='data:image/jpeg;base64,") >= 1  # a lost clip's frame, both runs' quads drawn
    assert "Clips that gained most" not in text  # (B only loses)


def test_compare_html_cuts_out_a_field_where_its_reading_changed(runs, tmp_path):
    result = compare_runs([runs["truth"], runs["a"]])
    worse = result.comparisons[0].fields_worse
    assert worse and all(len(c.example) == 3 for c in worse)  # (clip, frame, field) where it went wrong
    clip, frame, name = worse[0].example
    with open_run(runs["a"]) as run:
        reading = next(f for f in run.frames([clip]) if f.number == frame).fields[name]
    assert reading["correct"] is False
    page = tmp_path / "compare.html"
    assert midvbatch("compare", runs["truth"], runs["a"], "--format", "html", "--out", page).returncode == 0
    text = page.read_text()
    assert "Fields that lost most (text accuracy)" in text
    assert f"<img alt='{name} {clip} frame {frame}' src='data:image/png;base64," in text
