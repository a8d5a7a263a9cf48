"""Fetch a MIDV dataset's archives: resumable downloads, md5 checks, safe extraction.

Everything lives under the destination DEST::

    DEST/NAME/                     a complete document, moved into place only when whole
    DEST/.fetch/NAME.zip.part      a download in progress; the next attempt resumes it
    DEST/.fetch/NAME.zip           downloaded, not yet extracted (the next fetch reuses it)
    DEST/.fetch/NAME.zip.bad       failed its md5 check or was refused: never extracted
    DEST/.fetch/NAME.extracting/   an extraction in progress
    DEST/.fetch/md5.txt            the checksums read from the source
    DEST/.fetch/state.json         md5, size and source of every document fetched
    DEST/.fetch/lock               held (flock) while a fetch writes to DEST

Archives come over HTTP(S) (resumed with ``Range``) or FTP (resumed with ``REST``), or
from a local folder. Every document gets one :class:`DocumentOutcome`; one failing
document never stops the others.
"""

from __future__ import annotations

import fcntl
import fnmatch
import ftplib
import functools
import http.client
import json
import os
import re
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from midvbatch.dataset._connections import Connections
from midvbatch.dataset.archive import (
    ArchiveError,
    ExtractLimits,
    file_md5,
    has_document_structure,
    parse_md5_list,
    unpack_document,
)
from midvbatch.dataset.formats import ArchiveSource, DatasetFormat, get_format
from midvbatch.dataset.names import ascii_number
from midvbatch.errors import MidvBatchError
from midvbatch.fileio import TEXT_LIMIT, read_bytes, read_json, write_atomic
from midvbatch.version import __version__

_CHUNK = 256 << 10
_SMALL_LIMIT = TEXT_LIMIT  # md5.txt: MIDV-500's has 50 lines
_GRACE = 1.0  # seconds a stopped fetch waits for its threads to leave (they need milliseconds)
LABELS = {
    "fetched": "fetched",
    "present": "already present",
    "unverified": "present (not verified)",
    "failed": "FAILED",
}


class FetchError(MidvBatchError):
    """Fetch options that cannot be honoured: bad mirror URL, destination, archive folder, selection."""


class _Transient(Exception):
    """An attempt that failed in a way worth retrying (connection lost, 5xx, FTP 4xx)."""

    def __init__(self, message: str, progressed: bool = False):
        super().__init__(message)
        self.progressed = progressed  # bytes arrived: the next attempt starts further on


class _Permanent(Exception):
    """A document that will fail again the same way (404, FTP 550, retries used up)."""


class _GaveUp(_Permanent):
    """A transfer that kept failing transiently until its retries were used up."""


class _Stopped(Exception):
    """The fetch was interrupted (Ctrl-C): threads stop at their next chunk, or once their connection is cut."""


class _LocalError(Exception):
    """Writing to the destination failed (disk full, permissions): not the network's fault."""


