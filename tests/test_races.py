"""Races and interruptions at any moment: Ctrl-C in a fetch whose mirror stalls, two runs started at once.

Real processes (the ``midvbatch`` command), real servers on 127.0.0.1 that stall where a
slow mirror does: in the TCP connect, before the greeting or the headers, in the middle of
a file, in the md5 list. Two runs on one folder meet at every moment of its making: one
of them is held there (its system call paused, as a busy machine would), the other starts.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import psutil
import pytest

with warnings.catch_warnings():  # pyftpdlib still imports asyncore and asynchat
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from conftest import env, ledger_rows, serving_ftp

from midvbatch.dataset.fetch import fetch
from midvbatch.dataset.synth import SynthConfig, synthesize

DOC = "01_alb_id"
ARCHIVE = f"{DOC}.zip"
CUT = 150_000  # bytes of the archive a stalling mirror sends before it stalls
STALL = 60.0  # how long a stalled server waits, at most, for the test to let it go


def cli(*args) -> list[str]:
    """The `midvbatch` console script's command line (its early Ctrl-C handler included)."""
    return [sys.executable, "-m", "midvbatch", *map(str, args)]


# --- a mirror that stalls -------------------------------------------------------------


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    """ROOT/archives/ holding 01_alb_id.zip (a synthetic document, stored) and its md5.txt."""
    root = tmp_path_factory.mktemp("mirror")
    synthesize(root / "synth", SynthConfig(docs=1, clips="TA", seed=7))
    folder = root / "archives"
    folder.mkdir()
    with zipfile.ZipFile(folder / ARCHIVE, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted((root / "synth" / DOC).rglob("*")):
            if path.is_file():
                zf.write(path, f"{DOC}/{path.relative_to(root / 'synth' / DOC).as_posix()}")
    assert (folder / ARCHIVE).stat().st_size > 2 * CUT
    (folder / "md5.txt").write_text(f"{md5_of(folder / ARCHIVE)}  {ARCHIVE}\n")
    return folder


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Stalling(http.server.BaseHTTPRequestHandler):
    """Serves server.root with Range; a path in server.stall stalls once: before its headers
    ("headers") or after so many bytes of its body (an int), until server.release is set."""

    def do_GET(self):
        srv = self.server
        path = unquote(self.path.split("?")[0])
        with srv.lock:
            stall = srv.stall.pop(path, None)
        file = srv.root / path.lstrip("/")
        if stall == "headers":
            self._stall()
            return
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        start = int(m.group(1)) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if stall is None:
            self.wfile.write(data[start:])
            return
        self.wfile.write(data[start : start + stall])
        self.wfile.flush()
        self._stall()

    def _stall(self):
        self.server.stalled.set()
        self.server.release.wait(STALL)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(archives) -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP mirror of the archives on 127.0.0.1; `stall` {path: "headers" | bytes} makes it stall."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    server.daemon_threads = True
    server.root, server.lock, server.stall = archives.parent, threading.Lock(), {}
    server.stalled, server.release = threading.Event(), threading.Event()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/archives"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


class _StallingFile(io.RawIOBase):
    """An archive opened by the FTP server: `cut` bytes from where the transfer starts, then a stall."""

    def __init__(self, path: str, cut: int, stalled: threading.Event, release: threading.Event):
        self.file, self.name = open(path, "rb"), path
        self.cut, self.stalled, self.release = cut, stalled, release
        self.sent = 0

    def seek(self, pos, whence=0):
        return self.file.seek(pos, whence)

    def read(self, n=-1):
        if self.sent >= self.cut:
            self.stalled.set()
            self.release.wait(STALL)  # the whole server stalls: control and data connections alike
            return b""
        data = self.file.read(min(n, self.cut - self.sent) if n >= 0 else self.cut - self.sent)
        self.sent += len(data)
        return data

    def close(self):
        self.file.close()
        super().close()


@pytest.fixture
def ftp_mirror(archives) -> Iterator[FTPServer]:
    """An anonymous FTP mirror (pyftpdlib) on 127.0.0.1; `stall` {file name: bytes} makes a RETR stall once."""
    stall: dict[str, int] = {}
    stalled, release = threading.Event(), threading.Event()

    class StallingFS(AbstractedFS):
        def open(self, filename, mode):
            cut = stall.pop(Path(filename).name, None)
            if cut is None:
                return super().open(filename, mode)
            return _StallingFile(filename, cut, stalled, release)

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(archives.parent))

    class Handler(FTPHandler):
        use_sendfile = False  # sendfile would bypass the stalling file

    Handler.authorizer, Handler.abstracted_fs = authorizer, StallingFS
    server = FTPServer(("127.0.0.1", 0), Handler)
    server.stall, server.stalled, server.release = stall, stalled, release
    server.url = f"ftp://127.0.0.1:{server.address[1]}/archives"
    with serving_ftp(server):
        yield server
        release.set()


