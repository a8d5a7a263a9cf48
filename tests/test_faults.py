"""Error recovery and resources: injected faults, retries, timeouts, crashes, memory and disk floors."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_every_clip_once, done_count, ledger_rows, midvbatch, start, wait_for, workers_of

from midvbatch.config import RunConfig
from midvbatch.engine.run import run
from midvbatch.results.status import run_status

FAULTS = {
    "TA01": "transient-once",
    "TS01": "permanent",
    "KA01": "error",
    "KS01": "segfault",
    "HA01": "exit3",
    "HS01": "sigkill",
    "PA01": "hang",
    "PS01": "memory",
}


def tasks(run_dir: Path) -> dict[str, dict]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    rows = {r["clip"]: dict(r) for r in db.execute("SELECT * FROM tasks")}
    db.close()
    return rows


@pytest.mark.timeout(180)
def test_faults_every_kind_is_isolated_classified_and_retried(dataset, tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--docs",
        "01_*",
        "--processor",
        "processors:Faults",
        "--option",
        f"faults={json.dumps(FAULTS)}",
        "--option",
        f"state_dir={tmp_path}",
        "--option",
        "memory_mb=700",
        "--workers",
        2,
        "--retries",
        1,
        "--retry-delay",
        "0.2",
        "--task-timeout",
        3,
        "--worker-memory",
        "400MiB",
        timeout=170,
    )
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result.stderr  # some clips dead
    t = tasks(out)
    assert {c for c, r in t.items() if r["state"] == "done"} == {"TA01", "CA01", "CS01"}
    assert t["TA01"]["attempts"] == 2  # transient once, then done
    expect = {  # clip: (error class, attempts)
        "TS01": ("permanent", 1),  # never retried
        "KA01": ("error", 2),
        "KS01": ("crash", 2),
        "HA01": ("crash", 2),
        "HS01": ("crash", 2),
        "PA01": ("timeout", 2),
        "PS01": ("memory", 2),
    }
    for clip, (error_class, attempts) in expect.items():
        assert (t[clip]["state"], t[clip]["error_class"], t[clip]["attempts"]) == ("dead", error_class, attempts), clip
    assert t["KS01"]["signal"] == 11 and t["HS01"]["signal"] == 9
    assert t["HA01"]["exitcode"] == 3 and "exited with code 3" in t["HA01"]["error"]
    assert t["PA01"]["error"] == "still running after 3 s; worker killed"
    assert "passed the limit of 400 MiB" in t["PS01"]["error"]
    assert "corrupt input (injected)" in t["TS01"]["error"] and "PermanentError" in t["TS01"]["traceback"]
    assert t["KA01"]["stage"] == "process_frame"
    assert elapsed < 120
    # the failures report
    report = json.loads(midvbatch("failures", out, "--json").stdout)
    assert {r["clip"] for r in report} == set(expect)
    ks = next(r for r in report if r["clip"] == "KS01")
    assert ks["signal"] == 11 and ks["error_class"] == "crash" and ks["attempts"] == 2
    text = midvbatch("failures", out).stdout
    assert "KS01" in text and "(signal 11)" in text and "7 clips failed: 7 dead" in text
    csv_lines = midvbatch("failures", out, "--csv").stdout.splitlines()
    assert csv_lines[0].startswith("clip,document,state,attempts,error_class") and len(csv_lines) >= 8
    status = json.loads(midvbatch("status", out, "--json").stdout)
    assert status["errors"] == {"crash": 3, "error": 1, "memory": 1, "permanent": 1, "timeout": 1}
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())


def test_faults_retry_revives_dead_clips_with_fresh_attempts(dataset, tmp_path):
    out = tmp_path / "run"
    faults = tmp_path / "faults.json"  # the "processor" reads its faults here: editing it is fixing it
    faults.write_text(json.dumps({"TA02": "permanent", "TS02": "permanent"}))
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:Faults",
        "--option",
        f"faults_file={faults}",
        "--clips",
        "T*",
        "--docs",
        "02_*",
    )
    assert midvbatch(*args).returncode == 1
    assert {c for c, r in tasks(out).items() if r["state"] == "dead"} == {"TA02", "TS02"}
    nothing = midvbatch("retry", out)
    assert nothing.returncode == 1 and "--clip PATTERN (repeatable) or --all-dead" in nothing.stderr
    assert midvbatch("retry", out, "--clip", "K*").stderr.strip().endswith("no dead clip matches K*")
    faults.write_text(json.dumps({"TS02": "permanent"}))  # TA02 fixed
    result = midvbatch("retry", out, "--clip", "TA*")
    assert result.returncode == 1, result.stderr  # TS02 is still dead
    assert "retrying 1 clip: TA02" in result.stdout
    # retry runs what the folder's config.toml names, and says so first
    assert "the run's config.toml says: processor processors:Faults" in result.stderr
    assert "(imports processors from" in result.stderr
    t = tasks(out)
    assert (t["TA02"]["state"], t["TA02"]["attempts"]) == ("done", 1)
    assert t["TS02"]["state"] == "dead"
    faults.write_text("{}")
    result = midvbatch("retry", out, "--all-dead")
    assert result.returncode == 0 and "retrying 1 clip: TS02" in result.stdout
    assert_every_clip_once(out, clips=2)


def test_faults_max_failures_stops_dispatching(dataset, tmp_path):
    out = tmp_path / "run"
    faults = {c: "permanent" for c in ("TA01", "TS01", "KA01", "KS01")}
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:Faults",
        "--option",
        f"faults={json.dumps(faults)}",
        "--max-failures",
        2,
        "--workers",
        1,
        "--priority",
        "clip=[TK]*:5",
        "--docs",
        "01_*",
    )
    assert result.returncode == 1
    assert "--max-failures 2" in result.stderr and "stopped because too many dead clips" in result.stderr
    t = tasks(out)
    assert sum(r["state"] == "dead" for r in t.values()) in (2, 3)  # in flight when the second died: finished
    assert sum(r["state"] == "pending" for r in t.values()) >= 5
    assert json.loads(midvbatch("status", out, "--json").stdout)["state"] == "interrupted"


class Reading:
    """An injectable reading, low until told otherwise; counts its calls."""

    def __init__(self, low: int, high: int, total: int):
        self.low, self.high, self.total = low, high, total
        self.ok = threading.Event()
        self.calls = 0

    def memory(self):
        self.calls += 1
        return (self.high if self.ok.is_set() else self.low), self.total

    def disk(self, path):
        self.calls += 1
        return (self.high if self.ok.is_set() else self.low), self.total


def test_faults_low_memory_reading_pauses_then_resumes(dataset, tmp_path):
    """The reading reaches the run, its pause the status and the log; the disk floor's pause is the same decision
    (tests/test_run_state.py), its reading wired as test_faults_disk_full_with_stop_stops_cleanly shows."""
    out = tmp_path / "run"
    reading = Reading(low=100 * 2**20, high=50 * 2**30, total=64 * 2**30)
    normal = Reading(low=50 * 2**30, high=50 * 2**30, total=64 * 2**30)
    config = RunConfig(
        dataset=str(dataset), out=str(out), clips=["C*"], workers=1, min_free_memory="2GiB", min_free_disk="2GiB"
    )
    summary = {}

    def go():
        summary["run"] = run(config, install_signals=False, memory_reading=reading.memory, disk_reading=normal.disk)

    thread = threading.Thread(target=go)
    thread.start()
    try:
        snap = wait_for(lambda: (s := _status(out)) and s.state == "paused" and s, timeout=30)
        assert snap.paused_reason == "memory" and snap.done == 0 and snap.running == 0
        time.sleep(0.5)
        assert _status(out).done == 0  # still waiting
        reading.ok.set()
    finally:
        reading.ok.set()
        thread.join(timeout=60)
    assert summary["run"].state == "finished" and summary["run"].counts["done"] == 4
    log = (out / "logs" / "run.jsonl").read_text()
    assert "paused (memory)" in log and "resumed: memory is back" in log


def _status(out):
    try:
        return run_status(out)
    except Exception:
        return None


def test_faults_disk_full_with_stop_stops_cleanly(dataset, tmp_path):
    out = tmp_path / "run"
    config = RunConfig(dataset=str(dataset), out=str(out), clips=["C*"], workers=1, on_disk_full="stop")
    summary = run(config, install_signals=False, disk_reading=lambda path: (10 * 2**20, 2**40))
    assert summary.exit_code == 1 and summary.state == "interrupted"
    assert summary.counts["pending"] == 4


@pytest.mark.timeout(300)
@pytest.mark.parametrize("wanted, delay", [(5, 0.02), pytest.param(20, 0.04, marks=pytest.mark.slow)])  # 20: soak
def test_faults_torture_sigkill_at_random_moments(dataset, tmp_path, wanted, delay):
    out = tmp_path / "run"
    # 20 clips x 30 frames x `delay` / 2 workers of work (6 s, 12 s), each frame written as an artifact: more than
    # the `wanted` random moments add up to (4.5 s, 16 s, less each start), so every kill lands mid-run
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:mean_colour",
        "--option",
        f"delay={delay}",
        "--option",
        "write=true",
        "--workers",
        "2",
    )
    rng = random.Random(20261124)
    kills = 0
    while kills < wanted:
        proc = start(*args)
        time.sleep(rng.uniform(0.1, 1.5))
        if proc.poll() is not None:  # finished before the kill: nothing more to torture
            break
        children = workers_of(proc.pid)
        proc.kill()
        proc.wait()
        kills += 1
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children), timeout=10)
    final = midvbatch(*args)
    assert final.returncode == 0, final.stderr
    assert kills == wanted, f"the run finished after only {kills} kills"
    assert_every_clip_once(out)
    assert ledger_rows(out, "SELECT COUNT(*) FROM frames") == [(600,)]
    pngs = list((out / "frames").rglob("*.png"))
    assert len(pngs) == 600 and all(p.stat().st_size > 1000 for p in pngs)
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*.tmp"))
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())
    assert done_count(out) == 20
    # attempts cut short by a killed orchestrator are not counted against the clip
    assert ledger_rows(out, "SELECT MAX(attempts) FROM tasks") == [(1,)]


def test_faults_corrupt_video_is_permanent_and_the_run_goes_on(dataset, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(dataset / "01_alb_id", copy / "01_alb_id")
    video = copy / "01_alb_id" / "videos" / "KS01.mp4"
    video.write_bytes(video.read_bytes()[:2000])  # truncated download
    (copy / "01_alb_id" / "videos" / "TA01.MOV").write_bytes(b"")  # zero bytes
    out = tmp_path / "run"
    # --no-check: the engine meets the damage, not the checks; two of the four clips run are damaged
    result = midvbatch("run", copy, "--out", out, "--retry-delay", "0", "--no-check", "--clips", "[TK]*")
    assert result.returncode == 1
    t = tasks(out)
    assert {c for c, r in t.items() if r["state"] == "dead"} == {"KS01", "TA01"}
    for clip, name in (("KS01", "KS01.mp4"), ("TA01", "TA01.MOV")):
        assert (t[clip]["error_class"], t[clip]["attempts"]) == ("permanent", 1)
        assert name in t[clip]["error"]
    assert "empty file" in t["TA01"]["error"]
    assert sum(r["state"] == "done" for r in t.values()) == 2


def test_faults_timeout_kills_within_a_second_of_the_limit(dataset, tmp_path):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--clips",
        "PA01",
        "--processor",
        "processors:Faults",
        "--option",
        'faults={"PA01": "hang"}',
        "--task-timeout",
        "2",
        "--retries",
        "0",
        "--workers",
        "1",
    )
    assert result.returncode == 1
    row = tasks(out)["PA01"]
    assert row["error_class"] == "timeout"
    # from dispatch (which includes starting the worker, about half a second) to the failure
    assert 2.0 <= row["finished_at"] - row["started_at"] < 2.0 + 1.0 + 1.5


def test_faults_retry_works_from_another_directory_with_relative_paths(dataset, tmp_path):
    import shutil
    import subprocess
    import sys

    from conftest import env

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(dataset / "01_alb_id", work / "ds" / "01_alb_id")
    faults = work / "faults.json"
    faults.write_text(json.dumps({"TA01": "permanent"}))

    def cli(*args, cwd):
        return subprocess.run(
            [sys.executable, "-m", "midvbatch.cli", *map(str, args)],
            cwd=cwd,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = cli(
        "run",
        "ds",
        "--out",
        "run",
        "--clips",
        "T*",
        "--processor",
        "processors:Faults",
        "--option",
        f"faults_file={faults}",
        cwd=work,
    )
    assert first.returncode == 1, first.stderr
    faults.write_text("{}")
    again = cli("retry", work / "run", "--all-dead", cwd=tmp_path)  # from elsewhere
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "run").exists()
    assert tasks(work / "run")["TA01"]["state"] == "done"