@dataclass
class DocumentOutcome:
    """What happened to one document: fetched, present, unverified (present, not recorded) or failed."""

    document: str
    status: str  # fetched | present | unverified | failed
    reason: str | None = None  # why it failed
    source: str | None = None  # the archive's URL or path
    bytes_downloaded: int = 0  # transferred by this fetch, over all attempts
    bytes_resumed: int = 0  # not transferred again thanks to resuming (sum of resume offsets)
    md5: str | None = None
    verified: bool = False  # the md5 matched a line of md5.txt
    seconds: float = 0.0

    def describe(self) -> str:
        """Say in a few words what happened, as the CLI prints it after the document's name."""
        if self.status == "failed":
            return f"FAILED: {self.reason}"
        if self.status != "fetched":
            return LABELS[self.status]
        details = [f"{megabytes(self.bytes_downloaded)} downloaded"] if self.bytes_downloaded else []
        if self.bytes_resumed:
            details.append(f"{megabytes(self.bytes_resumed)} resumed")
        details.append("md5 ok" if self.verified else "md5 not checked")
        return f"fetched ({', '.join(details)})"

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class FetchReport:
    """The outcome of :func:`fetch`: one outcome per asked document, in catalog order."""

    dest: Path
    dataset: str
    source: str  # the folder URL or local folder the archives came from
    documents: list[DocumentOutcome]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def with_status(self, status: str) -> list[DocumentOutcome]:
        """Return the outcomes with this status."""
        return [d for d in self.documents if d.status == status]

    @property
    def failed(self) -> list[DocumentOutcome]:
        """The documents that could not be fetched."""
        return self.with_status("failed")

    def summary(self) -> str:
        """One line: counts per status, bytes downloaded, time, destination."""
        counts = [f"{len(self.with_status(s))} {LABELS[s].lower()}" for s in LABELS if self.with_status(s)]
        downloaded = sum(d.bytes_downloaded for d in self.documents)
        return (
            f"{len(self.documents)} documents: {', '.join(counts) or 'none'}; "
            f"{megabytes(downloaded)} downloaded in {self.seconds:.1f} s into {self.dest}"
        )

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {
            "dest": str(self.dest),
            "dataset": self.dataset,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "documents": [d.to_dict() for d in self.documents],
        }


def megabytes(n: float) -> str:
    """Render a byte count as '12.3 MB' (10**6 bytes)."""
    return f"{n / 1e6:.1f} MB"


class FetchProgress(Protocol):
    """What a fetch reports its progress to; download threads call it, so it must be thread-safe.

    The command line passes bars or plain lines (``midvbatch.ui``); the library default
    shows nothing.
    """

    def begin(self, names: list[str]) -> None:
        """A fetch of these documents starts."""

    def start(self, name: str, total: int | None, have: int) -> None:
        """A transfer of `total` bytes (None: unknown) begins with `have` already on disk."""

    def advance(self, name: str, n: int) -> None:
        """`n` more bytes arrived for `name`."""

    def stage(self, name: str, text: str) -> None:
        """What is being done to a document now ('verifying', 'extracting')."""

    def end(self, name: str, text: str) -> None:
        """A document is finished; `text` is its outcome."""

    def close(self) -> None:
        """The fetch is over."""


