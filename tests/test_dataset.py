"""The catalog and discovery of dataset folders (names only, nothing decoded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_video

from midvbatch.cli import cli
from midvbatch.dataset import MIDV500, MIDV2019, discover, get_catalog, get_format, select
from midvbatch.dataset.catalog import document_number
from midvbatch.dataset.groundtruth import Quad, write_frame_quad
from midvbatch.errors import DatasetError


def test_dataset_catalog_midv500():
    assert len(MIDV500.documents) == 50
    assert MIDV500.documents[0] == "01_alb_id" and MIDV500.documents[-1] == "50_xpo_id"
    assert [document_number(d) for d in MIDV500.documents] == list(range(1, 51))
    assert MIDV500.clip_codes == ("TA", "TS", "KA", "KS", "HA", "HS", "PA", "PS", "CA", "CS")
    kind = MIDV500.clip_kind("PS")
    assert (kind.condition.name, kind.device.name) == ("partial", "Samsung Galaxy S3")
    assert MIDV500.clip_kind("HA").device.name == "Apple iPhone 5"
    assert MIDV500.clip_kind("LX") is None
    assert (MIDV500.frames_per_clip, MIDV500.sample_fps, MIDV500.annotated_seconds) == (30, 10, 3.0)
    assert (MIDV500.frame_width, MIDV500.frame_height) == (1080, 1920)
    assert MIDV500.frame_id("TA", "01_alb_id", 5) == "TA01_05"
    source = get_format("midv500").archives()
    assert f"{source.base_url}/{source.archives[42].file}" == "ftp://smartengines.com/midv-500/dataset/43_tur_id.zip"
    assert MIDV500.document(43) == "43_tur_id" and MIDV500.document("50_xpo_id") == "50_xpo_id"
    with pytest.raises(DatasetError, match="MIDV-500 has no document 51"):
        MIDV500.document(51)


def test_dataset_catalog_midv2019_is_a_second_entry():
    assert get_catalog("MIDV-2019") is MIDV2019
    assert MIDV2019.documents == MIDV500.documents
    # D distorted / L low light; X Apple iPhone XS Max / G Samsung Galaxy S10 (its readme: DG01, LX01)
    assert MIDV2019.clip_codes == ("DX", "DG", "LX", "LG")
    assert MIDV2019.clip_kind("DG").device.name == "Samsung Galaxy S10"
    assert MIDV2019.clip_kind("DS") is None
    with pytest.raises(DatasetError, match="unknown dataset 'midv3000'"):
        get_catalog("midv3000")


def make_document(
    root: Path, name: str, clips: dict[str, str], frames: int = 30, nested: bool = False, template: bool = True
) -> Path:
    """Lay out a document folder: clips maps code -> video file name ('' for none)."""
    folder = root / name / name if nested else root / name
    (folder / "videos").mkdir(parents=True)
    (folder / "ground_truth").mkdir()
    (folder / "images").mkdir()
    if template:
        (folder / "ground_truth" / f"{name}.json").write_text("{}")
        (folder / "images" / f"{name}.tif").write_bytes(b"II*\x00")
    number = name[:2]
    for code, video in clips.items():
        if video:
            (folder / "videos" / video).write_bytes(b"\x00")
        gt = folder / "ground_truth" / code
        gt.mkdir()
        for k in range(1, frames + 1):
            write_frame_quad(gt / f"{code}{number}_{k:02d}.json", Quad.from_list([1, 1, 50, 1, 50, 80, 1, 80]))
    return folder


def test_dataset_discovers_documents_nested_and_flat_with_any_extension_case(tmp_path):
    make_document(tmp_path, "01_alb_id", {"TA": "TA01.MOV", "TS": "TS01.mp4"})
    make_document(tmp_path, "02_aut_drvlic_new", {"KA": "KA02.mov", "KS": "KS02.MP4"}, nested=True)
    ds = discover(tmp_path)
    assert ds.catalog is MIDV500
    assert [d.name for d in ds.documents] == ["01_alb_id", "02_aut_drvlic_new"]
    assert [c.id for c in ds.clips] == ["TA01", "TS01", "KA02", "KS02"]
    assert [c.video.name for c in ds.clips] == ["TA01.MOV", "TS01.mp4", "KA02.mov", "KS02.MP4"]
    assert all(len(c.ground_truth) == 30 for c in ds.clips)
    assert ds.documents[1].folder == tmp_path / "02_aut_drvlic_new" / "02_aut_drvlic_new"
    assert ds.documents[0].template_json.name == "01_alb_id.json"
    ta = ds.clips[0]
    assert (ta.condition, ta.device, ta.format) == ("table", "Apple iPhone 5", "midv500")
    assert ta.frame_id(7) == "TA01_07"
    assert ta.ground_truth[7].name == "TA01_07.json"


def test_dataset_a_video_or_template_that_is_not_a_file_is_found_not_missing(tmp_path):
    # Discovery reads names only; probing or reading says what is wrong with such a file,
    # which is clearer than "no video file".
    folder = make_document(tmp_path, "01_alb_id", {"TA": "", "TS": ""})
    os.mkfifo(folder / "videos" / "TA01.mp4")
    (folder / "videos" / "TS01.mp4").symlink_to("/dev/zero")
    (folder / "ground_truth" / "01_alb_id.json").unlink()
    os.mkfifo(folder / "ground_truth" / "01_alb_id.json")
    ds = discover(tmp_path)
    assert [c.video.name for c in ds.clips] == ["TA01.mp4", "TS01.mp4"]
    assert ds.documents[0].template_json.name == "01_alb_id.json"
    assert not [m for m in ds.missing if m.kind in ("video", "template_json")]


def test_dataset_partial_dataset_lists_what_is_missing(tmp_path):
    folder = make_document(tmp_path, "43_tur_id", {"CA": "CA43.MOV", "CS": ""}, template=False)
    (folder / "ground_truth" / "CA" / "CA43_17.json").unlink()
    (folder / "ground_truth" / "CA" / "CA43_05.json").unlink()
    ds = discover(tmp_path)
    assert len(ds.clips) == 2
    missing = {(m.kind, m.where): m.detail for m in ds.missing}
    assert missing[("ground_truth", "CA43")] == "ground truth of frame(s) 05, 17 missing"
    assert missing[("video", "CS43")] == "no video file in videos/"
    assert ("template_image", "43_tur_id") in missing and ("template_json", "43_tur_id") in missing
    assert ("clip", "TA43") in missing and ("clip", "PS43") in missing
    assert ("document", "01_alb_id") in missing
    assert sum(m.kind == "document" for m in ds.missing) == 49


def test_dataset_real_samples_are_discovered(real_data):
    ds = discover(real_data)
    assert [c.id for c in ds.clips] == ["HA01", "CA43", "CS43"]
    assert ds.clips[1].images[1].name == "CA43_01.tif"


def test_dataset_folder_of_plain_videos_is_a_dataset(tmp_path):
    (tmp_path / "day1").mkdir()
    (tmp_path / "day1" / "scan.MOV").write_bytes(b"\x00")
    (tmp_path / "clip.webm").write_bytes(b"\x00")
    (tmp_path / "notes.txt").write_text("not a video")
    ds = discover(tmp_path)
    assert ds.catalog is None
    assert [(c.id, c.document, c.code) for c in ds.clips] == [
        ("clip.webm", "", "clip"),
        ("day1/scan.MOV", "day1", "scan"),
    ]
    assert all(not c.ground_truth for c in ds.clips)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "absent", "no such folder"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a folder"),
        (lambda p: p, "no MIDV document folders and no video files found"),
    ],
)
def test_dataset_unusable_root_raises_dataset_error(tmp_path, setup, message):
    with pytest.raises(DatasetError, match=message):
        discover(setup(tmp_path))


def test_dataset_select_by_document_and_clip_patterns(tmp_path):
    make_document(tmp_path, "01_alb_id", {"TA": "TA01.MOV", "TS": "TS01.mp4", "CA": "CA01.MOV"})
    make_document(tmp_path, "05_aze_passport", {"TA": "TA05.MOV"})
    ds = discover(tmp_path)
    assert [c.id for c in select(ds, docs=["0[1-3]_*"])] == ["TA01", "TS01", "CA01"]
    assert [c.id for c in select(ds, clips=["T*"])] == ["TA01", "TS01", "TA05"]
    assert [c.id for c in select(ds, clips=["CA", "*05"])] == ["CA01", "TA05"]
    with pytest.raises(DatasetError, match="no clip matches --docs 9*"):
        select(ds, docs=["9*"])


def test_dataset_ls_cli_lists_clips_and_missing(tmp_path):
    make_document(tmp_path, "01_alb_id", {"TA": "TA01.MOV", "TS": ""})
    result = CliRunner().invoke(cli, ["ls", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["CLIP", "CONDITION", "DEVICE", "GT", "VIDEO"]
    assert lines[1].split()[:5] == ["TA01", "table", "Apple", "iPhone", "5"]
    assert lines[2].endswith("(missing)")
    assert "2 clips in 1 document of MIDV-500" in result.output
    assert "49 documents" in result.output and "1 videos" in result.output
    result = CliRunner().invoke(cli, ["ls", str(tmp_path), "--json"])
    data = json.loads(result.output)
    assert data["catalog"] == "midv500"
    assert data["clips"][0] == {
        "id": "TA01",
        "document": "01_alb_id",
        "clip": "TA",
        "condition": "table",
        "device": "Apple iPhone 5",
        "video": str(tmp_path / "01_alb_id/videos/TA01.MOV"),
        "ground_truth": 30,
        "images": 0,
    }
    assert {"kind": "video", "where": "TS01", "detail": "no video file in videos/"} in data["missing"]


def test_dataset_ls_frames_takes_frame_size_from_the_video(tmp_path):
    folder = make_document(tmp_path, "01_alb_id", {"TA": "", "TS": ""})
    write_video(folder / "videos" / "TA01.MOV", frames=10, width=60, height=100, rotation=-90)
    result = CliRunner().invoke(cli, ["ls", str(tmp_path), "--frames", "--json"])
    assert result.exit_code == 0, result.output
    frames = json.loads(result.output)["frames"]
    assert len(frames) == 60
    ta = frames[0]
    assert ta["id"] == "TA01_01" and ta["quad"] == [[1, 1], [50, 1], [50, 80], [1, 80]]
    assert ta["frame_size"] == [60, 100] and ta["frame_size_from"] == "video"
    assert "four_vertices_in_frame" in ta["subsets"]
    ts = frames[30]
    assert ts["frame_size"] == [1080, 1920] and ts["frame_size_from"] == "catalog"


def test_dataset_ls_cli_bad_root_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["ls", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nope'}: no such folder\n"


def test_dataset_round_trip_synthesize_discover_read(tmp_path):
    """Synthesize, discover, read every annotated frame: the document is where the ground truth says."""
    import cv2
    import numpy as np

    from midvbatch.dataset import clip_frame_truths
    from midvbatch.dataset.synth import SynthConfig, synthesize
    from midvbatch.video import read_annotated_frames

    synthesize(tmp_path, SynthConfig(docs=1, clips="[TKC]S", seed=3))
    ds = discover(tmp_path)
    assert [c.id for c in ds.clips] == ["TS01", "KS01", "CS01"]
    template = cv2.imread(str(ds.documents[0].template_image))
    th, tw = template.shape[:2]
    corners = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    for clip in ds.clips:
        truths = clip_frame_truths(clip)
        assert len(truths) == 30 and all(t.size_from == "video" for t in truths)
        for frame, truth in zip(read_annotated_frames(clip.video), truths):
            quad = np.float32(truth.quad.points)
            back = cv2.warpPerspective(frame.image, cv2.getPerspectiveTransform(quad, corners), (tw, th))
            # the document warped back along its ground truth looks like the template ...
            assert np.corrcoef(back.ravel(), template.ravel())[0, 1] > 0.6, (clip.id, frame.number)
            # ... and the frame is not uniform: inside the quad differs from outside
            mask = np.zeros(frame.image.shape[:2], np.uint8)
            cv2.fillPoly(mask, [quad.astype(np.int32)], 1)
            inside = frame.image[mask == 1].mean(axis=0)
            outside = frame.image[mask == 0].mean(axis=0)
            assert np.abs(inside - outside).sum() > 20
