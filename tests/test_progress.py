"""Progress: rates, ETA, the live panel and the plain lines, with an injected clock and console."""

from __future__ import annotations

import io

from rich.console import Console

from midvbatch.engine.progress import NoProgress, RateMeter, Snapshot, estimate_eta
from midvbatch.ui.runview import RunView, format_seconds, summary_line


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_progress_rate_meter_counts_a_sliding_window():
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    assert meter.rates() == (0.0, 0.0)
    for _ in range(4):
        clock.now += 1.0
        meter.add(30)
    assert meter.rates() == (1.0, 30.0)  # 4 clips in 4 s
    clock.now += 20.0  # all of them fall out of the window
    assert meter.rates() == (0.0, 0.0)
    meter.add(10)
    assert meter.rates() == (0.1, 1.0)  # 1 clip in the last 10 s


def test_progress_rate_meter_holds_buckets_not_clips():
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    for i in range(10_000):  # 10,000 clips in the second after the first
        clock.now = 1001.0 + i / 10_000
        meter.add(2)
    assert len(meter._buckets) <= 1 / RateMeter.BUCKET + 1
    clock.now = 1002.0
    assert meter.rates() == (5000.0, 10000.0)  # over the 2 s since the start


def test_progress_eta_by_frames_then_clips():
    assert estimate_eta(10, 300, 1.0, 30.0) == 10.0
    assert estimate_eta(10, 0, 2.0, 0.0) == 5.0  # clip processors: no frames counted
    assert estimate_eta(10, 300, 0.0, 0.0) is None
    assert estimate_eta(0, 0, 0.0, 0.0) == 0.0


def test_progress_format_seconds():
    assert [format_seconds(s) for s in (None, 4.4, 65, 3725)] == ["?", "4s", "1m05s", "1h02m"]


def snap(**kw) -> Snapshot:
    base = dict(
        state="running",
        total=20,
        pending=10,
        running=2,
        done=8,
        failed=0,
        dead=0,
        percent=40.0,
        eta_seconds=75,
        clips_per_second=1.5,
        frames_per_second=45.0,
        workers=[{"clip": "TA01", "stage": "decode 7/30", "pid": 4242, "seconds": 1.0}],
    )
    base.update(kw)
    return Snapshot(**base)


def test_progress_summary_line_says_paused():
    assert summary_line(snap()) == (
        "running: 8/20 done, 0 dead (40.0%), 2 running, 10 pending, 0 failed | 1.50 clips/s, 45.0 frames/s | ETA 1m15s"
    )
    assert summary_line(snap(paused_reason="memory")).startswith("paused (memory): ")


def test_progress_plain_lines_without_a_terminal_every_interval():
    out = io.StringIO()
    clock = Clock()
    view = RunView(Console(file=out, force_terminal=False, width=200), interval=5.0, clock=clock)
    view.update(snap(done=1))
    clock.now += 1.0
    view.update(snap(done=2))  # too soon: not printed
    clock.now += 5.0
    view.update(snap(done=3))
    view.close(snap(done=20, state="finished"))
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["running", "running", "finished"]
    assert "1/20 done" in lines[0] and "3/20 done" in lines[1] and "20/20 done" in lines[2]


def test_progress_live_panel_on_a_terminal_shows_workers():
    out = io.StringIO()
    view = RunView(Console(file=out, force_terminal=True, width=120), clock=Clock())
    view.update(snap())
    view.close(snap())
    text = out.getvalue()
    assert "TA01" in text and "decode 7/30" in text and "4242" in text
    assert "ETA 1m15s" in text


def test_progress_live_panel_not_drawn_before_the_first_snapshot():
    out = io.StringIO()
    view = RunView(Console(file=out, force_terminal=True, width=120), clock=Clock())
    view.close(None)  # a run refused before it started
    assert out.getvalue() == ""


def test_progress_library_default_shows_nothing(capsys):
    view = NoProgress()
    view.update(snap(), force=True)
    view.close(snap())
    assert capsys.readouterr() == ("", "")