class FetchMeter:
    """A fetch's progress as data: archives begun and ended, bytes, rate and ETA.

    Not locked: the progress display that holds it serializes the calls. `clock` is
    injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.names: list[str] = []
        self.size: dict[str, int | None] = {}  # whole archive, once the server said
        self.have: dict[str, int] = {}  # bytes in the partial file
        self.stages: dict[str, str] = {}
        self.ended: set[str] = set()
        self.downloaded = 0
        self.started = clock()

    def begin(self, names: Iterable[str]) -> None:
        """Start counting a fetch of these documents."""
        self.names = list(names)
        self.started = self.clock()

    def start(self, name: str, total: int | None, have: int) -> None:
        """Note that a transfer of `total` bytes (None: unknown) begins with `have` on disk."""
        self.size[name], self.have[name] = total, have

    def advance(self, name: str, n: int) -> None:
        """Count `n` more bytes received for `name`."""
        self.have[name] = self.have.get(name, 0) + n
        self.downloaded += n

    def stage(self, name: str, text: str) -> None:
        """Note what is being done to a document now."""
        self.stages[name] = text

    def end(self, name: str) -> None:
        """Note that a document is finished."""
        self.ended.add(name)
        self.stages.pop(name, None)

    def remaining(self) -> float | None:
        """Bytes left to download: known sizes, plus the mean size for archives not started; None if unknown."""
        sizes = [s for s in self.size.values() if s]
        left: float = sum(max(s - self.have[n], 0) for n, s in self.size.items() if s and n not in self.ended)
        unstarted = sum(1 for n in self.names if n not in self.size and n not in self.ended)
        if unstarted:
            if not sizes:
                return None
            left += unstarted * sum(sizes) / len(sizes)
        return left

    def rate(self) -> float:
        """Bytes per second since the fetch began."""
        return self.downloaded / max(self.clock() - self.started, 1e-9)

    def eta(self, rate: float | None = None) -> float | None:
        """Seconds left at `rate` bytes/s (default: the rate so far); None when unknown."""
        remaining = self.remaining()
        rate = self.rate() if rate is None else rate
        if remaining is not None and rate > 0:
            return remaining / rate
        return 0.0 if remaining == 0 else None

    def active(self) -> list[tuple[str, str]]:
        """(document, where it is: a stage, a percentage or bytes) for each archive under way."""
        out = []
        for name in self.names:
            if name in self.ended or (name not in self.size and name not in self.stages):
                continue
            size = self.size.get(name)
            pct = f"{100 * self.have.get(name, 0) / size:.0f}%" if size else megabytes(self.have.get(name, 0))
            out.append((name, self.stages.get(name, pct)))
        return out


class _Silent:
    """Progress that shows nothing: the default of the library function."""

    def begin(self, names: list[str]) -> None:
        pass

    def start(self, name: str, total: int | None, have: int) -> None:
        pass

    def advance(self, name: str, n: int) -> None:
        pass

    def stage(self, name: str, text: str) -> None:
        pass

    def end(self, name: str, text: str) -> None:
        pass

    def close(self) -> None:
        pass


# --- transfers ------------------------------------------------------------------------


class _Tally:
    """Bytes of one document's transfers, passed on to the progress display."""

    def __init__(self, name: str, view: FetchProgress, stop: threading.Event):
        self.name, self.view, self.stop = name, view, stop
        self.downloaded = self.resumed = 0

    def start(self, total: int | None, have: int, resumed: bool) -> None:
        self.resumed += have if resumed else 0
        self.view.start(self.name, total, have)

    def check(self) -> None:
        """Raise _Stopped once the fetch is stopping: a stopped fetch changes no file."""
        if self.stop.is_set():
            raise _Stopped()

    def add(self, chunk: bytes, out) -> None:
        self.check()
        try:
            out.write(chunk)
        except OSError as exc:  # raised inside ftplib's callback: must not look like a network error
            raise _LocalError(f"{exc.filename or out.name}: {exc.strerror}") from None
        self.downloaded += len(chunk)
        self.view.advance(self.name, len(chunk))


def _reason(exc: BaseException) -> str:
    """Say what went wrong in a few words: 'Connection refused', 'timed out'."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _size_of(path: Path) -> int:
    """Return the size of a partial download, 0 if there is none; refuse a FIFO or device there."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(st.st_mode):  # appending to a FIFO would block
        raise _LocalError(f"{path}: not a regular file; move it away and fetch again")
    return st.st_size


def _range_total(header: str | None) -> tuple[int | None, int | None]:
    """Return (first byte, total size) of a Content-Range header; None where absent or '*'."""
    m = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", header or "")
    if not m:
        return None, None
    return tuple(None if g == "*" else int(g) for g in m.groups())  # type: ignore[return-value]


def _http_failure(exc: urllib.error.HTTPError, url: str) -> Exception:
    """Classify an HTTP error status: 5xx, 408 and 429 are worth retrying, the rest is final."""
    if exc.code >= 500 or exc.code in (408, 429):
        return _Transient(f"HTTP {exc.code} {exc.reason}")
    return _Permanent(f"{url}: HTTP {exc.code} {exc.reason}")


