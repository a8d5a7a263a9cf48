"""The report's text section: ground truth reads every field right, a processor that damages
known fields in known frames gets exactly the figures and curves it should, '*' fields are
counted, and a run without text fields has no text section."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from conftest import midvbatch

from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.report import build_report, render_html, render_markdown
from midvbatch.results import open_run
from midvbatch.results.records import FrameResult
from midvbatch.results.textfigures import TextTally
from midvbatch.scoring.text import (
    accuracy_after_frames,
    combine_best,
    combine_characters,
    combine_majority,
    field_type,
    field_type,
    normalize,
    score_field,
)

DOCS = ("01_alb_id", "18_dza_passport", "29_irn_drvlic")  # 18 and 29 have two '*' fields each
FRAMES = 30  # per clip
CLIPS_PER_DOC = 2  # TA, KS

# field01: the truth lower-cased with its first letter replaced in frames 1, 4, 7, ... (confidence
# 0.5; 0.9 otherwise); field02: not returned in frame 30; every other field: the truth lower-cased.
# After the clip, its own result: field01 right, field02 wrong, the others not returned.
PROCESSOR = """
from midvbatch.pipeline import Processor


class Corrupt(Processor):
    field_values = True

    def process_frame(self, frame):
        self.template = frame.clip.templates[frame.number]
        out = {}
        for name, field in self.template.fields.items():
            if field.value is None or (name == "field02" and frame.number == 30):
                continue
            text, confidence = field.value.lower(), 0.9
            if name == "field01" and frame.number % 3 == 1:
                text, confidence = ("x" if text[0] == "q" else "q") + text[1:], 0.5
            out[name] = {"text": text, "confidence": confidence}
        return {"fields": out}

    def finish_clip(self, clip):
        return {"fields": {"field01": self.template.fields["field01"].value, "field02": "WRONG"}}
