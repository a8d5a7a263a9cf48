"""Fetching a dataset: real HTTP and FTP servers on 127.0.0.1, real zips of synthetic documents."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import stat
import threading
import warnings
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from conftest import serving_ftp
from rich.console import Console

with warnings.catch_warnings():  # pyftpdlib still imports asyncore and asynchat
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from midvbatch.cli import cli
from midvbatch.dataset import discover
from midvbatch.dataset.archive import (
    ArchiveError,
    ExtractLimits,
    extract_zip,
    file_md5,
    parse_md5_list,
    safe_entry_path,
)
from midvbatch.dataset.fetch import FetchError, fetch
from midvbatch.dataset.synth import SynthConfig, synthesize
from midvbatch.errors import DatasetError
from midvbatch.ui.fetchview import FetchView

DOCS = ("01_alb_id", "02_aut_drvlic_new")
FAST = dict(retries=3, retry_delay=0.01, timeout=5.0)


# --- archives -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """Two synthetic MIDV-500 documents with their table clips (TA, TS)."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, SynthConfig(docs=2, clips="T*", seed=7))
    return root


def zip_document(documents: Path, name: str, out: Path, prefix: str | None = None, extra=()) -> Path:
    """Zip documents/name as out/name.zip with entries under `prefix` (default 'name/')."""
    prefix = f"{name}/" if prefix is None else prefix
    archive = out / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((documents / name).rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(documents / name).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return archive


def write_md5(folder: Path, crlf: bool = False) -> None:
    lines = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(folder.glob("*.zip"))]
    (folder / "md5.txt").write_bytes(("\r\n" if crlf else "\n").join(lines).encode() + b"\n")


@pytest.fixture
def archives(documents, tmp_path) -> Path:
    """A folder with 01_alb_id.zip, 02_aut_drvlic_new.zip and their md5.txt."""
    folder = tmp_path / "archives"
    folder.mkdir()
    for name in DOCS:
        zip_document(documents, name, folder)
    write_md5(folder)
    return folder


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# --- servers --------------------------------------------------------------------------


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.root with Range support, and the faults the tests ask for."""

    def do_GET(self):
        srv = self.server
        path = unquote(self.path.split("?")[0])
        rng = self.headers.get("Range")
        with srv.lock:
            srv.log.append((path, rng))
            cut = srv.cut_after.pop(path, None)
            if cut is None and srv.fail_first > 0 and path.endswith(".zip"):
                srv.fail_first -= 1
                self.send_error(503)
                return
        file = srv.root / path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        start, status = 0, 200
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        # Cut: send part of the body, then close (HTTP/1.0: the connection ends with the handler).
        self.wfile.write(body if cut is None else body[:cut])

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(archives):
    """An HTTP server on 127.0.0.1 serving the archives folder.

    Switches: cut_after ({path: bytes}: send only so many bytes of the body, once),
    fail_first (answer the next N archive requests not cut with 503), ignore_range.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    server.root, server.log, server.lock = archives.parent, [], threading.Lock()
    server.fail_first, server.cut_after, server.ignore_range = 0, {}, False
    server.url = f"http://127.0.0.1:{server.server_address[1]}/archives"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def ftp_server(archives):
    """An anonymous read-only FTP server (pyftpdlib) on the archives folder; logs REST and RETR."""
    log: list[tuple[str, str]] = []
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(archives.parent))

    class Handler(FTPHandler):
        fail_first = 0

        def ftp_REST(self, line):
            log.append(("REST", line))
            return super().ftp_REST(line)

        def ftp_RETR(self, file):
            log.append(("RETR", Path(file).name))
            if Handler.fail_first > 0 and file.endswith(".zip"):
                Handler.fail_first -= 1
                self.respond("450 Try again later.")
                return None
            return super().ftp_RETR(file)

    Handler.authorizer = authorizer
    server = FTPServer(("127.0.0.1", 0), Handler)
    server.log, server.handler = log, Handler
    server.url = f"ftp://127.0.0.1:{server.address[1]}/archives/"
    with serving_ftp(server):
        yield server


