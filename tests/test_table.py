"""A run's results as a table: RunResults.to_pandas() and `export --format parquet`."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import midvbatch

from midvbatch.config import build_config
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.engine.run import run as run_config
from midvbatch.report import write_report
from midvbatch.results import open_run
from midvbatch.results.table import FIELD_COLUMNS, FRAME_COLUMNS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    synthesize(root / "dataset", SynthConfig(docs=1, clips="T*,H*", seed=9))
    config = build_config(
        {"dataset": str(root / "dataset"), "out": str(root / "run"), "processor": "processors:Imperfect", "workers": 0}
    )
    assert run_config(config, install_signals=False).exit_code == 0
    return root / "run"


def test_table_of_frames_and_fields_gives_the_reports_figures(run_dir):
    report = json.loads(write_report(run_dir, "json"))
    with open_run(run_dir) as run:
        frames = run.to_pandas()
        fields = run.to_pandas(fields=True)
    assert list(frames.columns) == list(FRAME_COLUMNS) and list(fields.columns) == list(FIELD_COLUMNS)
    assert len(frames) == 4 * 30 and frames["scored"].all()
    scored = frames[frames["scored"]]
    assert scored["correct"].mean() == pytest.approx(report["overall"]["accuracy"])
    assert scored["iou_gt"].mean() == pytest.approx(report["overall"]["mean_iou_gt"])
    assert scored["missing"].sum() == report["overall"]["missing"]
    by_condition = scored.groupby("condition")["correct"].mean()
    for group, figures in report["by_condition"].items():
        assert by_condition[group] == pytest.approx(figures["accuracy"])
    per_frame = fields[fields["frame"].notna()]
    assert per_frame["correct"].mean() == pytest.approx(report["text"]["overall"]["accuracy"])
    assert per_frame["ngld"].mean() == pytest.approx(report["text"]["overall"]["mean_ngld"])
    clips = fields[fields["frame"].isna()]
    assert len(clips) == report["text"]["clip_results"]["fields"]
    missing_quad = frames[frames["frame"] % 7 == 0]  # (Imperfect finds no document there)
    assert missing_quad["missing"].all() and missing_quad["quad"].isna().all()


def test_export_parquet_is_the_same_table_and_needs_a_file(run_dir, tmp_path):
    out = tmp_path / "frames.parquet"
    wrote = midvbatch("export", run_dir, "--format", "parquet", "--out", out)
    assert wrote.returncode == 0 and "wrote 120 records" in wrote.stdout, wrote.stderr
    with open_run(run_dir) as run:
        expected = run.to_pandas()
    assert pq.read_table(out).to_pandas().equals(expected)
    fields = tmp_path / "fields.parquet"
    assert midvbatch("export", run_dir, "--format", "parquet", "--fields", "--out", fields).returncode == 0
    assert pq.read_table(fields).column_names == list(FIELD_COLUMNS)
    to_stdout = midvbatch("export", run_dir, "--format", "parquet")
    assert to_stdout.returncode == 1 and "binary" in to_stdout.stderr and to_stdout.stdout == ""
