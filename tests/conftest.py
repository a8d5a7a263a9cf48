"""Shared test helpers: real H.264 files written with PyAV, real sample data."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
import pytest

from midvbatch.dataset.synth import SynthConfig, synthesize

REAL = Path(__file__).parent / "data" / "midv500-real"


def index_image(i: int, width: int, height: int) -> np.ndarray:
    """An image whose top half encodes i % 16 and bottom half i // 16 (grey levels x 16)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2] = (i % 16) * 16
    img[height // 2 :] = (i // 16) * 16
    return img


def image_index(img: np.ndarray) -> int:
    """Read back the number index_image() drew."""
    h = img.shape[0]
    top = int(round(float(img[h // 4, 4, 0]) / 16))
    bottom = int(round(float(img[3 * h // 4, 4, 0]) / 16))
    return top + 16 * bottom


def write_video(
    path: Path,
    *,
    frames: int = 40,
    rate: float | Fraction = 30,
    width: int = 64,
    height: int = 96,
    rotation: int = 0,
    draw=index_image,
) -> Path:
    """Write a lossless H.264 video whose frame i shows draw(i, width, height) as displayed.

    `rotation` is the display rotation (degrees counter-clockwise) written in the
    container; stored frames are turned the other way, so the displayed picture is the
    drawn one, as on a phone.
    """
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=rate)
    turned = rotation % 180 == 90
    stream.width, stream.height = (height, width) if turned else (width, height)
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "0", "preset": "ultrafast"}
    if rotation:
        stream.set_display_rotation(rotation)
    for i in range(frames):
        img = draw(i, width, height)
        if rotation:
            img = np.ascontiguousarray(np.rot90(img, k=-(rotation // 90)))
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture
def real_data() -> Path:
    """The real MIDV-500 samples (see tests/data/midv500-real/SOURCES.md)."""
    return REAL


TESTS = Path(__file__).parent


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Two documents, ten clips each, 180x320: the engine's everyday test dataset."""
    root = tmp_path_factory.mktemp("dataset")
    synthesize(root, SynthConfig(docs=2, seed=11))
    return root


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")])
    return e


def midvbatch(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "midvbatch.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=kwargs.pop("timeout", 120),
        **kwargs,
    )


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "midvbatch.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def ledger_rows(run_dir: Path, sql: str):
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def wait_for(predicate, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def exported(run_dir: Path) -> list[dict]:
    """The run's records as `midvbatch export RUN_DIR` prints them, read in-process (the command's own code, without
    starting an interpreter for it: the tests of export itself run it in a subprocess)."""
    from click.testing import CliRunner

    from midvbatch.cli import cli

    result = CliRunner().invoke(cli, ["export", str(run_dir)])
    assert result.exit_code == 0 and result.exception is None, (result.exception, result.stderr)
    return [json.loads(line) for line in result.stdout.splitlines()]


def done_count(run_dir: Path) -> int:
    try:
        return ledger_rows(run_dir, "SELECT COUNT(*) FROM tasks WHERE state = 'done'")[0][0]
    except sqlite3.Error:
        return 0


def assert_every_clip_once(run_dir: Path, clips: int = 20, frames: int = 30) -> None:
    states = ledger_rows(run_dir, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
    assert states == [("done", clips)], states
    rows = ledger_rows(run_dir, "SELECT task, frame FROM frames")
    assert len(rows) == clips * frames == len(set(rows))
    keys = [(record["clip"], record["frame"]) for record in exported(run_dir)]
    assert len(keys) == len(set(keys)) == clips * frames


def kill_9_twice_then_resume(args, out: Path, done_before_kill: int, clips: int = 20) -> None:
    """Start `midvbatch *args`, SIGKILL the orchestrator once `done_before_kill` clips are done (its workers
    follow it), twice; then run it to the end and check that every frame was recorded exactly once."""
    for _ in range(2):
        proc = start(*args)
        wait_for(lambda: done_count(out) >= done_before_kill, timeout=120)
        children = workers_of(proc.pid)
        proc.kill()
        proc.wait()
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children), timeout=10)
        time.sleep(0.1)
    final = midvbatch(*args, timeout=300)
    assert final.returncode == 0, final.stderr
    assert_every_clip_once(out, clips=clips)


def workers_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@contextmanager
def serving_ftp(server) -> Iterator:
    """Serve a pyftpdlib FTPServer on a thread until the block ends (its loop polls every 50 ms)."""
    serving = threading.Event()
    serving.set()

    def loop():
        while serving.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        serving.clear()
        thread.join(5)
