"""The synthesizer's MIDV-2020 layout: five collections, VIA 2.0 annotations, clips cut from their videos."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from midvbatch.cli import cli
from midvbatch.dataset.synth import SynthConfig, SynthReport, synthesize
from midvbatch.errors import SynthError
from midvbatch.geometry import signed_area

TYPES = ("alb_id", "aze_passport")
FRAMES = ("000001", "000007", "000013", "000019", "000025", "000031")
VIA_KEYS = [
    "_via_settings",
    "_via_img_metadata",
    "_via_attributes",
    "_via_data_format_version",
    "_via_image_id_list",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[SynthReport, list[str]]:
    """The default MIDV-2020 dataset, and the progress lines."""
    lines: list[str] = []
    report = synthesize(tmp_path_factory.mktemp("midv2020"), SynthConfig(catalog="midv2020"), progress=lines.append)
    return report, lines


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in sorted(_files(root))}


def _via(path: Path) -> dict:
    return json.loads(path.read_bytes().decode("utf-8"))


def _annotated(root: Path):
    """Yield (collection, type, image path, VIA key, VIA entry) for every annotated image of the dataset."""
    for via in sorted(root.glob("*/annotations/**/*.json")):
        collection = via.relative_to(root).parts[0]
        doc_type = via.stem if collection != "clips" else via.parent.name
        folder = root / collection / "images" / doc_type
        if collection == "clips":
            folder = folder / via.stem
        for key, entry in _via(via)["_via_img_metadata"].items():
            yield collection, doc_type, folder / entry["filename"], key, entry


def _region(entry: dict, name: str) -> dict:
    (region,) = [r for r in entry["regions"] if r["region_attributes"]["field_name"] == name]
    return region["shape_attributes"]


def _quad(entry: dict) -> np.ndarray:
    shape = _region(entry, "doc_quad")
    return np.array(list(zip(shape["all_points_x"], shape["all_points_y"], strict=True)), np.float64)


def test_synth_midv2020_layout(dataset):
    report, lines = dataset
    expected = set()
    for t in TYPES:
        for collection in ("templates", "scan_upright", "scan_rotated", "photo"):
            expected |= {f"{collection}/images/{t}/{n}.jpg" for n in ("00", "01")}
            expected.add(f"{collection}/annotations/{t}.json")
        for n in ("00", "01"):
            expected |= {f"clips/images/{t}/{n}/{f}.jpg" for f in FRAMES}
            expected |= {f"clips/annotations/{t}/{n}.json", f"clips_video/video/{t}/{n}.mp4"}
    assert _files(report.root) == expected
    codes = ["templates", "scan_upright", "scan_rotated", "photo/00-09", "clips/00", "clips/01"]
    assert lines == [f"{t}/{code}" for t in TYPES for code in codes]
    assert (report.documents, report.clips, report.frames) == (list(TYPES), 12, 2 * (4 * 2 + 2 * 6))


def test_synth_midv2020_annotations_are_via_projects(dataset):
    """Each file is a VIA 2.0 project as MIDV-2020's: images keyed by name and byte size, face and doc_quad."""
    root = dataset[0].root
    files = sorted(root.glob("*/annotations/**/*.json"))
    assert len(files) == 4 * 2 + 2 * 2
    for via in files:
        data = _via(via)
        assert list(data) == VIA_KEYS and data["_via_data_format_version"] == "2.0.10"
        assert data["_via_image_id_list"] == list(data["_via_img_metadata"])
        assert data["_via_attributes"]["region"]["field_name"]["type"] == "text"
    for collection, _, image, key, entry in _annotated(root):
        assert key == f"{image.name}{image.stat().st_size}" and entry["filename"] == image.name
        assert entry["size"] == image.stat().st_size and entry["file_attributes"] == {}
        names = [r["region_attributes"]["field_name"] for r in entry["regions"]]
        assert names[:2] == ["face", "doc_quad"]
        face, quad = _region(entry, "face"), _region(entry, "doc_quad")
        assert face["name"] == "rect" and all(isinstance(face[k], int) for k in ("x", "y", "width", "height"))
        assert quad["name"] == "polygon" and len(quad["all_points_x"]) == len(quad["all_points_y"]) == 4
        assert all(isinstance(v, int) for v in quad["all_points_x"] + quad["all_points_y"])
        if collection == "templates":  # text fields with their values
            text = [r["region_attributes"] for r in entry["regions"][2:] if r["region_attributes"]["value"]]
            assert {"surname", "name", "number"} <= {a["field_name"] for a in text}
        else:
            assert names == ["face", "doc_quad"]
    clip = _via(root / "clips" / "annotations" / "alb_id" / "00.json")["_via_img_metadata"]
    sizes = [(root / "clips" / "images" / "alb_id" / "00" / f"{f}.jpg").stat().st_size for f in FRAMES]
    assert list(clip) == [f"{f}.jpg{size}" for f, size in zip(FRAMES, sizes, strict=True)]


