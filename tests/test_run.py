"""The batch engine end to end: run, resume, refuse, plan, status, export, plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cv2
import psutil
import pytest
from click.testing import CliRunner

from conftest import assert_every_clip_once, done_count, env, ledger_rows, midvbatch, start, wait_for, workers_of

from midvbatch.cli import cli
from midvbatch.config import RunConfig
from midvbatch.engine.run import run


def test_run_frames_pipeline_records_every_frame(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch("run", dataset, "--out", out, "--pipeline", "frames", "--workers", 2)
    assert result.returncode == 0, result.stderr
    assert "finished: 20 done, 0 dead" in result.stdout
    assert_every_clip_once(out)
    records = [json.loads(line) for line in midvbatch("export", out).stdout.splitlines()]
    assert {r["clip"] for r in records} == {
        f"{c}{d}" for c in ("TA", "TS", "KA", "KS", "HA", "HS", "PA", "PS", "CA", "CS") for d in ("01", "02")
    }
    assert all(r["result"] == {"width": 180, "height": 320} for r in records)
    assert sorted(r["frame"] for r in records if r["clip"] == "TA01") == list(range(1, 31))
    timing = ledger_rows(out, "SELECT wall_seconds, stage_seconds, cpu_seconds, peak_rss, attempts FROM tasks")
    for wall, stages, cpu, rss, attempts in timing:
        assert wall > 0 and cpu >= 0 and rss > 10_000_000 and attempts == 1
        assert set(json.loads(stages)) >= {"decode", "process_frame"}
    assert ledger_rows(out, "SELECT COUNT(DISTINCT clip) FROM events WHERE message = 'done' AND attempt = 1") == [(20,)]
    config = (out / "config.toml").read_text()
    assert 'pipeline = "frames"' in config and "workers = 2" in config
    log = [json.loads(line) for line in (out / "logs" / "run.jsonl").read_text().splitlines()]
    assert {"ts", "level", "clip", "attempt", "stage", "message"} <= set(log[0])
    assert any(e["clip"] == "TA01" and e["attempt"] == 1 for e in log)


def test_run_resume_runs_nothing_twice(dataset, tmp_path):
    out = tmp_path / "run"
    gt = ("--pipeline", "ground-truth")  # (the cheapest: what is run does not matter here)
    assert midvbatch("run", dataset, "--out", out, "--clips", "T*", *gt).returncode == 0
    first = ledger_rows(out, "SELECT clip, finished_at FROM tasks ORDER BY clip")
    again = midvbatch("run", dataset, "--out", out, "--clips", "T*", *gt)
    assert again.returncode == 0, again.stderr
    assert ledger_rows(out, "SELECT clip, finished_at FROM tasks ORDER BY clip") == first
    assert "resuming: 4 clips done" in again.stderr
    # widening the selection adds clips and runs only those
    wider = midvbatch("run", dataset, "--out", out, "--clips", "T*", "--clips", "K*", *gt)
    assert wider.returncode == 0
    assert ledger_rows(out, "SELECT COUNT(*), SUM(attempts) FROM tasks WHERE state = 'done'") == [(8, 8)]


def test_run_refuses_a_changed_configuration_unless_restart(dataset, tmp_path):
    out = tmp_path / "run"
    assert midvbatch("run", dataset, "--out", out, "--clips", "TA01", "--pipeline", "frames").returncode == 0
    refused = midvbatch("run", dataset, "--out", out, "--clips", "TA01", "--pipeline", "probe")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: {out}: this run folder holds results of another configuration (processor frames, 1 clip done); "
        "give --restart to discard them, or choose another --out"
    ]
    restarted = midvbatch("run", dataset, "--out", out, "--clips", "TA01", "--pipeline", "probe", "--restart")
    assert restarted.returncode == 0, restarted.stderr
    record = json.loads(midvbatch("export", out).stdout)
    assert record["frame"] is None and record["result"]["codec"] == "h264"


def test_run_plugin_processor_runs_in_workers_with_setup_once_per_worker(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:mean_colour",
        "--workers",
        2,
        "--option",
        "delay=0",
        "--docs",
        "01_*",
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in midvbatch("export", out).stdout.splitlines()]
    assert len(records) == 300
    assert all(r["result"]["has_quad"] and r["result"]["id"] == f"{r['clip']}_{r['frame']:02d}" for r in records)
    assert {r["result"]["setups"] for r in records} == {1}
    assert len({r["result"]["pid"] for r in records}) == 2
    assert os.getpid() not in {r["result"]["pid"] for r in records}


@pytest.mark.parametrize("workers, pool", [("0", "process"), ("2", "thread")])
def test_run_inline_and_thread_pool(dataset, tmp_path, workers, pool):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:mean_colour",
        "--workers",
        workers,
        "--pool",
        pool,
        "--docs",
        "01_*",
    )
    assert result.returncode == 0, result.stderr
    assert_every_clip_once(out, clips=10)
    pids = {json.loads(line)["result"]["pid"] for line in midvbatch("export", out).stdout.splitlines()}
    assert len(pids) == 1  # inline and threads: all in the orchestrator's process


def test_run_extract_pipeline_writes_frames_under_final_names(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch("run", dataset, "--out", out, "--pipeline", "extract", "--image-format", "jpg", "--clips", "CA")
    assert result.returncode == 0, result.stderr
    files = sorted((out / "frames").rglob("*.jpg"))
    assert [f.relative_to(out).as_posix() for f in files[:2]] == [
        "frames/01_alb_id/CA/CA01_01.jpg",
        "frames/01_alb_id/CA/CA01_02.jpg",
    ]
    assert len(files) == 60
    assert cv2.imread(str(files[0])).shape == (320, 180, 3)
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())


def test_run_processor_output_that_is_not_json_fails_the_clip_with_reason(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch(
        "run", dataset, "--out", out, "--processor", "processors:NotJson", "--clips", "TA", "--docs", "01_*"
    )
    assert result.returncode == 1
    row = ledger_rows(out, "SELECT state, error_class, error FROM tasks")[0]
    assert row[0] == "dead" and row[1] == "permanent"
    assert "cannot be stored as JSON" in row[2]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--processor", "nosuchmodule:make"], "cannot import module 'nosuchmodule'"),
        (["--processor", "processors:nothing"], "module 'processors' has no 'nothing'"),
        (["--processor", "nonesuch"], "unknown processor 'nonesuch'"),
        (["--processor", "processors:Faults", "--option", "dleay=1"], "does not take these options"),
        (["--pipeline", "ground-truth", "--option", "colour=red"], "does not take these options"),
    ],
)
def test_run_bad_processor_is_refused_before_anything_is_created(dataset, tmp_path, args, message):
    out = tmp_path / "run"
    result = midvbatch("run", dataset, "--out", out, *args, "--clips", "TA01", "--workers", 0)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not out.exists()  # nothing created: the corrected command just works
    fixed = midvbatch("run", dataset, "--out", out, "--pipeline", "ground-truth", "--clips", "TA01", "--workers", 0)
    assert fixed.returncode == 0, fixed.stderr


def test_run_bad_input_is_one_line(tmp_path, dataset):
    result = midvbatch("run", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert result.returncode == 1
    assert result.stderr == f"Error: {tmp_path / 'nowhere'}: no such folder\n"
    assert not (tmp_path / "run").exists()
    result = midvbatch("run", dataset, "--out", tmp_path / "run", "--priority", "colour=red:1")
    assert result.returncode == 1 and "bad priority rule 'colour=red:1'" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = [\n")
    result = midvbatch("run", dataset, "--out", tmp_path / "run", "--config", bad)
    assert result.returncode == 1 and result.stderr.startswith(f"Error: {bad}: bad TOML")


def test_run_options_from_toml_and_flags_win(dataset, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'dataset = "{dataset}"\nout = "{tmp_path / "run"}"\nclips = ["CS"]\nworkers = 1\n'
        'processor = "processors:mean_colour"\n[options]\ndelay = 0.0\n'
    )
    result = midvbatch("run", "--config", toml, "--workers", "2")
    assert result.returncode == 0, result.stderr
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert "workers = 2" in saved and 'clips = [\n    "CS",\n]' in saved and "delay = 0.0" in saved
    assert_every_clip_once(tmp_path / "run", clips=2)


def test_plan_orders_by_priority_then_cost(dataset):
    result = CliRunner().invoke(
        cli, ["plan", str(dataset), "--priority", "clip=H*:10", "--priority", "doc=02_*:5", "--json"]
    )
    assert result.exit_code == 0, result.output
    queue = json.loads(result.output)
    ids = [q["clip"] for q in queue]
    assert ids[:2] == sorted(ids[:2], key=lambda c: -next(q["cost_mb"] for q in queue if q["clip"] == c))
    assert set(ids[:2]) == {"HA02", "HS02"}  # 10 + 5
    assert set(ids[2:4]) == {"HA01", "HS01"}  # 10
    assert {q["priority"] for q in queue[4:12]} == {5}
    for a, b in zip(queue, queue[1:]):
        assert (a["priority"], a["cost_mb"]) >= (b["priority"], b["cost_mb"])
    limited = json.loads(CliRunner().invoke(cli, ["plan", str(dataset), "--limit", "3", "--json"]).output)
    assert [q["clip"] for q in limited] == [q["clip"] for q in sorted(queue, key=lambda q: (-q["cost_mb"], q["clip"]))][
        :3
    ]


def test_run_takes_the_plans_order_and_limit_and_keeps_no_discovery_file(dataset, tmp_path):
    """A run reads its clips into a file of discovery's own and plans them there: its queue is `plan`'s order cut
    at --limit, its dataset fingerprint that of the whole dataset, and the file is gone after, as after an error."""
    from midvbatch.dataset import discover
    from midvbatch.engine.ledger import Ledger
    from midvbatch.engine.run.resume import identity, identity_line
    from midvbatch.engine.scheduler import video_size

    rules = ["--priority", "clip=H*:10", "--priority", "doc=02_*:5"]
    planned = json.loads(CliRunner().invoke(cli, ["plan", str(dataset), *rules, "--json"]).output)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    own_tmp = {**env(), "TMPDIR": str(scratch)}
    out = tmp_path / "run"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            str(dataset),
            "--out",
            str(out),
            *rules,
            "--limit",
            "5",
            "--pipeline",
            "ground-truth",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        env=own_tmp,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    queue = [c for (c,) in ledger_rows(out, "SELECT clip FROM tasks ORDER BY priority DESC, position")]
    assert queue == [q["clip"] for q in planned][:5]
    found = discover(dataset)
    lines = sorted((c.id, identity_line(c, video_size(c))) for c in found.clips)
    whole = identity(dataset, found.format, (line for _, line in lines), len(lines))
    ledger = Ledger(out, readonly=True)
    try:
        assert ledger.get_meta("dataset_identity") == whole
    finally:
        ledger.close()
    assert list(scratch.iterdir()) == []
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            str(dataset),
            "--out",
            str(tmp_path / "none"),
            "--docs",
            "99_*",
            "--pipeline",
            "ground-truth",
        ],
        capture_output=True,
        text=True,
        env=own_tmp,
        timeout=120,
    )
    assert refused.returncode != 0 and "no clip matches --docs 99_*" in refused.stderr, refused.stderr
    assert list(scratch.iterdir()) == [] and not (tmp_path / "none").exists()


def test_run_status_while_running_and_after(dataset, tmp_path):
    out = tmp_path / "run"
    proc = start(
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:mean_colour",
        "--option",
        "delay=0.02",
        "--workers",
        "2",
    )
    try:

        def running():
            r = midvbatch("status", out, "--json")
            if r.returncode != 0:
                return None
            s = json.loads(r.stdout)
            return s if s["state"] == "running" and s["workers"] and s["frames_per_second"] > 0 else None

        snap = wait_for(running)
        for key in (
            "total",
            "pending",
            "running",
            "done",
            "failed",
            "dead",
            "percent",
            "eta_seconds",
            "clips_per_second",
            "frames_per_second",
        ):
            assert key in snap
        assert snap["total"] == 20 and 0 < snap["percent"] < 100
        assert snap["workers"][0]["clip"] and snap["workers"][0]["stage"]
        assert snap["frames_per_second"] > 0 and snap["eta_seconds"] > 0
        second = midvbatch("run", dataset, "--out", out)
        assert second.returncode == 1 and "another midvbatch run (pid" in second.stderr
    finally:
        proc.wait(timeout=120)
    after = json.loads(midvbatch("status", out, "--json").stdout)
    assert after["state"] == "finished" and after["done"] == 20 and after["workers"] == []


@pytest.mark.parametrize("after_done", [0, 3, 6])  # of 10 clips
def test_run_survives_sigkill_of_the_orchestrator(dataset, tmp_path, after_done):
    out = tmp_path / "run"
    args = ("run", dataset, "--out", out, "--pipeline", "extract", "--workers", "2", "--docs", "01_*")
    proc = start(*args)
    wait_for(lambda: done_count(out) >= after_done and len(workers_of(proc.pid)) >= 2)
    children = workers_of(proc.pid)
    proc.kill()
    proc.wait()
    # workers notice their parent is gone and exit by themselves
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), timeout=10)
    for f in (out / "frames").rglob("*.png") if (out / "frames").exists() else []:
        assert cv2.imread(str(f)) is not None, f"partial artifact {f}"
    resumed = midvbatch(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_clip_once(out, clips=10)
    assert len(list((out / "frames").rglob("*.png"))) == 300
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())


def test_run_ctrl_c_finishes_in_flight_clips_and_exits_130(dataset, tmp_path):
    out = tmp_path / "run"
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:mean_colour",
        "--option",
        "delay=0.01",
        "--workers",
        "2",
        "--docs",
        "01_*",
    )
    proc = start(*args)
    wait_for(lambda: done_count(out) >= 2)
    children = workers_of(proc.pid)
    signalled = time.time()
    proc.send_signal(2)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    states = dict(ledger_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
    assert states.get("running", 0) == 0 and states["done"] < 10
    # no new clip starts after Ctrl-C (finished_at is when the orchestrator records a clip, so a clip done
    # just before the signal may be recorded after it: started_at is the check)
    assert ledger_rows(out, f"SELECT COUNT(*) FROM tasks WHERE started_at > {signalled}")[0][0] == 0
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), timeout=10)
    status = json.loads(midvbatch("status", out, "--json").stdout)
    assert status["state"] == "interrupted"
    resumed = midvbatch(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_clip_once(out, clips=10)


def test_run_library_call_returns_summary(dataset, tmp_path):
    summary = run(
        RunConfig(dataset=str(dataset), out=str(tmp_path / "run"), clips=["PS"], workers=0), install_signals=False
    )
    assert summary.state == "finished" and summary.exit_code == 0
    assert summary.counts["done"] == 2


def test_export_csv_flattens_results(dataset, tmp_path):
    out = tmp_path / "run"
    assert midvbatch("run", dataset, "--out", out, "--clips", "TA01", "--pipeline", "frames").returncode == 0
    result = midvbatch("export", out, "--format", "csv", "--out", tmp_path / "r.csv")
    assert result.returncode == 0 and "wrote 30 records" in result.stdout
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "clip,document,frame,time,seconds,result.width,result.height"
    assert lines[1].startswith("TA01,01_alb_id,1,")
    assert lines[1].endswith(",180,320")


def test_run_processor_registered_by_entry_point(dataset, tmp_path):
    site = tmp_path / "site"
    info = site / "midvbatch_testplugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: midvbatch-testplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[midvbatch.processors]\nmean-colour = processors:mean_colour\n")
    e = env()
    e["PYTHONPATH"] = os.pathsep.join([str(site), e["PYTHONPATH"]])
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            str(dataset),
            "--out",
            str(out),
            "--processor",
            "mean-colour",
            "--clips",
            "KS01",
        ],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first = json.loads(midvbatch("export", out).stdout.splitlines()[0])
    assert first["result"]["id"] == "KS01_01"


def test_run_inline_debug_log_shows_the_traceback(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:NotJson",
        "--clips",
        "TS01",
        "--workers",
        0,
        "--log-level",
        "debug",
    )
    assert result.returncode == 1
    assert "TS01 dead (permanent" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr and "_check_json" in result.stderr


def test_run_artifact_paths_cannot_leave_tmp_or_touch_the_run_files(tmp_path):
    from midvbatch.errors import ProcessorError
    from midvbatch.pipeline.processor import ClipInfo

    clip = ClipInfo("TA01", "01_alb_id", "TA", "table", None, None, 30, 10.0, output_dir=tmp_path / "tmp" / "1-1")
    assert clip.artifact("frames/a.png") == tmp_path / "tmp" / "1-1" / "frames" / "a.png"
    for bad in (
        "/etc/passwd",
        "../x",
        "frames/../../x",
        "ledger.sqlite",
        "ledger.sqlite-wal",
        "lock",
        "config.toml",
        "logs/run.jsonl",
        "tmp/x",
    ):
        with pytest.raises(ProcessorError, match="must be relative"):
            clip.artifact(bad)


def test_run_extract_on_plain_videos_keeps_same_stem_videos_apart(tmp_path):
    from conftest import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "x.mov", frames=95)
    write_video(folder / "x.mp4", frames=95)
    out = tmp_path / "run"
    result = midvbatch("run", folder, "--out", out, "--pipeline", "extract")
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(out).as_posix() for p in (out / "frames").rglob("*.png"))
    assert len(files) == 60 and files[0] == "frames/x.mov/01.png" and files[-1] == "frames/x.mp4/30.png"


def test_run_without_a_usable_temporary_folder_is_one_line_and_creates_nothing(dataset, tmp_path, monkeypatch):
    """Discovery keeps what it finds in a file of the temporary folder: where none can be made, the run says so
    in one line, before the run folder exists."""
    import tempfile

    from midvbatch.errors import MidvBatchError

    not_a_folder = tmp_path / "tmp-is-a-file"
    not_a_folder.write_text("a user's file\n")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    out = tmp_path / "run"
    with pytest.raises(MidvBatchError) as caught:
        run(RunConfig(dataset=str(dataset), out=str(out), pipeline="ground-truth", workers=0), install_signals=False)
    message = str(caught.value)
    assert "cannot make a file for the clips discovery found" in message and "TMPDIR" in message, message
    assert "\n" not in message and str(not_a_folder) in message
    assert not out.exists() and not_a_folder.read_text() == "a user's file\n"
