"""--devices: one accelerator per worker (CUDA_VISIBLE_DEVICES), found with the driver's nvidia-smi, its memory
watched, its out-of-memory errors a class of their own. This machine has no GPU: the driver's tool is a script
on PATH that answers as nvidia-smi does (the real midvbatch, workers and subprocess calls around it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import env, exported, ledger_rows, midvbatch

from midvbatch.accelerators import device_memory, gpus, is_out_of_memory, parse_devices

FAKE_SMI = """#!/bin/sh
case "$1" in
  -L) printf 'GPU 0: Fake GPU (UUID: GPU-a)\\nGPU 1: Fake GPU (UUID: GPU-b)\\n' ;;
  --query-compute-apps=*) cat "$FAKE_SMI_APPS" 2>/dev/null ;;
  *) exit 9 ;;
esac
"""


@pytest.fixture
def driver(tmp_path, monkeypatch):
    """A PATH whose nvidia-smi lists two GPUs and the processes in FAKE_SMI_APPS; returns the environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(FAKE_SMI)
    tool.chmod(0o755)
    apps = tmp_path / "apps.csv"
    apps.write_text("")
    e = env()
    e["PATH"] = f"{bin_dir}{os.pathsep}{e['PATH']}"
    e["FAKE_SMI_APPS"] = str(apps)
    monkeypatch.setenv("PATH", e["PATH"])
    monkeypatch.setenv("FAKE_SMI_APPS", str(apps))
    return e


def _run(environment, *args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "midvbatch.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def _results(run_dir):
    return [r["result"] for r in exported(run_dir)]


def test_each_worker_sees_its_own_device(dataset, tmp_path, driver):
    done = _run(
        driver, "run", dataset, "--out", tmp_path / "run", "--processor", "processors:DeviceProbe", "--devices", "auto"
    )
    assert done.returncode == 0, done.stderr
    assert "2 workers: one per device (--devices)" in done.stderr
    assert "devices cuda:0, cuda:1, one per worker in turn" in done.stderr
    results = _results(tmp_path / "run")
    by_worker = {}
    for r in results:
        by_worker.setdefault(r["pid"], set()).add((r["visible"], r["device"]))
        assert r["accelerator"] == "cuda:0"  # the one device the worker sees
    assert all(len(devices) == 1 for devices in by_worker.values())  # a worker keeps its device
    assert set().union(*by_worker.values()) == {("0", "cuda:0"), ("1", "cuda:1")}


def test_devices_auto_without_a_driver_runs_on_the_cpu_and_says_so(dataset, tmp_path):
    e = env()
    e["PATH"] = os.pathsep.join(
        p for p in e["PATH"].split(os.pathsep) if not os.path.exists(os.path.join(p, "nvidia-smi"))
    )
    done = _run(
        e,
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:DeviceProbe",
        "--devices",
        "auto",
        "--clips",
        "TA01",
    )
    assert done.returncode == 0, done.stderr
    assert "--devices auto: no GPU driver found (nvidia-smi); the workers run on the CPU" in done.stderr
    assert {(r["accelerator"], r["device"]) for r in _results(tmp_path / "run")} == {(None, None)}


def test_a_device_out_of_memory_is_class_oom_retried_on_a_fresh_processor(dataset, tmp_path, driver):
    done = _run(
        driver,
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:DeviceProbe",
        "--option",
        "oom_clip=TA01",
        "--option",
        f"state_dir={tmp_path}",
        "--devices",
        "cuda:1",
        "--workers",
        "1",
        "--retry-delay",
        "0",
        "--clips",
        "TA0[12]",
    )
    assert done.returncode == 0, done.stderr
    assert "TA01 failed (oom: RuntimeError: CUDA out of memory." in done.stderr
    events = ledger_rows(tmp_path / "run", "SELECT message FROM events WHERE message LIKE 'failed: oom%'")
    assert len(events) == 1
    ta01 = [r for r in exported(tmp_path / "run") if r["clip"] == "TA01"]
    # the worker's second processor, set up once, ran it again: the first was closed after the error
    assert {(r["result"]["instance"], r["result"]["setups"]) for r in ta01} == {(2, 1)}
    assert ta01[0]["result"]["visible"] == "1"


def test_a_worker_past_its_device_memory_is_killed_and_its_clip_fails_oom(dataset, tmp_path, driver):
    done = _run(
        driver,
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:DeviceProbe",
        "--option",
        "hog_clip=TA01",
        "--devices",
        "cuda:0,cuda:1",
        "--device-memory",
        "1GiB",
        "--retries",
        "0",
        "--clips",
        "TA0[1-4]",
    )
    assert done.returncode == 1, done.stderr
    rows = dict(
        ledger_rows(tmp_path / "run", "SELECT clip, error_class || ': ' || error FROM tasks WHERE state = 'dead'")
    )
    assert rows == {"TA01": "oom: device memory 4,096 MiB passed the limit of 1,024 MiB"}


def test_devices_are_checked_and_apply_to_worker_processes_only(dataset, tmp_path):
    bad = midvbatch("run", dataset, "--out", tmp_path / "bad", "--devices", "gpu0")
    assert bad.returncode != 0 and "devices: 'gpu0' is not a device: give cuda:N" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
    threads = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "t",
        "--pool",
        "thread",
        "--devices",
        "cuda:0",
        "--processor",
        "processors:DeviceProbe",
        "--clips",
        "TA01",
    )
    assert threads.returncode == 0 and "--devices applies to local worker processes only" in threads.stderr
    assert {r["accelerator"] for r in _results(tmp_path / "t")} == {None}


def test_the_driver_readings(driver, tmp_path):
    assert gpus() == ("cuda:0", "cuda:1")
    (tmp_path / "apps.csv").write_text("4242, 1500\n4242, 500\n77, [N/A]\n")
    assert device_memory() == {4242: 2000 * 2**20}
    assert parse_devices("cuda:0, 1") == ("cuda:0", "cuda:1")
    with pytest.raises(ValueError, match="'cpu' is not a device"):
        parse_devices("cpu")


@pytest.mark.parametrize(
    "error, oom",
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
        (type("OutOfMemoryError", (RuntimeError,), {})("boom"), True),
        (RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory on device"), True),
        (RuntimeError("Failed to allocate memory for requested buffer of size 1024 on the CUDA device"), True),
        (MemoryError(), False),  # the process's own memory: class memory
        (ValueError("shape mismatch"), False),
    ],
)
def test_device_out_of_memory_is_told_from_other_errors(error, oom):
    assert is_out_of_memory(error) is oom