def _http_download(net: Connections, url: str, part: Path, timeout: float, tally: _Tally) -> None:
    """Download `url` into `part`, resuming from its size with a Range request."""
    have = _size_of(part)
    headers = {"User-Agent": f"midvbatch/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = net.opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            _, total = _range_total(exc.headers.get("Content-Range"))
            if total == have:  # already complete
                tally.start(total, have, resumed=True)
                return
            tally.check()
            part.unlink()
            raise _Transient("partial download does not fit the file on the server; starting over", True) from None
        raise _http_failure(exc, url) from None
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise _Transient(_reason(exc)) from None
    with response:
        length = response.headers.get("Content-Length")
        length = ascii_number(length.strip()) if length else None  # "²" or "1e3": no length told
        mode, resumed = "ab", False
        if have and response.status == 206:
            first, total = _range_total(response.headers.get("Content-Range"))
            if first != have:
                tally.check()
                part.unlink()
                raise _Transient(f"server resumed at byte {first}, not {have}; starting over", True)
            resumed = True
        else:
            mode, have = "wb", 0  # a 200 to a range request is the whole file: start over
            total = length
        tally.start(total, have, resumed)
        got = 0
        tally.check()  # before "wb" empties the partial file
        with open(part, mode) as out:
            while True:
                try:  # read1: what has arrived, so a cut loses nothing already received
                    chunk = response.read1(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {have + got} bytes: {_reason(exc)}", got > 0) from None
                if not chunk:
                    break
                tally.add(chunk, out)
                got += len(chunk)
    if total is not None and have + got < total:
        raise _Transient(f"connection closed after {have + got} of {total} bytes", got > 0)


@contextmanager
def _ftp_session(net: Connections, url: str, timeout: float) -> Iterator[tuple[ftplib.FTP, str]]:
    """Log in to the server of an ftp:// URL (anonymous unless it names a user); yield (ftp, path)."""
    parts = urlsplit(url)
    ftp = net.ftp(timeout)
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or "anonymous@"))
        ftp.voidcmd("TYPE I")  # binary: SIZE and REST count bytes
        yield ftp, unquote(parts.path)
    finally:
        ftp.close()


@contextmanager
def _ftp_errors(url: str) -> Iterator[None]:
    """Sort ftplib's exceptions into transient (4xx, lost connection) and permanent (5xx)."""
    try:
        yield
    except ftplib.error_perm as exc:
        raise _Permanent(f"{url}: FTP {str(exc).strip()}") from None
    except ftplib.error_temp as exc:
        raise _Transient(f"FTP {str(exc).strip()}") from None
    except (ftplib.Error, OSError, EOFError) as exc:
        raise _Transient(_reason(exc)) from None


def _ftp_download(net: Connections, url: str, part: Path, timeout: float, tally: _Tally) -> None:
    """Download `url` into `part`, resuming from its size with REST."""
    have = _size_of(part)
    got = 0
    with _ftp_errors(url), _ftp_session(net, url, timeout) as (ftp, path):
        try:
            total = ftp.size(path)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):  # no such file
                raise
            total = None  # SIZE not implemented: transfer anyway, size unknown
        if total is not None and have > total:
            tally.check()
            part.unlink()
            have = 0
        tally.start(total, have, resumed=have > 0)
        if total is not None and have == total:
            return
        with open(part, "ab") as out:

            def write(block: bytes) -> None:
                nonlocal got
                tally.add(block, out)
                got += len(block)

            try:
                ftp.retrbinary(f"RETR {path}", write, blocksize=_CHUNK, rest=have or None)
            except ftplib.error_perm as exc:
                if have and str(exc)[:3] in ("500", "501", "502", "504"):  # REST not understood
                    tally.check()
                    part.unlink()
                    raise _Transient("server cannot resume (REST); starting over", True) from None
                raise
            except (ftplib.error_temp, OSError, EOFError) as exc:
                raise _Transient(f"connection lost after {have + got} bytes: {_reason(exc)}", got > 0) from None
    if total is not None and have + got < total:
        raise _Transient(f"connection closed after {have + got} of {total} bytes", got > 0)


def _too_large(url: str) -> _Permanent:
    return _Permanent(f"{url}: more than the {_SMALL_LIMIT:,} bytes an md5 list may have")