def retrieved(server) -> list[str]:
    return [path for path, _ in server.log if path.endswith(".zip")]


def assert_complete(dest: Path, names=DOCS) -> None:
    dataset = discover(dest)
    assert [d.name for d in dataset.documents] == list(names)
    for doc in dataset.documents:
        assert doc.folder == dest / doc.name  # one level, not NAME/NAME
        assert sorted(c.code for c in doc.clips) == ["TA", "TS"]
        assert all(len(c.ground_truth) == 30 and c.video is not None for c in doc.clips)
    assert not list((dest / ".fetch").glob("*.part")) and not list((dest / ".fetch").glob("*.extracting"))


# --- fetching -------------------------------------------------------------------------


def test_fetch_over_http(http_server, tmp_path):
    report = fetch(tmp_path / "dest", docs=("0[12]_*",), mirror=http_server.url, **FAST)
    assert [d.status for d in report.documents] == ["fetched", "fetched"]
    assert all(d.verified and d.bytes_downloaded > 0 and d.bytes_resumed == 0 for d in report.documents)
    assert report.warnings == []
    assert_complete(tmp_path / "dest")
    assert not list((tmp_path / "dest" / ".fetch").glob("*.zip"))  # archives removed once extracted


def test_fetch_over_ftp(ftp_server, tmp_path):
    report = fetch(tmp_path / "dest", docs=DOCS, mirror=ftp_server.url, **FAST)
    assert [d.status for d in report.documents] == ["fetched", "fetched"], report.documents
    assert all(d.verified for d in report.documents)
    assert_complete(tmp_path / "dest")


def test_fetch_resumes_a_cut_http_download(http_server, archives, tmp_path):
    size = (archives / "01_alb_id.zip").stat().st_size
    http_server.cut_after["/archives/01_alb_id.zip"] = 100_000
    http_server.fail_first = 100  # then the server fails: the fetch gives up, leaving the partial file
    dest = tmp_path / "dest"
    first = fetch(dest, docs=("01_*",), mirror=http_server.url, retries=1, retry_delay=0.01, timeout=5.0)
    assert first.documents[0].status == "failed"
    assert first.documents[0].reason == "HTTP 503 Service Unavailable (gave up after 3 attempts)"
    http_server.fail_first = 0
    assert (dest / ".fetch" / "01_alb_id.zip.part").stat().st_size == 100_000
    second = fetch(dest, docs=("01_*",), mirror=http_server.url, **FAST)
    outcome = second.documents[0]
    assert outcome.status == "fetched" and outcome.verified
    assert (outcome.bytes_downloaded, outcome.bytes_resumed) == (size - 100_000, 100_000)
    assert http_server.log[-1] == ("/archives/01_alb_id.zip", "bytes=100000-")
    assert_complete(dest, names=DOCS[:1])


def test_fetch_retries_a_cut_within_one_fetch(http_server, archives, tmp_path):
    size = (archives / "02_aut_drvlic_new.zip").stat().st_size
    http_server.cut_after["/archives/02_aut_drvlic_new.zip"] = 50_000
    report = fetch(tmp_path / "dest", docs=("02_*",), mirror=http_server.url, **FAST)
    outcome = report.documents[0]
    assert outcome.status == "fetched"
    assert (outcome.bytes_downloaded, outcome.bytes_resumed) == (size, 50_000)
    assert [r for p, r in http_server.log if p.endswith(".zip")] == [None, "bytes=50000-"]


def test_fetch_starts_over_when_the_server_ignores_range(http_server, archives, tmp_path):
    http_server.ignore_range = True
    part = tmp_path / "dest" / ".fetch" / "01_alb_id.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of another version")
    outcome = fetch(tmp_path / "dest", docs=("01_*",), mirror=http_server.url, **FAST).documents[0]
    assert outcome.status == "fetched" and outcome.verified and outcome.bytes_resumed == 0
    assert outcome.bytes_downloaded == (archives / "01_alb_id.zip").stat().st_size