def test_synth_midv2020_clip_frames_are_the_videos_frames(dataset):
    """The JPEGs of clip NN are frames 1, 7, 13, ... (1-based, decode order) of its video."""
    root = dataset[0].root
    videos = sorted(root.glob("clips_video/video/*/*.mp4"))
    assert len(videos) == 4
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 180, 320)
            decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        assert len(decoded) == 36
        jpegs = sorted((root / "clips" / "images" / video.parent.name / video.stem).glob("*.jpg"))
        assert [p.stem for p in jpegs] == list(FRAMES)
        for path in jpegs:
            image = cv2.imread(str(path))
            assert cv2.PSNR(image, decoded[int(path.stem) - 1]) > 30, path
        # and not some other frame of the clip
        assert cv2.PSNR(cv2.imread(str(jpegs[1])), decoded[0]) < cv2.PSNR(cv2.imread(str(jpegs[1])), decoded[6])


def test_synth_midv2020_quads_lie_on_their_pictures(dataset):
    root = dataset[0].root
    for collection, _, image_path, _, entry in _annotated(root):
        h, w = cv2.imread(str(image_path)).shape[:2]
        quad = _quad(entry)
        face = _region(entry, "face")
        if collection == "templates":
            assert quad.tolist() == [[0, 0], [w, 0], [w, h], [0, h]]
        else:
            assert (quad >= -2).all() and (quad <= [w + 2, h + 2]).all(), f"{image_path}: {quad.tolist()}"
        area = signed_area(quad)
        assert area > 0.02 * w * h, "clockwise in image coordinates, and not tiny"
        (x0, y0), (x1, y1) = quad.min(0), quad.max(0)
        assert (
            x0 <= face["x"] and face["x"] + face["width"] <= x1 and y0 <= face["y"] and face["y"] + face["height"] <= y1
        )
        assert 0.02 * area < face["width"] * face["height"] < 0.5 * area
        if collection == "scan_upright":  # against the top-right corner, within a degree of upright
            (tl, tr, br, bl) = quad
            assert abs(tr[1] - tl[1]) <= 0.03 * (tr[0] - tl[0]) and tl[0] < tr[0] and tl[1] < bl[1]
            assert tr[0] > 0.9 * w and tl[1] < 0.1 * h
            assert h > w  # an A4 page, portrait


def test_synth_midv2020_rotated_scans_start_anywhere(tmp_path):
    config = SynthConfig(catalog="midv2020", docs=1, clips="scan_rotated", images=12)
    root = synthesize(tmp_path, config).root
    entries = _via(root / "scan_rotated" / "annotations" / "alb_id.json")["_via_img_metadata"].values()
    corners = set()
    for entry in entries:
        quad = _quad(entry)
        corners.add(int(np.argmin(quad[:, 0] + quad[:, 1])))  # which corner is the top-left one
    assert len(corners) >= 3, "the first corner lands in several places"


