"""Reading ahead: a thread decodes the next frames while the processor works; bounded, closed, errors kept."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import exported, midvbatch

import midvbatch as api
from midvbatch.pipeline.prefetch import Prefetch


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "midvbatch-prefetch" and t.is_alive()]


def test_prefetch_gives_the_items_in_order_then_the_error_in_its_place():
    def source():
        yield from range(5)
        raise ValueError("frame 6 is damaged")

    with Prefetch(source(), 2) as ahead:
        assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="frame 6 is damaged"):
            next(ahead)
        with pytest.raises(StopIteration):
            next(ahead)
    assert list(Prefetch(iter(range(100)), 3)) == list(range(100))


def test_prefetch_reads_at_most_depth_ahead_and_close_stops_it_and_closes_the_source():
    produced, closed = [], []

    def source():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    ahead = Prefetch(source(), 4)
    assert next(ahead) == 0
    time.sleep(0.3)  # the thread fills the queue, then waits
    assert len(produced) <= 1 + 4 + 1  # the one taken, the queue, one in hand
    ahead.close()
    assert closed == [True] and not _prefetch_threads()
    with pytest.raises(StopIteration):
        next(ahead)


def test_prefetch_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        Prefetch(iter(()), 0)


def _results(run_dir):
    return {(r["clip"], r["frame"]): r["result"] for r in exported(run_dir)}


def test_prefetch_run_gives_the_same_results_as_without(dataset, tmp_path):
    plain = midvbatch(
        "run", dataset, "--out", tmp_path / "plain", "--processor", "processors:mean_colour", "--docs", "01_*"
    )
    ahead = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "ahead",
        "--processor",
        "processors:mean_colour",
        "--prefetch",
        "8",
        "--docs",
        "01_*",
    )
    assert plain.returncode == ahead.returncode == 0, ahead.stderr
    assert "2 process workers, 8 frames read ahead" in ahead.stderr
    keep = ("id", "mean", "has_quad")
    plain_results, ahead_results = _results(tmp_path / "plain"), _results(tmp_path / "ahead")
    assert len(ahead_results) == 300
    assert {k: {f: r[f] for f in keep} for k, r in plain_results.items()} == {
        k: {f: r[f] for f in keep} for k, r in ahead_results.items()
    }
    batched = midvbatch(
        "run",
        dataset,
        "--out",
        tmp_path / "both",
        "--processor",
        "processors:BatchedMean",
        "--prefetch",
        "8",
        "--batch-size",
        "4",
        "--clips",
        "TA01",
    )
    assert batched.returncode == 0 and len(_results(tmp_path / "both")) == 30


def test_prefetch_a_processor_that_raises_leaves_no_thread_behind(dataset, tmp_path):
    summary = api.run(
        str(dataset),
        str(tmp_path / "run"),
        processor="processors:Faults",
        options={"faults": {"TA01": "permanent"}, "state_dir": str(tmp_path)},
        workers=0,
        prefetch=16,
        clips=["TA01", "TS01"],
    )
    assert summary.counts["dead"] == 1 and summary.counts["done"] == 1
    time.sleep(0.2)
    assert not _prefetch_threads()


@pytest.mark.parametrize("value", ["-1", "1025", "x"])
def test_prefetch_out_of_range_is_one_line(dataset, tmp_path, value):
    done = midvbatch("run", dataset, "--out", tmp_path / "run", "--prefetch", value)
    assert done.returncode == 2 and "--prefetch" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """One clip of 1080x1920 frames: 6 MiB each once decoded."""
    from midvbatch.dataset.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("large")
    synthesize(root, SynthConfig(docs="01_*", clips="TA", width=1080, height=1920, seed=4))
    return root


@pytest.mark.parametrize("depth", [2, 8])
def test_prefetch_memory_is_bounded_by_its_depth(large, tmp_path, depth):
    # The processor is slow (0.1 s a frame), so decoding would run far ahead without a bound:
    # 30 frames of 6 MiB. With N frames read ahead the worker holds about N + 4 more (measured: 5.8 at
    # N = 2, 16.8 at N = 16: the frames waiting, the one being handed over, the decoder's own buffers).
    limit = 512 * 2**20  # held by the orchestrator: a worker past it would be killed and its clip failed
    done = midvbatch(
        "run",
        large,
        "--out",
        tmp_path / "run",
        "--processor",
        "processors:RssProbe",
        "--prefetch",
        str(depth),
        "--workers",
        "1",
        "--worker-memory",
        "512MiB",
    )
    assert done.returncode == 0, done.stderr
    results = [r for _, r in sorted(_results(tmp_path / "run").items())]
    frame = results[0]["bytes"]
    assert frame == 1080 * 1920 * 3
    growth = max(r["rss"] for r in results) - results[0]["rss"]
    assert growth <= (depth + 8) * frame < 30 * frame, (growth / frame, depth)
    assert max(r["rss"] for r in results) < limit
