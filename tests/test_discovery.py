"""Discovery sees each file once, and checks what a format gives: links, second copies, bad clips, bad names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import midvbatch, write_video
from test_formats import EXAMPLE, _cli, _plugin_env, _quadlist_dataset

from midvbatch.cli import cli
from midvbatch.dataset import Clip, Dataset, DatasetFormat, FrameRule, discover, register
from midvbatch.dataset.formats import new_format_registry
from midvbatch.errors import DatasetError


def _ls(*args) -> tuple[int, str, list[str]]:
    """`midvbatch ls` in this process: exit code, standard output, standard error's lines."""
    result = CliRunner().invoke(cli, ["ls", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr.splitlines()


def _validate(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["validate", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def _lines(lines: list[str], *fragments: str) -> list[str]:
    return [line for line in lines if all(f in line for f in fragments)]


def test_discovery_a_link_back_up_is_not_followed_and_said_once(dataset, tmp_path):
    root = tmp_path / "dd"
    root.mkdir()
    (root / "01_alb_id").symlink_to(dataset / "01_alb_id")  # a link to a folder not read yet: followed
    (root / "sl").symlink_to(".")  # back up: DATASET/sl/sl/sl/... would list every clip again
    code, out, err = _ls(root)
    assert code == 0 and "10 clips in 1 document" in out, out
    assert err == [f"warning: {root / 'sl'}: a link to {root}, a folder already read: not followed"]
    listed = json.loads(_ls(root, "--json")[1])
    assert [(f["kind"], f["path"]) for f in listed["problems"]] == [("link", str(root / "sl"))]
    code, out, err = _ls(root, "--catalog", "folder")  # a folder of videos: the same walk
    assert code == 0 and "10 clips in 1 document" in out, out
    assert len(_lines(err, "sl", "not followed")) == 1
    code, lines = _validate(root)
    assert len(_lines(lines, "link", str(root / "sl"), "not followed")) == 1
    ran = midvbatch(
        "run",
        root,
        "--out",
        tmp_path / "run",
        "--pipeline",
        "ground-truth",
        "--workers",
        0,
        "--clips",
        "TA",
        "--clips",
        "TS",
    )
    assert ran.returncode == 0, ran.stderr
    assert "2 done, 0 dead, 0 left" in ran.stdout + ran.stderr
    assert (ran.stdout + ran.stderr).count("not followed") == 1


def test_discovery_in_parts_finds_what_discovery_finds(tmp_path):
    """A run's discovery of a folder of videos streams its files in parts: the same clips, the same findings
    (in the last part), any order; hidden folders skipped, a link to a folder followed, a link back up said once."""
    from midvbatch.dataset.formats import discover_parts

    root = tmp_path / "videos"
    for rel in ("a.mp4", "b.MOV", "notes.txt", "cam1/c.mp4", "cam1/deep/d.mkv", ".hidden/e.mp4", "cam2/f.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "g.mp4").write_bytes(b"")
    (root / "linked").symlink_to(outside)
    (root / "cam2" / "up").symlink_to(root)
    whole = discover(root, "folder")
    parts = list(discover_parts(root, "folder", size=2))
    assert all(len(p.clips) <= 2 for p in parts) and len(parts) >= 3
    assert (
        sorted(c.id for p in parts for c in p.clips)
        == sorted(c.id for c in whole.clips)
        == ["a.mp4", "b.MOV", "cam1/c.mp4", "cam1/deep/d.mkv", "cam2/f.mp4", "linked/g.mp4"]
    )
    assert [str(p) for p in parts[-1].problems] == [str(p) for p in whole.problems]
    assert len(whole.problems) == 1 and "not followed" in str(whole.problems[0])
    assert all(not p.problems for p in parts[:-1])
    by_id = {c.id: c for p in parts for c in p.clips}
    assert all(by_id[c.id] == c for c in whole.clips)  # each clip as whole discovery makes it
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no video files found"):
        list(discover_parts(empty, "folder"))


def test_discovery_two_copies_of_a_document_one_used_one_line(dataset, tmp_path):
    root = tmp_path / "dd"
    shutil.copytree(dataset / "01_alb_id", root / "01_alb_id")
    shutil.copytree(dataset / "01_alb_id", root / "backup" / "01_alb_id")
    shutil.copy(root / "01_alb_id" / "videos" / "TS01.mp4", root / "01_alb_id" / "videos" / "TS01.webm")
    code, out, err = _ls(root)
    assert code == 0 and "10 clips in 1 document" in out and "backup" not in out, out
    copy = _lines(err, "a second copy of document 01_alb_id")
    assert copy == [
        f"warning: {root / 'backup/01_alb_id'}: a second copy of document 01_alb_id, ignored: "
        f"{root / '01_alb_id'} is used (--docs backup/01_alb_id takes this one instead)"
    ]
    assert _lines(err, "TS01.webm: a second video of clip TS01", "TS01.mp4 is used")
    code, out, err = _ls(root, "--docs", "backup/01_alb_id")  # the path chooses the other copy
    assert code == 0 and "10 clips in 1 document" in out and out.count("backup/01_alb_id/videos") == 10, out
    assert _lines(err, f"{root / '01_alb_id'}: a second copy", "backup/01_alb_id is used (chosen by --docs)")
    code, lines = _validate(root)
    assert len(_lines(lines, "duplicate", "a second copy of document 01_alb_id")) == 1
    nested = tmp_path / "nested"  # unzipped into a folder of the same name, with clips left in the outer one too
    shutil.copytree(dataset / "01_alb_id", nested / "01_alb_id" / "01_alb_id")
    shutil.copytree(dataset / "01_alb_id" / "videos", nested / "01_alb_id" / "videos")
    code, out, err = _ls(nested)
    assert "10 clips in 1 document" in out and out.count("01_alb_id/01_alb_id/videos") == 10, out
    assert _lines(err, f"{nested / '01_alb_id'}: a second copy", "(--docs ./01_alb_id takes this one instead)")
    code, out, err = _ls(nested, "--docs", "./01_alb_id")
    assert "10 clips in 1 document" in out and "01_alb_id/01_alb_id/videos" not in out, out
    ran = midvbatch(
        "run",
        root,
        "--out",
        tmp_path / "run",
        "--pipeline",
        "ground-truth",
        "--workers",
        0,
        "--docs",
        "backup/*",
        "--clips",
        "TA",
    )
    assert ran.returncode == 0 and "1 done, 0 dead, 0 left" in ran.stdout + ran.stderr, ran.stderr
    assert "backup/01_alb_id is used (chosen by --docs)" in ran.stderr


BAD_CLIPS = {"ts01": {"fps": float("nan")}, "ka02": {"frames": -5}, "ta01": {"fps": 1e308}}


def test_discovery_a_formats_bad_clips_are_one_line_each_and_the_others_run(dataset, tmp_path):
    data = _quadlist_dataset(dataset, tmp_path / "data", clips=("TA01", "TS01", "KA02", "HA01"))
    for stem, bad in BAD_CLIPS.items():  # the docs' own example, one clip's JSON edited
        listing = next(data.rglob(f"{stem}.quads.json"))
        listing.write_text(json.dumps({**json.loads(listing.read_text()), **bad}))
    (data / "cam09").mkdir()
    for name in ("ha01.mp4", "ha01.quads.json"):  # ha01 in cam09 too: one id from two files
        shutil.copy(data / "cam01" / name, data / "cam09" / name)
    module = EXAMPLE.read_text().replace('id=video.relative_to(root).with_suffix("").as_posix(),', "id=video.stem,")
    module = module.replace(
        "return Dataset(root, self.name, None, [], clips, [])",
        'return Dataset(root, self.name, None, [], ["cam01/extra", *clips], [])',
    )
    assert "id=video.stem," in module and '"cam01/extra"' in module
    env = _plugin_env(tmp_path, module=module)
    listed = _cli(env, "ls", data)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert "1 clip in 1 document" in listed.stdout, listed.stdout
    err = listed.stderr.splitlines()
    assert _lines(err, "error:", "gave 'cam01/extra': a str, not a Clip; set aside")
    assert _lines(err, "ts01.mp4", "clip 'ts01'", "frame rate (fps) is nan")
    assert _lines(err, "ta01.mp4", "clip 'ta01'", "frame rate (fps) 1e+308 is above 1000")
    assert _lines(err, "ka02.mp4", "clip 'ka02'", "frame count is -5")
    assert _lines(err, "cam09/ha01.mp4: a second copy of clip ha01, ignored", "cam01/ha01.mp4 is used")
    assert len(err) == 5, err
    checked = _cli(env, "validate", data)
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr, checked.stderr
    assert len(_lines(checked.stdout.splitlines(), "error", "format", "set aside")) == 4
    ran = _cli(env, "run", data, "--out", tmp_path / "run", "--pipeline", "ground-truth", "--workers", 0)
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    assert "1 done, 0 dead, 0 left" in ran.stdout + ran.stderr
    assert "a second copy of clip ha01" in ran.stderr and "frame rate (fps) is nan" in ran.stderr


# ------------------------------------------------------------------------------------------- MIDV-2020

QUAD = [[10, 10], [150, 12], [148, 90], [12, 88]]


def _region(name: str, corners, **attributes) -> dict:
    return {
        "shape_attributes": {
            "name": "polygon",
            "all_points_x": [c[0] for c in corners],
            "all_points_y": [c[1] for c in corners],
        },
        "region_attributes": {"field_name": name, **attributes},
    }


def _via(path: Path, images: dict[str, list[dict]]) -> None:
    meta = {
        f"{name}100": {"filename": name, "size": 100, "regions": regions, "file_attributes": {}}
        for name, regions in images.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "_via_settings": {},
                "_via_img_metadata": meta,
                "_via_attributes": {},
                "_via_data_format_version": "2.0.10",
                "_via_image_id_list": list(meta),
            }
        ),
        encoding="utf-8",
    )


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((100, 160, 3), 128, np.uint8))


def test_discovery_midv2020_numbers_are_ascii_digits_and_the_rest_is_read(tmp_path):
    root = tmp_path / "ds"
    for name in ("00.jpg", "01.jpg", "²³.jpg", "1.jpg"):  # a stray superscript, a second name of number 1
        _jpeg(root / "photo" / "images" / "alb_id" / name)
    _via(
        root / "photo" / "annotations" / "alb_id.json",
        {
            "00.jpg": [_region("doc_quad", QUAD)],
            "01.jpg": [_region("doc_quad", QUAD)],
            "².jpg": [_region("doc_quad", QUAD)],
        },
    )  # str.isdigit() is true, int() fails
    code, out, err = _ls(root)
    assert code == 0 and "1 clip in 1 document" in out, out
    assert _lines(err, "warning:", str(root / "photo/images/alb_id/²³.jpg"), "not named by a number")
    assert _lines(err, "warning:", "alb_id/1.jpg", "a second file numbered 1", "01.jpg is used")
    code, lines = _validate(root)
    assert code == 0, lines
    assert _lines(lines, "alb_id.json", "'².jpg' is not named by a number in ASCII digits")
    ran = midvbatch("run", root, "--out", tmp_path / "run", "--pipeline", "ground-truth", "--workers", 0)
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    assert "1 done, 0 dead, 0 left" in ran.stdout + ran.stderr


def test_discovery_midv2020_template_values_that_are_not_text_are_warnings(tmp_path):
    root = tmp_path / "ds"
    _jpeg(root / "templates" / "images" / "alb_id" / "00.jpg")
    fields = [
        _region("doc_quad", QUAD),
        _region("surname", QUAD, value=12345),
        _region("given_name", QUAD, value=["A", "B"]),
        _region("number", QUAD, value=None),
        _region("nationality", QUAD, value="ALB"),
        _region("face", QUAD, value=None),
    ]
    _via(root / "templates" / "annotations" / "alb_id.json", {"00.jpg": fields})
    code, lines = _validate(root)
    assert code == 0 and "0 errors, 3 warnings" in lines[0], lines
    assert _lines(lines, "template", "field 'surname' has the value 12345, not text")
    assert _lines(lines, "template", 'field \'given_name\' has the value ["A", "B"], not text')
    assert _lines(lines, "template", "field 'number' has the value null, not text")


def test_discovery_midv2020_a_clip_shorter_than_its_numbered_frames_is_said_before_decoding(tmp_path):
    root = tmp_path / "ds"
    numbers = (1, 7, 13, 19, 25, 31)
    _via(
        root / "clips" / "annotations" / "alb_id" / "00.json",
        {f"{n:06d}.jpg": [_region("doc_quad", QUAD)] for n in numbers},
    )
    video = root / "clips_video" / "video" / "alb_id" / "00.mp4"
    video.parent.mkdir(parents=True)
    write_video(video, frames=15, width=160, height=96)
    code, lines = _validate(root)
    assert code == 1
    assert _lines(lines, "error", "video", f"{video}: too short: 15 frames, the annotations go to frame 31"), lines
    ran = midvbatch("run", root, "--out", tmp_path / "run", "--pipeline", "ground-truth", "--workers", 0)
    assert "0 done, 1 dead" in ran.stdout + ran.stderr, ran.stderr
    assert "invalid" in ran.stderr and "too short: 15 frames" in ran.stderr


def test_discovery_names_read_as_numbers_are_ascii_only():
    from midvbatch.dataset.catalog import MIDV500, MIDV2020
    from midvbatch.errors import DatasetError

    assert MIDV2020.clip_kind("clips/²³") is None and MIDV2020.clip_kind("clips/23").condition.name == "keyboard"
    with pytest.raises(DatasetError, match="has no document"):
        MIDV500.document("²")
    assert MIDV500.document("01") == "01_alb_id"


class _BadClips(DatasetFormat):
    """A format whose discover() gives a good clip and one with one field set badly."""

    name = "badclips"

    def __init__(self, field: str, value):
        self.field, self.value = field, value

    def discover(self, root: Path) -> Dataset:
        good = Clip(id="good", document="d", code="g", video=root / "good.mp4", format=self.name)
        bad = Clip(id="bad", document="d", code="b", video=root / "bad.mp4", format=self.name)
        if self.field.startswith("rule."):
            bad.frame_rule = FrameRule(**{"count": 30, "fps": 10.0, self.field[5:]: self.value})
        else:
            setattr(bad, self.field, self.value)
        return Dataset(root, self.name, None, [], [good, bad], [])


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("rule.fps", float("inf"), "frame rate (fps) is inf"),
        ("rule.fps", "10", "frame rate (fps) is '10'"),
        ("rule.fps", 0.0, "neither a frame rate nor frame numbers"),
        ("rule.count", True, "frame count is True"),
        ("rule.count", 10**9, "frame count is 1000000000"),
        ("rule.count", 2.5, "frame count is 2.5"),
        ("rule.numbers", (1, -7), "frame numbers (1, -7)"),
        ("frame_size", (0, 5), "frame_size is (0, 5)"),
        ("frame_size", (float("nan"), 5), "frame_size is (nan, 5)"),
        ("ground_truth", {"1": "a.json"}, "frame number '1'"),
        ("ground_truth", {1: None}, "gives frame 1 None, not a path"),
        ("video", 5, "its video is 5, not a path"),
        ("id", "", "its id '' is not one line"),
        ("id", "a\nb", "its id 'a\\nb' is not one line"),
        ("id", None, "its id is None, not text"),
        ("frame_digits", 0, "frame_digits is 0"),
        ("condition", 3, "its condition is 3"),
    ],
)
def test_discovery_every_clip_field_a_format_sets_badly_is_one_line(tmp_path, monkeypatch, field, value, said):
    fresh = new_format_registry()  # the format is this test's only registered one
    monkeypatch.setattr("midvbatch.dataset.formats.format_registry", lambda: fresh)
    register(_BadClips(field, value))
    dataset = discover(tmp_path, "badclips")
    assert [c.id for c in dataset.clips] == ["good"]
    (problem,) = dataset.findings()
    assert problem.severity == "error" and problem.kind == "format" and said in problem.message, problem.message
    assert problem.message.endswith("; set aside")
