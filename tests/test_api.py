"""The Python API: docs/api.md's examples run as written; records are typed; import midvbatch stays light."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import midvbatch as midvbatch_cli

import midvbatch
from midvbatch.dataset.synth import SynthConfig, synthesize

DOCS = Path(__file__).parent.parent / "docs" / "api.md"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with the examples' dataset in data/midv500: one document, its two table clips."""
    root = tmp_path_factory.mktemp("api")
    synthesize(root / "data" / "midv500", SynthConfig(docs=1, clips="T*", seed=4))
    return root


def test_api_docs_examples_run(workdir, monkeypatch):
    blocks = _python_blocks(DOCS.read_text())
    assert len(blocks) >= 5
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
    printed = out.getvalue()
    assert "['TA01', 'TS01']" in printed and "TA01_01 (320, 180, 3)" in printed
    assert "finished 2 clips done" in printed
    assert "localize on " in printed and "accuracy " in printed


def test_api_open_dataset_pairs_frames_with_truth_by_number(workdir):
    ds = midvbatch.open_dataset(workdir / "data" / "midv500")
    frames = list(ds.frames(clips="TS"))
    assert [f.number for f in frames] == list(range(1, 31))
    assert all(f.truth is not None and f.truth.number == f.number and f.id == f.truth.id for f in frames)
    assert all(f.clip.id == "TS01" and f.image.shape == (320, 180, 3) for f in frames)
    assert [t.id for t in ds.truths(clips=["TS"])] == [f.id for f in frames]
    assert "TS01_01" in repr(frames[0]) and len(repr(frames[0])) < 300
    with pytest.raises(midvbatch.DatasetError, match="no clip matches"):
        ds.clips(docs="99_*")


def test_api_open_dataset_frames_without_truth_come_with_none(tmp_path):
    synthesize(tmp_path / "ds", SynthConfig(docs=1, clips="TA", seed=2))
    for path in (tmp_path / "ds").rglob("TA01_0[2-5].json"):
        path.unlink()  # frames 2..5 lose their ground truth
    frames = list(midvbatch.open_dataset(tmp_path / "ds").frames())
    assert len(frames) == 30
    assert [f.number for f in frames if f.truth is None] == [2, 3, 4, 5]
    assert frames[5].truth.number == 6  # paired by number, not by position


def test_api_run_and_results_match_the_command_line(workdir):
    out = workdir / "runs" / "typed"
    summary = midvbatch.run(str(workdir / "data" / "midv500"), out, pipeline="ground-truth", workers=0, clips=["TA"])
    assert summary.state == "finished" and summary.exit_code == 0 and summary.counts["done"] == 1
    exported = [json.loads(line) for line in midvbatch_cli("export", out).stdout.splitlines()]
    with midvbatch.open_run(out) as results:
        assert results.meta.processor == "ground-truth" and results.meta.run_id
        assert results.config().pipeline == "ground-truth"
        frames = list(results.frames())
        clips = list(results.clips())
        figures = results.figures()
        status = results.status()
    assert [(f.clip, f.number, f.seconds, f.result, f.scores) for f in frames] == [
        (r["clip"], r["frame"], r["seconds"], r["result"], r["scores"]) for r in exported
    ]
    assert all(isinstance(f, midvbatch.FrameResult) and f.correct and f.iou_gt > 0.99 for f in frames)
    assert frames[0].id == "TA01_01" and frames[0].quad == frames[0].result["quad"]
    (clip,) = clips
    assert isinstance(clip, midvbatch.ClipResult)
    assert (clip.clip, clip.state, clip.frames_done, clip.condition) == ("TA01", "done", 30, "table")
    assert set(clip.stage_seconds) >= {"decode", "process_frame"} and clip.peak_rss and clip.error is None
    assert status.state == "finished" and status.done == 1
    report = json.loads(midvbatch_cli("report", out, "--format", "json").stdout)
    assert figures.overall.accuracy == report["overall"]["accuracy"] == 1.0
    assert figures.groups["condition"]["T (table)"].frames == report["by_condition"]["T (table)"]["frames"] == 30
    assert figures.speed.frames == 30 and figures.worst[0].clip == "TA01"


def test_api_results_say_why_a_clip_died(workdir):
    out = workdir / "runs" / "dead"
    summary = midvbatch.run(
        workdir / "data" / "midv500",
        out,
        processor="processors:Faults",
        workers=0,
        retries=0,
        options={"faults": {"TA01": "permanent"}},
    )
    assert summary.counts["dead"] == 1 and summary.counts["done"] == 1
    with midvbatch.open_run(out) as results:
        (dead,) = results.clips("dead")
        assert (dead.clip, dead.error_class, dead.attempts, dead.stage) == ("TA01", "permanent", 1, "process_frame")
        assert "corrupt input" in dead.error and dead.traceback
        assert results.clip("TS01").state == "done" and {f.clip for f in results.frames()} == {"TS01"}
        assert all(f.scores is None and f.iou_gt is None and f.result == {"ok": True} for f in results.frames())
        figures = results.figures()
        assert figures.overall is None and figures.run.dead == 1 and not figures.run.complete
        with pytest.raises(midvbatch.MidvBatchError, match="unknown clip state"):
            list(results.clips("gone"))


def test_api_run_options_are_validated(workdir):
    with pytest.raises(midvbatch.MidvBatchError, match="retries|unexpected|unknown"):
        midvbatch.run(workdir / "data" / "midv500", workdir / "runs" / "bad", retries=-1)
    with pytest.raises(midvbatch.MidvBatchError):
        midvbatch.run(workdir / "data" / "midv500", workdir / "runs" / "bad", no_such_option=1)


def test_api_open_run_refuses_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(midvbatch.MidvBatchError, match="no such run folder"):
        midvbatch.open_run(tmp_path / "nothing")
    with pytest.raises(midvbatch.MidvBatchError, match="not a run folder"):
        midvbatch.open_run(tmp_path)


def test_api_import_midvbatch_is_light():
    code = (
        "import sys, midvbatch; print(sorted(m for m in ('numpy', 'av', 'rich', 'cv2', 'psutil') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
    assert callable(midvbatch.open_dataset) and callable(midvbatch.run) and callable(midvbatch.open_run)
    with pytest.raises(AttributeError):
        midvbatch.no_such_name  # noqa: B018


def test_api_package_is_typed():
    assert (Path(midvbatch.__file__).parent / "py.typed").is_file()
