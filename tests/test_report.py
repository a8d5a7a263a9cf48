"""Scoring end to end and the report: ground truth scores perfectly, localize scores well, HTML renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ledger_rows, midvbatch

from midvbatch.config import RunConfig
from midvbatch.engine.run import run
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.report import build_report, write_report

CHECKER = (
    "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push("
    "String(e.message||(e.target&&e.target.src)||'error'))},true);window.addEventListener('load',function(){"
    "var b=[];for(var i=0;i<document.images.length;i++){var im=document.images[i];"
    "if(!im.complete||im.naturalWidth===0)b.push(im.alt)}document.body.setAttribute('data-check',"
    "JSON.stringify({images:document.images.length,broken:b,errors:window.__errors}))});</script>"
)


@pytest.fixture(scope="module")
def gt_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gt") / "run"
    result = midvbatch("run", dataset, "--out", out, "--pipeline", "ground-truth")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def localize_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loc") / "run"
    result = midvbatch("run", dataset, "--out", out)  # localize is the default pipeline
    assert result.returncode == 0, result.stderr
    return out


def test_report_ground_truth_pipeline_is_perfect_in_every_table(gt_run):
    data = json.loads(midvbatch("report", gt_run, "--format", "json").stdout)
    assert data["overall"]["accuracy"] == 1.0 and data["overall"]["frames"] == 600
    for grouping in ("by_condition", "by_device", "by_document", "by_clip", "by_subset"):
        for key, agg in data[grouping].items():
            if agg["frames"]:
                assert agg["accuracy"] == 1.0 and agg["accuracy_min_d"] == 1.0, (grouping, key)
    assert set(data["by_condition"]) == {"T (table)", "K (keyboard)", "H (hand)", "P (partial)", "C (clutter)"}
    assert data["by_subset"]["four_vertices_in_frame"]["frames"] < 600  # P clips leave the frame
    text = data["text"]  # it returns the text fields too (tests/test_text_report.py has the details)
    assert text["frames"] == 600 and text["overall"]["accuracy"] == 1.0 and text["overall"]["mean_ngld"] == 0.0
    assert text["curves"]["clips"] == 20 and set(text["curves"]["overall"]["majority"]) == {1.0}
    record = json.loads(midvbatch("export", gt_run).stdout.splitlines()[0])
    assert record["scores"]["iou_gt"] == pytest.approx(1.0) and record["scores"]["correct"] is True
    assert record["scores"]["min_d"] == pytest.approx(0.0, abs=1e-9)


def test_report_localize_is_accurate_on_clean_conditions(localize_run):
    report = build_report(localize_run)
    conditions = report.groups["condition"]
    assert conditions["T (table)"]["accuracy"] >= 0.8
    assert report.overall["frames"] == 600
    assert report.speed["frames_per_second"] > 0 and report.speed["latency_p95"] >= report.speed["latency_p50"]
    assert set(report.speed["stage_seconds_per_frame"]) >= {"decode", "process_frame", "score"}
    text = midvbatch("report", localize_run).stdout
    assert text.startswith(f"# midvbatch report: {localize_run}")
    assert "### By condition" in text and "### Worst clips" in text


def test_report_csv_has_every_grouping(localize_run):
    lines = midvbatch("report", localize_run, "--format", "csv").stdout.splitlines()
    assert lines[0].startswith("grouping,group,frames,accuracy")
    groupings = {line.split(",")[0] for line in lines[1:]}
    assert groupings == {"overall", "condition", "device", "document", "clip", "subset"}


def test_report_on_an_interrupted_run_says_so(dataset, tmp_path):
    out = tmp_path / "run"
    run(
        RunConfig(dataset=str(dataset), out=str(out), clips=["TA01"], pipeline="ground-truth", workers=0),
        install_signals=False,
    )
    # widen the selection without running: pending clips
    from midvbatch.engine.ledger import Ledger, NewTask

    ledger = Ledger(out)
    ledger.add_tasks([NewTask("TS01", "01_alb_id", "TS", None, 30, 0, 0.0)])
    ledger.close()
    text = write_report(out, "md")
    assert "The run was interrupted" in text and "1 of 2 clips done" in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(browser: str, tmp_path: Path, *args: str) -> str:
    """Run headless Chromium on its own profile in `tmp_path`; return what it printed."""
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout


def _checked(tmp_path: Path, text: str, checker: str) -> dict:
    """Load the page `text` with the script `checker` in its head in headless Chromium (the test is skipped
    without it); return what the checker wrote into the DOM."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium when it can)")
    page = tmp_path / "checked.html"
    page.write_text(text.replace("<head>", "<head>" + checker, 1))
    dom = _headless(browser, tmp_path, "--virtual-time-budget=10000", "--dump-dom", page.as_uri())
    return json.loads(dom.split('data-check="', 1)[1].split('"', 1)[0].replace("&quot;", '"'))


