"""peak_rss: a clip's own peak resident memory, not its worker process's lifetime peak."""

from __future__ import annotations

import pytest
from conftest import ledger_rows, midvbatch

MIB = 2**20


@pytest.mark.parametrize("pool, workers", [("process", "1"), ("process", "0")])
def test_peak_rss_is_the_clips_own(dataset, tmp_path, pool, workers):
    out = tmp_path / "run"
    # one worker: TA01 (first, by priority) holds 300 MiB; the clips after it, in the same process, hold nothing
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
        "processors:Hog",
        "--option",
        'clips=["TA01"]',
        "--option",
        "mb=300",
        "--docs",
        "01_*",
        "--clips",
        "T*",
        "--clips",
        "K*",
        "--priority",
        "id=TA01:10",
        "--no-check",
    )
    assert result.returncode == 0, result.stderr
    peaks = dict(ledger_rows(out, "SELECT clip, peak_rss FROM tasks"))
    assert len(peaks) == 4
    others = [peak for clip, peak in peaks.items() if clip != "TA01"]
    assert all(peak > 10 * MIB for peak in peaks.values())
    assert peaks["TA01"] > max(others) + 250 * MIB, peaks