@pytest.fixture
def silent_port() -> Iterator[tuple[int, str]]:
    """A port where TCP connects but nothing is ever said (no FTP greeting, no HTTP headers)."""
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])  # and never a word
            except OSError:
                return

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        threading.Thread(target=accept, daemon=True).start()
        yield listener.getsockname()[1], "ESTABLISHED"
        listener.shutdown(socket.SHUT_RDWR)
    for conn in held:
        conn.close()


@pytest.fixture
def unreachable_port() -> Iterator[tuple[int, str]]:
    """A port whose connects hang (its listen queue is full): the TCP connect stalls."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())  # the one place in the queue, taken
        yield listener.getsockname()[1], "SYN_SENT"


def connection_to(pid: int, port: int, status: str) -> bool:
    try:
        return any(
            c.raddr and c.raddr.port == port and c.status == status for c in psutil.Process(pid).net_connections("tcp")
        )
    except psutil.Error:
        return False


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"{proc.args[3]} ended early ({proc.returncode}): {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{proc.args[3]} never got there"
        time.sleep(0.01)


def interrupt(proc: subprocess.Popen, limit: float = 5.0) -> tuple[float, str]:
    """SIGINT `proc`; return (seconds until it exited, its stderr). Killed, and failed, past `limit`."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"fetch still running {limit:.0f} s after Ctrl-C")
    return time.monotonic() - sent, err


def assert_interrupted_at_once(seconds: float, proc: subprocess.Popen, err: str) -> None:
    assert proc.returncode == 130, err
    assert seconds < 2.0, f"exit {seconds:.2f} s after Ctrl-C"
    assert "Traceback" not in err and "Exception" not in err, err
    assert err.rstrip().endswith("interrupted: partial downloads are kept; run the same command again to resume")


# Where a mirror can stall a fetch: what the fetch is reading, and where in it.
STALLS = {
    "http-body": "archive, mid-file (HTTP)",
    "ftp-body": "archive, mid-file (FTP data connection)",
    "http-headers": "archive, before the response headers (HTTP)",
    "md5-http-body": "md5 list, mid-file (HTTP)",
    "md5-http-headers": "md5 list, before the response headers (HTTP)",
    "md5-ftp-body": "md5 list, mid-file (FTP)",
    "md5-connect": "md5 list, in the TCP connect",
    "md5-ftp-greeting": "md5 list, before the FTP greeting",
}