def test_fetch_accepts_416_for_a_complete_partial_file(http_server, archives, tmp_path):
    part = tmp_path / "dest" / ".fetch" / "01_alb_id.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes((archives / "01_alb_id.zip").read_bytes())
    outcome = fetch(tmp_path / "dest", docs=("01_*",), mirror=http_server.url, **FAST).documents[0]
    assert outcome.status == "fetched" and outcome.verified and outcome.bytes_downloaded == 0


def test_fetch_resumes_over_ftp_with_rest(ftp_server, archives, tmp_path):
    data = (archives / "02_aut_drvlic_new.zip").read_bytes()
    part = tmp_path / "dest" / ".fetch" / "02_aut_drvlic_new.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:123_456])
    outcome = fetch(tmp_path / "dest", docs=("02_*",), mirror=ftp_server.url, **FAST).documents[0]
    assert outcome.status == "fetched" and outcome.verified
    assert (outcome.bytes_downloaded, outcome.bytes_resumed) == (len(data) - 123_456, 123_456)
    assert ("REST", "123456") in ftp_server.log


def test_fetch_retries_transient_http_503(http_server, tmp_path):
    http_server.fail_first = 2
    report = fetch(tmp_path / "dest", docs=("01_*",), mirror=http_server.url, jobs=1, **FAST)
    assert report.documents[0].status == "fetched" and report.documents[0].verified
    assert retrieved(http_server) == ["/archives/01_alb_id.zip"] * 3


def test_fetch_retries_transient_ftp_4xx(ftp_server, tmp_path):
    ftp_server.handler.fail_first = 2
    report = fetch(tmp_path / "dest", docs=("01_*",), mirror=ftp_server.url, **FAST)
    assert report.documents[0].status == "fetched"
    assert [name for what, name in ftp_server.log if what == "RETR"].count("01_alb_id.zip") == 3


def test_fetch_gives_up_on_an_unreachable_server(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="cannot read .*md5.txt: Connection refused .gave up after 2 attempts"):
        fetch(tmp_path / "dest", mirror=f"http://127.0.0.1:{port}/x", retries=1, retry_delay=0.01, timeout=2)


def test_fetch_sets_aside_an_archive_with_a_wrong_md5(http_server, archives, tmp_path):
    data = bytearray((archives / "02_aut_drvlic_new.zip").read_bytes())
    data[1000] ^= 0xFF
    (archives / "02_aut_drvlic_new.zip").write_bytes(bytes(data))  # md5.txt still has the good md5
    dest = tmp_path / "dest"
    report = fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    ok, bad = report.documents
    assert ok.status == "fetched"
    assert bad.status == "failed" and bad.reason.startswith("md5 mismatch: expected ")
    assert (dest / ".fetch" / "02_aut_drvlic_new.zip.bad").read_bytes() == bytes(data)
    assert not (dest / "02_aut_drvlic_new").exists()
    assert [d.name for d in discover(dest).documents] == ["01_alb_id"]


def test_fetch_lists_a_document_missing_on_the_server(http_server, archives, tmp_path):
    (archives / "02_aut_drvlic_new.zip").unlink()
    report = fetch(tmp_path / "dest", mirror=http_server.url, docs=DOCS, **FAST)
    assert [d.status for d in report.documents] == ["fetched", "failed"]
    assert report.failed[0].reason.endswith("02_aut_drvlic_new.zip: HTTP 404 Not Found")
    assert http_server.log.count(("/archives/02_aut_drvlic_new.zip", None)) == 1  # a 404 is not retried