def _read_small(net: Connections, url: str, timeout: float) -> bytes | None:
    """Return a small file's bytes (md5.txt, at most _SMALL_LIMIT), or None when the server says it has none."""
    if url.startswith("ftp:"):
        blocks: list[bytes] = []
        size = 0

        def keep(block: bytes) -> None:
            nonlocal size
            blocks.append(block)
            size += len(block)
            if size > _SMALL_LIMIT:
                raise _too_large(url)

        try:
            with _ftp_errors(url), _ftp_session(net, url, timeout) as (ftp, path):
                ftp.retrbinary(f"RETR {path}", keep)
        except _Permanent as exc:
            if " 550" in str(exc):
                return None
            raise
        return b"".join(blocks)
    try:
        with net.opener.open(url, timeout=timeout) as response:
            data = response.read(_SMALL_LIMIT + 1)
            if len(data) > _SMALL_LIMIT:
                raise _too_large(url)
            return data
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            return None
        raise _http_failure(exc, url) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(_reason(exc)) from None


def _retrying(attempt: Callable[[], object], retries: int, delay: float, stop: threading.Event):
    """Call `attempt` until it succeeds, retrying _Transient failures with exponential backoff.

    `retries` counts failures in a row that brought no bytes: an attempt that made
    progress (a connection cut mid-file) resets the count, so a long download over a
    flaky link finishes. Raises _Permanent once the retries are used up.
    """
    failures = attempts = 0
    while True:
        attempts += 1
        try:
            return attempt()
        except _Transient as exc:
            if stop.is_set():  # the failure was the stop cutting the connection
                raise _Stopped() from None
            failures = 0 if exc.progressed else failures + 1
            if failures > retries:
                raise _GaveUp(f"{exc} (gave up after {attempts} attempts)") from None
            if stop.wait(delay * 2 ** max(failures - 1, 0)):
                raise _Stopped() from None


# --- the fetch ------------------------------------------------------------------------

_T = TypeVar("_T")


def _in_threads(job: _Job, work: Callable[[str], _T], names: list[str], jobs: int) -> dict[str, _T]:
    """Return {name: work(name)} for every name, `jobs` at a time, each on a daemon thread.

    The calling thread only waits, a tenth of a second at a time, so that Ctrl-C reaches it
    at once whichever thread the kernel hands the signal to. On Ctrl-C (any exception
    here), or an exception in `work`: stop the threads, cut their connections, give them
    a moment to leave (each sees its connection end, or stops at its next chunk; partial
    downloads stay for resuming), then raise. A thread blocked where no cut reaches (a DNS
    look-up) is left behind: it changes no file once stopped, and ends with the process.
    """
    results: dict[str, _T] = {}
    failures: list[BaseException] = []
    queue, taking = iter(names), threading.Lock()

    def worker() -> None:
        while not job.stop.is_set():
            with taking:
                name = next(queue, None)
            if name is None:
                return
            try:
                results[name] = work(name)
            except _Stopped:
                return
            except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
                failures.append(exc)
                return

    count = min(jobs, len(names))
    threads = [threading.Thread(target=worker, name=f"midvbatch-fetch-{i}", daemon=True) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not failures:
                thread.join(0.1)
            if failures:
                raise failures[0]
    except BaseException:
        job.stop.set()
        job.connections.cut()
        deadline = time.monotonic() + _GRACE
        for thread in threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.0))
        raise
    return results


class _State:
    """DEST/.fetch/state.json: md5, size and source of every document fetched (thread-safe)."""

    def __init__(self, path: Path, warnings: list[str]):
        self.path = path
        self.lock = threading.Lock()
        self.documents: dict[str, dict] = {}
        if os.path.lexists(path):
            try:
                documents = read_json(path, TEXT_LIMIT, FetchError)["documents"]
                self.documents = {str(k): v for k, v in dict(documents).items() if isinstance(v, dict)}
            except FetchError as exc:  # a FIFO, too large, not JSON: the fetch goes on without it
                warnings.append(f"{exc}; documents present are not verified")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                warnings.append(f"{path}: unreadable ({_reason(exc)}); documents present are not verified")

    def record(self, name: str, entry: dict | None) -> None:
        """Store (or with None, forget) a document's entry and write the file atomically."""
        with self.lock:
            if entry is None:
                self.documents.pop(name, None)
            else:
                self.documents[name] = entry
            write_atomic(self.path, json.dumps({"version": 1, "documents": self.documents}, indent=1, sort_keys=True))


