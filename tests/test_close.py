"""close(): every processor a worker builds is closed once, in every pool, through a real run."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import ledger_rows, midvbatch


def _events(record) -> dict[str, Counter]:
    events: dict[str, Counter] = {"built": Counter(), "setup": Counter(), "closing": Counter(), "close": Counter()}
    for line in record.read_text().splitlines():
        event, pid, ident = line.split()
        events[event][(pid, ident)] += 1
    return events


POOLS = [
    pytest.param("process", "2", (), id="process"),
    pytest.param("process", "1", ("--max-tasks-per-worker", "2"), id="process-recycled"),
    pytest.param("thread", "2", (), id="thread"),
    pytest.param("process", "0", (), id="inline"),
    pytest.param("dask", "2", ("--scheduler", "local"), id="dask-local"),
]


@pytest.mark.parametrize("pool, workers, extra", POOLS)
def test_close_once_per_processor_built(dataset, tmp_path, pool, workers, extra):
    if pool == "dask":
        pytest.importorskip("distributed")
    record = tmp_path / "record.txt"
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--pool",
        pool,
        "--workers",
        workers,
        *extra,
        "--processor",
        "processors:Closing",
        "--option",
        f"record={record}",
        "--docs",
        "01_*",
        "--clips",
        "T*",
        "--clips",
        "K*",
        "--no-check",
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    if pool == "dask":  # a local cluster shut down in order, distributed's log in the run's log file
        assert not [w for w in ("CRITICAL", "Traceback", "distributed.") if w in result.stderr], result.stderr
    assert ledger_rows(out, "SELECT state, attempts, COUNT(*) FROM tasks GROUP BY state, attempts") == [("done", 1, 4)]
    events = _events(record)
    built = events["built"]
    assert built and set(built.values()) == {1}
    assert events["setup"] == built  # each set up once
    assert events["close"] == built, (built, events["close"])  # each closed, once
    if extra[:1] == ("--max-tasks-per-worker",):
        assert len(built) == 2  # 4 clips, 2 per worker process: two processes, each closed its own


@pytest.mark.parametrize("pool, workers", [("process", "1"), ("thread", "1"), ("process", "0")])
def test_close_after_a_failed_setup(dataset, tmp_path, pool, workers):
    record = tmp_path / "record.txt"
    out = tmp_path / "run"
    result = midvbatch(
        "run",
        dataset,
        "--out",
        out,
        "--pool",
        pool,
        "--workers",
        workers,
        "--processor",
        "processors:Closing",
        "--option",
        f"record={record}",
        "--option",
        "fail_setup=true",
        "--clips",
        "TA01",
        "--docs",
        "01_*",
        "--retries",
        "1",
        "--retry-delay",
        "0",
        "--no-check",
    )
    assert result.returncode == 1, result.stderr
    assert "setup failed (injected)" in result.stderr
    events = _events(record)
    assert len(events["built"]) == 2  # one per attempt: a failed setup is not kept
    assert events["close"] == events["built"]


def test_a_sigterm_during_close_at_a_workers_exit_waits_for_close_to_finish(dataset, tmp_path):
    # --max-tasks-per-worker 1: each worker exits after its clip and closes its processor on the way out;
    # a SIGTERM then (the pool stopping it) must not cut that close() short
    import os
    import signal

    from conftest import start, wait_for

    record = tmp_path / "record.txt"
    proc = start(
        "run",
        dataset,
        "--out",
        tmp_path / "run",
        "--workers",
        "1",
        "--max-tasks-per-worker",
        "1",
        "--processor",
        "processors:Closing",
        "--option",
        f"record={record}",
        "--option",
        "close_seconds=1.5",
        "--clips",
        "TA01",
        "--clips",
        "TA02",
        "--docs",
        "01_*",
        "--no-check",
    )
    try:
        closing = wait_for(
            lambda: (
                record.exists() and [l.split()[1] for l in record.read_text().splitlines() if l.startswith("closing ")]
            ),
            timeout=60,
        )
        os.kill(int(closing[0]), signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        proc.kill()
    events = _events(record)
    assert events["close"] == events["built"], (events["built"], events["close"])