def test_fetch_lists_a_document_missing_on_the_ftp_server(ftp_server, archives, tmp_path):
    (archives / "02_aut_drvlic_new.zip").unlink()
    report = fetch(tmp_path / "dest", mirror=ftp_server.url, docs=DOCS, **FAST)
    assert [d.status for d in report.documents] == ["fetched", "failed"]
    assert "FTP 550" in report.failed[0].reason


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("../../../evil", "has a '..' component"),
        ("/tmp/evil", "has an absolute path"),
    ],
)
def test_fetch_refuses_an_archive_that_writes_outside(http_server, documents, archives, tmp_path, entry, problem):
    zip_document(documents, "02_aut_drvlic_new", archives, extra=[(entry, b"owned")])
    write_md5(archives)
    dest = tmp_path / "dest"
    report = fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    assert report.documents[0].status == "fetched"
    bad = report.documents[1]
    assert bad.status == "failed"
    assert f"02_aut_drvlic_new.zip: refused: entry {entry!r} {problem}" in bad.reason
    assert not (dest / "02_aut_drvlic_new").exists()
    assert (dest / ".fetch" / "02_aut_drvlic_new.zip.bad").is_file()
    assert not [p for p in tmp_path.rglob("evil")] and not Path("/tmp/evil").exists()


def test_fetch_refuses_a_symlink_entry(documents, tmp_path):
    folder = tmp_path / "archives"
    folder.mkdir()
    zip_document(documents, "01_alb_id", folder, extra=[(symlink_entry("01_alb_id/videos/TK01.mp4"), "/etc/passwd")])
    report = fetch(tmp_path / "dest", from_archives=folder)
    assert report.documents[0].status == "failed"
    assert "refused: entry '01_alb_id/videos/TK01.mp4' is a symlink" in report.documents[0].reason
    assert not (tmp_path / "dest" / "01_alb_id").exists()


def test_fetch_refuses_a_zip_bomb(documents, tmp_path):
    folder = tmp_path / "archives"
    folder.mkdir()
    zeros = zipfile.ZipInfo("01_alb_id/videos/TH01.mp4")
    zeros.compress_type = zipfile.ZIP_DEFLATED
    zip_document(documents, "01_alb_id", folder, extra=[(zeros, bytes(50 << 20))])
    report = fetch(tmp_path / "dest", from_archives=folder)
    reason = report.documents[0].reason
    assert re.search(
        r"refused: entry '01_alb_id/videos/TH01.mp4' would expand \d+ times .*limit 100\): looks like a zip bomb",
        reason,
    )
    assert not (tmp_path / "dest" / "01_alb_id").exists()
    assert not (tmp_path / "dest" / ".fetch" / "01_alb_id.extracting").exists()


def test_fetch_again_transfers_nothing(http_server, tmp_path):
    dest = tmp_path / "dest"
    fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    requests = len(http_server.log)
    again = fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    assert [d.status for d in again.documents] == ["present", "present"]
    assert all(d.verified and d.md5 for d in again.documents)
    assert len(http_server.log) == requests  # not even md5.txt
    assert [d.describe() for d in again.documents] == ["already present", "already present"]


def test_fetch_counts_a_folder_unzipped_by_hand_as_present(http_server, documents, tmp_path):
    dest = tmp_path / "dest"
    import shutil

    shutil.copytree(documents / "01_alb_id", dest / "01_alb_id" / "01_alb_id")  # nested, as some unzip tools do
    report = fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    assert [d.status for d in report.documents] == ["unverified", "fetched"]
    assert report.documents[0].describe() == "present (not verified)"
    assert retrieved(http_server) == ["/archives/02_aut_drvlic_new.zip"]


def test_fetch_leaves_a_foreign_folder_alone(archives, tmp_path):
    (tmp_path / "dest" / "01_alb_id").mkdir(parents=True)
    (tmp_path / "dest" / "01_alb_id" / "notes.txt").write_text("mine")
    (tmp_path / "dest" / "02_aut_drvlic_new").mkdir()  # empty: replaced
    report = fetch(tmp_path / "dest", from_archives=archives)
    assert [d.status for d in report.documents] == ["failed", "fetched"]
    assert report.documents[0].reason.endswith(
        "01_alb_id exists and is not a document folder; move it away and fetch again"
    )
    assert (tmp_path / "dest" / "01_alb_id" / "notes.txt").read_text() == "mine"


