"""Scale-out: the same run on a Dask cluster, reached through the scheduler's address: a real scheduler and
workers, each its own process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import assert_every_clip_once, done_count, env, exported, ledger_rows, midvbatch, start, wait_for

distributed = pytest.importorskip("distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster(scratch: Path, workers: int = 2, hide: Path | None = None, extra: tuple = ()) -> tuple[str, list]:
    """Start a `dask scheduler` and `workers` `dask worker` processes on 127.0.0.1, each its own process group.

    With `hide`, the workers run in a mount namespace of their own where an empty tmpfs covers that folder,
    as on a machine where it is not mounted."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [str(Path(sys.executable).parent / "dask")]
    environment = env()
    common = ["--dashboard-address", ":0"]
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], *common],
            env=environment,
            cwd=scratch,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(scratch / "scheduler.log", "w"),
        )
    ]
    for i in range(workers):
        command = [
            *dask,
            "worker",
            address,
            "--nthreads",
            "1",
            "--nworkers",
            "1",
            "--host",
            "127.0.0.1",
            "--local-directory",
            str(scratch / f"w{i}"),
            *common,
            *extra,
        ]
        if hide is not None:
            command = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -t tmpfs none "$0" && exec "$@"',
                str(hide),
                *command,
            ]
        procs.append(
            subprocess.Popen(
                command,
                env=environment,
                cwd=scratch,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=open(scratch / f"worker{i}.log", "w"),
            )
        )
    try:
        _workers_ready(address, workers)
    except BaseException:
        _stop_cluster(procs)
        raise
    return address, procs


def _workers_ready(address: str, workers: int = 2) -> dict:
    """Wait until the cluster has `workers` workers (a restarted one comes back); return address -> pid."""
    with distributed.Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=60)
        return client.run(os.getpid)


def _stop_cluster(procs: list) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a worker whose task hangs does not stop on SIGTERM
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, each started as its own process
    (not a LocalCluster), as on a cluster; the workers import the tests' processors. Killed, with whatever
    their tasks started, at the end. A test that kills or restarts a worker leaves two again."""
    address, procs = _start_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield address
    finally:
        _stop_cluster(procs)


@pytest.fixture
def two_workers(cluster):
    """The cluster's address once it has its two workers (a worker restarted by the test before is back)."""
    _workers_ready(cluster)
    return cluster


def test_dask_run_on_a_cluster_records_every_clip_once(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--pool",
        "dask",
        "--scheduler",
        cluster,
        "--processor",
        "processors:mean_colour",
        "--docs",
        "01_*",
    )
    result = midvbatch(*args)
    assert result.returncode == 0, result.stderr
    assert f"Dask scheduler {cluster}" in result.stderr
    assert (
        f"Dask workers must see the dataset ({dataset}) and the run folder ({out}) at these paths: they read "
        f"the videos and write artifacts into {out}/tmp"
    ) in result.stderr
    assert_every_clip_once(out, clips=10)
    pids = {record["result"]["pid"] for record in exported(out)}
    assert len(pids) == 2  # both Dask workers took clips
    again = midvbatch(*args)
    assert again.returncode == 0 and "resuming: 10 clips done" in again.stderr


def test_dask_processor_errors_are_classified_as_locally(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--pool",
        "dask",
        "--scheduler",
        cluster,
        "--processor",
        "processors:Faults",
        "--option",
        '{"TS01": "permanent"}'.join(["faults=", ""]),
        "--clips",
        "T*",
        "--docs",
        "01_*",
    )
    assert result.returncode == 1
    assert "TS01 dead (permanent: corrupt input (injected))" in result.stderr


def test_dask_workers_take_clips_a_few_at_a_time_with_batches_across_them(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--pool",
        "dask",
        "--scheduler",
        cluster,
        "--processor",
        "processors:BatchedMean",
        "--batch-size",
        "16",
        "--batch-across-clips",
        "--prefetch",
        "4",
        "--docs",
        "01_*",
    )
    assert result.returncode == 0, result.stderr
    assert "workers take up to 4 clips at a time" in result.stderr
    assert_every_clip_once(out, clips=10)
    records = [record["result"] for record in exported(out)]
    assert max(len(r["clips"]) for r in records) == 2  # a batch of 16 went on from one clip into the next


