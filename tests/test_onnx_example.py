"""examples/onnx_text_detector.py: a real neural network (PP-OCRv4's text detector, shipped in the
rapidocr-onnxruntime wheel) on ONNX Runtime, in batches; skips where .ci/onnx could not install it."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import exported, ledger_rows, midvbatch

MISSING = ""
if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("rapidocr_onnxruntime") is None:
    MISSING = "onnxruntime or rapidocr-onnxruntime is not installed (make test installs them with .ci/onnx)"
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """Two clips of 540x960 with text on the cards (the detector needs letters a few pixels high)."""
    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("portrait")
    synthesize(root, SynthConfig(docs="05_aze_passport", clips="TA,KS", width=540, height=960, seed=3))
    return root


def _results(run_dir):
    return {(r["clip"], r["frame"]): r["result"] for r in exported(run_dir)}


def test_the_detector_in_batches_finds_the_text_and_gives_the_per_frame_results(portrait, tmp_path):
    one = midvbatch(
        "run",
        portrait,
        "--out",
        tmp_path / "one",
        "--processor",
        "examples.onnx_text_detector:make",
        "--batch-size",
        "1",
        "--workers",
        "1",
    )
    batched = midvbatch(
        "run",
        portrait,
        "--out",
        tmp_path / "eight",
        "--processor",
        "examples.onnx_text_detector:make",
        "--batch-size",
        "8",
        "--batch-across-clips",
        "--prefetch",
        "4",
        "--workers",
        "1",
    )
    assert one.returncode == 0 and batched.returncode == 0, batched.stderr
    assert (
        "batches of up to 8 frames across clips, 4 frames read ahead, workers take up to 4 clips at a time"
        in batched.stderr
    )
    singles, batches = _results(tmp_path / "one"), _results(tmp_path / "eight")
    assert len(singles) == len(batches) == 60
    for key, result in singles.items():
        assert len(result["boxes"]) >= 5, key  # a card's lines of text
        # the same network on the same pixels: batching changes the kernels' order of sums, not the boxes
        assert abs(len(result["boxes"]) - len(batches[key]["boxes"])) <= 1, key
        if result["quad"] and batches[key]["quad"]:
            assert np.abs(np.array(result["quad"]) - np.array(batches[key]["quad"])).max() < 3.0, key
    # the rectangle around the text is scored as the document's quad: it overlaps the card, roughly
    scores = [json.loads(s) for (s,) in ledger_rows(tmp_path / "eight", "SELECT scores FROM frames")]
    assert np.mean([s["iou"] for s in scores]) > 0.3


def test_the_detectors_bad_options_are_one_line(portrait, tmp_path):
    done = midvbatch(
        "run",
        portrait,
        "--out",
        tmp_path / "run",
        "--processor",
        "examples.onnx_text_detector:make",
        "--option",
        "side=100",
    )
    assert done.returncode != 0 and "side must be a positive multiple of 32, not 100" in done.stderr
    assert "Traceback" not in done.stderr
