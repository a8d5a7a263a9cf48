"""The run's policy, fed events and read back as instructions: no processes, no ledger, no clock.

Each test is a few events and the instructions they must give (engine/run/state.py).
The end-to-end tests of test_run.py, test_faults.py, test_tasks.py and test_dask.py
keep a few runs per policy to prove the wiring.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from midvbatch.engine.run.events import (
    CancelQueued,
    Complete,
    EndLeftovers,
    Fail,
    Finish,
    Finished,
    Idle,
    KillWorker,
    Log,
    MarkRunning,
    Readings,
    Ready,
    Release,
    RemoveAttempt,
    Resize,
    StagesSeen,
    StopAsked,
    StopReason,
    Submit,
    Wait,
    Withdrawn,
)
from midvbatch.engine.run.state import Policy, RunState
from midvbatch.engine.workerref import WorkerRef
from midvbatch.pipeline.spec import ClipOutcome

MiB = 2**20
PLENTY = 64 * 2**30  # memory and disk readings far above any floor


@dataclass
class Row:
    id: int
    clip: str
    attempts: int = 0


def rows(*ids: int, attempts: int = 0) -> tuple[Row, ...]:
    return tuple(Row(i, f"C{i:02d}", attempts) for i in ids)


def state(capacity: int = 2, **policy) -> RunState:
    return RunState(Policy(**policy), capacity, jitter=lambda low, high: 1.0)


def ready(*ids: int, now: float = 0.0, memory: int = PLENTY, disk: int = PLENTY, gone=(), attempts: int = 0) -> Ready:
    return Ready(rows(*ids, attempts=attempts), now, memory, disk, frozenset(gone))


def ok(task_id: int, seconds: float = 1.0) -> ClipOutcome:
    return ClipOutcome(task_id, ok=True, wall_seconds=seconds)


def failed(task_id: int, error_class: str, error: str = "it broke", **fields) -> ClipOutcome:
    return ClipOutcome(task_id, ok=False, error_class=error_class, error=error, **fields)


def of(kind: type, instructions: list) -> list:
    return [i for i in instructions if isinstance(i, kind)]


def logged(instructions: list) -> list[str]:
    return [i.message % i.args for i in instructions if isinstance(i, Log)]


# dispatch ---------------------------------------------------------------------------------


def test_run_state_ready_clips_are_marked_running_and_submitted_one_task_each():
    run = state(capacity=2)
    assert run.wanted() == 4  # two tasks per worker: one running, the next waiting
    out = run.handle(ready(1, 2, 3))
    assert of(MarkRunning, out) == [MarkRunning((1, 2, 3))]
    assert [[(row.id, attempt) for row, attempt in s.clips] for s in of(Submit, out)] == [[(1, 1)], [(2, 1)], [(3, 1)]]
    assert set(run.flights) == {1, 2, 3} and run.wanted() == 1


def test_run_state_a_retry_is_submitted_with_its_next_attempt_number():
    out = state().handle(ready(7, attempts=2))
    assert [attempt for s in of(Submit, out) for _, attempt in s.clips] == [3]


def test_run_state_clips_go_in_tasks_of_several_when_workers_read_ahead():
    run = state(capacity=2, task_clips=3)
    assert run.wanted() == 12
    out = run.handle(ready(*range(1, 8)))  # 7 clips: tasks of 3, 3, 1
    assert [[row.id for row, _ in s.clips] for s in of(Submit, out)] == [[1, 2, 3], [4, 5, 6], [7]]
    assert run.flights[2].group == (1, 2, 3)
    few = state(capacity=2, task_clips=3).handle(ready(1, 2, 3, 4))  # too few for a whole task each: 2 and 2
    assert [[row.id for row, _ in s.clips] for s in of(Submit, few)] == [[1, 2], [3, 4]]


def test_run_state_short_clips_are_dispatched_deeper():
    run = state(capacity=2)
    run.handle(ready(1))
    run.handle(Finished((ok(1, seconds=0.001),), 1.0))
    for _ in range(20):  # the moving average falls below SHORT_CLIP_SECONDS
        run.clip_seconds = 0.8 * run.clip_seconds
    assert run.wanted() == 16


def test_run_state_a_clip_discovery_no_longer_finds_is_marked_dead_not_run():
    out = state().handle(ready(1, 2, gone={2}))
    assert of(MarkRunning, out) == [MarkRunning((1, 2))]
    assert of(Fail, out) == [Fail(2, "dead", "permanent", "clip no longer found in the dataset")]
    assert logged(out) == ["C02 dead (permanent: clip no longer found in the dataset) after 1 attempt(s)"]
    assert [row.id for s in of(Submit, out) for row, _ in s.clips] == [1]


def test_run_state_pauses_below_the_memory_floor_and_resumes_with_one_line_each():
    run = state(memory_floor=500 * MiB)
    out = run.handle(ready(1, memory=100 * MiB))
    assert not of(Submit, out) and run.paused == "memory" and of(Wait, out) == [Wait(0.2)]
    assert logged(out) == ["paused (memory): 100 MiB available, floor 500 MiB; the run resumes by itself"]
    assert logged(run.handle(ready(1, memory=100 * MiB))) == []  # said once
    out = run.handle(ready(1, memory=PLENTY))
    assert logged(out) == ["resumed: memory is back above its floor"] and of(Submit, out)


def test_run_state_pauses_below_the_disk_floor_and_resumes_when_space_is_back():
    run = state(disk_floor=2048 * MiB, run_dir="/runs/r")  # --on-disk-full wait (the default): the run waits
    out = run.handle(ready(1, disk=100 * MiB))
    assert not of(Submit, out) and run.paused == "disk" and of(Wait, out) == [Wait(0.2)]
    assert run.stop_reason is None and not of(CancelQueued, out)
    assert logged(out) == [
        "paused (disk): 100 MiB free on /runs/r, floor 2,048 MiB + 0 MiB for the next clip; the run resumes by itself"
    ]
    assert logged(run.handle(ready(1, disk=100 * MiB))) == []  # said once
    out = run.handle(ready(1, disk=PLENTY))
    assert logged(out) == ["resumed: disk is back above its floor"] and of(Submit, out)


def test_run_state_frames_held_by_each_task_count_against_the_memory_floor():
    run = state(capacity=2, memory_floor=100 * MiB, frames_held=300 * MiB)
    out = run.handle(ready(1, 2, memory=500 * MiB))  # two tasks hold 600 MiB: one of them still fits
    assert [row.id for s in of(Submit, out) for row, _ in s.clips] == [1]


def test_run_state_a_full_disk_with_on_disk_full_stop_stops_after_the_clips_in_flight():
    run = state(disk_floor=100 * MiB, on_disk_full="stop")
    run.handle(ready(1))
    out = run.handle(ready(2, disk=50 * MiB))
    assert run.stop_reason == StopReason.DISK and of(CancelQueued, out) == [CancelQueued()]
    assert any(line.startswith("disk full (50 MiB free on ") for line in logged(out))
    out = run.handle(Withdrawn(()), Finished((ok(1),), 1.0))
    assert of(Finish, out) == [Finish(StopReason.DISK)]


# outcomes ---------------------------------------------------------------------------------


def test_run_state_a_done_clip_is_completed_and_its_attempt_folder_removed():
    run = state()
    run.handle(ready(1))
    out = run.handle(Finished((ok(1),), 1.0))
    assert of(Complete, out) == [Complete(ok(1), 1)] and of(RemoveAttempt, out) == [RemoveAttempt(1, 1)]
    assert not run.flights


def test_run_state_a_failure_is_retried_after_its_backoff_then_dead():
    run = state(retries=2, retry_delay=10.0)
    run.handle(ready(1))
    [fail] = of(Fail, run.handle(Finished((failed(1, "transient"),), 1.0)))
    assert (fail.state, fail.retry_in, fail.error_class) == ("failed", 10.0, "transient")
    run.handle(ready(1, attempts=1))
    [fail] = of(Fail, run.handle(Finished((failed(1, "transient"),), 2.0)))
    assert (fail.state, fail.retry_in) == ("failed", 20.0)  # doubled at each attempt
    run.handle(ready(1, attempts=2))
    out = run.handle(Finished((failed(1, "transient"),), 3.0))
    assert [(f.state, f.retry_in) for f in of(Fail, out)] == [("dead", None)]
    assert logged(out)[0] == "C01 dead (transient: it broke) after 3 attempt(s)"


def test_run_state_retry_waits_are_jittered_and_capped():
    from midvbatch.config import MAX_RETRY_WAIT

    run = RunState(Policy(retries=100, retry_delay=1.0), 1, jitter=lambda low, high: high)
    assert run.retry_delay(1) == pytest.approx(1.2)
    assert run.retry_delay(3) == pytest.approx(4.8)
    assert run.retry_delay(80) == MAX_RETRY_WAIT


def test_run_state_a_permanent_failure_is_dead_at_once():
    run = state(retries=5)
    run.handle(ready(1))
    [fail] = of(Fail, run.handle(Finished((failed(1, "permanent", stage="read"),), 1.0)))
    assert (fail.state, fail.stage) == ("dead", "read")


def test_run_state_max_failures_stops_the_run_after_the_clips_in_flight():
    run = state(max_failures=2, run_dir="/runs/r")
    run.handle(ready(1, 2, 3))
    out = run.handle(Finished((failed(1, "permanent"),), 1.0))
    assert run.stop_reason is None
    out = run.handle(Finished((failed(2, "permanent"),), 2.0))
    assert run.stop_reason == StopReason.MAX_FAILURES and of(CancelQueued, out)
    assert (
        "2 clips died in this run (--max-failures 2): stopping after the clips in flight; see midvbatch "
        "failures /runs/r" in logged(out)
    )
    assert of(Finish, run.handle(Withdrawn((3,)))) == [Finish(StopReason.MAX_FAILURES)]


def test_run_state_a_dead_worker_blames_the_clip_it_was_on_and_requeues_those_it_had_not_started():
    run = state(capacity=1, task_clips=3, retries=1)
    run.handle(ready(1, 2, 3))
    worker = WorkerRef("process", 4242)
    run.handle(StagesSeen(((1, "read", worker), (1, "finished", worker), (2, "process", worker)), 1.0))
    crash = {"error": "worker killed by SIGKILL", "signal": 9}
    out = run.handle(Finished((ok(1), failed(2, "crash", **crash), failed(3, "crash", **crash)), 2.0))
    assert of(Complete, out) == [Complete(ok(1), 1)]
    assert [(f.task_id, f.state, f.error_class, f.stage) for f in of(Fail, out)] == [(2, "failed", "crash", "process")]
    assert of(Release, out) == [Release((3,))]  # not counted: its worker died on clip 2
    assert EndLeftovers(worker) in out
    assert (
        "C03 back in the queue: its worker died on another of the clips it held (worker killed by SIGKILL)"
        in logged(out)
    )


def test_run_state_a_task_lost_before_any_clip_started_blames_its_first_clip_only():
    run = state(capacity=1, task_clips=2, retries=0)
    run.handle(ready(1, 2))
    out = run.handle(Finished((failed(1, "crash"), failed(2, "crash")), 1.0))
    assert [f.task_id for f in of(Fail, out)] == [1] and of(Release, out) == [Release((2,))]


def test_run_state_a_clip_that_ran_short_goes_back_uncounted_and_the_run_asks_less():
    run = state(capacity=4, decode_threads=4, resizable=True)
    run.handle(ready(1, 2, now=0.0))
    short = failed(1, "resources", "cannot start a thread: out of threads")
    out = run.handle(Finished((short,), 1.0))
    assert of(Release, out) == [Release((1,))] and not of(Fail, out)
    assert run.shortages.threads == 1 and "decoding on 1 thread per worker" in logged(out)[0]
    run.handle(ready(1, now=2.0))
    out = run.handle(Finished((failed(1, "resources", "out of threads"),), 3.0))
    assert of(Resize, out) == [Resize(2)] and run.capacity == 2 and of(Release, out) == [Release((1,))]


def test_run_state_a_clip_that_ran_short_with_nothing_left_to_lower_fails_counted():
    run = state(capacity=1, decode_threads=1, resizable=False, retries=3)
    run.handle(ready(1))
    out = run.handle(Finished((failed(1, "resources", "out of processes"),), 1.0))
    assert [(f.state, f.error_class) for f in of(Fail, out)] == [("failed", "resources")]
    assert "nothing left to lower" in logged(out)[0]


def test_run_state_a_worker_that_cannot_see_the_dataset_requeues_and_stops_the_run_over_any_other_reason():
    run = state(max_failures=1)
    run.handle(ready(1, 2, 3))
    run.handle(Finished((failed(1, "permanent"),), 1.0))
    assert run.stop_reason == StopReason.MAX_FAILURES
    out = run.handle(Finished((failed(2, "placement", "Dask worker tcp://w:1 cannot see /data/v.mp4"),), 2.0))
    assert of(Release, out) == [Release((2,))] and not of(Fail, out)
    assert run.stop_reason == StopReason.PLACEMENT
    assert logged(out)[0] == "Dask worker tcp://w:1 cannot see /data/v.mp4"
    out = run.handle(Withdrawn((3,)))
    assert of(Finish, out) == [Finish(StopReason.PLACEMENT)]


# supervision ------------------------------------------------------------------------------


def test_run_state_a_dask_worker_over_the_memory_limit_is_restarted_by_its_ref_and_its_clip_fails_so():
    run = state(worker_limit=100 * MiB)
    run.handle(ready(1, 2))
    worker = WorkerRef("dask", "tcp://10.0.0.5:4000")
    run.handle(StagesSeen(((1, "process", worker),), 1.0))
    assert not of(KillWorker, run.handle(Readings(2.0, rss={worker: 50 * MiB})))
    out = run.handle(Readings(2.2, rss={worker: 150 * MiB}))
    assert of(KillWorker, out) == [KillWorker(worker, (1,))]
    assert logged(out) == [
        "C01: worker memory 150 MiB passed the limit of 100 MiB; restarting Dask worker tcp://10.0.0.5:4000"
    ]
    assert not of(KillWorker, run.handle(Readings(2.4, rss={worker: 150 * MiB})))  # killed once
    out = run.handle(Finished((failed(1, "crash", "Dask worker tcp://10.0.0.5:4000 restarted"),), 3.0))
    assert [(f.error_class, f.error) for f in of(Fail, out)] == [
        ("memory", "worker memory 150 MiB passed the limit of 100 MiB")
    ]


def test_run_state_device_memory_over_its_limit_kills_the_worker_as_out_of_memory():
    run = state(device_limit=1024 * MiB)
    run.handle(ready(1))
    worker = WorkerRef("process", 77)
    run.handle(StagesSeen(((1, "process", worker),), 1.0))
    out = run.handle(Readings(1.5, device={worker: 2048 * MiB}))
    assert of(KillWorker, out) == [KillWorker(worker, (1,))] and run.flights[1].killed[0] == "oom"
    assert logged(out) == ["C01: device memory 2,048 MiB passed the limit of 1,024 MiB; killing worker 77"]


def test_run_state_task_timeout_counts_from_a_clips_first_stage_on_a_fake_clock():
    run = state(capacity=1, task_clips=2, task_timeout=10.0)
    run.handle(ready(1, 2, now=0.0))
    worker = WorkerRef("process", 9)
    run.handle(StagesSeen(((1, "process", worker),), 5.0))
    assert not of(KillWorker, run.handle(Readings(14.9)))
    out = run.handle(Readings(15.1))
    assert of(KillWorker, out) == [KillWorker(worker, (1,))]
    out = run.handle(Finished((failed(1, "crash"), failed(2, "crash")), 16.0))
    assert [(f.task_id, f.error_class, f.error) for f in of(Fail, out)] == [
        (1, "timeout", "still running after 10 s; worker killed")
    ]
    assert of(Release, out) == [Release((2,))]


def test_run_state_leaves_a_one_clip_task_to_the_pool_that_holds_it_to_the_timeout():
    run = state(task_timeout=10.0, task_clips=1, pool_holds_timeout=True)
    run.handle(ready(1))
    run.handle(StagesSeen(((1, "process", WorkerRef("process", 9)),), 0.0))
    assert not of(KillWorker, run.handle(Readings(100.0)))
    out = run.handle(Finished((failed(1, "timeout", "timeout"),), 101.0))
    assert of(Fail, out)[0].error == "still running after 10 s; worker killed"
    dask = state(task_timeout=10.0, task_clips=1, pool_holds_timeout=False)
    dask.handle(ready(1))
    ref = WorkerRef("dask", "tcp://w:1")
    dask.handle(StagesSeen(((1, "process", ref),), 0.0))
    out = dask.handle(Readings(11.0))
    assert of(KillWorker, out) == [KillWorker(ref, (1,))] and dask.flights[1].killed[1].endswith(
        "Dask worker tcp://w:1 restarted"
    )


# stopping ---------------------------------------------------------------------------------


def test_run_state_ctrl_c_withdraws_the_queued_clips_then_finishes_when_nothing_is_in_flight():
    run = state(capacity=1)
    run.handle(ready(1, 2))
    out = run.handle(StopAsked())
    assert out == [CancelQueued()] and run.stopping and not run.stop_now
    out = run.handle(Withdrawn((2,)))
    assert out == [Release((2,))]  # clip 1 still runs
    assert not of(Finish, run.handle(StagesSeen((), 1.0)))
    assert of(Finish, run.handle(Finished((ok(1),), 2.0))) == [Finish(StopReason.SIGNAL)]


def test_run_state_a_second_ctrl_c_or_sigterm_stops_at_once():
    run = state()
    run.handle(ready(1))
    run.handle(StopAsked())
    assert run.handle(StopAsked())[-1] == Finish(StopReason.SIGNAL, at_once=True)
    term = state()
    term.handle(ready(1))
    assert term.handle(StopAsked(at_once=True)) == [Finish(StopReason.SIGNAL, at_once=True)]


def test_run_state_an_empty_queue_finishes_or_waits_for_the_next_retry():
    run = state()
    assert run.handle(Idle(100.0, None)) == [Finish()]
    assert state().handle(Idle(100.0, 100.05)) == [Wait(pytest.approx(0.05))]
    assert state().handle(Idle(100.0, 500.0)) == [Wait(0.2)]


def test_run_state_imports_no_clock_no_processes_and_no_ledger():
    """The policy stays pure: its module imports none of what the shell does."""
    source = Path(__file__).parents[1] / "src" / "midvbatch" / "engine" / "run"
    for name in ("state.py", "events.py"):
        tree = ast.parse((source / name).read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"time", "os", "sqlite3", "psutil", "pebble", "signal", "random", "subprocess"}, name