def test_report_html_is_self_contained_and_renders_in_chromium(localize_run, tmp_path):
    page = tmp_path / "report.html"
    result = midvbatch("report", localize_run, "--format", "html", "--out", page)
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script src" not in text  # (the drill-down's own)
    plots = sorted((tmp_path / "report-plots").glob("*.png"))
    assert [p.stem for p in plots] == [
        "accuracy_by_condition",
        "accuracy_by_document",
        "iou_distribution",
        "latency_distribution",
    ]
    for plot in plots:
        image = cv2.imread(str(plot))
        assert image is not None and image.shape[0] > 100 and float(np.std(image)) > 5, plot  # not blank
    check = _checked(tmp_path, text, CHECKER)
    assert check["broken"] == [] and check["errors"] == []
    assert check["images"] >= 4 + 3  # the plots and the worst clips' thumbnails


def test_report_scores_the_real_frame(real_data, tmp_path):
    """The real 1080x1920 frame of 43_tur_id, as a one-frame video, localized and scored."""
    from conftest import write_video

    frame = cv2.imread(str(real_data / "43_tur_id" / "images" / "CA" / "CA43_01.tif"))
    doc = tmp_path / "data" / "43_tur_id"
    (doc / "videos").mkdir(parents=True)
    (doc / "ground_truth" / "CA").mkdir(parents=True)
    shutil.copy(
        real_data / "43_tur_id" / "ground_truth" / "CA" / "CA43_01.json", doc / "ground_truth" / "CA" / "CA43_01.json"
    )
    write_video(doc / "videos" / "CA43.mp4", frames=95, rate=30, width=1080, height=1920, draw=lambda i, w, h: frame)
    out = tmp_path / "run"
    result = midvbatch("run", tmp_path / "data", "--out", out, "--workers", 1)
    assert result.returncode == 0, result.stderr
    rows = ledger_rows(out, "SELECT scores FROM frames WHERE frame = 1")
    scores = json.loads(rows[0][0])
    assert 0.0 <= scores["iou_gt"] <= 1.0 and scores["iou"] > 0.8, scores


def test_report_coco_bbox_matches_the_midv500_package(real_data):
    from midvbatch.results.exports import _bbox

    coco = json.loads((real_data / "midv500_coco.json").read_text())
    for a in coco["annotations"]:
        seg = a["segmentation"][0]
        points = list(zip(seg[0::2], seg[1::2]))
        assert _bbox(points, 1080, 1920) == a["bbox"], a
        assert a["area"] == a["bbox"][2] * a["bbox"][3]


def test_report_exports_coco_and_smartengines(gt_run, tmp_path):
    coco = json.loads(midvbatch("export", gt_run, "--format", "coco").stdout)
    assert len(coco["images"]) == len(coco["annotations"]) == 600
    assert coco["categories"] == [{"name": "id_card", "id": 1}]
    first = coco["images"][0]
    assert first["file_name"].endswith(".tif") and (first["width"], first["height"]) == (180, 320)
    predicted = json.loads(midvbatch("export", gt_run, "--format", "coco", "--predictions").stdout)
    assert [a["segmentation"] for a in predicted["annotations"]] == [a["segmentation"] for a in coco["annotations"]]
    records = json.loads(midvbatch("export", gt_run, "--format", "smartengines").stdout)
    assert len(records) == 600
    r = records[0]
    assert set(r) == {
        "origin_image_path",
        "size",
        "template_size",
        "ground_truth_quad",
        "system_result_quad_exists",
        "system_result_quad",
    }
    assert r["origin_image_path"].endswith(".tif") and r["size"] == [180, 320]
    assert r["template_size"] == [856, 540] and r["system_result_quad"] == r["ground_truth_quad"]
    lst = midvbatch("export", gt_run, "--format", "smartengines", "--subset", "four_vertices_in_frame").stdout.split()
    report = json.loads(midvbatch("report", gt_run, "--format", "json").stdout)
    assert len(lst) == report["by_subset"]["four_vertices_in_frame"]["frames"]
    assert all(len(x) == 7 and x[4] == "_" for x in lst)
    bad = midvbatch("export", gt_run, "--format", "smartengines", "--subset", "nonsense")
    assert bad.returncode == 1 and "unknown subset 'nonsense'" in bad.stderr


def test_report_speed_leaves_out_the_time_between_sessions():
    from midvbatch.report import busy_seconds

    assert busy_seconds([]) == 0.0
    assert busy_seconds([(0, 2), (1, 3), (100, 101)]) == 4.0  # 0..3 and 100..101: not the 97 s gap
    assert busy_seconds([(5, 6), (0, 10)]) == 10.0