def test_fetch_refuses_a_second_fetch_into_the_same_folder(archives, tmp_path):
    import fcntl

    (tmp_path / "dest" / ".fetch").mkdir(parents=True)
    with open(tmp_path / "dest" / ".fetch" / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(FetchError, match="dest: another fetch is writing to this folder"):
            fetch(tmp_path / "dest", from_archives=archives)


def test_fetch_refetches_a_recorded_document_deleted_by_hand(http_server, tmp_path):
    import shutil

    dest = tmp_path / "dest"
    fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    shutil.rmtree(dest / "01_alb_id")
    report = fetch(dest, mirror=http_server.url, docs=DOCS, **FAST)
    assert [d.status for d in report.documents] == ["fetched", "present"]
    assert_complete(dest)


def test_fetch_from_archives_needs_no_server(archives, tmp_path):
    report = fetch(tmp_path / "dest", from_archives=archives)
    assert [d.status for d in report.documents] == ["fetched", "fetched"]
    assert all(d.verified and d.bytes_downloaded == 0 for d in report.documents)
    assert_complete(tmp_path / "dest")
    assert sorted(p.name for p in archives.iterdir()) == ["01_alb_id.zip", "02_aut_drvlic_new.zip", "md5.txt"]


def test_fetch_from_archives_without_md5_warns(archives, tmp_path):
    (archives / "md5.txt").unlink()
    report = fetch(tmp_path / "dest", from_archives=archives, docs=("01_*",))
    assert report.documents[0].status == "fetched" and not report.documents[0].verified
    assert report.warnings == [f"no md5.txt at {archives / 'md5.txt'}: archives are not checked"]
    assert report.documents[0].describe().endswith("md5 not checked)")


def test_fetch_without_md5_on_the_server_warns(http_server, archives, tmp_path):
    (archives / "md5.txt").unlink()
    report = fetch(tmp_path / "dest", mirror=http_server.url, docs=("01_*",), **FAST)
    assert report.documents[0].status == "fetched" and not report.documents[0].verified
    assert report.warnings == [f"no md5.txt at {http_server.url}/md5.txt: archives are not checked"]


@pytest.mark.parametrize("layout", ["NAME/", "NAME/NAME/", "", "wrap/"])
def test_fetch_normalises_the_archive_layout(documents, tmp_path, layout):
    folder = tmp_path / "archives"
    folder.mkdir()
    for name in DOCS:
        zip_document(documents, name, folder, prefix=layout.replace("NAME", name))
    report = fetch(tmp_path / "dest", from_archives=folder, jobs=2)
    assert [d.status for d in report.documents] == ["fetched", "fetched"]
    assert_complete(tmp_path / "dest")


def test_fetch_docs_selects(http_server, tmp_path):
    report = fetch(tmp_path / "dest", mirror=http_server.url, docs=("2",), **FAST)
    assert [d.document for d in report.documents] == ["02_aut_drvlic_new"]
    assert retrieved(http_server) == ["/archives/02_aut_drvlic_new.zip"]


def test_fetch_user_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="unknown dataset format 'midv9'"):
        fetch(tmp_path / "d", catalog="midv9")
    with pytest.raises(FetchError, match="bad mirror URL 'file:///x'"):
        fetch(tmp_path / "d", mirror="file:///x")
    with pytest.raises(FetchError, match="file: exists and is not a folder"):
        fetch(tmp_path / "file")
    with pytest.raises(FetchError, match="nowhere: no such folder"):
        fetch(tmp_path / "d", from_archives=tmp_path / "nowhere")
    with pytest.raises(FetchError, match="no MIDV-500 document matches --docs 99_x"):
        fetch(tmp_path / "d", docs=("99_x",), mirror="http://127.0.0.1:1/")
    with pytest.raises(FetchError, match="holds no MIDV-500 archive"):
        fetch(tmp_path / "d", from_archives=tmp_path)