def test_dask_unreachable_scheduler_is_one_line(dataset, tmp_path):
    result = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--pool",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--clips",
        "TA01",
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not (tmp_path / "run").exists()  # said before the run folder is made


@pytest.mark.parametrize(
    "address",
    ["nonsense", "tcp://", "tcp://127.0.0.1:1/extra", "inproc://x", "ucx://127.0.0.1:9", "::1:8786", "tcp://host:0"],
)
def test_dask_bad_scheduler_address_is_one_line_in_flags_and_toml(dataset, tmp_path, address):
    from click.testing import CliRunner

    from midvbatch.cli import cli

    out, toml = tmp_path / "run", tmp_path / "run.toml"
    toml.write_text(f'pool = "dask"\nscheduler = "{address}"\n')
    flag = CliRunner().invoke(
        cli, ["run", str(dataset), "--out", str(out), "--pool", "dask", "--scheduler", address, "--clips", "TA01"]
    )
    assert flag.exit_code == 2, flag.output  # a usage error
    assert "is not 'local' or an address like tcp://HOST:8786: " in flag.output.splitlines()[-1], flag.output
    config = CliRunner().invoke(cli, ["run", str(dataset), "--out", str(out), "--config", str(toml), "--clips", "TA01"])
    assert config.exit_code == 1, config.output
    # (the TOML file's values name the file, as its unknown keys do)
    assert config.output.startswith(
        f"Error: {toml}: scheduler {address!r} is not 'local' or an address like tcp://HOST:8786: "
    )
    assert config.output.count("\n") == 1 and "Traceback" not in config.output
    assert not out.exists()


@pytest.mark.timeout(60)
def test_dask_port_where_no_scheduler_answers_is_one_line(dataset, tmp_path, monkeypatch):
    """Something listens but never speaks (another service, a frozen scheduler): Dask's client would wait for the
    scheduler's handshake forever."""
    from midvbatch.config import RunConfig
    from midvbatch.engine import dask as dask_executor
    from midvbatch.engine.run import run
    from midvbatch.errors import MidvBatchError

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)
    out = tmp_path / "run"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(MidvBatchError, match=re.escape(f"no Dask scheduler answered at {address} within 0.5 s")):
            run(
                RunConfig(
                    dataset=str(dataset),
                    out=str(out),
                    pool="dask",
                    scheduler=address,
                    clips=["TA01"],
                    pipeline="ground-truth",
                ),
                install_signals=False,
            )
    assert not out.exists()


