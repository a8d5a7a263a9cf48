"""MIDV-2020: VIA annotations (the real files), discovery, validate, run, report, export, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import env
from test_fetch import ftp_server, http_server  # noqa: F401 - the servers, on this module's archives

from midvbatch.dataset import discover
from midvbatch.dataset.catalog import MIDV2020
from midvbatch.dataset.formats.midv2020.via import doc_quad, numbered, read_via
from midvbatch.errors import GroundTruthError

REAL = Path(__file__).resolve().parent / "data" / "midv2020-real"
REAL_FILES = sorted(REAL.glob("*/annotations/*.json"))


def cli(*args, check=None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "midvbatch", *map(str, args)], capture_output=True, text=True, env=env(), timeout=300
    )
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


def test_midv2020_real_annotations_parse_to_one_quad_per_scan():
    assert len(REAL_FILES) == 10
    for path in REAL_FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        images = read_via(path)
        assert len(images) == 100
        for key, entry in raw["_via_img_metadata"].items():
            assert key == f"{entry['filename']}{entry['size']}"
            assert images[entry["filename"]].size == entry["size"]
        by_number = numbered(images)
        assert sorted(by_number) == list(range(100))
        for image in by_number.values():
            quad = doc_quad(image, path)
            assert len(quad.points) == 4 and quad.area() > 100_000  # a document of a 300 dpi scan
            face = image.region("face")
            assert face is not None and face.shape == "rect"


def test_midv2020_catalog_tables_follow_the_readme():
    kind = MIDV2020.clip_kind
    assert (kind("clips/05").condition.name, kind("clips/05").device.name) == ("low light", "Samsung Galaxy S10")
    assert (kind("clips/12").condition.name, kind("clips/12").device.name) == ("low light", "Apple iPhone XR")
    assert kind("clips/83").condition.name == "projective" and kind("clips/83").device.name == "Apple iPhone XR"
    assert kind("clips/97").device.name == "Apple iPhone XR" and kind("clips/92").device.name == "Samsung Galaxy S10"
    # photos use another table, listed iPhone XR first
    assert (kind("photo/00-09").condition.name, kind("photo/00-09").device.name) == ("projective", "Apple iPhone XR")
    assert (kind("photo/80-89").condition.name, kind("photo/80-89").device.name) == ("low light", "Samsung Galaxy S10")
    assert MIDV2020.photo_block(57) == "photo/55-59"
    assert kind("scan_rotated").condition.name == "rotated scan" and kind("clips/1x") is None


def _jpeg(path: Path, width: int, height: int, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """Both scan collections of two types, real annotation files, three blank pictures each at scan size."""
    root = tmp_path_factory.mktemp("m2020") / "midv2020"
    for collection, size in (("scan_upright", (2480, 1400)), ("scan_rotated", (2600, 3700))):
        for name in ("alb_id", "est_id"):
            target = root / collection / "annotations" / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REAL / collection / "annotations" / f"{name}.json", target)
            for number in (0, 1, 2):
                _jpeg(root / collection / "images" / name / f"{number:02d}.jpg", *size)
    return root


def test_midv2020_scans_list_validate_run_export_report(scans, tmp_path):
    listing = json.loads(cli("ls", scans, "--json", check=0).stdout)
    assert listing["format"] == "midv2020"
    ids = {c["id"]: c for c in listing["clips"]}
    assert set(ids) == {f"{c}/{n}" for c in ("scan_upright", "scan_rotated") for n in ("alb_id", "est_id")}
    assert ids["scan_rotated/est_id"]["condition"] == "rotated scan" and ids["scan_rotated/est_id"]["images"] == 3
    assert "(3 pictures)" in cli("ls", scans, check=0).stdout
    assert {m["where"] for m in listing["missing"] if m["kind"] == "collection"} == {
        "templates",
        "photo",
        "clips",
        "clips_video",
    }

    checked = cli("validate", scans)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 errors" in checked.stdout + checked.stderr

    out = tmp_path / "run"
    cli("run", scans, "--out", out, "--pipeline", "ground-truth", "--workers", 2, check=0)
    frames = [json.loads(line) for line in cli("export", out, check=0).stdout.splitlines()]
    assert len(frames) == 12
    assert {f["clip"] for f in frames} == set(ids)
    assert all(abs(f["scores"]["iou_gt"] - 1.0) < 1e-9 for f in frames)
    report = json.loads(cli("report", out, "--format", "json", check=0).stdout)
    assert report["run"]["format"] == "midv2020"
    assert set(report["by_collection"]) == {"scan_rotated", "scan_upright"}
    text = cli("report", out, check=0).stdout
    assert "### By collection" in text and "rotated scan" in text and "upright scan" in text


def _via(images: dict[str, list | None]) -> dict:
    """A VIA 2.0 project: file name -> doc_quad corners (None: no regions)."""
    meta = {}
    for name, corners in images.items():
        regions = []
        if corners is not None:
            regions.append(
                {
                    "shape_attributes": {
                        "name": "polygon",
                        "all_points_x": [c[0] for c in corners],
                        "all_points_y": [c[1] for c in corners],
                    },
                    "region_attributes": {"field_name": "doc_quad"},
                }
            )
        meta[f"{name}100"] = {"filename": name, "size": 100, "regions": regions, "file_attributes": {}}
    return {
        "_via_settings": {},
        "_via_img_metadata": meta,
        "_via_attributes": {},
        "_via_data_format_version": "2.0.10",
        "_via_image_id_list": list(meta),
    }


QUAD = [[10, 10], [150, 12], [148, 90], [12, 88]]


def _photo(root: Path, name: str, annotation, numbers=(0, 1)) -> None:
    for n in numbers:
        _jpeg(root / "photo" / "images" / name / f"{n:02d}.jpg", 160, 100)
    path = root / "photo" / "annotations" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(annotation if isinstance(annotation, str) else json.dumps(annotation), encoding="utf-8")


def test_midv2020_bad_annotations_are_one_line_each_and_the_run_goes_on(tmp_path):
    root = tmp_path / "ds"
    _photo(root, "alb_id", _via({"00.jpg": QUAD, "01.jpg": QUAD}))  # good
    _photo(root, "aze_passport", "{not json")
    _photo(root, "esp_id", {"images": {}})  # no _via_img_metadata
    _photo(root, "est_id", _via({"00.jpg": QUAD[:3], "01.jpg": QUAD + [[0, 0]]}))  # 3 and 5 points
    _photo(root, "fin_id", _via({"00.jpg": QUAD}))  # 01.jpg has no annotation
    _photo(root, "grc_passport", _via({"00.jpg": QUAD, "01.jpg": QUAD, "07.jpg": QUAD}))  # 07.jpg is absent
    # a clip whose frames are off the 6-frame grid
    for n in (1, 4):
        _jpeg(root / "clips" / "images" / "svk_id" / "00" / f"{n:06d}.jpg", 160, 100)
    clip_note = root / "clips" / "annotations" / "svk_id" / "00.json"
    clip_note.parent.mkdir(parents=True)
    clip_note.write_text(json.dumps(_via({"000001.jpg": QUAD, "000004.jpg": QUAD})), encoding="utf-8")

    checked = cli("validate", root)
    assert checked.returncode == 1
    text = checked.stdout + checked.stderr
    assert "Traceback" not in text
    lines = text.splitlines()

    def line_for(fragment: str) -> str:
        hits = [line for line in lines if fragment in line]
        assert hits, (fragment, text)
        return hits[0]

    assert "not valid JSON" in line_for("photo/annotations/aze_passport.json") or "JSON" in line_for(
        "aze_passport.json"
    )
    assert "_via_img_metadata" in line_for("esp_id.json")
    assert "3 points" in text and "5 points" in text and "est_id.json" in line_for("3 points")
    assert "no annotation in" in line_for("photo/images/fin_id/01.jpg")
    assert "07.jpg" in line_for("grc_passport.json: annotates")
    assert "off the 6-frame grid" in line_for("svk_id/00/000004.jpg") or "off the 6-frame grid" in text

    out = tmp_path / "run"
    run = cli("run", root, "--out", out, "--pipeline", "ground-truth", "--workers", 2)
    assert run.returncode == 1, run.stderr  # some clips dead, the others done
    assert "Traceback" not in run.stderr
    done = {json.loads(line)["clip"] for line in cli("export", out, check=0).stdout.splitlines()}
    assert "photo/alb_id/00-09" in done and "photo/grc_passport/00-09" in done
    assert "photo/aze_passport/00-09" not in done and "photo/esp_id/00-09" not in done


def test_midv2020_via_errors_name_the_file(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(
        json.dumps(
            {
                "_via_img_metadata": {
                    "x": {
                        "filename": "00.jpg",
                        "regions": [
                            {
                                "shape_attributes": {"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1]},
                                "region_attributes": {"field_name": "doc_quad"},
                            }
                        ],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(GroundTruthError, match="all_points_x and all_points_y") as info:
        read_via(bad)
    assert str(bad) in str(info.value)
    bad.write_text(
        json.dumps(
            {
                "_via_img_metadata": {
                    "x": {
                        "filename": "00.jpg",
                        "regions": [
                            {
                                "shape_attributes": {"name": "rect", "x": 1, "y": "a", "width": 3, "height": 4},
                                "region_attributes": {"field_name": "face"},
                            }
                        ],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(GroundTruthError, match="not a finite number"):
        read_via(bad)
    # an integer past the float range, in a polygon and in a rectangle: the same one line, not an OverflowError
    for shape in (
        {"name": "polygon", "all_points_x": [10**400, 2, 2, 1], "all_points_y": [1, 1, 2, 2]},
        {"name": "rect", "x": 1, "y": 2, "width": -(10**400), "height": 4},
    ):
        region = {"shape_attributes": shape, "region_attributes": {"field_name": "doc_quad"}}
        bad.write_text(json.dumps({"_via_img_metadata": {"x": {"filename": "00.jpg", "regions": [region]}}}))
        with pytest.raises(GroundTruthError, match="not a finite number"):
            read_via(bad)


def test_midv2020_discovers_a_single_collection_folder(scans):
    dataset = discover(scans / "scan_upright")
    assert dataset.format == "midv2020"
    assert {c.id for c in dataset.clips} == {"scan_upright/alb_id", "scan_upright/est_id"}


# --- fetch: tar archives per collection ------------------------------------------------


def _tar(path: Path, folder: Path, prefix: str, extra=()) -> None:
    import tarfile

    with tarfile.open(path, "w") as tf:
        for file in sorted(folder.rglob("*")):
            tf.add(file, arcname=prefix + str(file.relative_to(folder)), recursive=False)
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def test_midv2020_fetch_takes_the_chosen_collections_from_tar_archives(http_server, tmp_path):
    from midvbatch.dataset.fetch import fetch

    url = http_server.url  # scan_upright.tar with its top folder, scan_rotated.tar without (see archives)
    dest = tmp_path / "dest"
    report = fetch(dest, catalog="midv2020", docs=["scan_*"], mirror=url)
    assert {o.document: (o.status, o.reason) for o in report.documents} == {
        "scan_upright": ("fetched", None),
        "scan_rotated": ("fetched", None),
    }
    assert all(o.verified for o in report.documents)
    assert (dest / "scan_rotated" / "annotations" / "alb_id.json").is_file()
    assert (dest / "scan_upright" / "images" / "est_id" / "02.jpg").is_file()
    dataset = discover(dest)
    assert dataset.format == "midv2020" and len(dataset.clips) == 4
    again = cli(
        "fetch",
        dest,
        "--catalog",
        "midv2020",
        "--collections",
        "scan_upright,scan_rotated",
        "--mirror",
        url,
        "--json",
        check=0,
    )  # nothing left to do
    assert {o["status"] for o in json.loads(again.stdout)["documents"]} == {"present"}


def _member(name: str, kind: bytes = b"0", link: str = "") -> tuple:
    import tarfile

    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    data = b"x" * 10 if kind == tarfile.REGTYPE else None
    info.size = len(data) if data else 0
    return info, data


@pytest.mark.parametrize(
    "member, why",
    [
        (("/etc/evil", b"0"), "absolute"),
        (("images/../../evil", b"0"), ".."),
        (("images/link", b"2", "/etc/passwd"), "symbolic link"),
        (("images/hard", b"1", "images/x"), "hard link"),
        (("images/dev", b"3"), "a device"),
        (("images/fifo", b"6"), "a FIFO"),
    ],
)
def test_midv2020_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path, member, why):
    from midvbatch.dataset.archive import ArchiveError, extract_tar

    folder = tmp_path / "c"
    _jpeg(folder / "images" / "alb_id" / "00.jpg", 16, 16)
    archive = tmp_path / "photo.tar"
    _tar(archive, folder, "", extra=[_member(*member)])
    out = tmp_path / "out"
    with pytest.raises(ArchiveError) as info:
        extract_tar(archive, out)
    assert why in str(info.value) and str(archive) in str(info.value)
    assert not out.exists()


def test_midv2020_tar_bomb_and_corrupt_tar_are_refused(tmp_path):
    from midvbatch.dataset.archive import ArchiveError, ExtractLimits, extract_tar

    folder = tmp_path / "c"
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "big.json").write_bytes(b"0" * 200_000)
    archive = tmp_path / "photo.tar"
    _tar(archive, folder, "")
    with pytest.raises(ArchiveError, match="tar bomb"):
        extract_tar(archive, tmp_path / "out", ExtractLimits(total_factor=0.5, total_floor=1000))
    assert not (tmp_path / "out").exists()
    archive.write_bytes(archive.read_bytes()[:5000])  # truncated in the middle of the file's data
    with pytest.raises(ArchiveError, match="tar archive") as info:
        extract_tar(archive, tmp_path / "out2")
    assert str(archive) in str(info.value)


# --- a synthetic MIDV-2020 end to end: clips from the videos, or from the JPEGs alone --------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("s2020") / "ds"
    synthesize(root, SynthConfig(catalog="midv2020", seed=4))
    return root


def test_midv2020_clips_run_from_videos_or_from_jpegs_alone(synthetic, tmp_path):
    deep = cli("validate", synthetic, "--deep")
    assert deep.returncode == 0 and "0 errors" in deep.stdout + deep.stderr, deep.stdout + deep.stderr
    alone = tmp_path / "alone"
    shutil.copytree(synthetic, alone, ignore=shutil.ignore_patterns("clips_video"))
    results = {}
    # localize on every kind of MIDV-2020 clip; from the JPEGs alone, the same clips and frames (the frames
    # pipeline: the pictures are the decoded ones, as the comparison below shows)
    for name, root, processor in (("video", synthetic, "localize"), ("jpeg", alone, "frames")):
        out = tmp_path / f"run-{name}"
        cli("run", root, "--out", out, "--processor", processor, "--workers", 2, check=0)
        rows = [json.loads(line) for line in cli("export", out, check=0).stdout.splitlines()]
        results[name] = {(r["clip"], r["frame"]): r for r in rows}
    assert results["video"].keys() == results["jpeg"].keys()
    clip_frames = sorted(f for (c, f) in results["video"] if c == "clips/alb_id/00")
    assert clip_frames == [1, 7, 13, 19, 25, 31]
    assert {c.split("/")[0] for c, _ in results["video"]} == {
        "templates",
        "scan_upright",
        "scan_rotated",
        "photo",
        "clips",
    }
    from midvbatch import open_dataset

    decoded = list(open_dataset(synthetic).clip_frames("clips/alb_id/01"))
    read = list(open_dataset(alone).clip_frames("clips/alb_id/01"))
    assert [f.number for f in decoded] == [f.number for f in read] == [1, 7, 13, 19, 25, 31]
    for a, b in zip(decoded, read, strict=True):  # the same frame, decoded or read from its JPEG
        mse = float(np.mean((a.image.astype(float) - b.image.astype(float)) ** 2))
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 30, a.number
    listing = json.loads(cli("ls", alone, "--json", check=0).stdout)
    assert {"kind": "collection", "where": "clips_video", "detail": "no clips_video/ collection"} in listing["missing"]


def test_midv2020_python_api_pairs_frames_with_truth(synthetic):
    from midvbatch import open_dataset

    data = open_dataset(synthetic)
    frames = list(data.clip_frames("clips/aze_passport/01"))
    assert [f.number for f in frames] == [1, 7, 13, 19, 25, 31]
    assert all(f.truth is not None and f.image.ndim == 3 for f in frames)
    pictures = list(data.clip_frames("scan_rotated/alb_id"))
    assert [f.number for f in pictures] == [0, 1] and pictures[0].truth.size_from == "picture"


def test_midv2020_fetch_finds_md5_higher_up_and_a_renamed_archive(http_server, scans, tmp_path):
    """md5.txt at the server's root rather than beside the archives, and an archive listed there
    under another name (SCAN_ROTATED.tar.gz for scan_rotated.tar): fetch finds and uses both."""
    import tarfile

    from midvbatch.dataset.fetch import fetch

    served = http_server.root / "data" / "midv2020"
    served.mkdir(parents=True)
    with tarfile.open(served / "SCAN_ROTATED.tar.gz", "w:gz") as tf:
        tf.add(scans / "scan_rotated", arcname="scan_rotated")
    digest = hashlib.md5((served / "SCAN_ROTATED.tar.gz").read_bytes()).hexdigest()
    (http_server.root / "md5.txt").write_text(f"{digest}  ./data/midv2020/SCAN_ROTATED.tar.gz\n")
    url = http_server.url.removesuffix("/archives") + "/data/midv2020"
    report = fetch(tmp_path / "dest", catalog="midv2020", docs=["scan_rotated"], mirror=url)
    (outcome,) = report.documents
    assert (outcome.status, outcome.verified, outcome.reason) == ("fetched", True, None)
    assert outcome.source.endswith("/data/midv2020/SCAN_ROTATED.tar.gz")
    assert not report.warnings
    assert (tmp_path / "dest" / "scan_rotated" / "annotations" / "est_id.json").is_file()


def test_midv2020_real_and_synthetic_annotations_parse_to_the_same_structures(synthetic):
    def shapes(path: Path) -> set[tuple[str, str]]:
        return {(r.field_name, r.shape) for image in read_via(path).values() for r in image.regions}

    for collection in ("scan_upright", "scan_rotated"):
        real = shapes(REAL / collection / "annotations" / "alb_id.json")
        made = shapes(synthetic / collection / "annotations" / "alb_id.json")
        assert real == made == {("face", "rect"), ("doc_quad", "polygon")}
        raw_real = json.loads((REAL / collection / "annotations" / "alb_id.json").read_text(encoding="utf-8"))
        raw_made = json.loads((synthetic / collection / "annotations" / "alb_id.json").read_text(encoding="utf-8"))
        assert list(raw_real) == list(raw_made)


@pytest.fixture
def archives(scans, tmp_path) -> Path:
    """scan_upright.tar and scan_rotated.tar with their md5.txt, for test_fetch's servers."""
    folder = tmp_path / "archives"
    folder.mkdir()
    _tar(folder / "scan_upright.tar", scans / "scan_upright", "scan_upright/")
    _tar(folder / "scan_rotated.tar", scans / "scan_rotated", "")
    (folder / "md5.txt").write_text(
        "".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(folder.glob("*.tar")))
    )
    return folder