@pytest.mark.parametrize("terminal", [False, True])
def test_fetch_progress_lines(http_server, tmp_path, terminal):
    out = io.StringIO()
    clock = iter(range(0, 100_000, 3))  # 3 s a reading: a plain line every other reading
    console = Console(file=out, width=200, force_terminal=terminal)
    view = FetchView(console, interval=5.0, clock=lambda: float(next(clock)))
    fetch(tmp_path / "dest", mirror=http_server.url, docs=DOCS, progress=view, **FAST)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "\n", out.getvalue())  # terminal: drop cursor moves
    assert re.search(r"^01_alb_id: fetched \(0\.\d MB downloaded, md5 ok\)", text, re.M)
    assert re.search(r"^02_aut_drvlic_new: fetched \(0\.\d MB downloaded, md5 ok\)", text, re.M)
    if not terminal:
        assert re.search(r"^fetch: [012]/2 archives done, 0\.\d MB downloaded, 0\.0 MB/s, ETA \w+ \| 0", text, re.M)


def test_fetch_progress_eta_from_bytes():
    now = [0.0]
    view = FetchView(Console(file=io.StringIO()), interval=1e9, clock=lambda: now[0])
    view.begin(["a", "b"])
    view.start("a", 1000, 0)
    now[0] = 10.0
    view.advance("a", 500)  # 50 bytes/s; left: 500 of a, and b guessed at a's 1000
    assert view.line() == "fetch: 0/2 archives done, 0.0 MB downloaded, 0.0 MB/s, ETA 30s | a 50%"


# --- archive.py -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a/b.txt", True),
        ("./a//b", True),
        ("../a", False),
        ("a/../../b", False),
        ("/etc/passwd", False),
        ("C:/win", False),
        ("c:evil", False),
        ("a\\..\\b", False),
        ("\\\\server\\share", False),
        ("", False),
    ],
)
def test_fetch_safe_entry_path(name, ok):
    assert (safe_entry_path(name) is not None) == ok


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("..\\evil", "has a backslash in its name"),
        ("C:/evil", "has a drive letter"),
        ("a/../../evil", "has a '..' component"),
    ],
)
def test_fetch_extract_refuses_before_writing(tmp_path, entry, problem):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("first.txt", "written only if the archive were accepted")
        zf.writestr(entry, "evil")
    with pytest.raises(ArchiveError) as err:
        extract_zip(archive, tmp_path / "out")
    assert str(err.value) == f"{archive}: refused: entry {entry!r} {problem}" + (
        " and would be written outside the destination" if ".." in entry and "\\" not in entry else ""
    )
    assert err.value.entry == entry
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode, kind", [(stat.S_IFIFO | 0o644, "a FIFO"), (stat.S_IFCHR | 0o644, "a character device")])
def test_fetch_extract_refuses_special_files(tmp_path, mode, kind):
    info = zipfile.ZipInfo("dev")
    info.create_system, info.external_attr = 3, mode << 16
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "")
    with pytest.raises(ArchiveError, match=f"entry 'dev' is {kind}, not a regular file"):
        extract_zip(archive, tmp_path / "out")


def test_fetch_extract_limits_are_parameters(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", bytes(2 << 20))
    extract_zip(archive, tmp_path / "a", ExtractLimits(max_ratio=1e6))  # accepted with a looser ratio
    with pytest.raises(ArchiveError, match="would expand to 2097152 bytes .*looks like a zip bomb"):
        extract_zip(archive, tmp_path / "b", ExtractLimits(max_ratio=1e6, total_floor=0, total_factor=10))
    with pytest.raises(ArchiveError, match="'zeros' would expand"):
        extract_zip(archive, tmp_path / "c")


def test_fetch_extract_reports_corrupt_archives(tmp_path):
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"<html>404</html>")
    with pytest.raises(ArchiveError, match=r"not.zip: corrupt zip archive: File is not a zip file"):
        extract_zip(not_zip, tmp_path / "a")
    crc = tmp_path / "crc.zip"
    with zipfile.ZipFile(crc, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.bin", b"A" * 1000)
    raw = bytearray(crc.read_bytes())
    raw[raw.index(b"AAAA") + 10] = ord("B")
    crc.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=r"crc.zip: corrupt zip archive: entry 'data.bin': Bad CRC-32"):
        extract_zip(crc, tmp_path / "b")