def interrupt_stalled_fetch(request, kind: str, dest: Path) -> float:
    """Fetch from a mirror that stalls where `kind` says; Ctrl-C once it stalls; return the seconds
    from Ctrl-C to exit (130, one line, no traceback). Then fetch again from a mirror that works:
    it resumes from the partial download where there is one, and the md5 matches."""
    archives = request.getfixturevalue("archives")
    part = dest / ".fetch" / f"{ARCHIVE}.part"
    if kind in ("md5-connect", "md5-ftp-greeting"):
        port, status = request.getfixturevalue("unreachable_port" if kind == "md5-connect" else "silent_port")
        url = f"{'http' if kind == 'md5-connect' else 'ftp'}://127.0.0.1:{port}/archives"
        stalled = None
    else:
        mirror = request.getfixturevalue("ftp_mirror" if "ftp" in kind else "http_mirror")
        mirror.stalled.clear()
        mirror.release.clear()
        file = "md5.txt" if kind.startswith("md5") else ARCHIVE
        where = file if "ftp" in kind else f"/archives/{file}"
        mirror.stall[where] = "headers" if kind.endswith("headers") else CUT if file == ARCHIVE else 10
        url, stalled = mirror.url, mirror.stalled
    proc = subprocess.Popen(
        cli("fetch", dest, "--mirror", url, "--docs", DOC),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    mid_archive = kind in ("http-body", "ftp-body")
    if mid_archive:
        wait_until(lambda: part.is_file() and part.stat().st_size > 0, proc)
    elif stalled is not None:
        wait_until(stalled.is_set, proc)
    else:
        wait_until(lambda: connection_to(proc.pid, port, status), proc)
    seconds, err = interrupt(proc)
    assert_interrupted_at_once(seconds, proc, err)
    kept = part.stat().st_size if part.exists() else 0
    assert 0 < kept <= CUT if mid_archive else not part.exists()
    if stalled is not None:
        mirror.release.set()  # pyftpdlib serves on one thread: a stalled transfer holds all of it
    else:
        mirror = request.getfixturevalue("http_mirror")
    report = fetch(dest, docs=(DOC,), mirror=mirror.url, retries=2, retry_delay=0.01, timeout=5.0)
    outcome = report.documents[0]
    assert (outcome.status, outcome.verified, outcome.bytes_resumed) == ("fetched", True, kept), outcome
    assert outcome.md5 == md5_of(archives / ARCHIVE)
    assert not part.exists()
    return seconds


# --- Ctrl-C in a fetch ----------------------------------------------------------------


def test_races_fetch_ctrl_c_in_a_stalled_http_body_exits_at_once_and_resumes(request, tmp_path):
    interrupt_stalled_fetch(request, "http-body", tmp_path / "dest")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", list(STALLS))
def test_races_fetch_ctrl_c_wherever_the_mirror_stalls_50_times(request, tmp_path, kind):
    tries = int(os.environ.get("MIDVBATCH_RACE_TRIES", 50))
    seconds = sorted(interrupt_stalled_fetch(request, kind, tmp_path / f"dest{i}") for i in range(tries))
    print(
        f"{STALLS[kind]}: Ctrl-C to exit over {tries} tries: median {seconds[tries // 2]:.3f} s, "
        f"max {seconds[-1]:.3f} s"
    )


# --- two runs on one folder -----------------------------------------------------------


def run(dataset: Path, out: Path, delay: float = 0.01) -> tuple:
    """`midvbatch run` of one clip into `out`, its frames taking `delay` seconds each."""
    return (
        "run",
        dataset,
        "--out",
        out,
        "--clips",
        "TA01",
        "--processor",
        "processors:mean_colour",
        "--option",
        f"delay={delay}",
        "--pool",
        "thread",
        "--workers",
        "1",
    )


# `midvbatch`, started ahead (argv: MOMENT FLAG OUT ARGS...): once imported it prints "ready" and waits
# for an instant of the machine's clock (CLOCK_MONOTONIC) on stdin, then runs. With a MOMENT other than
# "-", it is held once at that moment of making its run folder: it creates FLAG there and goes on once
# the test removes FLAG (its system call paused, as a busy machine would).
LAUNCH = r"""
import fcntl, os, sys, time

if __name__ == "__main__":
    moment, flag, out = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    held = []

    def hold():
        if not held:
            held.append(True)
            open(flag, "w").close()
            while os.path.exists(flag):
                time.sleep(0.002)

    def before(module, name, here):
        real = getattr(module, name)

        def call(*args, **kwargs):
            if here(*args):
                hold()
            return real(*args, **kwargs)

        setattr(module, name, call)

    if moment == "before-mkdir":  # it found no folder; the other makes it first
        before(os, "mkdir", lambda path, *_: os.path.abspath(path) == out)
    elif moment == "marker":  # its lock taken, its marker written under a temporary name
        before(os, "replace", lambda src, dst, *_: os.path.abspath(dst) == os.path.join(out, "midvbatch-run.json"))
    elif moment == "ledger":  # its ledger made, its config.toml on its way
        before(os, "replace", lambda src, dst, *_: os.path.abspath(dst) == os.path.join(out, "config.toml"))
    elif moment == "after-flock":  # its lock taken, nothing written yet (the lock file empty, or a dead run's pid)
        flock = fcntl.flock

        def locked(fd, operation):
            flock(fd, operation)
            if operation & fcntl.LOCK_EX and os.readlink(f"/proc/self/fd/{fd}") == os.path.join(out, "lock"):
                hold()

        fcntl.flock = locked
    import midvbatch.cli, midvbatch.engine.run  # (imported ahead: runs started together reach the folder together)
    from midvbatch.__main__ import entry

    sys.argv = ["midvbatch", *sys.argv[4:]]
    print("ready", flush=True)
    at = float(sys.stdin.readline())
    while time.monotonic() < at:
        pass
    entry()
"""


def launch(out: Path, *args, moment: str = "-", flag: Path | None = None) -> subprocess.Popen:
    """Start `midvbatch ARGS` ahead; it runs once go() tells it when."""
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, moment, str(flag), out, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def ready(proc: subprocess.Popen) -> None:
    """Wait until a launched `midvbatch` is ready to run."""
    assert proc.stdout.readline() == "ready\n", proc.communicate()[1]


def go(proc: subprocess.Popen, at: float | None = None) -> None:
    """Tell a launched, ready `midvbatch` to run at `at` (default: now)."""
    proc.stdin.write(f"{time.monotonic() if at is None else at}\n")
    proc.stdin.close()
    proc.stdin = None  # (communicate() would flush it)


def lock_holder_says(out: Path, pid: int) -> bool:
    try:
        return (out / "lock").read_text() == f"{pid}\n"
    except OSError:
        return False


def assert_one_ran_and_the_other_was_told(out: Path, procs: list[subprocess.Popen]) -> None:
    """Exactly one process ran; the other said, in one line, that that one (its pid) is using the folder."""
    outcomes = [(p, *p.communicate(timeout=120)) for p in procs]
    winners = [p for p, _, _ in outcomes if p.returncode == 0]
    assert len(winners) == 1, [(p.pid, p.returncode, err) for p, _, err in outcomes]
    for p, _, err in outcomes:
        if p is not winners[0]:
            assert p.returncode == 1
            assert "Traceback" not in err
            assert err.splitlines()[-1] == (
                f"Error: {out}: another midvbatch run (pid {winners[0].pid}) is using "
                "this run folder; wait for it, or stop it with Ctrl-C"
            ), err
    assert ledger_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state") == [("done", 1)]


def meet(dataset: Path, tmp_path: Path, moment: str, other: tuple = ("run",)) -> None:
    """A run held at `moment` of making its folder; then another command on the folder (`run`, or
    `retry`), which is refused at once or, if the held run had not taken the lock, takes the folder
    (the held one goes on once it holds it)."""
    out, flag = tmp_path / "run", tmp_path / "held"
    held = launch(out, *run(dataset, out), moment=moment, flag=flag)
    second = launch(out, *run(dataset, out)) if other == ("run",) else launch(out, *other)
    ready(held)
    go(held)
    wait_until(flag.exists, held)
    ready(second)
    go(second)
    deadline = time.monotonic() + 60
    while second.poll() is None and not lock_holder_says(out, second.pid):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    flag.unlink()
    assert_one_ran_and_the_other_was_told(out, [held, second])


@pytest.mark.parametrize("moment", ["before-mkdir", "after-flock", "marker"])
def test_races_run_two_runs_meet_while_the_folder_is_made_one_is_told(dataset, tmp_path, moment):
    meet(dataset, tmp_path, moment)


@pytest.mark.slow
def test_races_run_two_runs_meet_while_the_ledger_is_made_one_is_told(dataset, tmp_path):
    meet(dataset, tmp_path, "ledger")


@pytest.mark.slow
def test_races_run_retry_meets_a_resumed_run_before_its_pid_is_written(dataset, tmp_path):
    """The lock file still holds the pid of the run before (dead): retry names the one holding the lock now."""
    out = tmp_path / "run"
    assert subprocess.run(cli(*run(dataset, out)), env=env(), capture_output=True).returncode == 0
    meet(dataset, tmp_path, "after-flock", other=("retry", out, "--all-dead"))


def pair(dataset: Path, out: Path, offset: float) -> None:
    """Two runs on `out`, started at one instant (the second `offset` seconds later)."""
    # (its frames take 0.02 s each: the first still holds the folder when the second, however late, gets there)
    procs = [launch(out, *run(dataset, out, delay=0.02)) for _ in range(2)]
    for proc in procs:
        ready(proc)
    at = time.monotonic() + 0.05
    for proc, lag in zip(procs, (0.0, offset)):
        go(proc, at + lag)
    assert_one_ran_and_the_other_was_told(out, procs)


def test_races_run_two_runs_started_at_one_instant_one_is_told(dataset, tmp_path):
    for i, offset in enumerate((0.0, 0.0002)):
        pair(dataset, tmp_path / f"run{i}", offset)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_races_run_two_runs_started_at_one_instant_50_pairs(dataset, tmp_path):
    for i in range(int(os.environ.get("MIDVBATCH_RACE_TRIES", 50))):
        pair(dataset, tmp_path / f"run{i}", (i % 21 - 10) * 0.0002)  # the second up to 2 ms before or after
