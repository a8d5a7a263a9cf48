"""Text fields end to end: the fields reach processors, results are checked and scored, bad input is one line."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import pytest
from conftest import midvbatch

from midvbatch import open_run
from midvbatch.dataset.groundtruth import load_template
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.engine.ledger import Ledger
from midvbatch.scoring.text import accuracy_after_frames, normalize

TEMPLATE = "01_alb_id/ground_truth/01_alb_id.json"


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory):
    """Document 01 (clip TA01) and document 18 (TA18: a passport with two empty '*' fields)."""
    root = tmp_path_factory.mktemp("text")
    synthesize(root, SynthConfig(docs="01_*", clips="TA", seed=3))
    synthesize(root, SynthConfig(docs="18_*", clips="TA", seed=3))
    return root


def _copy(dataset, tmp_path):
    target = tmp_path / "ds"
    shutil.copytree(dataset, target)
    return target


def _run(dataset, out, processor, *extra):
    done = midvbatch("run", dataset, "--out", out, "--processor", processor, "--workers", "1", *extra)
    assert done.returncode == 0, done.stderr
    return done


def test_text_fields_ground_truth_scores_every_field_perfectly(one_clip, tmp_path):
    _run(one_clip, tmp_path / "run", "ground-truth")
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    assert len(frames) == 60
    truth = load_template(one_clip / TEMPLATE)
    for frame in frames:
        assert frame.iou_gt == pytest.approx(1.0)
        assert frame.fields, frame.id
        assert all(
            f["correct"] and f["distance"] == 0 and f["ngld"] == 0 and f["cer"] == 0 for f in frame.fields.values()
        )
        if frame.clip == "TA01":
            assert {n: f["truth"] for n, f in frame.fields.items()} == {t.name: t.value for t in truth.text_fields()}
    passport = [f for f in frames if f.clip == "TA18"]
    # document 18 has two fields marked '*': counted, never scored
    assert {f.scores["empty_fields"] for f in passport} == {2}
    template18 = load_template(one_clip / "18_dza_passport/ground_truth/18_dza_passport.json")
    assert len(passport[0].fields) == len(template18.text_fields())


def test_text_fields_corrupted_results_get_exactly_the_expected_figures(one_clip, tmp_path):
    _run(one_clip, tmp_path / "run", "text_processors:Corrupt", "--clips", "TA01")
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    truth = load_template(one_clip / TEMPLATE).fields
    t1, t2, t3 = truth["field01"].value, truth["field02"].value, truth["field03"].value
    for frame in frames:
        f1, f2, f3 = (frame.fields[n] for n in ("field01", "field02", "field03"))
        if frame.number % 2:  # field01 lower-cased (same once normalized) and its last letter wrong
            assert (f1["correct"], f1["distance"]) == (False, 1)
            assert f1["ngld"] == pytest.approx(2 / (len(t1) + len(t1) + 1))
            assert f1["cer"] == pytest.approx(1 / len(t1))
            assert f1["confidence"] == 0.1
        else:
            assert (f1["correct"], f1["distance"], f1["ngld"], f1["confidence"]) == (True, 0, 0.0, 0.9)
        # field02 not returned: scored as the empty string
        assert f2["missing"] and f2["text"] == "" and not f2["correct"]
        assert (f2["distance"], f2["ngld"], f2["cer"]) == (len(normalize(t2)), 1.0, 1.0)
        # field03 with the letter O for the digit 0 (a date has zeros): equal once normalized
        assert "0" in t3 and f3["text"] != t3 and f3["correct"] and f3["ngld"] == 0
        assert f3["type"] == "date"
    assert sum(f.fields["field01"]["correct"] for f in frames) == 15
    # combined over the clip: a majority vote never recovers (the wrong reading comes first, ties go to it);
    # the most confident reading is right from the second frame on
    readings = [(f.fields["field01"]["text"], f.fields["field01"]["confidence"]) for f in frames]
    assert accuracy_after_frames([(readings, t1)], "majority") == [0.0] * 30
    assert accuracy_after_frames([(readings, t1)], "best") == [0.0] + [1.0] * 29


def test_text_fields_values_never_reach_a_processor_that_does_not_ask(one_clip, tmp_path):
    _run(one_clip, tmp_path / "run", "text_processors:Peek", "--clips", "TA01")
    with open_run(tmp_path / "run") as run:
        results = [f.result for f in run.frames()]
    names = sorted(load_template(one_clip / TEMPLATE).fields)
    for result in results:
        assert result["names"] == names  # every field, photo and signature too, placed in the frame
        assert result["values"] == ["None"] and result["template_values"] == ["None"]
        assert result["crop"][0] == 40 and result["crop"][1] > 40 and result["crop"][2] == 3


def test_text_fields_clip_result_of_finish_clip_is_scored(one_clip, tmp_path):
    _run(one_clip, tmp_path / "run", "text_processors:Combined", "--clips", "TA01")
    with open_run(tmp_path / "run") as run:
        clip = run.clip("TA01")
    assert clip.result["fields"]["field02"] == "WRONG"
    assert clip.fields["field01"]["correct"] and not clip.fields["field02"]["correct"]
    assert clip.fields["field03"]["missing"]


def test_text_fields_malformed_processor_fields_are_one_line_each_and_left_out(one_clip, tmp_path):
    done = _run(one_clip, tmp_path / "run", "text_processors:Unruly", "--clips", "TA01")
    assert "TA01: field 'field02': the result 12345 is not text; field not scored (in 30 frames)" in done.stderr
    assert "TA01: unknown field 'no_such_field' returned (the document has: field01," in done.stderr
    assert "TA01: field 'field03': confidence [1] is not a number; ignored (in 30 frames)" in done.stderr
    assert "Traceback" not in done.stderr
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    assert len(frames) == 30
    for frame in frames:
        assert "field02" not in frame.fields and "no_such_field" not in frame.fields
        assert frame.fields["field01"]["correct"] and frame.fields["field03"]["confidence"] is None
        assert frame.fields["field04"]["missing"]


def test_text_fields_result_fields_not_an_object_is_noted(one_clip, tmp_path):
    done = _run(one_clip, tmp_path / "run", "text_processors:NotAnObject", "--clips", "TA01")
    assert 'TA01: "fields" must be an object of field name -> text, got list; not scored (in 30 frames)' in done.stderr
    with open_run(tmp_path / "run") as run:
        assert all(f.fields == {} for f in run.frames())


@pytest.mark.parametrize(
    "edit, message, gone",
    [
        (
            lambda t: t["field02"].update(quad=t["field02"]["quad"][:3]),
            "field 'field02' \"quad\" must be a list of 4",
            "field02",
        ),
        (lambda t: t["field03"].update(value=1980), "field 'field03' value must be text, got 1980", "field03"),
        (lambda t: t.pop("field04") and t.update(field04="X"), "field 'field04' must be an object", "field04"),
    ],
)
def test_text_fields_malformed_template_field_is_left_out_and_named(one_clip, tmp_path, edit, message, gone):
    dataset = _copy(one_clip, tmp_path)
    path = dataset / TEMPLATE
    template = json.loads(path.read_text())
    edit(template)
    path.write_text(json.dumps(template))
    done = _run(dataset, tmp_path / "run", "ground-truth", "--clips", "TA01")
    assert f"TA01: {path}: {message}" in done.stderr and "; scored without it" in done.stderr
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    assert len(frames) == 30
    for frame in frames:
        assert gone not in frame.fields and frame.fields["field01"]["correct"] and frame.iou_gt == pytest.approx(1)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{}", "no fields"),
        ("[1, 2]", "text fields not scored: " + "{path}: expected a JSON object of fields, got list"),
        ("{not json", "text fields not scored: {path}: "),
    ],
)
def test_text_fields_unusable_template_leaves_the_quads_scored(one_clip, tmp_path, content, message):
    dataset = _copy(one_clip, tmp_path)
    path = dataset / TEMPLATE
    path.write_text(content)
    done = _run(dataset, tmp_path / "run", "ground-truth", "--clips", "TA01")
    assert message.format(path=path) in done.stderr
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    assert len(frames) == 30 and all(f.iou_gt == pytest.approx(1) and f.fields == {} for f in frames)


def test_text_fields_missing_template_picture_is_named(one_clip, tmp_path):
    dataset = _copy(one_clip, tmp_path)
    for picture in (dataset / "01_alb_id" / "images").glob("01_alb_id.*"):
        picture.unlink()
    done = _run(dataset, tmp_path / "run", "ground-truth", "--clips", "TA01")
    assert f"TA01: text fields not scored: {dataset / TEMPLATE}: no template picture beside it" in done.stderr


def test_text_fields_midv2020_templates_scans_photos_and_clips(tmp_path):
    root = tmp_path / "m20"
    synthesize(
        root,
        SynthConfig(catalog="midv2020", docs="alb_id", clips="templates,scan_rotated,photo/00-09,clips/01", images=2),
    )
    _run(root, tmp_path / "run", "ground-truth")
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    kinds = {f.clip.split("/")[0] for f in frames}
    assert kinds == {"templates", "scan_rotated", "photo", "clips"}
    for frame in frames:
        assert frame.fields and all(f["correct"] for f in frame.fields.values()), frame.clip
    names = {n for f in frames for n in f.fields}
    assert {"surname", "birth_date"} <= names
    types = {f["type"] for fr in frames for f in fr.fields.values()}
    assert {"name", "date"} <= types
    # document NN of a picture collection is picture NN; every frame of clip 01 shows document 01
    clip01 = [f for f in frames if f.clip == "clips/alb_id/01"]
    scan01 = next(f for f in frames if f.clip == "scan_rotated/alb_id" and f.number == 1)
    assert {n: v["truth"] for n, v in clip01[0].fields.items()} == {n: v["truth"] for n, v in scan01.fields.items()}


def test_text_fields_ledger_of_an_older_midvbatch_gains_clip_scores(tmp_path):
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.execute("CREATE TABLE clips (task INTEGER PRIMARY KEY, result TEXT)")
    db.execute("INSERT INTO clips VALUES (1, '{}')")
    db.commit()
    db.close()
    Ledger(tmp_path).close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert [r[1] for r in db.execute("PRAGMA table_info(clips)")] == ["task", "result", "scores"]
    assert db.execute("SELECT * FROM clips").fetchall() == [(1, "{}", None)]


def test_text_fields_exports_one_record_per_field_and_coco_field_quads(one_clip, tmp_path):
    _run(one_clip, tmp_path / "run", "text_processors:Corrupt", "--clips", "TA01")
    template = load_template(one_clip / TEMPLATE)
    texts = len(template.text_fields())
    done = midvbatch("export", tmp_path / "run", "--fields", "--format", "csv", "--out", tmp_path / "f.csv")
    assert done.returncode == 0 and f"wrote {30 * texts} records" in done.stdout
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert list(rows[0])[:4] == ["clip", "document", "frame", "field"]
    first = {r["field"]: r for r in rows if r["frame"] == "1"}
    assert first["field01"]["correct"] == "False" and first["field01"]["confidence"] == "0.1"
    assert first["field02"]["missing"] == "True" and first["field02"]["ngld"] == "1.0"
    lines = midvbatch("export", tmp_path / "run", "--fields").stdout.splitlines()
    assert len(lines) == 30 * texts and json.loads(lines[0])["field"] == "field01"
    # per frame (no --fields): the scores carry the fields
    record = json.loads(midvbatch("export", tmp_path / "run").stdout.splitlines()[0])
    assert record["scores"]["fields"]["field03"]["correct"] is True

    coco = json.loads(midvbatch("export", tmp_path / "run", "--format", "coco", "--fields").stdout)
    assert [c["name"] for c in coco["categories"]] == ["id_card", "text_field"]
    fields = [a for a in coco["annotations"] if a["category_id"] == 2]
    assert len(fields) == 30 * len(template.fields)  # photo and signature too, without value
    by_name = {a["attributes"]["field"]: a for a in fields if a["image_id"] == 0}
    assert by_name["field01"]["attributes"] == {
        "field": "field01",
        "value": template.fields["field01"].value,
        "has_text": True,
    }
    assert by_name["photo"]["attributes"]["has_text"] is False
    assert len(by_name["field01"]["segmentation"][0]) == 8 and by_name["field01"]["area"] > 0
    plain = json.loads(midvbatch("export", tmp_path / "run", "--format", "coco").stdout)
    assert [c["name"] for c in plain["categories"]] == ["id_card"] and len(plain["annotations"]) == 30
    read = json.loads(midvbatch("export", tmp_path / "run", "--format", "coco", "--fields", "--predictions").stdout)
    texts_read = [a["attributes"] for a in read["annotations"] if a["image_id"] == 0]
    assert {a["field"] for a in texts_read} == {f.name for f in template.text_fields()} - {"field02"}
    refused = midvbatch("export", tmp_path / "run", "--format", "smartengines", "--fields")
    assert refused.returncode == 1 and "--fields applies to the jsonl, csv, coco and parquet exports" in refused.stderr


def test_text_fields_midv2020_template_field_of_3_points_is_named_by_validate_and_run(tmp_path):
    root = tmp_path / "m20"
    synthesize(root, SynthConfig(catalog="midv2020", docs="alb_id", clips="templates,clips/00", images=1))
    path = root / "templates" / "annotations" / "alb_id.json"
    data = json.loads(path.read_text())
    image = next(iter(data["_via_img_metadata"].values()))
    surname = next(r for r in image["regions"] if r["region_attributes"].get("field_name") == "surname")
    surname["shape_attributes"] = {"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2, 3]}
    path.write_text(json.dumps(data))
    message = f"{path}: 00.jpg: field 'surname' has 3 points, a field has 4 corners"
    checked = midvbatch("validate", root)
    assert f"warning template       {message}" in checked.stdout
    done = _run(root, tmp_path / "run", "ground-truth")
    assert f"clips/alb_id/00: {message}; scored without it" in done.stderr
    with open_run(tmp_path / "run") as run:
        frames = list(run.frames())
    assert frames and all("surname" not in f.fields and f.fields["name"]["correct"] for f in frames)
