"""Tasks of several clips: with --prefetch or --batch-across-clips a worker takes a few clips at once, reads
ahead from one into the next and batches across them; each clip still succeeds, fails and counts on its own."""

from __future__ import annotations


from conftest import exported, kill_9_twice_then_resume, ledger_rows, midvbatch


def _results(run_dir):
    return {(r["clip"], r["frame"]): r["result"] for r in exported(run_dir)}


def _tasks(run_dir):
    rows = ledger_rows(run_dir, "SELECT clip, state, attempts, error_class, error FROM tasks")
    return {clip: (state, attempts, error_class, error) for clip, state, attempts, error_class, error in rows}


def test_batches_across_clips_give_the_per_frame_results(dataset, tmp_path):
    one = midvbatch(
        "run", dataset, "--out", tmp_path / "frame", "--processor", "processors:mean_colour", "--docs", "01_*"
    )
    across = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "across",
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "64",
        "--batch-across-clips",
        "--docs",
        "01_*",
    )
    assert one.returncode == 0 and across.returncode == 0, across.stderr
    # 64-frame batches across clips: tasks of 5 clips (150 frames, at least twice a batch)
    assert "batches of up to 64 frames across clips, workers take up to 5 clips at a time" in across.stderr
    per_frame, batched = _results(tmp_path / "frame"), _results(tmp_path / "across")
    assert len(batched) == 300
    keep = ("id", "mean", "has_quad")
    for key, result in per_frame.items():
        assert {k: result[k] for k in keep} == {k: batched[key][k] for k in keep}, key

    # each task of 150 frames goes in batches of 64, 64 and 22; the full ones hold 3 clips
    assert {r["batch"] for r in batched.values()} == {64, 22}
    assert max(len(r["clips"]) for r in batched.values()) == 3
    for (clip, _), result in batched.items():
        assert clip in result["clips"]
    assert set(_tasks(tmp_path / "across").values()) == {("done", 1, None, None)}


def test_a_failing_batch_across_clips_fails_the_clips_in_it_and_the_task_goes_on(dataset, tmp_path):
    done = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "64",
        "--batch-across-clips",
        "--option",
        "fail_clip=TA01",
        "--retries",
        "0",
        "--docs",
        "01_*",
    )
    assert done.returncode == 1
    tasks = _tasks(tmp_path / "run")
    dead = {clip for clip, (state, *_) in tasks.items() if state == "dead"}
    assert "TA01" in dead and 2 <= len(dead) <= 4, dead  # TA01 and the clips that shared a batch with it
    for clip in dead:
        assert tasks[clip][2:] == ("error", "RuntimeError: batch of 64 frames of TA01 failed"), tasks[clip]
    assert {tasks[c][:2] for c in tasks if c not in dead} == {("done", 1)}
    recorded = ledger_rows(
        tmp_path / "run", "SELECT t.clip, COUNT(*) FROM frames f JOIN tasks t ON t.id = f.task GROUP BY t.clip"
    )
    assert dict(recorded) == {c: 30 for c in tasks if c not in dead}  # none of a dead clip's frames


def test_a_clip_of_a_task_is_held_to_the_timeout_and_the_others_lose_no_attempt(dataset, tmp_path):
    done = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:Faults",
        "--option",
        'faults={"TA01": "hang"}',
        "--option",
        f"state_dir={tmp_path}",
        "--prefetch",
        "4",
        "--task-timeout",
        "4",
        "--retries",
        "0",
        "--docs",
        "01_*",
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "4 frames read ahead, workers take up to 4 clips at a time" in done.stderr
    tasks = _tasks(tmp_path / "run")
    assert tasks.pop("TA01") == ("dead", 1, "timeout", "still running after 4 s; worker killed")
    # the clips of TA01's task, finished or not started when its worker was killed, ran again: one attempt each
    assert set(tasks.values()) == {("done", 1, None, None)}
    assert "back in the queue: its worker died on another of the clips it held" in done.stderr


def test_a_worker_dying_in_a_task_costs_only_the_clip_it_was_on(dataset, tmp_path):
    done = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:Faults",
        "--option",
        'faults={"KA02": "sigkill"}',
        "--option",
        f"state_dir={tmp_path}",
        "--prefetch",
        "2",
        "--retries",
        "1",
        "--docs",
        "02_*",
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    tasks = _tasks(tmp_path / "run")
    assert tasks.pop("KA02") == ("dead", 2, "crash", "worker killed by SIGKILL")
    assert set(tasks.values()) == {("done", 1, None, None)}


def test_kill_9_during_tasks_of_several_clips_then_resume_gives_every_frame_once(dataset, tmp_path):
    out = tmp_path / "run"
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "16",
        "--batch-across-clips",
        "--prefetch",
        "8",
        "--option",
        "delay=0.1",
        "--workers",
        "2",
        "--docs",
        "01_*",
    )
    kill_9_twice_then_resume(args, out, done_before_kill=3, clips=10)


def test_read_ahead_that_cannot_fit_the_worker_memory_is_one_line(dataset, tmp_path):
    done = midvbatch("run", dataset, "--out", tmp_path / "run", "--prefetch", "1000", "--worker-memory", "1GiB")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--prefetch 1000 and --batch-size 1 hold about" in done.stderr
    assert "more than the worker memory limit of 1,024 MiB: lower them or raise --worker-memory" in done.stderr
    assert not (tmp_path / "run").exists()


def test_workers_are_replaced_after_the_lot_in_which_they_reach_max_tasks_per_worker(dataset, tmp_path):
    done = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:DeviceProbe",
        "--prefetch",
        "2",
        "--max-tasks-per-worker",
        "4",
        "--docs",
        "01_*",
    )
    assert done.returncode == 0, done.stderr
    clips_by_pid: dict[int, set[str]] = {}
    for record in exported(tmp_path / "run"):
        clips_by_pid.setdefault(record["result"]["pid"], set()).add(record["clip"])
    # handed 4 clips at a time, a worker reaches 4 clips with its first lot and is replaced after it
    assert all(len(clips) <= 4 for clips in clips_by_pid.values()), clips_by_pid
    assert len(clips_by_pid) >= 3  # 10 clips
