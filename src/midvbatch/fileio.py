"""Reading input files with limits, and writing outputs atomically: the one way to do each.

Every file a user hands midvbatch (ground truth, templates, TOML, md5 lists, COCO files,
videos) is opened as a *regular file only* (a FIFO would hang the reader, /dev/zero would
fill memory), read up to a size cap, and parsed with every parse error caught: a damaged
file becomes one :class:`MidvBatchError` line naming it, never a traceback.

Every output is written to a temporary name beside its final one and renamed into
place, so a reader never sees half a file and a crash leaves the old file whole.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from midvbatch.errors import MidvBatchError, ResourceShortage, shortage

MiB = 1 << 20
JSON_LIMIT = 64 * MiB  # ground truth and templates are kilobytes; MIDV-2020's VIA files a few MB
TEXT_LIMIT = 4 * MiB  # TOML configurations, md5 lists
IMAGE_LIMIT = 256 * MiB  # an extracted frame: 8K as an uncompressed TIFF is 100 MB


def _describe(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def name_too_long(path: str | Path) -> bool:
    """Tell whether `path` is longer than a system can hold: 4096 bytes in all, or a part of more than 255."""
    name = os.fsencode(path)
    return len(name) >= 4096 or any(len(part) > 255 for part in name.split(b"/"))


def _missing(path: str | Path) -> str:
    return "a broken symbolic link" if os.path.islink(path) else "no such file"


def check_regular_file(path: str | Path, error: type[MidvBatchError] = MidvBatchError, what: str = "") -> int:
    """Return the size of `path` if it is a regular file (links followed); else raise `error` naming it.

    Never blocks: a FIFO is refused by its type, without opening it.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(_missing(path), path=path) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", path=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{_describe(st.st_mode)}, not {what or 'a regular file'}", path=path)
    return st.st_size


def _open_regular(path: str | Path, error: type[MidvBatchError], what: str) -> tuple[int, int]:
    """Open `path` for reading if it is a regular file; return (descriptor, size). Never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # NONBLOCK: a FIFO opens, then is refused
    except FileNotFoundError:
        raise error(_missing(path), path=path) from None
    except IsADirectoryError:
        raise error(f"a folder, not {what}", path=path) from None
    except OSError as exc:
        short = shortage(exc)
        if short is not None:  # the machine's state (ulimit -n), not the file's: retried
            raise ResourceShortage(f"cannot open: out of {short} ({exc.strerror})", resource=short, path=path) from None
        raise error(f"cannot read: {exc.strerror or exc}", path=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{_describe(st.st_mode)}, not {what}", path=path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def open_regular(
    path: str | Path, error: type[MidvBatchError] = MidvBatchError, what: str = "a file"
) -> io.BufferedReader:
    """Open the regular file `path` for reading in binary, to stream it (md5 of an archive, say).

    A FIFO, device, folder or missing file raises `error` naming it, without blocking.
    """
    fd, _ = _open_regular(path, error, what)
    return os.fdopen(fd, "rb")


def read_bytes(
    path: str | Path, limit: int, error: type[MidvBatchError] = MidvBatchError, what: str = "a file"
) -> bytes:
    """Return the bytes of the regular file `path`, at most `limit`; raise `error` naming the file otherwise."""
    fd, size = _open_regular(path, error, what)
    try:
        if size > limit:
            raise error(f"{size:,} bytes, more than the {limit:,} bytes {what} may have", path=path)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 * MiB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while we read it
                raise error(f"more than the {limit:,} bytes {what} may have", path=path)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", path=path) from None
    finally:
        os.close(fd)


def read_text(
    path: str | Path, limit: int = TEXT_LIMIT, error: type[MidvBatchError] = MidvBatchError, what: str = "a text file"
) -> str:
    """Return the UTF-8 text of `path` (regular file, at most `limit` bytes); raise `error` otherwise."""
    raw = read_bytes(path, limit, error, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start})", path=path) from None


Identity = tuple[int, int, int, int]  # a file's device, inode, size and modification time: unchanged, the same


def file_identity(path: str | Path) -> Identity | None:
    """The identity of the file at `path` (what keeps a cached reading of it valid); None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


