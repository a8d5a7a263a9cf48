"""Soak: long torture runs, out of `make test` (run them with `make soak`)."""

from __future__ import annotations

import json
import random
import time

import pytest
from conftest import assert_every_clip_once, ledger_rows, midvbatch, start, wait_for, workers_of

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)
def test_soak_100_sigkills_with_transient_faults_and_sigints(dataset, tmp_path):
    """100 SIGKILLs and 10 Ctrl-Cs at random moments of one run whose clips fail transiently once."""
    out = tmp_path / "run"
    faults = {f"{c}{d}": "transient-once" for c in ("TA", "KS", "HA", "PS", "CA") for d in ("01", "02")}
    args = (
        "run",
        dataset,
        "--out",
        out,
        "--processor",
        "processors:Faults",
        "--option",
        f"faults={json.dumps(faults)}",
        "--option",
        f"state_dir={tmp_path}",
        "--option",
        "delay=0.05",
        "--retry-delay",
        "0.1",
        "--workers",
        "2",
    )
    rng = random.Random(7)
    interrupts = kills = 0
    for i in range(110):
        proc = start(*args)
        time.sleep(rng.uniform(0.05, 1.0))
        if proc.poll() is not None:
            break
        children = workers_of(proc.pid)
        if i % 11 == 10:
            proc.send_signal(2)
            proc.wait(timeout=120)
            interrupts += 1
        else:
            proc.kill()
            proc.wait()
            kills += 1
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children), timeout=10)
    final = midvbatch(*args, timeout=600)
    assert final.returncode == 0, final.stderr
    assert_every_clip_once(out)
    assert ledger_rows(out, "SELECT COUNT(*) FROM frames") == [(600,)]
    assert not (out / "tmp").exists() or not any((out / "tmp").iterdir())
    attempts = dict(ledger_rows(out, "SELECT clip, attempts FROM tasks"))
    # 2 where the transient failure was recorded; 1 where the orchestrator died before hearing of it
    assert {a for c, a in attempts.items() if c in faults} <= {1, 2}
    assert any(a == 2 for c, a in attempts.items() if c in faults)
    assert {a for c, a in attempts.items() if c not in faults} == {1}
    assert interrupts >= 1 and kills >= 50, (interrupts, kills)
