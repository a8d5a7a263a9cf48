"""Batched processors: process_batch gets up to --batch-size frames of a clip; results land per frame."""

from __future__ import annotations

import json

import pytest
from conftest import exported, kill_9_twice_then_resume, ledger_rows, midvbatch


def _results(run_dir):
    return {(r["clip"], r["frame"]): r["result"] for r in exported(run_dir)}


def test_batch_results_equal_the_per_frame_ones(dataset, tmp_path):
    one = midvbatch(
        "run", dataset, "--out", tmp_path / "frame", "--processor", "processors:mean_colour", "--docs", "01_*"
    )
    batched = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "batch",
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "8",
        "--docs",
        "01_*",
    )
    assert one.returncode == 0 and batched.returncode == 0, batched.stderr
    assert "processor processors:BatchedMean, 2 process workers, batches of up to 8 frames" in batched.stderr
    per_frame, per_batch = _results(tmp_path / "frame"), _results(tmp_path / "batch")
    assert len(per_frame) == len(per_batch) == 300
    keep = ("id", "mean", "has_quad")
    for key, result in per_frame.items():
        assert {k: result[k] for k in keep} == {k: per_batch[key][k] for k in keep}, key
    # 30 frames in batches of 8: 8, 8, 8 and the 6 left
    assert [per_batch[("TA01", n)]["batch"] for n in (1, 8, 9, 24, 25, 30)] == [8, 8, 8, 8, 6, 6]
    stages = json.loads(ledger_rows(tmp_path / "batch", "SELECT stage_seconds FROM tasks LIMIT 1")[0][0])
    assert "process_batch" in stages and "process_frame" not in stages


def test_batch_of_one_when_process_batch_is_the_only_method(dataset, tmp_path):
    done = midvbatch(
        "run", dataset, "--out", tmp_path / "run", "--processor", "processors:BatchedMean", "--clips", "TA01"
    )
    assert done.returncode == 0, done.stderr
    assert {r["batch"] for r in _results(tmp_path / "run").values()} == {1}


@pytest.mark.parametrize(
    "option, reason",
    [
        ("fail_clip=TA01", "RuntimeError: batch of 8 frames of TA01 failed"),
        ("short_clip=TA01", "process_batch returned 7 results for 8 frames"),
    ],
)
def test_batch_that_fails_fails_its_clip_only_and_records_none_of_it(dataset, tmp_path, option, reason):
    done = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:BatchedMean",
        "--option",
        option,
        "--batch-size",
        "8",
        "--retries",
        "0",
        "--docs",
        "01_*",
    )
    assert done.returncode == 1 and reason in done.stderr
    rows = dict(ledger_rows(tmp_path / "run", "SELECT clip, state FROM tasks"))
    assert rows.pop("TA01") == "dead" and set(rows.values()) == {"done"}
    frames = ledger_rows(tmp_path / "run", "SELECT t.clip FROM frames f JOIN tasks t ON t.id = f.task")
    assert "TA01" not in {c for (c,) in frames} and len(frames) == 9 * 30


@pytest.mark.parametrize("size", ["0", "1025", "x"])
def test_batch_size_out_of_range_is_one_line(dataset, tmp_path, size):
    done = midvbatch("run", dataset, "--out", tmp_path / "run", "--batch-size", size)
    assert done.returncode == 2 and "--batch-size" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "line, message",
    [
        ("batch_size = 0", "batch size must be a whole number between 1 and 1024, not 0"),
        ('batch_across_clips = "yes"', "batch-across-clips must be true or false, not 'yes'"),
    ],
)
def test_batch_options_in_the_config_file_are_checked(dataset, tmp_path, line, message):
    config = tmp_path / "run.toml"
    config.write_text(line + "\n")
    done = midvbatch("run", dataset, "--out", tmp_path / "run", "--config", config)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_batch_kill_9_mid_run_then_resume_gives_every_frame_once(dataset, tmp_path):
    out = tmp_path / "run"
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "8",
        "--option",
        "delay=0.05",
        "--workers",
        "2",
        "--docs",
        "01_*",
    )
    kill_9_twice_then_resume(args, out, done_before_kill=2, clips=10)