def _match(picture: np.ndarray, template: np.ndarray, quad: np.ndarray) -> float:
    """Correlate the picture inside `quad`, warped flat, with the template."""
    h, w = template.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    to_picture = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    flat = cv2.warpPerspective(picture, to_picture, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a = cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY)[3:-3, 3:-3].astype(np.float64)
    b = cv2.cvtColor(template, cv2.COLOR_BGR2GRAY)[3:-3, 3:-3].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_synth_midv2020_ground_truth_agrees_with_pixels(dataset):
    """Warped back along its doc_quad, every picture shows template NN: the same document throughout."""
    root = dataset[0].root
    for collection, doc_type, image_path, _, entry in _annotated(root):
        if collection == "templates":
            continue
        number = image_path.parent.name if collection == "clips" else image_path.stem
        template = cv2.imread(str(root / "templates" / "images" / doc_type / f"{number}.jpg"))
        small = cv2.resize(template, (template.shape[1] // 6, template.shape[0] // 6), interpolation=cv2.INTER_AREA)
        picture, quad = cv2.imread(str(image_path)), _quad(entry)
        here = _match(picture, small, quad)
        assert here > 0.6, f"{image_path}: {here:.2f}"
        step = 0.1 * np.linalg.norm(quad[1] - quad[0])
        assert max(_match(picture, small, quad + d) for d in ([step, 0], [0, step])) < here - 0.1


def test_synth_midv2020_selects_types_and_codes(tmp_path):
    config = SynthConfig(catalog="midv2020", docs="*_passport", clips="PHOTO/2*,clips/35", images=3, seconds=0.5)
    report = synthesize(tmp_path, config)
    assert report.documents == ["aze_passport", "grc_passport", "lva_passport", "srb_passport"]
    files = _files(report.root)
    photos = sorted(f.rsplit("/", 1)[1] for f in files if f.startswith("photo/images/srb_passport/"))
    assert photos == ["20.jpg", "21.jpg", "22.jpg", "25.jpg", "26.jpg", "27.jpg"]
    frames = sorted(f.rsplit("/", 1)[1] for f in files if f.startswith("clips/images/grc_passport/35/"))
    assert frames == ["000001.jpg", "000007.jpg", "000013.jpg"]  # 15 frames
    assert {f.split("/")[0] for f in files} == {"photo", "clips", "clips_video"}
    assert report.clips == 4 * 3 and report.frames == 4 * (6 + 3)


def test_synth_midv2020_is_deterministic(tmp_path):
    config = SynthConfig(catalog="midv2020", docs=1, clips="scan_rotated,clips/00", images=1)
    first = _digests(synthesize(tmp_path / "a", config).root)
    assert first == _digests(synthesize(tmp_path / "b", config).root)
    other = _digests(synthesize(tmp_path / "c", SynthConfig(**{**config.__dict__, "seed": 1})).root)
    assert other.keys() == first.keys()
    assert other["scan_rotated/images/alb_id/00.jpg"] != first["scan_rotated/images/alb_id/00.jpg"]
    assert other["clips_video/video/alb_id/00.mp4"] != first["clips_video/video/alb_id/00.mp4"]


def test_synth_midv2020_refuses_to_overwrite(tmp_path):
    config = SynthConfig(catalog="midv2020", docs=1, clips="templates,clips/10", images=1)
    synthesize(tmp_path, config)
    before = _digests(tmp_path)
    stamps = {name: (tmp_path / name).stat().st_mtime_ns for name in before}
    with pytest.raises(SynthError, match=r"holds a dataset already: 10 of the files to write exist"):
        synthesize(tmp_path, config)
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in before} == stamps, "nothing rewritten"
    # Other clips beside the dataset are fine; an existing one of them is not.
    synthesize(tmp_path, SynthConfig(catalog="midv2020", docs=1, clips="clips/11"))
    with pytest.raises(SynthError, match=r"8 of the files to write exist \(clips_video/video/alb_id/11.mp4 first\)"):
        synthesize(tmp_path, SynthConfig(catalog="midv2020", docs=1, clips="clips/1[12]"))
    assert not (tmp_path / "clips_video" / "video" / "alb_id" / "12.mp4").exists()
    synthesize(tmp_path, config, overwrite=True)
    assert {k: v for k, v in _digests(tmp_path).items() if k in before} == before
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".*"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"images": 0}, "images must be a whole number from 1 to 100, got 0"),
        ({"images": 101}, "images must be a whole number from 1 to 100"),
        ({"seconds": 0}, "seconds must be more than 0 and at most 600"),
        ({"seconds": 601}, "seconds must be more than 0 and at most 600"),
        ({"docs": 11}, "docs must be 1..10 (MIDV-2020 has 10 documents)"),
        ({"docs": "deu_*"}, "docs pattern 'deu_*' matches no MIDV-2020 document"),
        ({"clips": "clips/1"}, "clips pattern 'clips/1' matches no MIDV-2020 clip code (codes: templates,"),
        ({"clips": "photo/00-04"}, "matches no MIDV-2020 clip code"),
        ({"trajectories": "any.json"}, "MIDV-2020 clips cannot follow them"),
    ],
)
def test_synth_midv2020_rejects_bad_options(tmp_path, changes, message):
    with pytest.raises(SynthError) as caught:
        synthesize(tmp_path / "out", SynthConfig(**{"catalog": "midv2020", **changes}))
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists(), "options are checked before anything is written"


def test_synth_midv2020_cli(tmp_path):
    out = str(tmp_path / "ds")
    args = ["synth", out, "--catalog", "midv2020", "--docs", "1", "--clips", "templates,clips/00", "--images", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "wrote 1 document, 2 clips, 7 annotated frames to" in result.output
    assert "alb_id/templates" in result.output and "alb_id/clips/00" in result.output  # progress, on stderr
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "holds a dataset already" in again.output and "--force" in again.output
    assert CliRunner().invoke(cli, [*args, "--force"]).exit_code == 0
    bad = CliRunner().invoke(cli, [*args, "--images", "0"])
    assert bad.exit_code == 1 and "images must be a whole number from 1 to 100" in bad.output


def test_synth_midv2020_leaves_midv500_as_it_was(tmp_path):
    """MIDV-500's defaults are the ones it always had: every clip code, 3.2 s; `images` does not touch it."""
    default = synthesize(tmp_path / "default", SynthConfig(docs=1, clips="TS"))
    explicit = synthesize(tmp_path / "explicit", SynthConfig(docs=1, clips="TS", seconds=3.2, images=7))
    assert _digests(default.root) == _digests(explicit.root)
    with av.open(str(default.root / "01_alb_id" / "videos" / "TS01.mp4")) as container:
        assert container.streams.video[0].frames == 96
    template = json.loads((default.root / "01_alb_id" / "ground_truth" / "01_alb_id.json").read_text())
    assert "photo" in template and "field01" in template and "face" not in template
    every = synthesize(tmp_path / "every", SynthConfig(docs=1, seconds=3.0))
    assert every.clips == 10