def test_fetch_parse_md5_list():
    text = (
        "d41d8cd98f00b204e9800998ecf8427e  01_alb_id.zip\r\n\r\n"
        "D41D8CD98F00B204E9800998ECF8427F *02_aut_drvlic_new.zip\r\n"
        "MD5 (03_aut_id_old.zip) = 0123456789abcdef0123456789abcdef\n"
        "garbage line\n"
        "00000000000000000000000000000000  ./dataset/04_aut_id.zip\n"
    )
    assert parse_md5_list(text) == {
        "01_alb_id.zip": "d41d8cd98f00b204e9800998ecf8427e",
        "02_aut_drvlic_new.zip": "d41d8cd98f00b204e9800998ecf8427f",
        "03_aut_id_old.zip": "0123456789abcdef0123456789abcdef",
        "04_aut_id.zip": "00000000000000000000000000000000",
    }
    # as read from a file (fetch and validate alike): UTF-8 with a byte-order mark, a stray byte
    assert parse_md5_list(b"\xef\xbb\xbf" + text.encode() + b"\xff\n") == parse_md5_list(text)


# --- the command line -----------------------------------------------------------------


def test_fetch_cli_success_and_rerun(http_server, tmp_path):
    dest = tmp_path / "dest"
    result = CliRunner().invoke(cli, ["fetch", "--dest", str(dest), "--mirror", http_server.url, "--docs", "0[12]_*"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^01_alb_id          fetched \(\d\.\d MB downloaded, md5 ok\)$", result.stdout, re.M)
    assert re.match(r"2 documents: 2 fetched; \d\.\d MB downloaded in \d+\.\d s into ", result.stdout.splitlines()[-1])
    result = CliRunner().invoke(
        cli, ["fetch", "--dest", str(dest), "--mirror", http_server.url, "--docs", "0[12]_*", "--json"]
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [d["status"] for d in data["documents"]] == ["present", "present"]


def test_fetch_cli_lists_failures_and_exits_1(http_server, archives, tmp_path):
    (archives / "md5.txt").write_text(re.sub(r"^\w+(?=  02)", "0" * 32, (archives / "md5.txt").read_text(), flags=re.M))
    result = CliRunner().invoke(
        cli, ["fetch", "--dest", str(tmp_path / "d"), "--mirror", http_server.url, "--docs", "01_*", "--docs", "02_*"]
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("01_alb_id          fetched")
    assert lines[1].startswith(f"02_aut_drvlic_new  FAILED: md5 mismatch: expected {'0' * 32}, got ")
    assert lines[2].startswith("2 documents: 1 fetched, 1 failed;")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--mirror", "gopher://x/y"],
            "Error: bad mirror URL 'gopher://x/y': give an ftp://, http:// or https:// folder URL",
        ),
        (["--dataset", "midv9"], "Error: unknown dataset format 'midv9' (known: midv500, midv2019, midv2020, folder)"),
        (["--from-archives", "/nonexistent/archives"], "Error: /nonexistent/archives: no such folder"),
    ],
)
def test_fetch_cli_user_errors_are_one_line(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["fetch", "--dest", str(tmp_path / "d"), *args])
    assert result.exit_code == 1
    assert result.output.strip() == message


def test_fetch_cli_dest_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    result = CliRunner().invoke(cli, ["fetch", "--dest", str(tmp_path / "f")])
    assert (result.exit_code, result.output.strip()) == (1, f"Error: {tmp_path / 'f'}: exists and is not a folder")


def test_fetch_cli_from_archives_in_a_subprocess(archives, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "midvbatch.cli",
            "fetch",
            "--dest",
            str(tmp_path / "d"),
            "--from-archives",
            str(archives),
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "01_alb_id: fetched" in result.stderr  # plain progress lines: no terminal
    assert result.stdout.splitlines()[-1].startswith("2 documents: 2 fetched; 0.0 MB downloaded")


def test_fetch_archive_with_clashing_file_and_folder_is_refused(tmp_path):
    import zipfile as _zip

    from midvbatch.dataset.archive import ArchiveError, ExtractLimits, extract_zip

    archive = tmp_path / "01_alb_id.zip"
    with _zip.ZipFile(archive, "w") as zf:
        zf.writestr("01_alb_id/x", "a file")
        zf.writestr("01_alb_id/x/y", "under a file of the same name")
    with pytest.raises(ArchiveError, match="clashes with another entry"):
        extract_zip(archive, tmp_path / "out", ExtractLimits())


# --- damaged local files: one line, never a hang ----------------------------------------


def _make_special(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "what"), [("fifo", "a FIFO (named pipe)"), ("dev_zero", "a character device")])
def test_fetch_refuses_an_md5_list_that_is_not_a_file(archives, tmp_path, kind, what):
    _make_special(archives / "md5.txt", kind)
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path / "dest", from_archives=archives)
    assert str(caught.value) == f"{archives / 'md5.txt'}: {what}, not an md5 list"