def test_dask_lost_scheduler_ends_the_run_in_one_line_and_a_new_cluster_resumes(dataset, tmp_path, two_workers):
    """The scheduler SIGKILLed mid-run: the run ends at once (exit 1, one line), its clips in flight back to pending
    with no attempt counted; the same command on another cluster gives every frame once."""
    (tmp_path / "lost").mkdir()
    address, procs = _start_cluster(tmp_path / "lost", workers=1)
    out = tmp_path / "run"
    args = (
        "--processor",
        "processors:Faults",
        "--option",
        "delay=0.05",
        "--docs",
        "01_*",
        "--clips",
        "H*",
        "--clips",
        "KA*",
    )
    try:
        proc = start(*_dask_run(dataset, out, address, *args))
        try:

            def first_done():
                assert proc.poll() is None, proc.stderr.read()
                return done_count(out) >= 1  # (and the next clip running)

            wait_for(first_done, timeout=90)
            procs[0].send_signal(signal.SIGKILL)
            lost = time.monotonic()
            assert proc.wait(timeout=30) == 1
            assert time.monotonic() - lost < 10
            stderr = proc.stderr.read()
        finally:
            proc.kill()
    finally:
        _stop_cluster(procs)
    assert stderr.strip().splitlines()[-1] == (
        f"Error: lost the Dask scheduler at {address}; run the same command again to resume"
    ), stderr
    assert "Traceback" not in stderr and "distributed." not in stderr
    states = ledger_rows(out, "SELECT state, attempts, COUNT(*) FROM tasks GROUP BY state, attempts ORDER BY state")
    assert [s[:2] for s in states] == [("done", 1), ("pending", 0)], states
    resumed = midvbatch(*_dask_run(dataset, out, two_workers, *args), timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_clip_once(out, clips=3)


def _dask_run(dataset, out, address, *extra):
    return ("run", dataset, "--out", out, "--pool", "dask", "--scheduler", address, *extra)


def _running(out: Path) -> list[dict]:
    """The clips in flight as `status --json` shows them."""
    result = midvbatch("status", out, "--json")
    return json.loads(result.stdout).get("workers", []) if result.returncode == 0 else []


def test_dask_task_timeout_restarts_the_worker_and_the_orchestrator_waits_idle(dataset, tmp_path, two_workers):
    before = _workers_ready(two_workers)
    out = tmp_path / "run"
    proc = start(
        *_dask_run(
            dataset,
            out,
            two_workers,
            "--processor",
            "processors:Faults",
            "--option",
            'faults={"TS01": "hang"}',
            "--task-timeout",
            "6",
            "--retries",
            "0",
            "--docs",
            "01_*",
            "--clips",
            "T*",
        )
    )
    try:
        hung = wait_for(lambda: [w for w in _running(out) if w["clip"] == "TS01" and w.get("worker")], timeout=60)
        assert hung[0]["worker"] in before and hung[0]["pid"] is None  # a remote worker: no pid to signal here
        orchestrator = psutil.Process(proc.pid)
        cpu = sum(orchestrator.cpu_times()[:2])
        time.sleep(3)
        assert sum(orchestrator.cpu_times()[:2]) - cpu < 0.6  # waiting on the cluster: no busy loop
        assert proc.wait(timeout=120) == 1
        stderr = proc.stderr.read()
    finally:
        proc.kill()
    assert re.search(
        r"TS01 dead \(timeout: still running after 6 s; Dask worker tcp://127\.0\.0\.1:\d+ restarted\)", stderr
    ), stderr
    rows = ledger_rows(out, "SELECT clip, state, error_class, attempts FROM tasks ORDER BY clip")
    assert [r[:2] for r in rows] == [("TA01", "done"), ("TS01", "dead")] and rows[1][2:] == ("timeout", 1)
    # the worker that hung is restarted (the scheduler carries it through): its process goes, and the hang with it
    wait_for(lambda: not psutil.pid_exists(before[hung[0]["worker"]]), timeout=30, interval=0.2)
    assert hung[0]["worker"] not in _workers_ready(two_workers)


def test_dask_worker_memory_restarts_the_worker_and_fails_the_clip(dataset, tmp_path, two_workers):
    out = tmp_path / "run"
    result = midvbatch(
        *_dask_run(
            dataset,
            out,
            two_workers,
            "--processor",
            "processors:Faults",
            "--option",
            'faults={"TS01": "memory"}',
            "--option",
            "memory_mb=900",
            "--worker-memory",
            "600MiB",
            "--retries",
            "0",
            "--docs",
            "01_*",
            "--clips",
            "T*",
        ),
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert re.search(
        r"TS01 dead \(memory: worker memory [\d,]+ MiB passed the limit of 600 MiB\) after 1 attempt", result.stderr
    ), result.stderr
    rows = ledger_rows(out, "SELECT clip, state, error_class, attempts FROM tasks ORDER BY clip")
    assert rows == [("TA01", "done", None, 1), ("TS01", "dead", "memory", 1)]


def test_dask_worker_killed_mid_clip_costs_that_clip_one_attempt(dataset, tmp_path, two_workers):
    pids = _workers_ready(two_workers)
    out = tmp_path / "run"
    args = _dask_run(
        dataset,
        out,
        two_workers,
        "--processor",
        "processors:Faults",
        "--option",
        "delay=0.05",
        "--retry-delay",
        "0",
        "--docs",
        "01_*",
        "--clips",
        "[HK]*",
    )  # two running, two queued
    proc = start(*args)
    try:
        # (where each clip is reaches the orchestrator and status from the Dask workers, not only that it runs)
        victim = wait_for(lambda: [w for w in _running(out) if w["stage"].startswith("process_frame")], timeout=60)[0]
        os.kill(pids[victim["worker"]], signal.SIGKILL)
        assert proc.wait(timeout=180) == 0, proc.stderr.read()
        stderr = proc.stderr.read()
    finally:
        proc.kill()
    assert_every_clip_once(out, clips=4)  # nothing lost, nothing twice
    killed = re.findall(rf"(\w+) failed \(crash: Dask worker {re.escape(victim['worker'])} died running it\)", stderr)
    assert len(killed) == 1, stderr
    attempts = dict(ledger_rows(out, "SELECT clip, attempts FROM tasks"))
    assert attempts.pop(killed[0]) == 2 and set(attempts.values()) == {1}  # the others: Dask moved them, uncounted


def test_dask_orchestrator_killed_mid_run_resumes_with_the_same_cluster(dataset, tmp_path, two_workers):
    out = tmp_path / "run"
    args = _dask_run(
        dataset,
        out,
        two_workers,
        "--processor",
        "processors:Faults",
        "--option",
        "delay=0.05",
        "--docs",
        "01_*",
        "--clips",
        "[HKP]*",
    )
    proc = start(*args)
    try:
        wait_for(lambda: done_count(out) >= 2, timeout=90)  # (a ledger still being made counts 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    result = midvbatch(*args, timeout=180)
    assert result.returncode == 0, result.stderr
    assert re.search(r"resuming: \d+ clips done, [1-9]\d* were in flight and run again", result.stderr), result.stderr
    assert_every_clip_once(out, clips=6)


@pytest.fixture(scope="module")
def blind(tmp_path_factory, dataset):
    """A cluster of one worker that does not see a folder, HIDDEN (a tmpfs over it in its own mount namespace),
    and has a memory limit of its own (dask worker --memory-limit 700MiB): (address, HIDDEN). HIDDEN holds a
    copy of the dataset, HIDDEN/ds."""
    import shutil

    hidden = tmp_path_factory.mktemp("hidden")
    shutil.copytree(dataset, hidden / "ds", symlinks=True)
    address, procs = _start_cluster(
        tmp_path_factory.mktemp("blind"), workers=1, hide=hidden, extra=("--memory-limit", "700MiB")
    )
    try:
        yield address, hidden
    finally:
        _stop_cluster(procs)


def test_dask_nanny_memory_restart_fails_the_clip_with_class_memory(blind, dataset, tmp_path):
    """Dask's nanny restarts a worker past 95% of its own --memory-limit: its clip fails with class memory."""
    address, _ = blind
    out = tmp_path / "run"
    result = midvbatch(
        *_dask_run(
            dataset,
            out,
            address,
            "--processor",
            "processors:Faults",
            "--option",
            'faults={"TS01": "memory"}',
            "--option",
            "memory_mb=900",
            "--retries",
            "0",
            "--docs",
            "01_*",
            "--clips",
            "T*",
        ),
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert re.search(
        r"TS01 dead \(memory: Dask worker tcp://\S+ reached [\d,]+ MiB, past its memory limit; its "
        r"nanny restarted it\)",
        result.stderr,
    ), result.stderr
    assert ledger_rows(out, "SELECT clip, state FROM tasks ORDER BY clip") == [("TA01", "done"), ("TS01", "dead")]
    _workers_ready(address, 1)  # back for the next test


def test_dask_worker_without_the_dataset_stops_the_run_in_one_line(blind, tmp_path):
    address, hidden = blind
    out = tmp_path / "run"
    result = midvbatch(
        *_dask_run(hidden / "ds", out, address, "--processor", "processors:mean_colour", "--docs", "01_*"), timeout=180
    )
    assert result.returncode == 1
    lines = re.findall(
        rf"worker tcp://127\.0\.0\.1:\d+: cannot read {re.escape(str(hidden))}/ds/\S+: not mounted "
        r"there\?$",
        result.stderr,
        re.M,
    )
    assert len(lines) == 1, result.stderr  # one line, not one per clip
    assert "stopped because a Dask worker cannot see the dataset or the run folder" in result.stderr
    assert "Traceback" not in result.stderr
    # no clip paid for it: all back in the queue, no attempt counted
    assert ledger_rows(out, "SELECT DISTINCT state, attempts FROM tasks") == [("pending", 0)]


def test_dask_artifacts_come_back_when_the_run_folder_is_not_shared(blind, dataset):
    address, hidden = blind
    out = hidden / "runs" / "run"  # the worker sees the dataset, not the run folder
    args = _dask_run(
        dataset,
        out,
        address,
        "--processor",
        "processors:Faults",
        "--option",
        "write=true",
        "--docs",
        "01_*",
        "--clips",
        "T*",
    )
    shared = midvbatch(*args, timeout=180)
    returned = midvbatch(*args, "--artifacts", "return", timeout=180)
    assert shared.returncode == 1
    assert re.search(rf"cannot read {re.escape(str(out))}/tmp: the run folder is not shared with it", shared.stderr)
    assert returned.returncode == 0, returned.stderr
    assert "their artifacts come back with the results (--artifacts return)" in returned.stderr
    assert_every_clip_once(out, clips=2)
    written = sorted((out / "frames").glob("*.txt"))
    assert len(written) == 60 and all(f.read_text() == f.stem for f in written)
    assert ledger_rows(out, "SELECT COUNT(*) FROM artifacts") == [(60,)]


def test_dask_returned_artifacts_are_size_limited(tmp_path):
    from midvbatch.engine.worker import collect_artifacts
    from midvbatch.pipeline.spec import ClipOutcome

    def written(name: str, sizes: dict) -> str:
        folder = tmp_path / name
        for relative, size in sizes.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(b"x" * size)
        return str(folder)

    small = ClipOutcome(1, ok=True, frames=[{"frame": 1}])
    collect_artifacts(small, written("small", {"a.txt": 10, "frames/b.txt": 20}), limit=64)
    assert small.ok and small.artifacts == {"a.txt": b"x" * 10, "frames/b.txt": b"x" * 20}
    large = ClipOutcome(2, ok=True, frames=[{"frame": 1}])
    collect_artifacts(large, written("large", {"a.txt": 40, "frames/b.txt": 40}), limit=64)
    assert not large.ok and large.error_class == "permanent" and large.frames == [] and large.artifacts == {}
    assert "a clip may return (--artifacts return): share the run folder with the workers instead" in large.error
    assert not (tmp_path / "small").exists() and not (tmp_path / "large").exists()  # the local folders go


def test_dask_second_ctrl_c_stops_at_once_and_the_workers_let_go(dataset, tmp_path, two_workers):
    """TA01 runs (0.3 s a frame), TS01 is stuck in the processor: after Ctrl-C twice, TA01's cancelled task stops at
    its next frame, and TS01's worker, still on it a second later, is restarted."""
    out = tmp_path / "run"
    proc = start(
        *_dask_run(
            dataset,
            out,
            two_workers,
            "--processor",
            "processors:Faults",
            "--option",
            "delay=0.3",
            "--option",
            'faults={"TS01": "hang"}',
            "--docs",
            "01_*",
            "--clips",
            "T*",
        )
    )
    try:

        def both_in_frames():
            framing = [w for w in _running(out) if w["stage"].startswith("process_frame") and w.get("worker")]
            return framing if len(framing) == 2 else []

        running = wait_for(both_in_frames, timeout=60)
        stuck = next(w["worker"] for w in running if w["clip"] == "TS01")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, proc.stderr.read()
        stderr = proc.stderr.read()
    finally:
        proc.kill()
    assert ledger_rows(out, "SELECT DISTINCT state, attempts FROM tasks") == [("pending", 0)]
    assert re.findall(
        r"Dask worker (\S+) still ran a cancelled clip 1 s later \(stuck in the processor\): "
        r"restarting it",
        stderr,
    ) == [stuck], stderr
    with distributed.Client(two_workers, timeout=30) as client:
        # TA01's task stops at its next frame (0.3 s), not at the end of its 9 s clip; TS01's worker is a new one
        wait_for(
            lambda: (
                stuck not in client.nthreads()
                and len(client.nthreads()) == 2
                and not any(client.run(lambda dask_worker: len(dask_worker.state.executing)).values())
            ),
            timeout=20,
            interval=0.2,
        )


def test_dask_worker_without_a_nanny_cannot_be_restarted_and_the_log_says_so():
    """--task-timeout and --worker-memory restart a Dask worker through its nanny; one started without (here an
    in-process cluster of one worker) keeps running the clip, and the run's log says so instead of nothing."""
    from midvbatch.engine.dask import DaskExecutor
    from midvbatch.engine.workerref import WorkerRef

    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as local:
        executor = DaskExecutor(local.scheduler_address)
        try:
            address = next(iter(executor.client.nthreads()))
            executor.kill_worker(WorkerRef("dask", address), [])
            said = wait_for(executor.warnings, timeout=30, interval=0.1)
        finally:
            executor.shutdown()
    assert len(said) == 1 and said[0].startswith(f"cannot restart Dask worker {address} (") and "nanny" in said[0]
    assert said[0].endswith(
        "): the clip it was running goes on in its thread until it ends; start workers with a "
        "nanny (the default) for --task-timeout and --worker-memory to free them"
    )
