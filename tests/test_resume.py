"""Resuming a run whose dataset changed under it: each clip runs as this run's discovery finds it, or not at all."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import ledger_rows, midvbatch, write_video

from midvbatch.dataset.model import Clip, FrameRule


def _folder(root, names):
    root.mkdir()
    for name in names:
        write_video(root / name, frames=4)
    return root


def test_resume_a_queued_clip_discovery_no_longer_finds_is_marked_dead_not_run(tmp_path):
    """A clip left in the queue whose files moved away since is marked dead with its reason, as a missing video is,
    instead of being run from what the ledger remembers of it; the other clips run."""
    data = _folder(tmp_path / "videos", ["a.mp4", "b.mp4", "c.mp4"])
    out = tmp_path / "run"
    first = midvbatch("run", data, "--out", out, "--pipeline", "probe", "--workers", "1", "--no-check")
    assert first.returncode == 0, first.stderr
    db = sqlite3.connect(out / "ledger.sqlite")
    db.execute("UPDATE tasks SET state = 'pending', attempts = 0 WHERE clip IN ('b.mp4', 'c.mp4')")
    db.commit()
    db.close()
    (data / "b.mp4").rename(data / "b.mp4.moved")  # b leaves discovery; the ledger still names its old video
    again = midvbatch("run", data, "--out", out, "--pipeline", "probe", "--workers", "1", "--no-check")
    assert again.returncode == 1, again.stderr  # a dead clip
    assert "Traceback" not in again.stderr
    rows = dict(ledger_rows(out, "SELECT clip, state || ': ' || COALESCE(error, '') FROM tasks"))
    assert rows == {"a.mp4": "done: ", "b.mp4": "dead: clip no longer found in the dataset", "c.mp4": "done: "}
    assert "b.mp4 dead (permanent: clip no longer found in the dataset) after 1 attempt(s)" in again.stderr


def test_resume_runs_each_clip_as_this_discovery_found_it(tmp_path):
    """The ledger keeps each queued clip's record from the discovery of the run that uses it: a video replaced by
    one of another container runs from the new file."""
    data = _folder(tmp_path / "videos", ["a.mp4"])
    out = tmp_path / "run"
    assert midvbatch("run", data, "--out", out, "--pipeline", "probe", "--workers", "1", "--no-check").returncode == 0
    [record] = [json.loads(r) for (r,) in ledger_rows(out, "SELECT record FROM clip_records")]
    assert Clip.from_record(record) == Clip(id="a.mp4", document="", code="a", video=data / "a.mp4", format="folder")


def test_resume_clip_records_round_trip_every_field():
    clip = Clip(
        id="CA01",
        document="01_alb_id",
        code="CA",
        video=None,
        format="midv2020",
        condition="clutter",
        device="Apple iPhone 5",
        ground_truth={1: Path("/d/gt/CA01_01.json")},
        images={7: Path("/d/frames/000007.jpg")},
        frame_rule=FrameRule.by_number([1, 7, 13]),
        frame_size=(1080, 1920),
        frame_digits=6,
        template="/d/annotations/alb_id.json",
    )
    assert Clip.from_record(json.loads(json.dumps(clip.to_record()))) == clip