def test_midv2020_fetch_over_ftp(ftp_server, tmp_path):
    from midvbatch.dataset.fetch import fetch

    report = fetch(tmp_path / "dest", catalog="midv2020", docs=["scan_*"], mirror=ftp_server.url)
    assert {(o.document, o.status, o.verified) for o in report.documents} == {
        ("scan_upright", "fetched", True),
        ("scan_rotated", "fetched", True),
    }
    assert len(discover(tmp_path / "dest").clips) == 4


def test_midv2020_fetch_resumes_a_cut_tar_download(http_server, archives, tmp_path):
    from midvbatch.dataset.fetch import fetch

    size = (archives / "scan_upright.tar").stat().st_size
    http_server.cut_after = {"/archives/scan_upright.tar": size // 2}
    report = fetch(
        tmp_path / "dest", catalog="midv2020", docs=["scan_upright"], mirror=http_server.url, retry_delay=0.01
    )
    (outcome,) = report.documents
    assert (outcome.status, outcome.verified) == ("fetched", True), outcome.reason
    assert outcome.bytes_resumed == size // 2
    assert ("/archives/scan_upright.tar", f"bytes={size // 2}-") in http_server.log


def test_midv2020_frame_ids_keep_the_datasets_frame_names(synthetic, tmp_path):
    out = tmp_path / "ids"
    cli(
        "run",
        synthetic,
        "--out",
        out,
        "--processor",
        "processors:MeanColour",
        "--clips",
        "clips/00",
        "--clips",
        "scan_upright",
        "--workers",
        1,
        check=0,
    )
    ids = {json.loads(line)["result"]["id"] for line in cli("export", out, check=0).stdout.splitlines()}
    assert "clips/alb_id/00_000007" in ids and "scan_upright/alb_id_01" in ids


def test_midv2020_templates_read_again_when_their_file_changes(synthetic, tmp_path):
    # a worker keeps a type's template file parsed across its clips; an edited file is read afresh
    from midvbatch.dataset.formats import get_format

    root = tmp_path / "ds"
    shutil.copytree(synthetic / "templates", root / "templates")
    path = root / "templates" / "annotations" / "alb_id.json"
    reader = get_format("midv2020")
    first = reader.read_templates(f"{path}#1", [1, 7])
    name, field = next((n, f) for n, f in first[1].fields.items() if f.value)
    assert first[1] is first[7] and reader.read_templates(f"{path}#1", [1])[1].fields[name].value == field.value
    data = json.loads(path.read_text())
    for entry in data["_via_img_metadata"].values():
        for region in entry["regions"]:
            if region["region_attributes"].get("field_name") == name:
                region["region_attributes"]["value"] = "EDITED"
    path.write_text(json.dumps(data))
    assert reader.read_templates(f"{path}#1", [1])[1].fields[name].value == "EDITED"
    path.unlink()
    with pytest.raises(GroundTruthError):
        reader.read_templates(f"{path}#1", [1])