"""


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text") / "ds"
    synthesize(root, SynthConfig(docs=",".join(f"{d[:2]}_*" for d in DOCS), clips="TA,KS", seed=7))
    return root


def _run(dataset: Path, out: Path, *args, cwd: Path | None = None) -> Path:
    result = midvbatch("run", dataset, "--out", out, "--workers", 2, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return out


def _json(run: Path) -> dict:
    result = midvbatch("report", run, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def gt_report(text_dataset, tmp_path_factory) -> dict:
    return _json(_run(text_dataset, tmp_path_factory.mktemp("gt") / "run", "--processor", "ground-truth"))


@pytest.fixture(scope="module")
def corrupt_run(text_dataset, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("corrupt")
    (home / "text_corrupt.py").write_text(PROCESSOR)
    return _run(text_dataset, home / "run", "--processor", "text_corrupt:Corrupt", cwd=home)


@pytest.fixture(scope="module")
def truth(gt_report) -> dict[str, dict[str, str]]:
    """document -> field -> true value, as the ground-truth run returned them (its export)."""
    values: dict[str, dict[str, str]] = {}
    with open_run(gt_report["run"]["run_dir"]) as run:
        for frame in run.frames():
            values.setdefault(frame.document, {}).update(frame.result["fields"])
    return values


def test_text_report_ground_truth_is_perfect_everywhere(gt_report, truth):
    text = gt_report["text"]
    fields = sum(len(truth[d]) for d in DOCS) * CLIPS_PER_DOC * FRAMES
    assert text["frames"] == len(DOCS) * CLIPS_PER_DOC * FRAMES
    assert text["overall"] == {
        "fields": fields,
        "correct": fields,
        "accuracy": 1.0,
        "mean_ngld": 0.0,
        "mean_cer": 0.0,
        "missing": 0,
        "empty": 2 * 2 * CLIPS_PER_DOC * FRAMES,
        "ci": {"accuracy": [1.0, 1.0], "mean_ngld": [0.0, 0.0], "mean_cer": [0.0, 0.0]},
    }
    assert set(text["groups"]) == {"type", "field", "condition", "device", "document", "clip"}  # no collection
    for grouping, table in text["groups"].items():
        for key, agg in table.items():
            assert agg["accuracy"] == 1.0 and agg["mean_ngld"] == 0.0 and agg["missing"] == 0, (grouping, key)
    assert set(text["groups"]["type"]) <= {"date", "number", "name", "mrz", "other"}
    curves = text["curves"]
    assert curves["clips"] == len(DOCS) * CLIPS_PER_DOC and curves["left_out"] == 0
    assert curves["overall"]["fields"] == sum(len(truth[d]) for d in DOCS) * CLIPS_PER_DOC
    assert curves["overall"]["majority"] == curves["overall"]["best"] == [1.0] * FRAMES
    for curve in curves["by_type"].values():
        assert curve["majority"] == curve["best"] == [1.0] * FRAMES and curve["per_frame"] == 1.0
    assert text["worst"] == [] and text["clip_results"] is None


def test_text_report_counts_the_empty_fields(gt_report, truth):
    by_document = gt_report["text"]["groups"]["document"]
    per_doc = CLIPS_PER_DOC * FRAMES
    assert {d: a["empty"] for d, a in by_document.items()} == {DOCS[0]: 0, DOCS[1]: 2 * per_doc, DOCS[2]: 2 * per_doc}
    assert {d: a["fields"] for d, a in by_document.items()} == {d: len(truth[d]) * per_doc for d in DOCS}
    assert all("*" not in values.values() for values in truth.values())  # '*' is never scored
    assert all(a["empty"] is None for a in gt_report["text"]["groups"]["field"].values())  # counted per frame


def _expected_curve(bits: list[int], pairs: int, damaged: int) -> list[float]:
    return [(pairs - damaged + damaged * b) / pairs for b in bits]


def test_text_report_damaged_fields_give_exact_figures(corrupt_run, truth):
    text = _json(corrupt_run)["text"]
    clips = len(DOCS) * CLIPS_PER_DOC
    readings = clips * FRAMES
    wrong = readings // 3  # frames 1, 4, ..., 28 of every clip
    field01 = text["groups"]["field"]["field01"]
    ngld01 = sum(2 / (2 * len(truth[d]["field01"]) + 1) for d in DOCS) * CLIPS_PER_DOC * 10 / readings
    cer01 = sum(1 / len(truth[d]["field01"]) for d in DOCS) * CLIPS_PER_DOC * 10 / readings
    assert field01["fields"] == readings and field01["correct"] == readings - wrong and field01["missing"] == 0
    assert field01["accuracy"] == pytest.approx(2 / 3)
    assert field01["mean_ngld"] == pytest.approx(ngld01) and field01["mean_cer"] == pytest.approx(cer01)
    field02 = text["groups"]["field"]["field02"]  # not returned once per clip: scored as '' (NGLD 1)
    assert field02["fields"] == readings and field02["correct"] == readings - clips and field02["missing"] == clips
    assert field02["mean_ngld"] == pytest.approx(clips / readings) and field02["mean_cer"] == pytest.approx(1 / 30)
    for name, agg in text["groups"]["field"].items():
        if name not in ("field01", "field02"):
            assert agg["accuracy"] == 1.0 and agg["mean_ngld"] == 0.0, name  # lower case is still right
    total = sum(len(truth[d]) for d in DOCS) * CLIPS_PER_DOC * FRAMES
    o = text["overall"]
    assert (o["fields"], o["correct"], o["missing"], o["empty"]) == (total, total - wrong - clips, clips, 240)
    for document, agg in text["groups"]["document"].items():
        n = len(truth[document]) * CLIPS_PER_DOC * FRAMES
        assert (agg["fields"], agg["correct"]) == (n, n - CLIPS_PER_DOC * 11), document

    curves = text["curves"]
    pairs = sum(len(truth[d]) for d in DOCS) * CLIPS_PER_DOC
    # field01 by majority: W, W R (a tie: the first reached), W R R, W R R W (a tie), then the right one leads
    majority01 = [0, 0, 1, 0] + [1] * (FRAMES - 4)
    best01 = [0] + [1] * (FRAMES - 1)  # frame 2 reads it right with the higher confidence
    assert curves["overall"]["majority"] == pytest.approx(_expected_curve(majority01, pairs, clips))
    assert curves["overall"]["best"] == pytest.approx(_expected_curve(best01, pairs, clips))
    assert curves["overall"]["per_frame"] == pytest.approx((total - wrong - clips) / total)
    names = curves["by_type"]["name"]  # field01 is a name on these documents but one (18's is a lone 'P')
    named = sum(CLIPS_PER_DOC for d in DOCS if field_type(truth[d]["field01"]) == "name")
    assert named == clips - CLIPS_PER_DOC
    assert names["majority"][:5] == pytest.approx(_expected_curve(majority01[:5], names["fields"], named))

    clip_results = text["clip_results"]  # finish_clip: field01 right, field02 wrong, the rest not returned
    assert text["clips"] == clips
    assert clip_results["fields"] == pairs and clip_results["correct"] == clips
    assert clip_results["missing"] == pairs - 2 * clips and clip_results["empty"] == 2 * 2 * CLIPS_PER_DOC

    worst = text["worst"]
    assert {(w["document"], w["field"]) for w in worst} == {(d, f) for d in DOCS for f in ("field01", "field02")}
    assert [w["mean_ngld"] for w in worst] == sorted((w["mean_ngld"] for w in worst), reverse=True)
    for w in worst:
        assert w["truth"] == truth[w["document"]][w["field"]]
        if w["field"] == "field02":
            assert (w["frame"], w["text"], w["ngld"]) == (30, "", 1.0)
        else:
            assert w["frame"] == 1 and w["text"][1:] == w["truth"][1:].lower() and w["text"][0] in "qx"


def test_text_report_curve_matches_the_reference_combination(corrupt_run):
    """The report's one-pass curves equal scoring.text.accuracy_after_frames on the frames read back."""
    per_field: dict[tuple[str, str], tuple[list, str]] = {}
    with open_run(corrupt_run) as run:
        for frame in run.frames():
            for name, f in frame.fields.items():
                results, _ = per_field.setdefault((frame.clip, name), ([], f["truth"]))
                if not f.get("missing"):
                    results.append((f["text"], f["confidence"]))
    curves = build_report(corrupt_run).text["curves"]["overall"]
    clips = list(per_field.values())
    assert list(curves["majority"]) == accuracy_after_frames(clips, "majority")
    assert list(curves["best"]) == accuracy_after_frames(clips, "best")
    assert list(curves["characters"]) == accuracy_after_frames(clips, "characters")


