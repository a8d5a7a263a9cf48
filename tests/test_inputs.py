"""Damaged input files: one clear line naming the file, the clip set aside, never a traceback or a hang.

Every command runs in a real subprocess with a timeout, so a FIFO that blocks a reader or
a link to /dev/zero that never ends fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ledger_rows, midvbatch

from midvbatch.dataset.groundtruth import load_frame_quad, load_template
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.errors import GroundTruthError

TIMEOUT = 60  # seconds: what "no hang" means here; each command takes one or two
QUAD = '{"quad": [[10, 20], [150, 20], [150, 120], [10, 120]]}'
DOC = "01_alb_id"


def _write(text: str):
    return lambda path: path.write_text(text)


# kind -> (how to damage a JSON file, what the one line says)
GROUND_TRUTH_DAMAGE = {
    "deep": (_write("[" * 200_000), "bad JSON: nested too deeply"),
    "digits": (
        _write('{"quad": [[1' + "0" * 5000 + ", 2], [3, 4], [5, 6], [7, 8]]}"),
        "bad JSON: a number of more than 4,300 digits",
    ),
    "fifo": (os.mkfifo, "a FIFO (named pipe), not a JSON file"),
    "dev_zero": (lambda path: path.symlink_to("/dev/zero"), "a character device, not a JSON file"),
    "huge": (_write(QUAD + " " * (2 << 20)), "bytes, more than the 1,048,576 bytes a JSON file may have"),
}


# Through a command, one kind per way the loaders refuse a file (fileio.read_json): not a regular file (fifo,
# dev_zero), too large (huge), JSON the parser refuses (digits; "deep" fails in the same parse_json, into the same
# one-line error). The loaders themselves meet all five: test_inputs_ground_truth_loaders_raise_one_line.
COMMAND_DAMAGE = [kind for kind in GROUND_TRUTH_DAMAGE if kind != "deep"]


def damage(path: Path, kind: str) -> str:
    """Replace `path` with a damaged file of this kind; return what the error line says."""
    make, message = GROUND_TRUTH_DAMAGE[kind]
    path.unlink()
    make(path)
    return message


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """One document with two clips: TA (TA01.MOV) and TS (TS01.mp4)."""
    root = tmp_path_factory.mktemp("small")
    synthesize(root, SynthConfig(docs=1, clips="TA,TS", seed=1))
    return root


@pytest.fixture
def copy(small, tmp_path) -> Path:
    """A copy of `small` to damage."""
    root = tmp_path / "ds"
    shutil.copytree(small, root, symlinks=True)
    return root


def frame_file(root: Path, code: str = "TA", k: int = 5) -> Path:
    return root / DOC / "ground_truth" / code / f"{code}01_{k:02d}.json"


def template_file(root: Path) -> Path:
    return root / DOC / "ground_truth" / f"{DOC}.json"


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]


def lines_naming(text: str, path: Path) -> list[str]:
    return [line for line in text.splitlines() if str(path) in line]


# --- ground truth ----------------------------------------------------------------------


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("kind", GROUND_TRUTH_DAMAGE)
def test_inputs_ground_truth_loaders_raise_one_line(tmp_path, kind):
    path = tmp_path / "TA01_05.json"
    path.write_text(QUAD)
    message = damage(path, kind)
    for load in (load_frame_quad, load_template):
        with pytest.raises(GroundTruthError) as caught:
            load(path)
        assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < len(str(path)) + 100
        assert caught.value.path == path


@pytest.mark.parametrize("kind", COMMAND_DAMAGE)
@pytest.mark.parametrize("where", ["frame", "template"])
def test_inputs_validate_names_damaged_ground_truth(copy, kind, where):
    path = frame_file(copy) if where == "frame" else template_file(copy)
    message = damage(path, kind)
    result = midvbatch("validate", copy, timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    [line] = lines_naming(result.stdout, path)
    column = "ground_truth" if where == "frame" else "template"
    assert line.startswith(f"error   {column:<14} {path}: ") and line.endswith(message)
    report = json.loads(midvbatch("validate", copy, "--json", timeout=TIMEOUT).stdout)
    [problem] = [p for p in report["problems"] if p["path"] == str(path)]
    assert problem["severity"] == "error" and problem["clip"] == ("TA01" if where == "frame" else None)


@pytest.mark.parametrize("kind", COMMAND_DAMAGE)
def test_inputs_ls_frames_names_damaged_ground_truth(copy, kind):
    path = frame_file(copy)
    message = damage(path, kind)
    result = midvbatch("ls", copy, "--frames", timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}: ") and line.endswith(message)


def run_rows(out: Path) -> dict[str, tuple]:
    return {
        clip: tuple(rest)
        for clip, *rest in ledger_rows(
            out, "SELECT clip, state, COALESCE(error_class, ''), attempts, COALESCE(error, '') FROM tasks"
        )
    }


@pytest.mark.parametrize("kind", COMMAND_DAMAGE)
def test_inputs_run_sets_a_clip_with_damaged_ground_truth_aside(copy, tmp_path, kind):
    path = frame_file(copy)
    message = damage(path, kind)
    out = tmp_path / "run"
    result = midvbatch("run", copy, "--out", out, "--pipeline", "ground-truth", "--workers", 0, timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    rows = run_rows(out)
    assert rows["TS01"][0] == "done"
    state, error_class, _, error = rows["TA01"]
    assert (state, error_class) == ("dead", "invalid")
    assert error.startswith(f"invalid: {path}: ") and message in error


@pytest.mark.parametrize("kind", COMMAND_DAMAGE)
def test_inputs_run_without_check_fails_only_the_damaged_clip(copy, tmp_path, kind):
    path = frame_file(copy)
    message = damage(path, kind)
    out = tmp_path / "run"
    result = midvbatch(
        "run", copy, "--out", out, "--pipeline", "ground-truth", "--workers", 1, "--no-check", timeout=TIMEOUT
    )
    no_traceback(result)
    assert result.returncode == 1
    rows = run_rows(out)
    assert rows["TS01"][0] == "done"
    state, error_class, attempts, error = rows["TA01"]
    assert (state, error_class, attempts) == ("dead", "permanent", 1), "bad input is not retried"
    assert error.startswith(f"{path}: ") and message in error and "\n" not in error


# --- videos that are not videos ----------------------------------------------------------


VIDEO_DAMAGE = {
    "fifo": (os.mkfifo, "a FIFO (named pipe), not a video file"),
    "dev_zero": (lambda path: path.symlink_to("/dev/zero"), "a character device, not a video file"),
}


def damage_video(root: Path, kind: str) -> tuple[Path, str]:
    video = root / DOC / "videos" / "TS01.mp4"
    make, message = VIDEO_DAMAGE[kind]
    video.unlink()
    make(video)
    return video, message


@pytest.mark.parametrize("kind", VIDEO_DAMAGE)
def test_inputs_video_that_is_not_a_file_never_hangs(copy, tmp_path, kind):
    video, message = damage_video(copy, kind)
    line = f"{video}: {message}"

    validated = midvbatch("validate", copy, timeout=TIMEOUT)
    no_traceback(validated)
    assert validated.returncode == 1
    assert lines_naming(validated.stdout, video) == [f"error   video          {line}"]

    probed = midvbatch("probe", video, timeout=TIMEOUT)
    no_traceback(probed)
    assert probed.returncode == 1 and probed.stderr.strip() == f"Error: {line}"

    listed = midvbatch("ls", copy, timeout=TIMEOUT)
    assert listed.returncode == 0 and str(video) in listed.stdout
    frames = midvbatch("ls", copy, "--frames", timeout=TIMEOUT)  # frame size from the catalog instead
    assert frames.returncode == 0 and "TS01_30" in frames.stdout

    decoded = midvbatch("frames", copy, timeout=TIMEOUT)
    no_traceback(decoded)
    assert decoded.returncode == 1 and line in decoded.stdout

    out = tmp_path / "run"
    ran = midvbatch("run", copy, "--out", out, "--pipeline", "frames", "--workers", 0, timeout=TIMEOUT)
    no_traceback(ran)
    assert ran.returncode == 1
    rows = run_rows(out)
    assert rows["TA01"][0] == "done"
    assert rows["TS01"][:2] == ("dead", "invalid") and rows["TS01"][3] == f"invalid: {line}"

    unchecked = tmp_path / "unchecked"
    ran = midvbatch(
        "run", copy, "--out", unchecked, "--pipeline", "frames", "--workers", 1, "--no-check", timeout=TIMEOUT
    )
    no_traceback(ran)
    assert ran.returncode == 1
    rows = run_rows(unchecked)
    assert rows["TA01"][0] == "done"
    assert rows["TS01"][:3] == ("dead", "permanent", 1) and rows["TS01"][3] == line


def _picture(suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, np.full((10, 10, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda: _picture(".png"), "not a video (a PNG image)"),
        (lambda: _picture(".jpg"), "not a video (a JPEG image)"),
        (lambda: _picture(".tif"), "not a video (a TIFF image)"),
        (lambda: _picture(".bmp"), "not a video (a BMP image)"),
        (lambda: b"this is a text file, not a video\n" * 20, "not a readable video"),
    ],
)
def test_inputs_picture_named_like_a_video_is_not_a_video(copy, content, message):
    video = copy / DOC / "videos" / "TS01.mp4"
    video.write_bytes(content())
    result = midvbatch("validate", copy, timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    # One problem for the clip: the video. Its quads are checked against the catalog's
    # frame size, not the 10x10 of the picture, so they raise nothing.
    [line] = [line for line in result.stdout.splitlines() if "TS01" in line]
    assert line.startswith(f"error   video          {video}: ") and message in line
    assert "implausibly" not in result.stdout


def test_inputs_png_named_like_a_video_in_probe_and_run(copy, tmp_path):
    video = copy / DOC / "videos" / "TS01.mp4"
    video.write_bytes(_picture(".png"))
    probed = midvbatch("probe", video, timeout=TIMEOUT)
    assert probed.returncode == 1 and probed.stderr.strip() == f"Error: {video}: not a video (a PNG image)"
    out = tmp_path / "run"
    ran = midvbatch("run", copy, "--out", out, "--pipeline", "ground-truth", "--workers", 0, timeout=TIMEOUT)
    no_traceback(ran)
    assert ran.returncode == 1
    rows = run_rows(out)
    assert rows["TA01"][0] == "done"
    assert rows["TS01"][:2] == ("dead", "invalid")
    assert rows["TS01"][3] == f"invalid: {video}: not a video (a PNG image)"


# --- other input files of validate ---------------------------------------------------------


@pytest.fixture(scope="module")
def with_frames(tmp_path_factory) -> Path:
    """One clip with its extracted frames as TIFF, for validate --deep."""
    root = tmp_path_factory.mktemp("frames")
    synthesize(root, SynthConfig(docs=1, clips="TS", seed=2, with_frames=True))
    return root


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_inputs_validate_deep_names_a_frame_image_that_is_not_a_file(with_frames, tmp_path, kind):
    root = tmp_path / "ds"
    shutil.copytree(with_frames, root)
    image = root / DOC / "images" / "TS" / "TS01_07.tif"
    image.unlink()
    os.mkfifo(image) if kind == "fifo" else image.symlink_to("/dev/zero")
    result = midvbatch("validate", root, "--deep", timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert lines_naming(result.stdout, image) == [f"error   frame_mismatch {image}: {what}, not an image file"]


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_inputs_validate_names_archives_and_md5_lists_that_are_not_files(copy, kind):
    special = (lambda p: os.mkfifo(p)) if kind == "fifo" else (lambda p: p.symlink_to("/dev/zero"))
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    special(copy / "md5.txt")
    fetched = copy / ".fetch"
    fetched.mkdir()
    special(fetched / "01_alb_id.zip")
    (fetched / "md5.txt").write_text(f"{'0' * 32}  01_alb_id.zip\n")
    result = midvbatch("validate", copy, timeout=TIMEOUT)
    no_traceback(result)
    assert result.returncode == 1
    assert lines_naming(result.stdout, copy / "md5.txt") == [
        f"error   archive        {copy / 'md5.txt'}: {what}, not an md5 list"
    ]
    assert lines_naming(result.stdout, fetched / "01_alb_id.zip") == [
        f"error   archive        {fetched / '01_alb_id.zip'}: {what}, not an archive"
    ]


# --- synth -----------------------------------------------------------------------------------


def test_inputs_synth_refuses_to_overwrite_a_dataset_unless_forced(tmp_path):
    out = tmp_path / "ds"
    first = midvbatch("synth", out, "--docs", 1, "--clips", "TA", timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr
    truth = frame_file(out, "TA", 1)
    truth.write_text(QUAD)  # the user's own edit
    video = out / DOC / "videos" / "TA01.MOV"
    before = video.read_bytes()

    again = midvbatch("synth", out, "--docs", 1, "--clips", "TA", "--seed", 5, timeout=TIMEOUT)
    no_traceback(again)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"Error: {out}: holds a dataset already: 33 of the files to write exist "
        f"({DOC}/images/{DOC}.tif first); use --force to overwrite them, "
        "or choose an empty folder"
    )
    assert truth.read_text() == QUAD and video.read_bytes() == before, "nothing was written"

    other = midvbatch("synth", out, "--docs", 1, "--clips", "TS", timeout=TIMEOUT)  # the template is shared
    assert other.returncode == 1 and "2 of the files to write exist" in other.stderr

    forced = midvbatch("synth", out, "--docs", 1, "--clips", "TA", "--seed", 5, "--force", timeout=TIMEOUT)
    assert forced.returncode == 0, forced.stderr
    assert truth.read_text() != QUAD and video.read_bytes() != before
    assert not [p for p in out.rglob(".*") if p.is_file()], "no temporary file left"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--size", "100000x100000"], 1, "width must be an even number of pixels from 16 to 7680"),
        (["--size", "7680x7680"], 1, "more than 8K video's 33,177,600"),
        (["--size", "8x8"], 1, "width must be an even number of pixels from 16 to 7680"),
        (["--size", "181x320"], 1, "width must be an even number of pixels from 16 to 7680"),
        (["--size", "1" + "0" * 5000 + "x2"], 2, "is not a size like 180x320"),
        (["--size", "big"], 2, "'big' is not a size like 180x320"),
        (["--seconds", "nan"], 1, "seconds must be at least 3"),
        (["--seconds", "inf"], 1, "and at most 600, got inf"),
        (["--seconds", "-1"], 1, "seconds must be at least 3"),
        (["--seconds", "0"], 1, "seconds must be at least 3"),
        (["--seconds", "1e9"], 1, "and at most 600, got 1000000000.0"),
        (["--seed", "-1"], 1, "seed must be a whole number from 0 to 9223372036854775807, got -1"),
        (["--seed", "9" * 30], 1, "seed must be a whole number from 0 to 9223372036854775807"),
        (["--seed", "9" * 5000], 2, "is not a valid integer"),
        (["--docs", "0"], 1, "docs must be 1..50"),
        (["--docs", "9" * 5000], 1, "docs must be 1..50"),
        (["--docs", ""], 1, "docs must be a count or a name pattern"),
        (["--clips", ""], 1, "clips must be a clip code pattern like 'T*', got ''"),
        (["--trajectories", "/dev/zero"], 1, "/dev/zero: trajectories file: a character device, not a JSON file"),
    ],
)
@pytest.mark.timeout(TIMEOUT)
def test_inputs_synth_hostile_options_give_one_line(tmp_path, args, code, message):
    """In-process (the options are refused before anything is read or written; the FIFO case below runs in a
    subprocess); an exception that escaped the command would be result.exception, not a traceback in its output."""
    from click.testing import CliRunner

    from midvbatch.cli import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["synth", str(out), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    no_traceback(result)
    assert result.exit_code == code
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0]
    if code == 1:
        assert result.stderr.strip() == errors[0]
    assert not out.exists(), "options are checked before anything is written"


@pytest.mark.timeout(TIMEOUT)
def test_inputs_synth_trajectories_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "coco.json")
    result = midvbatch("synth", tmp_path / "out", "--trajectories", tmp_path / "coco.json", timeout=TIMEOUT)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'coco.json'}: trajectories file: a FIFO (named pipe), not a JSON file"
    )


LOADS_CASES = [
    '{"a": 1, "a": 2}',  # the last of a repeated key
    "123456789012345678901234567890",  # past 64 bits: an int, not a float
    "-9223372036854775809",
    "18446744073709551616",
    "9223372036854775807",
    "1e400",  # past the float range: inf
    "-1e400",
    "NaN",
    "Infinity",
    '"\\ud800"',  # a lone surrogate
    '"\\ud83d\\ude00"',
    "[1.0000000000000002, 5e-324, 1e-400, -0.0, 0.1, 1E5]",
    '"\\u0000 \\t \\u00e9"',
    '{"quad": [[1, 2.5], [3, 4], [5, 6], [7, 8]], "fields": {"name": "GÜNTHER"}}',
    '\ufeff{"a": 1}',  # a byte-order mark
]


@pytest.mark.parametrize("text", LOADS_CASES)
def test_inputs_fast_json_reads_what_json_reads(text):
    """fileio.loads (orjson where it agrees) gives json.loads's value, of text and of bytes in every encoding
    json reads, and json's own error where json refuses."""
    from midvbatch.fileio import loads

    for raw in (text, text.encode("utf-8", "surrogatepass"), text.encode("utf-16")):
        try:
            expected = json.loads(raw)
        except ValueError as exc:
            with pytest.raises(type(exc)):
                loads(raw)
            continue
        got = loads(raw)
        assert repr(got) == repr(expected) and type(got) is type(expected)


@pytest.mark.parametrize("text", ['{"a": 1', "[1,]", "01", '{"a": 1}x', '"\t"', ""])
def test_inputs_fast_json_raises_what_json_raises(text):
    from midvbatch.fileio import loads

    with pytest.raises(json.JSONDecodeError) as error:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    assert str(error.value) == str(expected.value)
