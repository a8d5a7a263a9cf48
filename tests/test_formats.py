"""Dataset formats: the registry, detection, and a plugin format found through an entry point, end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midvbatch.dataset import MIDV2019, discover, get_format
from midvbatch.dataset.formats import detect_format, format_names
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.errors import DatasetError

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "quadlist_format.py"


def test_formats_builtin_names_and_lookup():
    assert format_names()[:4] == ["midv500", "midv2019", "midv2020", "folder"]
    assert get_format("MIDV-2019").catalog is MIDV2019
    assert get_format("midv_500").name == "midv500"
    with pytest.raises(
        DatasetError, match=r"unknown dataset format 'midv3000' \(known: midv500, midv2019, midv2020, folder"
    ):
        get_format("midv3000")


def test_formats_detected_from_the_folder(dataset, tmp_path):
    assert detect_format(dataset).name == "midv500"
    assert discover(dataset).format == "midv500"
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(next(dataset.rglob("TA01.*")), plain / "walk.mov")
    found = discover(plain)
    assert (found.format, [c.id for c in found.clips], found.clips[0].format) == ("folder", ["walk.mov"], "folder")
    # named: the folder format reads a MIDV tree as videos, every clip without ground truth
    as_videos = discover(dataset, "folder")
    assert len(as_videos.clips) == 20 and not any(c.ground_truth for c in as_videos.clips)
    with pytest.raises(DatasetError, match="holds no MIDV-2019 document folder"):
        discover(plain, "midv2019")


def test_formats_the_docs_show_the_example_as_it_is():
    docs = (ROOT / "docs" / "dataset.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.S)
    assert EXAMPLE.read_text() in blocks, "docs/dataset.md must show examples/quadlist_format.py unchanged"


def _quadlist_dataset(source: Path, dest: Path, clips=("TA01", "TS01", "KA02")) -> Path:
    """The synthetic MIDV-500 clips rewritten in the example's layout: NAME.mp4 + NAME.quads.json."""
    for clip_id in clips:
        video = next(p for p in source.rglob(f"{clip_id}.*") if p.parent.name == "videos")
        folder = dest / f"cam{clip_id[2:]}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, folder / f"{clip_id.lower()}.mp4")
        quads = {}
        for truth in sorted(source.rglob(f"{clip_id}_*.json")):
            quads[str(int(truth.stem.split("_")[1]))] = json.loads(truth.read_text())["quad"]
        (folder / f"{clip_id.lower()}.quads.json").write_text(json.dumps({"fps": 10, "frames": 30, "quads": quads}))
    return dest