def test_text_report_markdown_csv_and_html(corrupt_run, truth, tmp_path):
    text = midvbatch("report", corrupt_run).stdout
    section = text.split("## Text fields", 1)[1]
    for title in (
        "### Text by field type",
        "### Text by field",
        "### Text by condition",
        "### Text by device",
        "### Text by document",
        "### Text accuracy after k frames",
        "### Worst fields",
    ):
        assert title in section, title
    assert "| k | 1 | 2 | 3 | 5 | 10 | 15 | 20 | 30 | per frame |" in section
    assert text.index("## Text fields") < text.index("### Speed")
    assert f"| `{truth[DOCS[0]]['field02']}` | (nothing) |" in section  # not returned in frame 30

    rows = list(csv.reader(io.StringIO(midvbatch("report", corrupt_run, "--format", "csv").stdout)))
    header = rows[0]
    assert header[-14:] == [
        "fields",
        "fields_correct",
        "text_accuracy",
        "mean_ngld",
        "mean_cer",
        "fields_missing",
        "fields_empty",
        "text_accuracy_ci_low",
        "text_accuracy_ci_high",
        "mean_ngld_ci_low",
        "mean_ngld_ci_high",
        "mean_cer_ci_low",
        "mean_cer_ci_high",
        "mean_frames",
    ]
    assert all(len(r) == len(header) for r in rows)
    groupings = {r[0] for r in rows[1:]}
    assert {
        "text",
        "text_type",
        "text_field",
        "text_document",
        "text_clip",
        "text_clip_results",
        "text_majority_after_frames",
        "text_best_after_frames",
        "stream_alternatives_after_frames",
        "stream_fixed",
        "stream_stable",
        "stream_expected_distance",
    } <= groupings
    fixed5 = next(r for r in rows if r[:2] == ["stream_fixed", "5"])
    assert float(fixed5[header.index("mean_frames")]) == 5.0
    field01 = next(r for r in rows if r[:2] == ["text_field", "field01"])
    assert float(field01[header.index("text_accuracy")]) == pytest.approx(2 / 3)
    low, high = (float(field01[header.index(f"text_accuracy_ci_{b}")]) for b in ("low", "high"))
    assert low <= 2 / 3 <= high  # (every clip's field01 is right in 2 of 3 frames: a narrow interval)

    page = tmp_path / "report.html"
    assert midvbatch("report", corrupt_run, "--format", "html", "--out", page).returncode == 0
    html = page.read_text()
    assert "<h2>Text fields</h2>" in html and "alt='text_accuracy_after_frames'" in html
    assert "<h3>Video stream</h3>" in html and "alt='video_stream'" in html
    assert (tmp_path / "report-plots" / "text_accuracy_after_frames.png").stat().st_size > 1000
    for d in DOCS:  # each worst field's crop, inline
        assert f"<img alt='{d} field01' src='data:image/png;base64," in html


