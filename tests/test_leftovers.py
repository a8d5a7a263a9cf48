"""What a run leaves behind: no process a clip started outlives it, however it detached; a machine
running short of threads, processes or file descriptors makes clips wait and retry, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import env, ledger_rows, midvbatch, wait_for

from midvbatch.dataset.synth import SynthConfig, synthesize

FAULTS = "processors:Faults"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """One document, the four T* and K* clips, 180x320."""
    root = tmp_path_factory.mktemp("small")
    synthesize(root, SynthConfig(docs=1, clips="[TK]*", seed=3))
    return root


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _left(folder: Path, *kinds: str) -> list[int]:
    """The pids the processor's detached processes wrote in `folder` (CLIP.daemon, CLIP.session)."""
    return [int(p.read_text()) for kind in kinds for p in folder.glob(f"*.{kind}")]


def _faults(folder: Path, faults: dict) -> list[str]:
    return [
        "--processor",
        FAULTS,
        "--option",
        f"faults={json.dumps(faults)}",
        "--option",
        f"state_dir={json.dumps(str(folder))}",
    ]


def test_leftovers_detached_processes_end_with_their_clip(small, tmp_path):
    out = tmp_path / "run"
    faults = {"TA01": "daemon", "TS01": "session", "KA01": "daemon", "KS01": "session"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            small,
            "--out",
            out,
            "--workers",
            "1",
            *_faults(tmp_path, faults),
            "--option",
            "delay=0.01",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        first = wait_for(lambda: _left(tmp_path, "daemon", "session"), 60)[0]
        # ended when its clip ended, while the run goes on (three clips more, 0.3 s each)
        wait_for(lambda: not _alive(first), 5, 0.01)
        assert proc.poll() is None
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    pids = _left(tmp_path, "daemon", "session")
    assert len(pids) == 4
    assert not any(_alive(p) for p in pids)
    assert ledger_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state") == [("done", 4)]


@pytest.mark.parametrize("fault", ["daemon+sigkill", "session+exit3"])
def test_leftovers_a_worker_that_dies_leaves_nothing(small, tmp_path, fault):
    """The worker dies outright (SIGKILL, os._exit) after its clip detached a process: the orchestrator, which
    is handed that process, ends it."""
    kind = fault.split("+")[0]
    result = midvbatch(
        "run",
        small,
        "--out",
        tmp_path / "run",
        "--workers",
        1,
        "--retries",
        0,
        "--clips",
        "TA01",
        *_faults(tmp_path, {"TA01": fault}),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    pids = _left(tmp_path, kind)
    assert len(pids) == 1
    assert not _alive(pids[0])


def test_leftovers_a_clip_that_times_out_leaves_nothing(small, tmp_path):
    result = midvbatch(
        "run",
        small,
        "--out",
        tmp_path / "run",
        "--workers",
        1,
        "--retries",
        0,
        "--clips",
        "TA01",
        "--task-timeout",
        1,
        *_faults(tmp_path, {"TA01": "daemon+session+hang"}),
    )
    assert result.returncode == 1, result.stderr
    assert ledger_rows(tmp_path / "run", "SELECT error_class FROM tasks") == [("timeout",)]
    pids = _left(tmp_path, "daemon", "session")
    assert len(pids) == 2
    assert not any(_alive(p) for p in pids)


def test_leftovers_nothing_outlives_a_killed_orchestrator(small, tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            small,
            "--out",
            tmp_path / "run",
            "--workers",
            "2",
            *_faults(tmp_path, {"TA01": "daemon+hang", "TS01": "session+hang"}),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    try:
        wait_for(lambda: len(_left(tmp_path, "daemon", "session")) == 2, 60)
        pids = _left(tmp_path, "daemon", "session")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not any(_alive(p) for p in pids), 5, 0.01)
    finally:
        proc.kill()
        proc.wait()


# the machine running short ------------------------------------------------------------------------------------


def _limited(limit: int, value: int, uid: int | None = None):
    """A preexec_fn: `limit` (resource.RLIMIT_*) set to `value`; with `uid`, run as that real uid without the
    capabilities that lift RLIMIT_NPROC (root's processes are not counted; its files stay readable)."""
    import ctypes
    import resource

    def limit_child() -> None:
        if uid is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (21, 24):  # CAP_SYS_ADMIN, CAP_SYS_RESOURCE: gone from the program run next
                libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
            os.setresuid(uid, 0, 0)  # RLIMIT_NPROC counts the processes of the real uid
        resource.setrlimit(limit, (value, value))

    return limit_child


def _run_limited(small: Path, out: Path, preexec, *options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "run",
            small,
            "--out",
            out,
            "--pipeline",
            "ground-truth",
            *map(str, options),
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
        preexec_fn=preexec,
    )


def _said(stderr: str, pattern: str) -> list[str]:
    import re

    return [line for line in stderr.splitlines() if re.search(pattern, line)]


def test_leftovers_out_of_file_descriptors_the_run_goes_on_with_fewer_workers(small, tmp_path):
    import resource

    out = tmp_path / "run"
    result = _run_limited(small, out, _limited(resource.RLIMIT_NOFILE, 22), "--workers", 10000)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "workers capped at" in result.stderr
    lines = _said(result.stderr, r"ran out of file descriptors .*: going on with \d+ workers?;")
    assert 1 <= len(lines) <= 2, result.stderr  # a line each time it asks less
    assert ledger_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state") == [("done", 4)]


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the orchestrator as another uid (RLIMIT_NPROC counts per user)")
@pytest.mark.parametrize(
    ("options", "nproc", "said"),
    [
        (("--workers", 4), 9, r"ran out of (threads|processes) .*: going on with \d+ workers?;"),
        (
            ("--workers", 2, "--decode-threads", 8),
            10,
            r"ran out of threads .*decoding.*: decoding on 1 thread per worker",
        ),
    ],
    ids=["workers", "decoding-threads"],
)
def test_leftovers_out_of_threads_and_processes_the_run_asks_less(small, options, nproc, said):
    import resource
    import shutil
    import tempfile

    uid = 50000 + os.getpid() % 10000  # a user of its own: nothing else counts against its process limit
    base = Path(tempfile.mkdtemp(prefix="midvbatch-nproc-"))  # (the command line checks paths as that user sees them)
    try:
        shutil.copytree(small, base / "dataset")
        for folder in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        out = base / "run"
        result = _run_limited(base / "dataset", out, _limited(resource.RLIMIT_NPROC, nproc, uid), *options)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert 1 <= len(_said(result.stderr, said)) <= 2, result.stderr  # a line each time it asks less
        assert not _said(result.stderr, r"dead \([a-z]|permanent|OpenBLAS"), result.stderr
        assert ledger_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state") == [("done", 4)]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_leftovers_shortage_policy_asks_less_once_per_change():
    from midvbatch.engine.shortage import Shortages, resource_named

    policy = Shortages(8, 4, resizable=True)
    assert resource_named("decoding failed after frame 3: out of threads (EAGAIN)") == "threads"
    first = policy.short("threads", "TA01: ...", dispatched=1.0, now=2.0)
    assert (first.threads, first.workers, first.counted) == (1, None, False) and first.line
    assert policy.short("threads", "TS01: ...", dispatched=1.5, now=2.1) == type(first)()  # before the change
    fewer = policy.short("processes", "KA01: ...", dispatched=2.5, now=3.0, could_start=3)
    assert (fewer.workers, fewer.counted) == (3, False) and "going on with 3 workers" in (fewer.line or "")
    assert policy.short("file descriptors", "KS01: ...", dispatched=3.5, now=4.0).workers == 1
    floor = policy.short("threads", "TA01: ...", dispatched=4.5, now=5.0)
    assert floor.counted and "nothing left to lower" in (floor.line or "")
    again = policy.short("threads", "TA01: ...", dispatched=5.5, now=6.0)
    assert again.counted and again.line is None  # said once
    threads = Shortages(4, 1, resizable=False)  # threads cannot be resized: the clips wait
    assert threads.short("file descriptors", "TA01: ...", dispatched=0.0, now=1.0).counted