_NUMBER_TYPES = (float, int)  # the types JSON gives a number (exactly: a bool is not one)


def finite_numbers(values: Iterable[Any]) -> bool:
    """Whether every value is a number as JSON gives it (an int or a float, not a bool) and finite: the usual
    coordinates, taken without a call each; callers check the rest one by one and name what is wrong."""
    try:
        return all(type(v) in _NUMBER_TYPES and math.isfinite(v) for v in values)
    except OverflowError:  # an integer past the float range
        return False


_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # 19 digits in a row: an integer that may not fit 64 bits


def loads(raw: bytes | str) -> Any:
    """What json.loads(raw) gives, read by orjson, 3 times faster, wherever it gives the same: a text with 19 digits
    in a row (orjson makes a float of an integer past 64 bits), and what orjson refuses (NaN, Infinity, 1e400, a
    lone surrogate, UTF-16, a BOM, an error), is read by json itself, which raises its own errors."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _LONG_NUMBER not in data.translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def parse_json(raw: bytes | str, path: str | Path, error: type[MidvBatchError] = MidvBatchError) -> Any:
    """Parse JSON; any failure (syntax, encoding, nesting too deep, a number too long) raises `error`."""
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=path) from None
    except UnicodeDecodeError:
        raise error("bad JSON: not UTF-8 text", path=path) from None
    except RecursionError:
        raise error("bad JSON: nested too deeply", path=path) from None
    except MemoryError:
        raise error("bad JSON: too large to hold in memory", path=path) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        if "integer string conversion" in str(exc):
            raise error(f"bad JSON: a number of more than {sys.get_int_max_str_digits():,} digits", path=path) from None
        raise error(f"bad JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", path=path) from None


def read_json(path: str | Path, limit: int = JSON_LIMIT, error: type[MidvBatchError] = MidvBatchError) -> Any:
    """Read and parse the JSON file `path` with limits; raise `error` naming it on any problem."""
    raw = read_bytes(path, limit, error, "a JSON file")
    if not raw.strip():
        raise error("empty file, expected JSON", path=path)
    return parse_json(raw, path, error)


RECORD_LIMIT = 64 * MiB  # one record of a file read a record at a time (a JSON list's element, a line)
_CHUNK = 1 * MiB
_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


class _JsonStream:
    """A JSON text read a chunk at a time: its position, the line it is at, one value decoded at a time."""

    def __init__(self, stream: IO[str], path: str | Path, error: type[MidvBatchError], limit: int):
        self.stream, self.path, self.error, self.limit = stream, path, error, limit
        self.buffer, self.pos, self.line, self.eof = "", 0, 1, False

    def _more(self) -> bool:
        """Read another chunk; False at the end of the file."""
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.line += self.buffer.count("\n", 0, self.pos)
        self.buffer, self.pos = self.buffer[self.pos :] + chunk, 0
        return True

    def fail(self, problem: str) -> MidvBatchError:
        line = self.line + self.buffer.count("\n", 0, self.pos)
        return self.error(f"bad JSON at line {line}: {problem}", path=self.path)

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buffer) or not self._more():
                return self.buffer[self.pos : self.pos + 1]

    def take(self, expected: str) -> str:
        """Take the next character, which must be one of `expected`."""
        char = self.peek()
        if not char or char not in expected:
            shown = " or ".join(repr(c) for c in expected)
            raise self.fail(f"expected {shown}, found {repr(char) if char else 'the end of the file'}")
        self.pos += 1
        return char

    def value(self) -> tuple[int, Any]:
        """Decode the next value; return (the line it starts at, the value)."""
        self.peek()
        line = self.line + self.buffer.count("\n", 0, self.pos)
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buffer) - self.pos > self.limit:
                    raise self.fail(
                        f"a value of more than {self.limit:,} characters, or not JSON ({exc.msg})"
                    ) from None
                if self._more():
                    continue
                raise self.fail(exc.msg) from None
            except RecursionError:
                raise self.fail("nested too deeply") from None
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                raise self.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
            if end == len(self.buffer) and not self.eof and self._more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return line, value


def json_items(
    stream: IO[str], path: str | Path, error: type[MidvBatchError] = MidvBatchError, limit: int = RECORD_LIMIT
) -> Iterator[tuple[str | None, int, Any]]:
    """Read a JSON text a value at a time, never whole: yield (key, line, value) for each element of a top-level
    list (key None), or, for a top-level object, for each element of each of its lists (key: the list's) and for
    each of its other values. Any problem (not JSON, a value of more than `limit` characters) raises `error`
    naming `path` and the line."""
    reader = _JsonStream(stream, path, error, limit)
    opening = reader.take("[{")
    if opening == "[":
        yield from _json_list(reader, None)
    else:
        if reader.peek() == "}":
            reader.pos += 1
        else:
            while True:
                _, key = reader.value()
                if not isinstance(key, str):
                    raise reader.fail("an object's key must be a string")
                reader.take(":")
                if reader.peek() == "[":
                    reader.pos += 1
                    yield from _json_list(reader, key)
                else:
                    line, value = reader.value()
                    yield key, line, value
                if reader.take(",}") == "}":
                    break
    if reader.peek():
        raise reader.fail("more after the end of the JSON value")


def _json_list(reader: _JsonStream, key: str | None) -> Iterator[tuple[str | None, int, Any]]:
    if reader.peek() == "]":
        reader.pos += 1
        return
    while True:
        line, value = reader.value()
        yield key, line, value
        if reader.take(",]") == "]":
            return


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def is_temporary_of(name: str, final: str) -> bool:
    """True if `name` is the temporary name an output called `final` has on its way in (atomic_output),
    left behind by a process killed in that instant."""
    head, dot, rest = name.partition(f".{final}.")
    pid, _, tail = rest.partition(".")
    return not head and bool(dot) and tail == "tmp" and pid.isascii() and pid.isdigit()


@contextmanager
def atomic_output(path: str | Path, mode: str = "w", *, into_special: bool = False, **open_args: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it to `path`, on failure remove it.

    A reader of `path` sees the old file or the whole new one, never half of it. A symbolic
    link is replaced by the new file, and what it pointed to is left alone. With
    `into_special` (a user's --out), a `path` that exists and is not a regular file (a
    FIFO, /dev/stdout, /dev/null) is written into as it is, never replaced; without it (a
    file of midvbatch's own), such a thing is replaced by the regular file.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if into_special and st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        # a FIFO, a device (/dev/null, /dev/stdout), a process substitution: write into it, never replace it
        if stat.S_ISFIFO(st.st_mode):
            try:  # not blocking: a FIFO nobody reads would hang the command
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    raise OSError(errno.ENXIO, "a FIFO (named pipe) that nobody reads") from None
                raise
            os.set_blocking(fd, True)
            with open(fd, mode, **open_args) as stream:
                yield stream
            return
        with open(path, mode, **open_args) as stream:
            yield stream
        return
    tmp = _temporary(path)
    try:
        with open(tmp, mode, **open_args) as stream:
            yield stream
            stream.flush()
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def write_atomic(path: str | Path, data: bytes | str, *, into_special: bool = False) -> None:
    """Write `data` to `path` through a temporary file and a rename (see atomic_output)."""
    if isinstance(data, str):
        with atomic_output(path, "w", into_special=into_special, encoding="utf-8") as stream:
            stream.write(data)
    else:
        with atomic_output(path, "wb", into_special=into_special) as stream:
            stream.write(data)
