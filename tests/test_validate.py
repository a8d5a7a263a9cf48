"""Validation of datasets: a clean one passes, every damage is reported once with its file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ledger_rows, midvbatch

from midvbatch.dataset.groundtruth import Quad
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.dataset.validate import check_clip, psnr, quad_problem, validate
from midvbatch.dataset import discover


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One whole document, ten clips, with the extracted frames as TIFF."""
    root = tmp_path_factory.mktemp("pristine")
    synthesize(root, SynthConfig(docs=1, seed=5, with_frames=True))
    return root


def damaged_copy(pristine: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "damaged"
    shutil.copytree(pristine, root)
    doc = root / "01_alb_id"
    (doc / "videos" / "KA01.MOV").unlink()  # missing clip: no video ...
    shutil.rmtree(doc / "ground_truth" / "KA")  # ... and no ground truth
    shutil.rmtree(doc / "images" / "KA")
    ts = doc / "videos" / "TS01.mp4"
    ts.write_bytes(ts.read_bytes()[: ts.stat().st_size // 2])  # truncated
    (doc / "videos" / "TA01.MOV").write_bytes(b"")  # zero bytes
    (doc / "videos" / "KS01.mp4").write_text("this is not a video\n")  # a text file with a video's name
    (doc / "ground_truth" / "HS" / "HS01_05.json").write_text('{"quad": [[1, 2], [3, 4]')  # malformed
    (doc / "ground_truth" / "HS" / "HS01_06.json").write_text('{"quad": [[1, 2], [30, 4], [NaN, 50], [1, 50]]}')
    (doc / "images" / "01_alb_id.tif").unlink()  # missing template image
    a, b = doc / "images" / "HA" / "HA01_10.tif", doc / "images" / "HA" / "HA01_25.tif"
    tmp = a.read_bytes()
    a.write_bytes(b.read_bytes())  # a frame TIFF that does not match its video
    b.write_bytes(tmp)
    return root, {"doc": doc}


def test_validate_clean_dataset_passes(pristine):
    report = validate(pristine, deep=True)
    assert report.ok, [str(p) for p in report.errors]
    assert report.counts() == {"note": {"missing": 1}}  # 49 documents not present: a partial dataset
    assert "49 of the 50 documents of MIDV-500 not present" in report.problems[0].message


def test_validate_reports_each_damage_once_with_its_file(pristine, tmp_path):
    root, p = damaged_copy(pristine, tmp_path)
    doc = p["doc"]
    report = validate(root, deep=True)
    assert not report.ok
    errors = sorted((e.kind, Path(e.path).relative_to(root).as_posix(), e.message) for e in report.errors)
    expected_files = [
        ("frame_mismatch", "01_alb_id/images/HA/HA01_10.tif"),
        ("frame_mismatch", "01_alb_id/images/HA/HA01_25.tif"),
        ("ground_truth", "01_alb_id/ground_truth/HS/HS01_05.json"),
        ("ground_truth", "01_alb_id/ground_truth/HS/HS01_06.json"),
        ("missing", "01_alb_id"),
        ("template", "01_alb_id/images/01_alb_id.tif"),
        ("video", "01_alb_id/videos/KS01.mp4"),
        ("video", "01_alb_id/videos/TA01.MOV"),
        ("video", "01_alb_id/videos/TS01.mp4"),
    ]
    assert [(k, f) for k, f, _ in errors] == expected_files
    messages = {f: m for _, f, m in errors}
    assert messages["01_alb_id"] == "KA01: no video and no ground truth"
    assert "bad JSON" in messages["01_alb_id/ground_truth/HS/HS01_05.json"]
    assert "coordinate nan" in messages["01_alb_id/ground_truth/HS/HS01_06.json"]
    assert "empty file" in messages["01_alb_id/videos/TA01.MOV"]
    assert "not a readable video" in messages["01_alb_id/videos/KS01.mp4"]
    assert "PSNR" in messages["01_alb_id/images/HA/HA01_10.tif"]
    assert "template image missing" in messages["01_alb_id/images/01_alb_id.tif"]
    # the undamaged clips are clean
    assert {e.clip for e in report.errors} - {None} == {"KA01", "TS01", "TA01", "KS01", "HS01", "HA01"}
    del doc


def test_validate_cli_summary_json_and_exit_codes(pristine, tmp_path):
    root, _ = damaged_copy(pristine, tmp_path)
    result = midvbatch("validate", root)
    assert result.returncode == 1
    out = result.stdout
    assert "9 clips checked: 7 errors, 0 warnings, 1 note" in out  # frame mismatches need --deep
    assert "  error   video          3" in out
    assert f"{root}/01_alb_id/videos/TA01.MOV: empty file (0 bytes), not a video" in out
    data = json.loads(midvbatch("validate", root, "--json").stdout)
    assert data["ok"] is False and data["counts"]["error"]["video"] == 3
    clean = midvbatch("validate", pristine)
    assert clean.returncode == 0 and "0 errors" in clean.stdout
    missing = midvbatch("validate", tmp_path / "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("Error: ")


@pytest.mark.parametrize(
    "corners, trouble",
    [
        ([[0, 0], [10, 0], [10, 10], [0, 10]], None),
        ([[0, 0], [10, 0], [0, 10], [10, 10]], "self-intersecting"),
        ([[5, 5], [5, 5], [5, 5], [5, 5]], "degenerate"),
        ([[0, 0], [10, 0], [20, 0], [30, 0]], "degenerate"),
        ([[-640, 100], [2000, 100], [2000, 900], [-640, 900]], None),  # out of view, as real MIDV-500 has
        ([[0, 0], [10, 0], [10, 10], [0, 99999]], "implausibly far"),
    ],
)
def test_validate_quad_problems(corners, trouble):
    got = quad_problem(Quad.from_list(corners), 1080, 1920)
    assert (got is None) if trouble is None else (trouble in got)


def test_validate_real_ground_truth_has_no_quad_problem(real_data):
    for clip in discover(real_data).clips:
        assert [p for p in check_clip(clip) if p.kind in ("quad", "ground_truth")] == []


def test_validate_psnr():
    import numpy as np

    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert abs(psnr(a, a + 1) - 48.13) < 0.01


def test_validate_run_sets_invalid_clips_aside_and_strict_refuses(pristine, tmp_path):
    root, _ = damaged_copy(pristine, tmp_path)
    out = tmp_path / "run"
    result = midvbatch("run", root, "--out", out)
    assert result.returncode == 1
    rows = dict(ledger_rows(out, "SELECT clip, state || ' ' || COALESCE(error_class, '') FROM tasks"))
    assert {c: r for c, r in rows.items() if r != "done "} == {
        "TA01": "dead invalid",
        "TS01": "dead invalid",
        "KS01": "dead invalid",
        "HS01": "dead invalid",
    }
    assert len(rows) == 9  # KA01 has neither video nor ground truth: nothing to run
    errors = dict(ledger_rows(out, "SELECT clip, error FROM tasks WHERE state = 'dead'"))
    assert errors["TA01"].startswith("invalid: ") and "TA01.MOV: empty file" in errors["TA01"]
    assert "HS01_05.json" in errors["HS01"] and "(+1 more)" in errors["HS01"]
    # resume: nothing re-checked (cached by size and time), nothing re-run
    again = midvbatch("run", root, "--out", out)
    assert "checked" not in again.stderr
    # fix a file: the clip is checked again, valid, and run
    shutil.copy(pristine / "01_alb_id" / "videos" / "TA01.MOV", root / "01_alb_id" / "videos" / "TA01.MOV")
    fixed = midvbatch("run", root, "--out", out)
    assert "checked 1 clips" in fixed.stderr and "TA01 valid again" in fixed.stderr
    assert ledger_rows(out, "SELECT state FROM tasks WHERE clip = 'TA01'") == [("done",)]
    strict = midvbatch("run", root, "--out", tmp_path / "strict", "--strict")
    assert strict.returncode == 1
    assert "selected clip(s) invalid" in strict.stderr and len(strict.stderr.strip().splitlines()) <= 3


def test_validate_run_sets_clips_without_video_aside(real_data, tmp_path):
    out = tmp_path / "run"
    result = midvbatch("run", real_data, "--out", out)
    assert result.returncode == 1
    rows = ledger_rows(out, "SELECT clip, state, error_class, error FROM tasks ORDER BY clip")
    assert [(c, s, e) for c, s, e, _ in rows] == [
        ("CA43", "dead", "invalid"),
        ("CS43", "dead", "invalid"),
        ("HA01", "dead", "invalid"),
    ]
    assert all(msg.endswith("no video file") for *_, msg in rows)


def test_validate_run_checks_past_the_first_page_beside_the_run(tmp_path):
    """A dataset of more clips than a page of checks: the first page is checked before the run starts, the rest
    while it runs; an invalid clip past the first page is set aside as one in it would be, never started."""
    from conftest import write_video

    from midvbatch.engine.run.preflight import CHECK_CHUNK, FIRST_CHECKS

    video = write_video(tmp_path / "one.mp4", frames=90, width=32, height=32)  # 3 s: the 30 frames a clip needs
    root = tmp_path / "plain"
    root.mkdir()
    bad = {f"c{CHECK_CHUNK + 5:04d}.mp4", f"c{2 * CHECK_CHUNK + 3:04d}.mp4"}  # (a plain folder: the clip ids)
    for i in range(2 * CHECK_CHUNK + 10):
        name = f"c{i:04d}.mp4"
        if name in bad:  # the smallest files: last in the queue (longest first), past the first page; not videos
            (root / name).write_bytes(b"\0" * 100)
        else:
            (root / name).symlink_to(video)
    out = tmp_path / "run"
    result = midvbatch("run", root, "--out", out, "--processor", "processors:mean_colour", "--workers", "2")
    assert result.returncode == 1, result.stderr
    rows = {clip: rest for clip, *rest in ledger_rows(out, "SELECT clip, state, error_class, attempts FROM tasks")}
    assert {c: r for c, r in rows.items() if r[0] != "done"} == {c: ["dead", "invalid", 0] for c in bad}
    assert sum(r[0] == "done" for r in rows.values()) == 2 * CHECK_CHUNK + 8
    assert f"checked {2 * CHECK_CHUNK + 10} clips" in result.stderr
    assert {clip for clip, in ledger_rows(out, f"SELECT clip FROM tasks WHERE id > {FIRST_CHECKS + CHECK_CHUNK}")} >= bad
    started = ledger_rows(out, "SELECT clip FROM events WHERE message = 'done'")
    assert len(started) == 2 * CHECK_CHUNK + 8 and not bad & {clip for clip, in started}
