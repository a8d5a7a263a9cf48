"""The ocr pipeline: Tesseract reads the synthetic documents' fields end to end (skips where Tesseract is absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import env, midvbatch

from midvbatch import open_run
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.errors import MidvBatchError
from midvbatch.pipeline.ocr import find_tessdata

try:
    import tesserocr  # noqa: F401

    find_tessdata()
    MISSING = ""
except ImportError:
    MISSING = "tesserocr is not installed (make test installs it with .ci/tesseract; it could not here)"
except MidvBatchError as exc:
    MISSING = f"no Tesseract language data: {exc}"

needs_tesseract = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@pytest.fixture(scope="module")
def sharp(tmp_path_factory):
    """One clip at 540x960: text large enough to read."""
    root = tmp_path_factory.mktemp("ocr")
    synthesize(root, SynthConfig(docs="01_*", clips="TA", width=540, height=960, seed=5))
    return root


def _accuracy(run_dir):
    right, total = Counter(), Counter()
    with open_run(run_dir) as run:
        frames = list(run.frames())
    for frame in frames:
        for field in frame.fields.values():
            right[field["type"]] += field["correct"]
            total[field["type"]] += 1
    return frames, {kind: right[kind] / total[kind] for kind in total}


@needs_tesseract
def test_ocr_reads_the_fields_through_the_ground_truth_quads(sharp, tmp_path):
    done = midvbatch("run", sharp, "--out", tmp_path / "run", "--processor", "ocr", "--workers", "1")
    assert done.returncode == 0, done.stderr
    frames, accuracy = _accuracy(tmp_path / "run")
    assert len(frames) == 30
    # names and dates print large and plain on the synthetic cards: Tesseract gets nearly all
    assert accuracy["name"] >= 0.9 and accuracy["date"] >= 0.8, accuracy
    field = frames[0].result["fields"]["field01"]
    assert set(field) == {"text", "confidence"} and 0 <= field["confidence"] <= 1
    assert all(f.iou is None for f in frames)  # it reads fields, it does not look for the document


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """A Russian internal passport (Cyrillic) and a Greek passport (Greek), one clip each at 1080x1920."""
    root = tmp_path_factory.mktemp("scripts")
    for docs in ("39_*", "25_*"):
        synthesize(root, SynthConfig(docs=docs, clips="TA", width=1080, height=1920, seconds=3.0, seed=7))
    return root


@needs_tesseract
def test_ocr_reads_cyrillic_and_greek_documents_in_their_languages(scripts, tmp_path):
    done = midvbatch("run", scripts, "--out", tmp_path / "run", "--processor", "ocr", "--workers", "2")
    assert done.returncode == 0, done.stderr
    right, total = Counter(), Counter()
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    for frame in frames:
        for field in frame.fields.values():
            right[frame.document] += field["correct"]
            total[frame.document] += 1
    accuracy = {d: right[d] / total[d] for d in total}
    assert set(accuracy) == {"39_rus_internalpassport", "25_grc_passport"}
    assert min(accuracy.values()) >= 0.7, accuracy
    names = {f["truth"] for frame in frames for f in frame.fields.values()}
    assert any("\u0400" <= c <= "\u04ff" for n in names for c in n)  # the synthesizer wrote Cyrillic
    assert any("\u0370" <= c <= "\u03ff" for n in names for c in n)  # and Greek
    # Tesseract's per-character alternatives were combined where the clip ran: the report's Video stream
    report = midvbatch("report", tmp_path / "run")
    assert "### Video stream" in report.stdout and "alternatives (Bulatov)" in report.stdout
    assert all(set(f) <= {"text", "confidence"} for frame in frames for f in frame.result["fields"].values())


@needs_tesseract
def test_ocr_without_a_documents_language_data_fails_its_clip_with_one_line(scripts, tmp_path):
    only_english = tmp_path / "tessdata"
    only_english.mkdir()
    (only_english / "eng.traineddata").symlink_to(find_tessdata() / "eng.traineddata")
    done = midvbatch("run", scripts, "--out", tmp_path / "run", "--processor", "ocr", "--option",
                     f"tessdata={only_english}", "--workers", "1")
    assert "Traceback" not in done.stderr
    failures = midvbatch("failures", tmp_path / "run").stdout
    for clip, package in (("TA39", "tesseract-ocr-rus"), ("TA25", "tesseract-ocr-ell")):
        line = next(line for line in failures.splitlines() if line.startswith(clip))
        assert f"install it with 'apt-get install {package}'" in line and "attempts 1" in line, failures


@needs_tesseract
def test_ocr_end_to_end_with_the_localized_quad(sharp, tmp_path):
    done = midvbatch(
        "run", sharp, "--out", tmp_path / "run", "--processor", "ocr", "--option", "quad=localize", "--workers", "1"
    )
    assert done.returncode == 0, done.stderr
    frames, _ = _accuracy(tmp_path / "run")
    assert all(f.iou is not None for f in frames)  # the document was localized and scored as well
    found = [f for f in frames if f.quad is not None]
    assert found
    for frame in found:  # every text field read where the localized quad puts it, and scored
        assert set(frame.result["fields"]) == set(frame.fields)
    for frame in frames:
        if frame.quad is None:
            assert frame.result["fields"] == {} and all(f["missing"] for f in frame.fields.values())


@needs_tesseract
@pytest.mark.parametrize(
    "option, message",
    [
        (
            "tessdata={t}",
            "no Tesseract language data for 'eng' in {t}: install it with 'apt-get install tesseract-ocr-eng'",
        ),
        ("lang=eng+xyz", "no Tesseract language data for 'eng+xyz' in "),
    ],
)
def test_ocr_without_language_data_is_one_line_before_the_run_folder(sharp, tmp_path, option, message):
    done = midvbatch(
        "run",
        sharp,
        "--out",
        tmp_path / "run",
        "--processor",
        "ocr",
        "--option",
        option.format(t=tmp_path),
        "--workers",
        "1",
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr  # one line
    assert "Error: processor 'ocr' cannot run here: " + message.format(t=tmp_path) in done.stderr
    assert "tesseract-ocr-xyz" in done.stderr or "xyz" not in option
    assert not (tmp_path / "run").exists()


def test_ocr_without_tesserocr_is_one_line_before_the_run_folder(sharp, tmp_path):
    """tesserocr not importable (here: a broken install shadows it): the run says what to install, makes nothing."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "tesserocr.py").write_text("raise ImportError(\"No module named 'tesserocr'\", name='tesserocr')\n")
    environment = env()
    environment["PYTHONPATH"] = os.pathsep.join([str(shadow), environment["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, "-m", "midvbatch.cli", "run", str(sharp), "--out", str(tmp_path / "run"), "--pipeline", "ocr"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "Error: processor 'ocr' cannot run here: the ocr pipeline needs tesserocr (No "
        "module named 'tesserocr'): install it with pip install 'midvbatch[ocr]'"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        ("quad=guess", "quad must be one of truth, localize, not 'guess'"),
        ("height=4", "height must be a whole number of pixels from 16 to 256, not 4"),
        ("lang=eng;rm", "lang must be auto or Tesseract language names joined by '+'"),
    ],
)
def test_ocr_bad_options_are_one_line(sharp, tmp_path, option, message):
    done = midvbatch("run", sharp, "--out", tmp_path / "run", "--processor", "ocr", "--option", option)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vote_fields.py"


def test_ocr_docs_show_the_vote_example_unchanged():
    blocks = (EXAMPLE.parent.parent / "docs" / "processors.md").read_text().split("```python\n")
    assert any(block.startswith(EXAMPLE.read_text()) for block in blocks)


@needs_tesseract
def test_ocr_vote_example_answers_per_clip_and_is_scored(sharp, tmp_path):
    done = midvbatch(
        "run", sharp, "--out", tmp_path / "run", "--processor", "examples.vote_fields:make", cwd=EXAMPLE.parent.parent
    )
    assert done.returncode == 0, done.stderr
    with open_run(tmp_path / "run") as run:
        clip = run.clip("TA01")
        frames = list(run.frames())
    assert set(clip.fields) == set(frames[0].fields)
    per_frame = sum(f["correct"] for fr in frames for f in fr.fields.values()) / sum(len(fr.fields) for fr in frames)
    per_clip = sum(f["correct"] for f in clip.fields.values()) / len(clip.fields)
    assert per_clip >= per_frame - 1e-9  # combining 30 readings does not lose to one


def test_ocr_is_a_builtin_pipeline_of_the_cli_the_config_and_the_registry():
    from midvbatch.config import PIPELINES
    from midvbatch.pipeline.registry import describe_processors

    assert list(PIPELINES) == [p.name for p in describe_processors() if p.source == "built-in"]
    listed = midvbatch("processors").stdout
    assert "ocr" in listed and 'quad="truth"' in listed
    assert "localize|ocr|ground-truth|frames|extract|probe" in "".join(midvbatch("run", "--help").stdout.split())