def test_fetch_refuses_a_huge_md5_list(archives, tmp_path):
    with open(archives / "md5.txt", "ab") as f:
        f.write(b"\n" * (4 * 1024 * 1024))
    with pytest.raises(FetchError, match=r"md5.txt: 4,194,\d+ bytes, more than the 4,194,304 bytes an md5 list"):
        fetch(tmp_path / "dest", from_archives=archives)


def test_fetch_refuses_a_huge_md5_list_on_the_server(http_server, archives, tmp_path):
    with open(archives / "md5.txt", "ab") as f:
        f.write(b"\n" * (4 * 1024 * 1024))
    report = fetch(tmp_path / "dest", mirror=http_server.url, docs=("01_*",), **FAST)
    assert report.documents[0].status == "fetched" and not report.documents[0].verified
    assert report.warnings == [
        (f"{http_server.url}/md5.txt: more than the 4,194,304 bytes an md5 list may have: archives are not checked")
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "what"), [("fifo", "a FIFO (named pipe)"), ("dev_zero", "a character device")])
def test_fetch_state_file_that_is_not_a_file_is_a_warning(archives, tmp_path, kind, what):
    work = tmp_path / "dest" / ".fetch"
    work.mkdir(parents=True)
    _make_special(work / "state.json", kind)
    report = fetch(tmp_path / "dest", from_archives=archives)
    assert [d.status for d in report.documents] == ["fetched", "fetched"]
    assert report.warnings == [f"{work / 'state.json'}: {what}, not a JSON file; documents present are not verified"]
    assert not (work / "state.json").is_symlink() and set(
        json.loads((work / "state.json").read_text())["documents"]
    ) == set(DOCS), "the state file is replaced by a regular one, /dev/zero left alone"


def test_fetch_writes_its_state_and_md5_copy_atomically(http_server, tmp_path):
    work = tmp_path / "dest" / ".fetch"
    work.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("mine")
    (work / "md5.txt").symlink_to(elsewhere)  # written in place, the link's target would be overwritten
    fetch(tmp_path / "dest", mirror=http_server.url, docs=("01_*",), **FAST)
    assert elsewhere.read_text() == "mine" and not (work / "md5.txt").is_symlink()
    assert "01_alb_id.zip" in parse_md5_list((work / "md5.txt").read_text())
    assert sorted(p.name for p in work.iterdir()) == ["lock", "md5.txt", "state.json"], "no temporary file left"


@pytest.mark.timeout(60)
def test_fetch_md5_of_a_fifo_is_refused_not_awaited(tmp_path):
    os.mkfifo(tmp_path / "x.zip")
    with pytest.raises(ArchiveError, match=r"x.zip: a FIFO \(named pipe\), not an archive"):
        file_md5(tmp_path / "x.zip")
    with pytest.raises(ArchiveError, match=r"x.zip: a FIFO \(named pipe\), not a zip archive"):
        extract_zip(tmp_path / "x.zip", tmp_path / "out")
