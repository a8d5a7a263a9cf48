"""`midvbatch import`: outputs made elsewhere scored into an ordinary run folder.

A run of a processor that damages the ground truth in known ways (processors:Imperfect)
is exported in every format; each export imported again must give the same report,
figure for figure. Bad input is one line through the CLI, and a file is read a record at
a time.
"""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path

import pytest
from conftest import midvbatch

from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.engine.run import run as run_config
from midvbatch.config import build_config
from midvbatch.errors import PredictionsError
from midvbatch.fileio import json_items
from midvbatch.report import write_report
from midvbatch.results.exports import export_results
from midvbatch.results.imports import detect_format, import_predictions


def _report(run_dir: Path, *leave_out: str) -> dict:
    """The run's JSON report without what differs by nature between a run and its import: the run's own
    section (folder, processor) and speed."""
    report = json.loads(write_report(run_dir, "json"))
    for key in ("run", "speed", *leave_out):
        report.pop(key, None)
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small synthetic dataset of each MIDV format and a run of processors:Imperfect on it."""
    out = {}
    for catalog in ("midv500", "midv2019", "midv2020"):
        root = tmp_path_factory.mktemp(catalog)
        synthesize(root / "dataset", SynthConfig(catalog=catalog, docs=1, seed=11))
        config = build_config(
            {
                "dataset": str(root / "dataset"),
                "out": str(root / "run"),
                "processor": "processors:Imperfect",
                "workers": 0,
            }
        )
        summary = run_config(config, install_signals=False)
        assert summary.exit_code == 0, summary
        out[catalog] = root
    return out


def _import(path: Path, dataset: Path, out: Path, **options):
    summary = import_predictions(
        path,
        dataset,
        out,
        workers=0,
        run=lambda c, restart: run_config(c, restart=restart, install_signals=False),
        **options,
    )
    assert summary.run is not None and summary.run.exit_code == 0, summary
    return summary


@pytest.mark.parametrize("catalog", ["midv500", "midv2019", "midv2020"])
def test_import_of_an_export_gives_the_same_report_in_every_format(runs, catalog, tmp_path):
    root = runs[catalog]
    dataset, run_dir = root / "dataset", root / "run"
    whole = _report(run_dir)
    assert whole["overall"]["frames"] and whole["text"]["overall"]["fields"]
    assert 0 < whole["overall"]["accuracy"] < 1 and whole["overall"]["missing"]  # (damaged, some not found)
    cases = {  # export options -> what the import's report must equal (some formats carry no text, or no quads)
        "jsonl": ({}, whole),
        "csv": ({}, whole),
        "fields.jsonl": (
            {"fields": True},
            _report(
                run_dir,
                "overall",
                "by_condition",
                "by_device",
                "by_document",
                "by_clip",
                "by_subset",
                "by_collection",
                "worst_clips",
            ),
        ),
        "smartengines": ({}, _report(run_dir, "text")),
        "coco": ({"predictions": True, "fields": True}, None),
    }
    for name, (options, expected) in cases.items():
        fmt = name.split(".")[-1]
        path = tmp_path / f"export.{name}"
        export_results(run_dir, fmt, path, **options)
        summary = _import(path, dataset, tmp_path / f"import-{name}")
        assert summary.format == fmt and summary.unknown.count == 0 and summary.truth.count == 0, name
        if expected is None:  # COCO: the quads, and the fields each frame shows (not the clips' own results)
            expected = _report(run_dir, "text")
        got = _report(tmp_path / f"import-{name}")
        assert {k: got.get(k) for k in expected} == expected, name


def test_import_through_the_cli_coco_results_csv_and_the_python_api_agree(runs, tmp_path):
    root = runs["midv500"]
    dataset, run_dir = root / "dataset", root / "run"
    export_results(run_dir, "coco", tmp_path / "truth.json")
    export_results(run_dir, "coco", tmp_path / "predicted.json", predictions=True)
    predicted = json.loads((tmp_path / "predicted.json").read_text())
    results = [
        {"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"], "score": 0.9}
        for a in predicted["annotations"]
    ]
    (tmp_path / "results.json").write_text(json.dumps(results))
    refused = midvbatch("import", tmp_path / "results.json", dataset, "--out", tmp_path / "a")
    assert refused.returncode == 1 and "--images" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "a").exists()
    done = midvbatch(
        "import",
        tmp_path / "results.json",
        dataset,
        "--out",
        tmp_path / "a",
        "--images",
        tmp_path / "truth.json",
        "--workers",
        1,
    )
    assert done.returncode == 0, done.stderr
    assert "read 260 predictions (coco) for 260 frames" in done.stdout, done.stdout
    assert _report(tmp_path / "a", "text") == _report(run_dir, "text")
    # keypoints that are not a list, a segmentation of text, a NaN score: those frames no prediction, named
    results[0] = {"image_id": results[0]["image_id"], "category_id": 1, "keypoints": float("inf"), "score": 0.9}
    results[1]["segmentation"], results[2]["score"] = "x", float("nan")
    (tmp_path / "odd.json").write_text(json.dumps(results))
    odd = midvbatch("import", tmp_path / "odd.json", dataset, "--out", tmp_path / "odd", "--images", tmp_path / "truth.json")
    assert odd.returncode == 0 and "Traceback" not in odd.stderr, odd.stderr
    assert "2 records with a quad that is not 4 finite points" in odd.stderr, odd.stderr
    # a plain CSV of quads: the same
    rows = [["clip", "frame", "x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4"]]
    for record in (json.loads(line) for line in _jsonl(run_dir)):
        quad = record["result"].get("quad") if record["frame"] is not None else None
        if quad:
            rows.append([record["clip"], record["frame"], *[v for point in quad for v in point]])
    _write_csv(tmp_path / "quads.csv", rows)
    done = midvbatch("import", tmp_path / "quads.csv", dataset, "--out", tmp_path / "b", "--workers", 0, "--json")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["imported"]["format"] == "csv" and said["done"] == 10 and len(said["imported"]["sha256"]) == 64
    assert _report(tmp_path / "b", "text") == _report(run_dir, "text")
    config = (tmp_path / "b" / "config.toml").read_text()
    assert str(tmp_path / "quads.csv") in config and said["imported"]["sha256"] in config
    # status and export read it as any run
    status = midvbatch("status", tmp_path / "b")
    assert status.returncode == 0 and "10 done" in status.stdout.replace("/10", ""), status.stdout
    report = midvbatch("report", tmp_path / "b")
    assert report.returncode == 0 and f"Predictions imported from `{tmp_path / 'quads.csv'}` (csv" in report.stdout
    exported = midvbatch("export", tmp_path / "b", "--format", "smartengines")
    assert exported.returncode == 0 and len(json.loads(exported.stdout)) == 300


def _jsonl(run_dir: Path) -> list[str]:
    stream = io.StringIO()
    from midvbatch.results.exports import export_registry, ExportOptions

    export_registry().get("jsonl").prepare(run_dir, ExportOptions())(stream)
    return stream.getvalue().splitlines()


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as stream:
        csv.writer(stream).writerows(rows)


def test_import_bad_inputs_are_one_line_and_lose_nothing(runs, tmp_path):
    dataset = runs["midv500"] / "dataset"
    lines = _jsonl(runs["midv500"] / "run")

    def attempt(name: str, text: str | bytes, *args):
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        out = tmp_path / f"run-{name}"
        result = midvbatch("import", path, dataset, "--out", out, "--workers", 0, *args)
        assert "Traceback" not in result.stderr, result.stderr
        return result, out

    # not JSON nor CSV: one line naming the file
    result, out = attempt("noise.bin", b"\x00\x01garbage\xff" * 50)
    assert result.returncode == 1 and "noise.bin" in result.stderr and "--format" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    # a bad line: named with its number
    result, out = attempt("bad.jsonl", lines[0] + "\n" + lines[1][:40] + "\n")
    assert result.returncode == 1 and "bad.jsonl:2" in result.stderr and not out.exists()
    # two records for one frame: refused, naming both
    result, out = attempt("twice.jsonl", "\n".join([lines[0], lines[1], lines[0]]) + "\n")
    assert result.returncode == 1 and "twice.jsonl:1" in result.stderr and "twice.jsonl:3" in result.stderr
    assert not out.exists()
    # records of clips and frames the dataset lacks: counted, 5 named, the rest imported; --strict refuses
    strangers = [json.dumps({"clip": f"ZZ{i:02d}", "frame": 1, "result": {"quad": None}}) for i in range(7)]
    strangers.append(json.dumps({"clip": json.loads(lines[0])["clip"], "frame": 99, "result": {"quad": None}}))
    result, out = attempt("strangers.jsonl", "\n".join(lines + strangers) + "\n", "--strict")
    assert result.returncode == 1 and "8 record(s)" in result.stderr and "--strict" in result.stderr
    assert not out.exists()
    result, out = attempt("strangers.jsonl", "\n".join(lines + strangers) + "\n")
    assert result.returncode == 0, result.stderr
    assert "8 records for clips or frames the dataset does not have" in result.stderr
    assert "no clip 'ZZ00'" in result.stderr and "... and 3 more" in result.stderr
    assert _report(out) == _report(runs["midv500"] / "run")
    # NaN, inf and text as coordinates: that frame is "no prediction", and named
    first = json.loads(lines[0])
    first["result"]["quad"] = [[float("nan"), 1], [2, 3], [4, float("inf")], [5, 6]]
    second = json.loads(lines[1])
    second["result"]["quad"] = [["a", 1], [2, 3], [4, 5], [5, 6]]
    result, out = attempt("nan.jsonl", "\n".join([json.dumps(first), json.dumps(second), *lines[2:]]) + "\n")
    assert result.returncode == 0, result.stderr
    assert "2 records with a quad that is not 4 finite points" in result.stderr and "nan.jsonl:1" in result.stderr
    frames = {(f["clip"], f["frame"]): f for f in map(json.loads, _jsonl(out)) if f["frame"] is not None}
    assert frames[(first["clip"], first["frame"])]["result"]["quad"] is None
    assert frames[(first["clip"], first["frame"])]["scores"]["iou"] == 0
    # NaN and inf elsewhere in a result: left out with a note, as a processor's would be; the frame scored
    first = json.loads(lines[0])
    first["result"]["extra"] = {"nan": float("nan"), "inf": float("-inf"), "kept": 1.5}
    result, out = attempt("values.jsonl", "\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "is not a finite number" in result.stderr, result.stderr
    frames = {(f["clip"], f["frame"]): f for f in map(json.loads, _jsonl(out)) if f["frame"] is not None}
    assert frames[(first["clip"], first["frame"])]["result"]["extra"] == {"kept": 1.5}
    assert _report(out) == _report(runs["midv500"] / "run")
    # a CSV with an unknown header, and one whose row has a frame that is not a number
    result, out = attempt("header.csv", "clip,frame,what\nTA01,1,x\n", "--format", "csv")
    assert result.returncode == 1 and "header.csv" in result.stderr and "x1,y1" in result.stderr
    result, out = attempt("frame.csv", "clip,frame,field,text\nTA01,one,field01,x\n")
    assert result.returncode == 1 and "frame.csv:2" in result.stderr and "'one'" in result.stderr
    # a folder given as --out that is not a run folder: refused, untouched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("mine")
    result = midvbatch("import", tmp_path / "strangers.jsonl", dataset, "--out", foreign)
    assert result.returncode != 0 and "not a midvbatch run folder" in result.stderr
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]


def test_import_again_resumes_and_another_file_needs_restart(runs, tmp_path):
    dataset, run_dir = runs["midv500"] / "dataset", runs["midv500"] / "run"
    lines = _jsonl(run_dir)
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[:100]) + "\n")
    _import(tmp_path / "a.jsonl", dataset, tmp_path / "run")
    again = _import(tmp_path / "a.jsonl", dataset, tmp_path / "run")
    assert again.run.counts["done"] == 10
    other = midvbatch("import", tmp_path / "b.jsonl", dataset, "--out", tmp_path / "run", "--workers", 0)
    assert other.returncode != 0 and "--restart" in other.stderr and "Traceback" not in other.stderr
    assert _report(tmp_path / "run") == _report(run_dir)
    fresh = midvbatch("import", tmp_path / "b.jsonl", dataset, "--out", tmp_path / "run", "--workers", 0, "--restart")
    assert fresh.returncode == 0, fresh.stderr
    missing = _report(tmp_path / "run")["overall"]["missing"]
    assert missing > _report(run_dir)["overall"]["missing"]  # the frames past the first 100 records: no prediction


def test_smartengines_report_ground_truth_that_differs_is_named(runs, tmp_path):
    dataset, run_dir = runs["midv500"] / "dataset", runs["midv500"] / "run"
    export_results(run_dir, "smartengines", tmp_path / "report.json")
    records = json.loads((tmp_path / "report.json").read_text())
    for record in records[:7]:
        record["ground_truth_quad"][0][0] += 5
    for record in records:  # the published form of the path
        document, _, code, name = record["origin_image_path"].split("/")
        record["origin_image_path"] = f"./images/{document}/{code}/{name}"
    (tmp_path / "published.json").write_text(json.dumps({"part1": records[:100], "part2": records[100:]}))
    assert detect_format(tmp_path / "published.json") == "smartengines"
    summary = _import(tmp_path / "published.json", dataset, tmp_path / "run")
    assert summary.truth.count == 7 and len(summary.truth.shown) == 5 and summary.unknown.count == 0
    assert _report(tmp_path / "run", "text") == _report(run_dir, "text")


def test_json_items_reads_a_record_at_a_time(tmp_path):
    path = tmp_path / "big.json"
    padding = "x" * 20_000
    with open(path, "w") as stream:
        stream.write("[\n")
        for i in range(2_000):  # 40 MB
            stream.write(("," if i else "") + json.dumps({"i": i, "pad": padding}) + "\n")
        stream.write("]\n")
    tracemalloc.start()
    try:
        with open(path) as stream:
            count = sum(1 for _, line, value in json_items(stream, path) if value["i"] == line - 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2_000 and peak < 8 * 2**20, peak  # (the whole file would be 40 MB)
    for text, said in (
        ("[1, 2", "line 1"),
        ('{"a": [1]} x', "more after"),
        ("[1 2]", "expected ','"),
        ('{"a":\n\n [1, tru]}', "line 3"),
    ):
        (tmp_path / "bad.json").write_text(text)
        with open(tmp_path / "bad.json") as stream, pytest.raises(PredictionsError, match=said):
            list(json_items(stream, tmp_path / "bad.json", PredictionsError))
    with open(tmp_path / "bad.json", "w") as stream:
        stream.write('{"a": [1, {"b": 2}], "c": 3}')
    with open(tmp_path / "bad.json") as stream:
        assert list(json_items(stream, "x")) == [("a", 1, 1), ("a", 1, {"b": 2}), ("c", 1, 3)]


def test_detect_format_reads_the_beginning_only(tmp_path):
    cases = {
        '{"clip": "TA01", "frame": 1, "result": {}}\n': "jsonl",
        '[{"image_id": 3, "category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1, 0, 1]]}]': "coco",
        '{"images": [], "annotations": []}': "coco",
        '[{"origin_image_path": "./images/a/CA/CA01_01.tif"}]': "smartengines",
        '{"x": [{"origin_image_path": "a"}]}': "smartengines",
        "clip,frame,x1,y1,x2,y2,x3,y3,x4,y4\n": "csv",
        '\ufeff"clip",frame,field,text\n': "csv",
    }
    for text, fmt in cases.items():
        (tmp_path / "p").write_text(text)
        assert detect_format(tmp_path / "p") == fmt, text
    for text in ("", "hello", "[1, 2]", "{}"):
        (tmp_path / "p").write_text(text)
        with pytest.raises(PredictionsError):
            detect_format(tmp_path / "p")