DRILL_CHECKER = (
    "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push("
    "String(e.message||(e.target&&e.target.src)||'error'))},true);window.addEventListener('load',function(){"
    "var t=document.getElementById('drill-frames');var th=t.tHead.rows[0].cells[4];th.click();"
    "var first=t.tBodies[0].rows[0].cells[4].textContent;th.click();var last=t.tBodies[0].rows[0].cells[4].textContent;"
    "var f=document.getElementById('drill-field');f.value='field01';f.dispatchEvent(new Event('input'));"
    "var shown=0,rows=document.querySelectorAll('#drill-fields tbody tr');for(var i=0;i<rows.length;i++)"
    "if(rows[i].style.display!=='none')shown++;var b=[];for(var j=0;j<document.images.length;j++){"
    "var im=document.images[j];if(!im.complete||im.naturalWidth===0)b.push(im.alt)}"
    "document.body.setAttribute('data-check',JSON.stringify({first:first,last:last,shown:shown,rows:rows.length,"
    "images:document.images.length,broken:b,errors:window.__errors}))});</script>"
)


@pytest.fixture(scope="module")
def imperfect_run(tmp_path_factory) -> Path:
    """One document's table and hand clips through processors:Imperfect (quads shifted, fields damaged)."""
    root = tmp_path_factory.mktemp("drill")
    synthesize(root / "data", SynthConfig(docs=1, clips="T*,H*", seed=12))
    result = midvbatch(
        "run", root / "data", "--out", root / "run", "--processor", "processors:Imperfect", "--workers", 0
    )
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_report_html_drill_down_draws_the_quads_marks_the_diffs_and_sorts_in_chromium(imperfect_run, tmp_path):
    import base64
    import re

    from midvbatch.dataset import discover, get_format

    page = tmp_path / "report.html"
    assert midvbatch("report", imperfect_run, "--format", "html", "--out", page).returncode == 0
    text = page.read_text()
    assert "<h3 id='drill'>Frames, clip by clip</h3>" in text and "http://" not in text and "<script src" not in text
    # a field damaged in a known way: its last character read as '#', marked as a substitution of the truth's
    assert re.search(r"<span class='sub' title='[^']'>#</span></td>", text)
    # the overlay sits on the document: the thumbnail's pixels along the true quad are the green it is drawn in
    image_b64 = re.search(r"<img alt='TA01 2' src='data:image/jpeg;base64,([^']+)'>", text).group(1)
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(image_b64), np.uint8), cv2.IMREAD_COLOR)
    clip = discover(imperfect_run.parent / "data").clip("TA01")
    quad = np.array(get_format(clip.format).read_quads(clip.ground_truth)[2].points) * (thumb.shape[1] / 180)
    greens = []
    for a, b in zip(quad, np.roll(quad, -1, axis=0)):
        for t in (0.3, 0.5, 0.7):
            x, y = np.round(a + (b - a) * t).astype(int)
            if 0 <= x < thumb.shape[1] and 0 <= y < thumb.shape[0]:
                blue, green, red = thumb[y, x].astype(int)
                greens.append(green > 120 and green > red + 40 and green > blue + 40)
    assert len(greens) >= 6 and sum(greens) >= len(greens) - 1, greens
    # cached for the next report: nothing drawn again
    cache = imperfect_run / "report-cache"
    cached = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(cached) == 4 * 30
    assert midvbatch("report", imperfect_run, "--format", "html", "--out", tmp_path / "again.html").returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == cached
    check = _checked(tmp_path, text, DRILL_CHECKER)
    assert check["errors"] == [] and check["broken"] == [] and check["images"] >= 120
    assert float(check["first"]) <= float(check["last"])  # sorted up, then down
    assert 0 < check["shown"] < check["rows"]  # the field filter keeps field01's rows only


def test_report_html_drill_down_screenshot(imperfect_run, tmp_path):
    """A screenshot of the drill-down in headless Chromium: not blank; with MIDVBATCH_DOCS_SCREENSHOTS=1 it is
    written to docs/images/drill-down.png, the picture docs/cli.md shows."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium when it can)")
    page = tmp_path / "report.html"
    assert midvbatch("report", imperfect_run, "--format", "html", "--out", page).returncode == 0
    text = page.read_text()
    shown = tmp_path / "drill.html"  # the drill-down alone, at the top of the page (it runs to the page's end)
    shown.write_text(text[: text.index("<body>") + len("<body>")] + text[text.index("<h3 id='drill'>") :])
    picture = tmp_path / "drill.png"
    _headless(
        browser, tmp_path, "--hide-scrollbars", "--window-size=1200,820", f"--screenshot={picture}", shown.as_uri()
    )
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[:2] == (820, 1200) and float(np.std(image)) > 20
    if os.environ.get("MIDVBATCH_DOCS_SCREENSHOTS") == "1":
        target = Path(__file__).parent.parent / "docs" / "images" / "drill-down.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(picture, target)
