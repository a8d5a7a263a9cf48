"""Scale-out: the same run on a Dask cluster, reached through the scheduler's address: a real scheduler and
workers, each its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_every_clip_once, env, midvbatch

distributed = pytest.importorskip("distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, each started as its own process
    (not a LocalCluster), as on a cluster; the workers import the tests' processors. Killed, with whatever
    their tasks started, at the end."""
    scratch = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [str(Path(sys.executable).parent / "dask")]
    environment = env()
    common = ["--dashboard-address", ":0"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               *common], env=environment, cwd=scratch, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=open(scratch / "scheduler.log", "w"))]
    for i in range(2):
        procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--host", "127.0.0.1", "--local-directory", str(scratch / f"w{i}"), *common],
                                      env=environment, cwd=scratch, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=open(scratch / f"worker{i}.log", "w")))
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # a worker whose task hangs does not stop on SIGTERM
            except ProcessLookupError:
                pass
            proc.wait()


def test_dask_run_on_a_cluster_records_every_clip_once(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    args = ("run", dataset, "--out", out, "--pool", "dask", "--scheduler", cluster, "--processor",
            "processors:mean_colour", "--docs", "01_*")
    result = midvbatch(*args)
    assert result.returncode == 0, result.stderr
    assert f"Dask scheduler {cluster}" in result.stderr
    assert_every_clip_once(out, clips=10)
    pids = {__import__("json").loads(line)["result"]["pid"] for line in midvbatch("export", out).stdout.splitlines()}
    assert len(pids) == 2  # both Dask workers took clips
    again = midvbatch(*args)
    assert again.returncode == 0 and "resuming: 10 clips done" in again.stderr


def test_dask_processor_errors_are_classified_as_locally(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    result = midvbatch("run", dataset, "--out", out, "--pool", "dask", "--scheduler", cluster, "--processor",
                       "processors:Faults", "--option", '{"TS01": "permanent"}'.join(["faults=", ""]),
                       "--clips", "T*", "--docs", "01_*")
    assert result.returncode == 1
    assert "TS01 dead (permanent: corrupt input (injected))" in result.stderr


def test_dask_workers_take_clips_a_few_at_a_time_with_batches_across_them(dataset, tmp_path, cluster):
    out = tmp_path / "run"
    result = midvbatch("run", dataset, "--out", out, "--pool", "dask", "--scheduler", cluster, "--processor",
                       "processors:BatchedMean", "--batch-size", "16", "--batch-across-clips", "--prefetch", "4",
                       "--docs", "01_*")
    assert result.returncode == 0, result.stderr
    assert "workers take up to 4 clips at a time" in result.stderr
    assert_every_clip_once(out, clips=10)
    records = [__import__("json").loads(line)["result"] for line in midvbatch("export", out).stdout.splitlines()]
    assert max(len(r["clips"]) for r in records) == 2  # a batch of 16 went on from one clip into the next


def test_dask_unreachable_scheduler_is_one_line(dataset, tmp_path):
    result = midvbatch("run", dataset, "--out", tmp_path / "run", "--pool", "dask", "--scheduler",
                       "tcp://127.0.0.1:9", "--clips", "TA01", timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_dask_stages_reach_the_orchestrator_and_status(dataset, tmp_path, cluster):
    import json

    from conftest import start, wait_for

    out = tmp_path / "run"
    proc = start("run", dataset, "--out", out, "--pool", "dask", "--scheduler", cluster, "--processor",
                 "processors:Faults", "--option", "delay=0.1", "--docs", "01_*", "--clips", "T*")
    seen: set[str] = set()
    try:
        def stages():
            done = midvbatch("status", out, "--json")
            if done.returncode == 0:
                seen.update(w["stage"].split(" ")[0] for w in json.loads(done.stdout).get("workers", []))
            return {"decode", "process_frame"} & seen  # where each clip is, not only that it runs

        wait_for(stages, timeout=60, interval=0.2)
        assert proc.wait(timeout=180) == 0, proc.stderr.read()
    finally:
        proc.kill()