@dataclass
class _Job:
    """What every document's fetch shares."""

    title: str  # the dataset's, for messages
    source: ArchiveSource
    dest: Path
    work: Path
    base: str | None  # folder URL, or None with local
    local: Path | None
    md5s: dict[str, str] | None
    state: _State
    view: FetchProgress
    stop: threading.Event
    connections: Connections  # cut when the fetch stops
    retries: int
    retry_delay: float
    timeout: float
    limits: ExtractLimits
    warnings: list[str]

    @functools.cached_property
    def files(self) -> dict[str, str]:
        """Archive name -> its file name (NN_name -> NN_name.zip)."""
        return {a.name: a.file for a in self.source.archives}


def _fetch_one(job: _Job, name: str) -> DocumentOutcome:
    """Download (or find), verify, extract and install one document; never raises for its failures."""
    started = time.monotonic()
    tally = _Tally(name, job.view, job.stop)
    out = DocumentOutcome(name, "failed")
    archive: Path | None = None
    file = job.files[name]
    try:
        if job.local is not None:
            archive = job.local / file
            out.source = str(archive)
            if not archive.is_file():
                raise _Permanent(f"no {file} in {job.local}")
        else:
            url = out.source = f"{job.base}/{file}"
            archive = job.work / file
            if not archive.is_file():  # else: downloaded by an earlier fetch, not yet extracted
                part = archive.with_name(f"{file}.part")
                fetcher = _ftp_download if url.startswith("ftp:") else _http_download
                _retrying(
                    lambda: fetcher(job.connections, url, part, job.timeout, tally),
                    job.retries,
                    job.retry_delay,
                    job.stop,
                )
                os.replace(part, archive)
        tally.check()  # stopped: a downloaded archive waits for the next fetch
        job.view.stage(name, "verifying")
        out.md5 = file_md5(archive)
        expected = job.md5s.get(file) if job.md5s is not None else None
        if job.md5s is not None and expected is None:
            job.warnings.append(f"{name}: md5.txt has no line for {file}; archive not checked")
        if expected is not None and expected != out.md5:
            raise ArchiveError(f"md5 mismatch: expected {expected}, got {out.md5}")
        out.verified = expected is not None
        job.view.stage(name, "extracting")
        unpack_document(archive, job.dest / name, job.work / f"{name}.extracting", job.limits, job.source.layout)
        job.state.record(
            name,
            {
                "md5": out.md5,
                "size": archive.stat().st_size,
                "verified": out.verified,
                "source": out.source,
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
        if job.local is None:
            archive.unlink()
        out.status = "fetched"
    except ArchiveError as exc:  # md5 mismatch, refused, corrupt, no document inside
        out.reason = str(exc)
        if job.local is None and archive is not None and archive.is_file():
            # Set aside, never extracted; the next fetch downloads it anew.
            bad = archive.with_name(f"{file}.bad")
            os.replace(archive, bad)
            out.reason += f"; set aside as {bad}"
    except (_Permanent, _LocalError) as exc:
        out.reason = str(exc)
    except OSError as exc:
        out.reason = f"{exc.filename}: {exc.strerror}" if exc.filename else _reason(exc)
    out.bytes_downloaded, out.bytes_resumed = tally.downloaded, tally.resumed
    out.seconds = time.monotonic() - started
    job.view.end(name, out.describe())
    return out


def _check_base(url: str) -> str:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise FetchError(f"bad mirror URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https", "ftp") or not parts.hostname:
        raise FetchError(f"bad mirror URL {url!r}: give an ftp://, http:// or https:// folder URL")
    return url.rstrip("/")


def _number(name: str) -> int | None:
    """The number an archive's name starts with ('01_alb_id' -> 1), None for none."""
    head = name.split("_", 1)[0]
    return ascii_number(head)


def _select(fmt: DatasetFormat, source: ArchiveSource, docs: Iterable[str], local: Path | None) -> list[str]:
    docs = [p.strip() for pattern in docs for p in pattern.split(",") if p.strip()]  # 'clips,photo' is two
    names = [a.name for a in source.archives]
    if local is not None and not docs:  # by default, the archives the folder holds
        names = [a.name for a in source.archives if (local / a.file).is_file()]
        if not names:
            example = source.archives[0].file if source.archives else "none"
            raise FetchError(f"holds no {fmt.title} archive (like {example})", path=local)
    numbers = {ascii_number(p) for p in docs} - {None}  # ASCII digits only; int() of 5,000 digits raises
    chosen = [n for n in names if not docs or _number(n) in numbers or any(fnmatch.fnmatchcase(n, p) for p in docs)]
    if not chosen:
        raise FetchError(f"no {fmt.title} document matches {' '.join('--docs ' + p for p in docs)}")
    return chosen


def _checksums(job: _Job) -> dict[str, str] | None:
    """Read the md5 list (md5.txt) from the source (and keep a copy); None, with a warning, when there is none."""
    listing = job.source.checksums
    if listing is None:
        job.warnings.append(f"{job.title} publishes no checksums: archives are not checked")
        return None
    if job.local is not None:
        where = str(job.local / listing)
        listed = os.path.lexists(where)  # a FIFO or a link to /dev/zero is refused, not waited on
        data = read_bytes(where, _SMALL_LIMIT, FetchError, "an md5 list") if listed else None
    else:
        assert job.base is not None
        data = None
        for folder in _folder_and_parents(job.base):  # beside the archives, else higher up (MIDV-2020's)
            where = f"{folder}/{listing}"
            try:
                data = _retrying(
                    functools.partial(_read_small, job.connections, where, job.timeout),
                    job.retries,
                    job.retry_delay,
                    job.stop,
                )
            except _GaveUp as exc:  # the source is unreachable: no archive would come either
                raise FetchError(f"cannot read {where}: {exc}") from None
            except _Permanent as exc:
                job.warnings.append(f"{exc}: archives are not checked")
                return None
            if data is not None:
                break
        where = f"{job.base}/{listing}" if data is None else where
        if data is not None:
            write_atomic(job.work / listing, data)
    if data is None:
        job.warnings.append(f"no {listing} at {where}: archives are not checked")
        return None
    return parse_md5_list(data)


def _folder_and_parents(base: str, levels: int = 3) -> list[str]:
    """`base` and up to `levels` folders above it, not above the server's root."""
    scheme, _, rest = base.partition("://")
    host, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    return [f"{scheme}://{'/'.join([host, *parts[: len(parts) - up]])}" for up in range(min(levels, len(parts)) + 1)]


_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")


def _archive_stem(file: str) -> str:
    lower = file.lower()
    return next((file[: -len(s)] for s in _ARCHIVE_SUFFIXES if lower.endswith(s)), file).lower()


def _resolve_files(job: _Job, names: list[str], available: set[str]) -> None:
    """Where the source lists an archive under another name than expected (another case, or
    compressed: clips.tar.gz for clips.tar), fetch that one: the exact paths are not documented."""
    for name in names:
        file = job.files[name]
        if file in available:
            continue
        stem = _archive_stem(file)
        candidates = sorted(a for a in available if _archive_stem(a) == stem and a.lower().endswith(_ARCHIVE_SUFFIXES))
        if len(candidates) == 1:
            job.files[name] = candidates[0]


def _already_there(job: _Job, name: str) -> DocumentOutcome | None:
    """Return the outcome of a document that needs no fetching, None for one to fetch."""
    folder = job.dest / name
    entry = job.state.documents.get(name)
    if folder.is_dir() and entry is not None:
        return DocumentOutcome(name, "present", md5=entry.get("md5"), verified=bool(entry.get("verified")))
    layout = job.source.layout
    if folder.is_dir() and (has_document_structure(folder, layout) or has_document_structure(folder / name, layout)):
        return DocumentOutcome(name, "unverified")  # unzipped by hand, say
    if folder.is_file() or folder.is_dir() and any(folder.iterdir()):
        return DocumentOutcome(
            name, "failed", reason=f"{folder} exists and is not a document folder; move it away and fetch again"
        )
    if entry is not None:
        job.state.record(name, None)  # recorded, then deleted by hand: fetch it again
    return None


def _fetch_missing(job: _Job, names: list[str], jobs: int) -> dict[str, DocumentOutcome]:
    """Fetch the documents `names` (none of them there yet), `jobs` at a time: the source's checksums first, each
    archive under the name the source lists it by, then each document on its own thread; their outcomes by name."""
    job.md5s = _in_threads(job, lambda _: _checksums(job), ["md5"], 1)["md5"]
    available = set(job.md5s or ())
    if job.local is not None:
        available |= {e.name for e in os.scandir(job.local) if e.is_file()}
    _resolve_files(job, names, available)
    job.view.begin(names)
    try:
        return _in_threads(job, functools.partial(_fetch_one, job), names, jobs)
    finally:
        job.view.close()


@contextmanager
def _locked(path: Path, dest: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FetchError("another fetch is writing to this folder", path=dest) from None
        yield
    finally:
        os.close(fd)


def fetch(
    dest: str | Path,
    catalog: str = "midv500",
    docs: Iterable[str] = (),
    mirror: str | None = None,
    jobs: int = 2,
    from_archives: str | Path | None = None,
    progress: FetchProgress | None = None,
    retries: int = 4,
    retry_delay: float = 1.0,
    timeout: float = 30.0,
    limits: ExtractLimits = ExtractLimits(),
) -> FetchReport:
    """Download, verify and extract a dataset's archives into `dest`, one folder per document.

    `docs` are globs (or numbers) on document names, default all (with `from_archives`:
    the archives that folder holds). `mirror` replaces the catalog's archive folder URL
    (ftp, http or https). `jobs` archives are fetched at once. `retries` is how many
    failed attempts in a row, waiting `retry_delay` seconds and doubling, a transfer
    gets; `timeout` is per socket operation, in seconds. Documents already fetched (or
    present) are skipped without touching the network. `progress` is told how the
    fetch goes (see :class:`FetchProgress`); without it nothing is shown. Raises FetchError (or
    DatasetError for an unknown dataset) for options that cannot be honoured; a
    document that fails is reported in its outcome, never raised. A KeyboardInterrupt
    (Ctrl-C) stops it at once, even while a mirror stalls: its connections are cut, and
    partial downloads stay for the next fetch to resume.
    """
    started = time.monotonic()
    fmt = get_format(catalog)
    source = fmt.archives()
    if source is None:
        raise FetchError(f"dataset format {fmt.name} has no archives to fetch")
    if jobs < 1:
        raise FetchError(f"jobs must be at least 1, not {jobs}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FetchError("exists and is not a folder", path=dest)
    local = Path(from_archives) if from_archives is not None else None
    if local is not None and not local.is_dir():
        raise FetchError("no such folder" if not local.exists() else "not a folder", path=local)
    base = None if local is not None else _check_base(mirror or source.base_url)
    names = _select(fmt, source, docs, local)
    work = dest / ".fetch"
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create: {exc.strerror}", path=work) from None
    warnings: list[str] = []
    view: FetchProgress = progress if progress is not None else _Silent()
    with _locked(work / "lock", dest):
        job = _Job(
            fmt.title,
            source,
            dest,
            work,
            base,
            local,
            None,
            _State(work / "state.json", warnings),
            view,
            threading.Event(),
            Connections(),
            retries,
            retry_delay,
            timeout,
            limits,
            warnings,
        )
        outcomes = {name: outcome for name in names if (outcome := _already_there(job, name)) is not None}
        todo = [n for n in names if n not in outcomes]
        if todo:
            outcomes.update(_fetch_missing(job, todo, jobs))
    where = str(local) if local is not None else str(base)
    return FetchReport(dest, fmt.name, where, [outcomes[n] for n in names], warnings, time.monotonic() - started)