def _plugin_env(tmp_path: Path, target: str = "quadlist_format:FORMAT", module: str | None = None) -> dict:
    """An installed plugin, as pip leaves one: a module and a dist-info with the entry point, on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if module is None:
        shutil.copy(EXAMPLE, site / "quadlist_format.py")
    else:
        (site / "quadlist_format.py").write_text(module)
    info = site / "quadlist_format-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: quadlist-format\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[midvbatch.datasets]\nquadlist = {target}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def _cli(env, *args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "midvbatch.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_formats_plugin_through_its_entry_point_runs_end_to_end(dataset, tmp_path):
    data = _quadlist_dataset(dataset, tmp_path / "data")
    env = _plugin_env(tmp_path)
    listed = _cli(env, "ls", data, "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert found["format"] == "quadlist"
    assert [(c["id"], c["ground_truth"]) for c in found["clips"]] == [
        ("cam01/ta01", 30),
        ("cam01/ts01", 30),
        ("cam02/ka02", 30),
    ]
    assert _cli(env, "validate", data).returncode == 0
    out = tmp_path / "run"
    ran = _cli(env, "run", data, "--out", out, "--pipeline", "ground-truth", "--workers", "2")
    assert ran.returncode == 0, ran.stderr
    exported = _cli(env, "export", out, "--out", tmp_path / "frames.jsonl")
    assert exported.returncode == 0, exported.stderr
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert len(frames) == 90
    assert all(f["scores"]["iou"] == pytest.approx(1.0) for f in frames), frames[0]
    report = _cli(env, "report", out, "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["run"]["format"] == "quadlist"
    overall = json.loads(report.stdout)["overall"]
    assert (overall["frames"], overall["accuracy"], overall["missing"]) == (90, 1.0, 0)


def test_formats_a_broken_plugin_is_one_line_and_spares_the_others(dataset, tmp_path):
    env = _plugin_env(tmp_path, module="raise RuntimeError('half installed')\n")
    listed = _cli(env, "ls", dataset)
    assert listed.returncode == 0, listed.stderr  # MIDV-500 is still found
    assert "Traceback" not in listed.stderr and "half installed" in listed.stderr
    named = _cli(env, "ls", dataset, "--catalog", "quadlist")
    assert named.returncode == 1 and "Traceback" not in named.stderr
    assert (
        "dataset format 'quadlist' (quadlist_format:FORMAT) cannot be loaded: RuntimeError: half installed"
        in named.stderr
    )
    assert len(named.stderr.strip().splitlines()) == 1
    listing = _cli(env, "formats", "--json")
    assert listing.returncode == 0, listing.stderr
    broken = [f for f in json.loads(listing.stdout) if f["name"] == "quadlist"]
    assert broken == [
        {
            "name": "quadlist",
            "title": "",
            "summary": "",
            "source": "entry point quadlist_format:FORMAT",
            "fetchable": False,
            "error": "dataset format 'quadlist' (quadlist_format:FORMAT) cannot be "
            "loaded: RuntimeError: half installed",
        }
    ]


def test_formats_a_plugin_that_raises_in_discover_is_one_line(dataset, tmp_path):
    module = EXAMPLE.read_text().replace("clips = []\n", "clips = []\n        1 / 0\n", 1)
    data = _quadlist_dataset(dataset, tmp_path / "data", clips=("TA01",))
    env = _plugin_env(tmp_path, module=module)
    listed = _cli(env, "ls", data)
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert "dataset format quadlist failed to read it: ZeroDivisionError" in listed.stderr


def _named_tree(root: Path, codes: list[str]) -> Path:
    videos = root / "01_alb_id" / "videos"
    videos.mkdir(parents=True)
    for code in codes:
        (videos / f"{code}01.MOV").write_bytes(b"")
    return root


def test_formats_midv_catalog_chosen_by_the_clip_codes(tmp_path):
    assert detect_format(_named_tree(tmp_path / "a", ["DX", "LX"])).name == "midv2019"
    assert detect_format(_named_tree(tmp_path / "b", ["TA", "CS", "DX"])).name == "midv500"
    # document folders whose codes no catalog knows: still MIDV-500's layout
    unknown = discover(_named_tree(tmp_path / "c", ["QQ"]))
    assert (unknown.format, [c.id for c in unknown.clips], unknown.clips[0].condition) == ("midv500", ["QQ01"], None)


def test_formats_a_run_keeps_the_format_it_read_the_dataset_with(dataset, tmp_path):
    from conftest import midvbatch

    out = tmp_path / "run"
    first = midvbatch(
        "run", dataset, "--out", out, "--catalog", "folder", "--pipeline", "probe", "--limit", "2", "--workers", "0"
    )
    assert first.returncode == 0, first.stderr
    again = midvbatch("run", dataset, "--out", out, "--pipeline", "probe", "--limit", "2", "--workers", "0")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "read as dataset format folder" in again.stderr and "now read as midv500" in again.stderr
    assert "give --catalog folder" in again.stderr
    status = midvbatch("report", out, "--format", "json")
    assert json.loads(status.stdout)["run"]["format"] == "folder"


def test_midv2019_unzipped_without_its_document_folder_is_found(tmp_path):
    """MIDV-2019's zips hold images/, ground_truth/, videos/ at their root: a user who unzips one
    into the dataset root, or into a folder of another name, still has the document (named by
    its template files)."""
    synthesize(tmp_path / "made", SynthConfig(docs=1, clips="D*", catalog="midv2019", seed=5))
    for where in (tmp_path / "root", tmp_path / "other" / "alb"):
        shutil.copytree(tmp_path / "made" / "01_alb_id", where)
        top = tmp_path / "root" if where.name == "root" else tmp_path / "other"
        dataset = discover(top)
        assert dataset.format == "midv2019"
        assert [c.id for c in dataset.clips] == ["DX01", "DG01"]
        assert {d.name for d in dataset.documents} == {"01_alb_id"}
        assert all(len(c.ground_truth) == 30 for c in dataset.clips)


def test_formats_a_plugin_that_calls_sys_exit_at_import_is_one_line(dataset, tmp_path):
    """An argparse script at top level exits 2 with its usage on import: one line, every built-in still works."""
    module = (
        "import argparse\nparser = argparse.ArgumentParser(prog='quadtool')\n"
        "parser.add_argument('--must', required=True)\nparser.parse_args()\nFORMAT = None\n"
    )
    env = _plugin_env(tmp_path, module=module)
    info = tmp_path / "site" / "quadlist_format-1.0.dist-info"
    (info / "entry_points.txt").write_text(
        "[midvbatch.datasets]\nquadlist = quadlist_format:FORMAT\n\n"
        "[midvbatch.processors]\nquadproc = quadlist_format:FORMAT\n"
    )
    why = "cannot be loaded: it called sys.exit(2) (it printed: quadtool: error: the following arguments are required"
    listed = _cli(env, "ls", dataset)
    assert listed.returncode == 0, listed.stderr
    assert "20 clips" in listed.stdout and "usage:" not in listed.stderr
    assert [line for line in listed.stderr.splitlines() if "quadlist" in line] == [listed.stderr.strip()]
    assert why in listed.stderr
    formats = _cli(env, "formats", "--json")
    assert formats.returncode == 0, formats.stderr
    by_name = {f["name"]: f for f in json.loads(formats.stdout)}
    assert by_name["midv500"]["error"] is None and why in by_name["quadlist"]["error"]
    processors = _cli(env, "processors", "--json")
    assert processors.returncode == 0, processors.stderr
    procs = {p["name"]: p for p in json.loads(processors.stdout)}
    assert procs["localize"]["error"] is None and why in procs["quadproc"]["error"]
    chosen = _cli(env, "run", dataset, "--out", tmp_path / "r1", "--processor", "quadproc")
    assert chosen.returncode == 1 and "Traceback" not in chosen.stderr and "usage:" not in chosen.stderr
    assert "processor 'quadproc' (quadlist_format:FORMAT) " + why in chosen.stderr
    assert not (tmp_path / "r1").exists()
    ran = _cli(
        env, "run", dataset, "--out", tmp_path / "r2", "--pipeline", "ground-truth", "--clips", "TA01", "--workers", "0"
    )
    assert ran.returncode == 0, ran.stderr
    assert "usage:" not in ran.stderr and "Traceback" not in ran.stderr
