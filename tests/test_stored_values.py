"""Nothing a processor returns breaks a later command: each value later code could not read is a warning
naming the clip and field, and is left out or mended as it is stored; the rest is kept. Values an earlier
midvbatch stored are read safely too."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import midvbatch

from midvbatch import open_run
from midvbatch.cli import cli
from midvbatch.dataset.synth import SynthConfig, synthesize

READING = 256  # characters of a reading kept (docs/processors.md)


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("stored")
    synthesize(root / "data", SynthConfig(docs="01_*", clips="TA", seed=3))
    return root


@pytest.fixture(scope="module")
def hostile(one_clip):
    """A run of text_processors:Hostile, which returns every kind of value later commands could not read."""
    out = one_clip / "hostile"
    done = midvbatch("run", one_clip / "data", "--out", out, "--processor", "text_processors:Hostile", "--workers", 0)
    return out, done


@pytest.fixture(scope="module")
def older(one_clip):
    """A ground-truth run whose ledger holds what an earlier midvbatch stored unchecked: a reading with a lone
    surrogate, a confidence of 1e308, a reading of 20,000 characters."""
    out = one_clip / "older"
    done = midvbatch("run", one_clip / "data", "--out", out, "--pipeline", "ground-truth", "--workers", 0)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(out / "ledger.sqlite")
    for task, frame, result, scores in db.execute("SELECT task, frame, result, scores FROM frames").fetchall():
        result, scores = json.loads(result), json.loads(scores)
        bad = {"field01": ("POP\ud800ESCU", 0.5), "field02": ("CLAIRE", 1e308), "field03": ("9" * 20_000, None)}
        for name, (text, confidence) in bad.items():
            result["fields"][name] = {"text": text, "confidence": confidence}
            scores["fields"][name].update(text=text, confidence=confidence, distance=len(text))
        db.execute(
            "UPDATE frames SET result = ?, scores = ? WHERE task = ? AND frame = ?",
            (json.dumps(result), json.dumps(scores), task, frame),
        )
    db.commit()
    db.close()
    return out


def test_stored_values_each_bad_value_is_a_warning_naming_clip_and_field(hostile):
    out, done = hostile
    assert done.returncode == 0, done.stderr
    log = (out / "logs" / "run.jsonl").read_text(encoding="utf-8")
    for line in [
        "TA01: field 'field01': 'POP\\ud800ESCU' is not valid Unicode (a lone surrogate); stored with U+FFFD in "
        "its place (in 30 frames)",
        "TA01: field 'field02': confidence nan is not a number; ignored (in 30 frames)",
        "TA01: field 'field03': confidence 1e+308 is not from 0 to 1; ignored (in 30 frames)",
        f"TA01: field 'field04': a reading of 10,000,000 characters; cut to its first {READING} (in 30 frames)",
        "TA01: boxes[0][1]: nan is not a finite number; stored as null (in 30 frames)",
        "TA01: boxes[1][0]: inf is not a finite number; stored as null (in 30 frames)",
        "TA01: quad [[1e+308, 0], [1, 0], [1, 1], [0, 1]] is not 4 finite corners within 1,000,000 pixels; "
        "scored as no prediction (kept as text in quad_raw) (in 15 frames)",
        "TA01: field 'field02': 'CLA\\udcffIRE' is not valid Unicode (a lone surrogate); stored with U+FFFD in "
        "its place",
    ]:
        assert line in done.stderr
        assert json.dumps(line, ensure_ascii=False)[1:-1] in log


def test_stored_values_what_can_be_kept_is_kept(hostile):
    out, done = hostile
    with open_run(out) as run:
        frames = list(run.frames())
        clip = next(run.clips("done"))
    assert len(frames) == 30
    for frame in frames:
        f = frame.fields
        assert (f["field01"]["text"], f["field01"]["confidence"]) == ("POP\ufffdESCU", 0.5)
        assert f["field02"]["correct"] and f["field02"]["confidence"] is None
        assert f["field03"]["correct"] and f["field03"]["confidence"] is None
        assert f["field04"]["text"] == "X" * READING and frame.result["fields"]["field04"] == "X" * READING
        assert f["field05"]["correct"] and f["field05"]["confidence"] == 0.9
        assert frame.result["boxes"] == [[1.0, None], [None, 2.0]]
        if frame.number % 2:
            assert frame.quad is None and frame.result["quad_raw"].startswith("[[1e+308")
        else:
            assert frame.iou_gt == pytest.approx(1.0)
    assert clip.fields["field01"]["correct"] and clip.fields["field01"]["confidence"] is None
    assert clip.fields["field02"]["text"] == "CLA\ufffdIRE"


def _invoke(args, tmp_path) -> str:
    """Run a command in this process (CliRunner: many small calls, no interpreter to start each); its output
    (the file of --out when given)."""
    args = [str(a).replace("OUT", str(tmp_path / "out")) for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    text = result.output
    if "--out" in args:
        text = (tmp_path / "out").read_text(encoding="utf-8")
    return text


COMMANDS = [
    ("report", "RUN"),
    ("report", "RUN", "--format", "json"),
    ("report", "RUN", "--format", "csv"),
    ("report", "RUN", "--format", "html", "--out", "OUT"),
    ("export", "RUN"),
    ("export", "RUN", "--fields", "--out", "OUT"),
    ("export", "RUN", "--format", "csv", "--out", "OUT"),
    ("export", "RUN", "--format", "csv", "--fields"),
    ("export", "RUN", "--format", "coco", "--predictions", "--fields"),
    ("export", "RUN", "--format", "smartengines"),
    ("status", "RUN"),
    ("failures", "RUN"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(a.strip("-") for a in c if a != "RUN"))
def test_stored_values_every_command_reads_the_run(hostile, tmp_path, command):
    out, _ = hostile
    text = _invoke([out if a == "RUN" else a for a in command], tmp_path)
    kept = {"status": "1/1 done", "failures": "0 clips failed", "smartengines": '"system_result_quad_exists": true'}
    key = "smartengines" if "smartengines" in command else command[0]
    assert kept.get(key, "ALB") in text or (command[0] == "report" and "field05" in text)  # what was right is there
    if command[:2] == ("report", "RUN") and len(command) == 2:
        assert len(text) < 20_000  # the 10 MB reading is not printed whole
        assert "X" * 59 + "\u2026" in text and "X" * 61 not in text


# those that write the readings out as they are (the other exports write them as JSON in ASCII, or not at all)
OLDER = [
    c
    for c in COMMANDS
    if c[0] == "report"
    or c[0] == "export"
    and "coco" not in c
    and "smartengines" not in c
    and ("csv" not in c or "--fields" in c)
]


@pytest.mark.parametrize("command", OLDER, ids=lambda c: "-".join(a.strip("-") for a in c if a != "RUN"))
def test_stored_values_what_an_earlier_version_stored_is_read(older, tmp_path, command):
    text = _invoke([older if a == "RUN" else a for a in command], tmp_path)
    assert "ALB" in text or "field05" in text
    if command[0] == "report" and "json" not in command and "csv" not in command:
        assert "9" * 61 not in text  # a 20,000-character reading is shown cut short
    if command[:2] == ("export", "RUN") and len(command) == 2:
        first = json.loads(text.splitlines()[0])
        assert first["result"]["fields"]["field01"]["text"] == "POP\ufffdESCU"


@pytest.mark.parametrize("mode", ["message", "artifact"])
def test_stored_values_an_unstorable_failure_is_recorded_not_a_crash(one_clip, tmp_path, mode):
    out = tmp_path / "run"
    done = midvbatch(
        "run",
        one_clip / "data",
        "--out",
        out,
        "--processor",
        "text_processors:Unstorable",
        "--option",
        f"mode={mode}",
        "--workers",
        0,
        "--retries",
        0,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "TA01 dead" in done.stderr
    failed = midvbatch("failures", out, "--json")
    assert failed.returncode == 0, failed.stderr
    [clip] = json.loads(failed.stdout)
    reason = {
        "message": "ValueError: could not read POP\ufffdESCU",
        "artifact": "artifact path 'read-\\udcffx.txt' is not valid Unicode",
    }[mode]
    assert reason in clip["error"]


def test_stored_values_confidences_out_of_range_do_not_break_the_combinations():
    from midvbatch.scoring.text import combine

    readings = [("A", 1e308), ("B", float("nan")), ("B", -5.0), ("C", math.inf)]
    assert combine(readings, "best") == combine(readings, "characters") == "A"  # held to 1, first of equals