def test_text_report_html_without_the_dataset_has_no_crops(corrupt_run):
    report = build_report(corrupt_run)
    report.run["dataset"] = str(corrupt_run / "moved-away")
    html = render_html(report)
    assert "Worst fields" in html and "<img alt='01_alb_id field01'" not in html


def test_text_report_absent_when_no_field_is_read(text_dataset, tmp_path):
    run = _run(text_dataset, tmp_path / "run", "--pipeline", "frames", "--clips", "TA")
    assert _json(run)["text"] is None
    assert "Text fields" not in midvbatch("report", run).stdout
    header = midvbatch("report", run, "--format", "csv").stdout.splitlines()[0]
    assert header.startswith(
        "grouping,group,frames,accuracy,accuracy_iou,accuracy_mean_iou,accuracy_min_d,"
        "mean_iou_gt,mean_iou,mean_min_d,missing,mean_mean_iou,accuracy_ci_low,accuracy_ci_high,"
    )
    assert header.endswith(",mean_mean_iou_ci_low,mean_mean_iou_ci_high") and "fields" not in header
    assert "Text fields" not in render_markdown(build_report(run))


def _frame(clip: str, number: int, fields: dict) -> FrameResult:
    return FrameResult(clip, "01_alb_id", clip[:2], number, None, None, {}, {"fields": fields, "empty_fields": 0})


def _record(text: str | None, truth: str, confidence: float | None) -> dict:
    if text is None:  # not returned
        return {
            "truth": truth,
            "text": "",
            "confidence": None,
            "type": field_type(truth, "f"),
            **score_field("", truth).to_dict(),
            "missing": True,
        }
    return {
        "truth": truth,
        "text": text,
        "confidence": confidence,
        "type": field_type(truth, "f"),
        **score_field(text, truth).to_dict(),
        "missing": False,
    }


def _figures(frames: list[FrameResult]):
    tally = TextTally()
    for f in frames:
        tally.add(f)
    return tally.figures({"document": lambda f: f.document, "clip": lambda f: f.clip}, [])


def _after_frames(clips: list[tuple[list, str]], combine) -> list[float]:
    """The reference: per k, the results of each clip's first k frames (None: not returned, no
    result) combined by scoring.text's `combine`; a clip shorter than k counts with all it has."""
    longest = max(len(frames) for frames, _ in clips)
    curve = []
    for k in range(1, longest + 1):
        right = 0
        for frames, truth in clips:
            combined = combine([r for r in frames[:k] if r[0] is not None])
            right += combined is not None and normalize(combined) == normalize(truth)
        curve.append(right / len(clips))
    return curve


@pytest.mark.parametrize("returned_always", [True, False])
def test_text_report_one_pass_combination_equals_the_reference_on_random_clips(returned_always):
    rng = random.Random(5)
    readings = ["abo", "AB0", "ABC", "XBO", "abc"] + ([] if returned_always else [None])  # None: not returned
    frames, clips = [], []
    for c in range(80):
        clip, truth, read = f"TA{c:02d}", "ABO", []
        for number in range(1, rng.randint(1, 12) + 1):
            text, confidence = rng.choice(readings), rng.choice([None, 0.1, 0.5, 0.5, 0.9])  # ties
            frames.append(_frame(clip, number, {"f": _record(text, truth, confidence)}))
            read.append((text, confidence))
        clips.append((read, truth))
    curve = _figures(frames).curves.overall
    assert list(curve.majority) == _after_frames(clips, lambda rs: combine_majority([t for t, _ in rs]))
    assert list(curve.best) == _after_frames(clips, combine_best)
    assert list(curve.characters) == _after_frames(clips, combine_characters)
    if returned_always:  # then k frames are k results, as scoring.text.accuracy_after_frames counts them
        assert list(curve.majority) == accuracy_after_frames(clips, "majority")
        assert list(curve.best) == accuracy_after_frames(clips, "best")


def test_text_report_clips_of_several_documents_stay_out_of_the_curve():
    frames = [
        _frame("scan", 1, {"f": _record("SMITH", "SMITH", None)}),
        _frame("scan", 2, {"f": _record("JONES", "JONES", None)}),  # another document
        _frame("TA01", 1, {"f": _record("x", "SMITH", None)}),
    ]
    figures = _figures(frames)
    assert figures.curves.clips == 1 and figures.curves.left_out == 1
    assert figures.curves.overall.majority == (0.0,)
    assert figures.overall.fields == 3 and figures.overall.correct == 2
    assert len(figures.worst) == 1 and figures.worst[0].clip == "TA01"
