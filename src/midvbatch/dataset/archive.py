"""Zip archives of documents: md5 lists, safe extraction, unpacking into place.

An archive from the network is untrusted. :func:`check_zip` refuses the whole archive,
naming the entry, when any entry would land outside the destination (absolute path,
``..`` component, drive letter, backslash), is not a regular file or folder (symlink,
device, FIFO), is encrypted, or would expand out of proportion (a zip bomb: an entry's
compression ratio, the total uncompressed size, entries whose compressed data overlap).
:func:`extract_zip` then writes the entries under the destination, and turns a corrupt
archive (bad header, CRC mismatch, truncated data) into an :class:`ArchiveError` too.
:func:`unpack_document` extracts a document's archive into a temporary folder and renames
the document folder into place, so a destination never holds half a document.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from midvbatch.dataset.formats.midv import STRUCTURE_DIRS
from midvbatch.errors import PermanentError
from midvbatch.fileio import check_regular_file, open_regular

_DRIVE = re.compile(r"^[A-Za-z]:")
_UNIX = 3  # ZipInfo.create_system of archives made on Unix: external_attr holds st_mode
_CHUNK = 1 << 20
_MD5_LINE = re.compile(r"^([0-9a-fA-F]{32})\s+\*?(.+)$")
_BSD_MD5_LINE = re.compile(r"^MD5 \((.+)\) = ([0-9a-fA-F]{32})$")


class ArchiveError(PermanentError):
    """An archive refused as unsafe, or unreadable as a zip; names the archive and the entry."""

    def __init__(self, message: str, *, path: str | Path | None = None, entry: str | None = None):
        self.entry = entry
        super().__init__(message, path=path)


@dataclass(frozen=True)
class ExtractLimits:
    """How far an archive may expand before it is refused as a zip bomb.

    An entry larger than `ratio_floor` bytes may not expand more than `max_ratio` times
    (small files are exempt: a 3 kB JSON can legitimately compress 200 times). The total
    uncompressed size may not pass `total_factor` times the archive's size, or
    `total_floor` bytes, whichever is larger. A document's archive holds H.264 videos,
    which do not compress, and photographs, which deflate a few times at most (the
    synthetic ones 1.1 times), so the defaults leave a wide margin.
    """

    max_ratio: float = 100.0
    ratio_floor: int = 1 << 20
    total_factor: float = 20.0
    total_floor: int = 64 << 20
    max_entries: int = 100_000

    def max_total(self, archive_size: int) -> int:
        """Return the largest total uncompressed size allowed for an archive of this size."""
        return max(self.total_floor, int(self.total_factor * archive_size))


@dataclass
class ExtractResult:
    """What :func:`extract_zip` wrote."""

    files: int
    bytes: int  # uncompressed


def _entry_error(archive: Path, name: str, problem: str) -> ArchiveError:
    return ArchiveError(f"refused: entry {name!r} {problem}", path=archive, entry=name)


def safe_entry_path(name: str) -> tuple[str, ...] | None:
    """Return the path components of a zip entry name, or None if it may leave its folder.

    Refused: empty names, NUL characters, absolute paths, drive letters ('C:'), any
    backslash (Windows would read it as a separator, and no portable zip tool writes
    one) and '..' components. '.' components and repeated slashes are dropped.
    """
    if not name or "\0" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts) or not parts:
        return None
    return parts


def _why_unsafe_name(name: str) -> str:
    if name.startswith(("/", "\\")):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "has a drive letter"
    if "\\" in name:
        return "has a backslash in its name"
    if "\0" in name:
        return "has a NUL character in its name"
    if any(p == ".." for p in name.split("/")):
        return "has a '..' component and would be written outside the destination"
    return "has an empty name"


def _entry_kind(info: zipfile.ZipInfo) -> str | None:
    """Return what a non-regular entry is ('a symlink', ...), None for a file or folder."""
    if info.create_system != _UNIX:
        return None
    mode = info.external_attr >> 16
    # No file-type bits at all (zipfile's writestr leaves them out) means a plain file.
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return f"a special file (mode {mode:o})"


def check_zip(
    zf: zipfile.ZipFile, archive: Path, archive_size: int, limits: ExtractLimits = ExtractLimits()
) -> list[zipfile.ZipInfo]:
    """Return the entries of an open archive, or raise ArchiveError for the first unsafe one.

    Reads only the central directory: nothing is decompressed. `archive` names the
    archive in messages; `archive_size` (bytes) bounds the total uncompressed size.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"refused: {len(infos)} entries (limit {limits.max_entries})", path=archive)
    total = compressed = 0
    for info in infos:
        name = info.filename
        if safe_entry_path(name) is None:
            raise _entry_error(archive, name, _why_unsafe_name(name))
        kind = _entry_kind(info)
        if kind is not None:
            raise _entry_error(archive, name, f"is {kind}, not a regular file")
        if info.flag_bits & 0x1:
            raise _entry_error(archive, name, "is encrypted")
        if info.file_size > limits.ratio_floor:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise _entry_error(
                    archive,
                    name,
                    f"would expand {ratio:.0f} times ({info.file_size} bytes from {info.compress_size}; "
                    f"limit {limits.max_ratio:g}): looks like a zip bomb",
                )
        total += info.file_size
        compressed += info.compress_size
    if total > limits.max_total(archive_size):
        raise ArchiveError(
            f"refused: would expand to {total} bytes from {archive_size} "
            f"(limit {limits.max_total(archive_size)}): looks like a zip bomb",
            path=archive,
        )
    if compressed > archive_size:
        # Only entries that share compressed data (the overlapping-file zip bomb) can
        # claim more compressed bytes than the archive holds.
        raise ArchiveError(
            f"refused: entries claim {compressed} compressed bytes, more than the "
            f"archive's {archive_size}: overlapping entries",
            path=archive,
        )
    return infos


def extract_zip(archive: str | Path, dest: str | Path, limits: ExtractLimits = ExtractLimits()) -> ExtractResult:
    """Check every entry of `archive`, then extract them all under the folder `dest`.

    Raises ArchiveError, before anything is written, for an unsafe entry (see
    :func:`check_zip`); and for a corrupt archive (not a zip, bad CRC, truncated data),
    possibly after some files were written: extract into a fresh temporary folder and
    discard it on error. OSError (disk full, no permission) propagates as is.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        size = check_regular_file(archive, ArchiveError, "a zip archive")  # a FIFO would block zipfile
        with zipfile.ZipFile(archive) as zf:
            infos = check_zip(zf, archive, size, limits)
            entries = ((i.filename, i.is_dir(), functools.partial(_copy_entry, zf, i, archive=archive)) for i in infos)
            result = _extract_entries(archive, dest, entries)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"corrupt zip archive: {exc}", path=archive) from None
    except (zlib.error, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"corrupt zip archive: {type(exc).__name__}: {exc}", path=archive) from None
    return result


def _extract_entries(
    archive: Path, dest: Path, entries: Iterable[tuple[str, bool, Callable[[str], int]]]
) -> ExtractResult:
    """Write checked entries (name, is a folder, write(target) -> bytes written) under `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    written = files = 0
    for name, is_dir, write in entries:
        parts = safe_entry_path(name)
        assert parts is not None  # the archive's check refused every unsafe name
        target = os.path.join(root, *parts)
        # Belt and braces: the names were checked, and nothing we write is a
        # symlink, so a target outside dest means a bug here, not a bad archive.
        if os.path.commonpath([root, os.path.realpath(os.path.dirname(target))]) != root:
            raise _entry_error(archive, name, "would be written outside the destination")
        try:
            if is_dir:
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written += write(target)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise _entry_error(archive, name, "clashes with another entry (a file and a folder of one name)") from None
        files += 1
    return ExtractResult(files, written)


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: str, archive: Path) -> int:
    """Write one entry to `target` (which must not exist); return the bytes written."""
    written = 0
    try:
        with zf.open(info) as src, open(target, "xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                # zipfile stops at the declared size; this guards the ratio check's premise.
                if written > info.file_size:
                    raise _entry_error(archive, info.filename, "holds more data than its header declares")
                out.write(chunk)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _entry_error(archive, info.filename, "clashes with another entry of the same path") from None
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"corrupt zip archive: entry {info.filename!r}: {exc}", path=archive, entry=info.filename
        ) from None
    return written


def _tar_kind(member: tarfile.TarInfo) -> str | None:
    """What a tar member is when it is neither a file nor a folder (a link, a device, a FIFO), else None."""
    if member.isfile() or member.isdir():
        return None
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return "a special file"


def check_tar(
    tf: tarfile.TarFile, archive: Path, archive_size: int, limits: ExtractLimits = ExtractLimits()
) -> list[tarfile.TarInfo]:
    """Return the members of an open tar archive, or raise ArchiveError for the first unsafe one:
    an absolute name or one with '..', a link, a device or FIFO, too many members, or more
    bytes in all than `limits` allow for an archive of `archive_size` bytes."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tf:
        members.append(member)
        if len(members) > limits.max_entries:
            raise ArchiveError(f"refused: more than {limits.max_entries} entries", path=archive)
        if safe_entry_path(member.name) is None:
            raise _entry_error(archive, member.name, _why_unsafe_name(member.name))
        kind = _tar_kind(member)
        if kind is not None:
            raise _entry_error(archive, member.name, f"is {kind}, not a regular file")
        total += member.size if member.isfile() else 0
        if total > limits.max_total(archive_size):
            raise ArchiveError(
                f"refused: would expand to more than {limits.max_total(archive_size)} bytes from {archive_size}: "
                "looks like a tar bomb",
                path=archive,
            )
    return members


def extract_tar(archive: str | Path, dest: str | Path, limits: ExtractLimits = ExtractLimits()) -> ExtractResult:
    """Check every member of a tar archive (plain or compressed), then extract them all under `dest`.

    Raises ArchiveError, before anything is written, for an unsafe member (see
    :func:`check_tar`), and for a corrupt or truncated archive (possibly after some files
    were written: extract into a fresh temporary folder and discard it on error). Only
    regular files and folders are written; nothing keeps the archive's owners or modes.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        size = check_regular_file(archive, ArchiveError, "a tar archive")
        with tarfile.open(archive, mode="r:*") as tf:
            members = check_tar(tf, archive, size, limits)
            entries = ((m.name, m.isdir(), functools.partial(_copy_member, tf, m, archive=archive)) for m in members)
            result = _extract_entries(archive, dest, entries)
    except tarfile.TarError as exc:
        raise ArchiveError(f"corrupt tar archive: {exc}", path=archive) from None
    except (zlib.error, EOFError) as exc:
        raise ArchiveError(f"corrupt tar archive: {type(exc).__name__}: {exc}", path=archive) from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # disk full, no permission: as is
        raise ArchiveError(f"corrupt tar archive: {exc}", path=archive) from None  # a bad gzip stream
    return result


def _copy_member(tf: tarfile.TarFile, member: tarfile.TarInfo, target: str, archive: Path) -> int:
    """Write one tar member to `target` (which must not exist); return the bytes written."""
    source = tf.extractfile(member)
    if source is None:
        raise _entry_error(archive, member.name, "has no data")
    left = member.size
    try:
        with source, open(target, "xb") as out:
            while left > 0 and (chunk := source.read(min(_CHUNK, left))):
                out.write(chunk)
                left -= len(chunk)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _entry_error(archive, member.name, "clashes with another entry of the same path") from None
    if left:
        raise ArchiveError(f"truncated tar archive: entry {member.name!r} ends early", path=archive)
    return member.size


def extract_archive(archive: str | Path, dest: str | Path, limits: ExtractLimits = ExtractLimits()) -> ExtractResult:
    """Extract a zip or a tar archive (by its name: .zip, .tar, .tar.gz, .tgz) safely under `dest`."""
    name = Path(archive).name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return extract_tar(archive, dest, limits)
    return extract_zip(archive, dest, limits)


def parse_md5_list(text: str | bytes) -> dict[str, str]:
    """Read an md5sum listing into {file name: lowercase md5}.

    Bytes are read as UTF-8 (a byte-order mark skipped, undecodable bytes replaced). Accepts ``<md5>  name`` and ``<md5> *name`` (md5sum's text and binary modes), BSD's
    ``MD5 (name) = <md5>``, CRLF line ends and blank lines; names are reduced to their
    last path component; other lines are ignored.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig", "replace")
    sums: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _MD5_LINE.match(line):
            digest, name = m.groups()
        elif m := _BSD_MD5_LINE.match(line):
            name, digest = m.groups()
        else:
            continue
        sums[name.strip().replace("\\", "/").rsplit("/", 1)[-1]] = digest.lower()
    return sums


def file_md5(path: str | Path) -> str:
    """Return the md5 of a file as lowercase hex.

    Raises ArchiveError naming it for anything but a regular file (a FIFO would block,
    /dev/zero never end) or a read error.
    """
    with open_regular(path, ArchiveError, "an archive") as f:
        try:
            return hashlib.file_digest(f, "md5").hexdigest()
        except OSError as exc:
            raise ArchiveError(f"cannot read: {exc.strerror or exc}", path=path) from None


def has_document_structure(folder: Path, layout: tuple[str, ...] = STRUCTURE_DIRS) -> bool:
    """Tell whether a folder holds any of the `layout` folders (videos/, images/, ground_truth/)."""
    return any((folder / d).is_dir() for d in layout)


def remove_path(path: Path) -> None:
    """Delete a file, symlink or folder tree if it exists (a symlink's target is left alone)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _document_root(tmp: Path, name: str, archive: Path, layout: tuple[str, ...] = STRUCTURE_DIRS) -> Path:
    """Find the folder holding videos/, images/, ground_truth/ in an extracted archive.

    Archives unzip to NAME/..., NAME/NAME/... or straight to videos/...; a wrapping
    folder is followed when it is NAME or the only folder there (macOS' __MACOSX aside).
    """
    folder = tmp
    for _ in range(4):
        if has_document_structure(folder, layout):
            return folder
        dirs = [e for e in folder.iterdir() if e.is_dir() and not e.name.startswith(".") and e.name != "__MACOSX"]
        if (folder / name).is_dir():
            folder = folder / name
        elif len(dirs) == 1:
            folder = dirs[0]
        else:
            break
    raise ArchiveError(f"holds no {', '.join(d + '/' for d in layout)} folder for {name}", path=archive)


def unpack_document(
    archive: str | Path,
    target: str | Path,
    scratch: str | Path,
    limits: ExtractLimits = ExtractLimits(),
    layout: tuple[str, ...] = STRUCTURE_DIRS,
) -> ExtractResult:
    """Extract a document's archive into `scratch`, then rename its document folder to `target`.

    `target`'s name is the document's (NN_name); `scratch` is a folder on the same file
    system (it is deleted first and after). `layout` names the folders a document's root
    holds (MIDV-2020's collections: images/, annotations/, video/). Zip or tar archive,
    whatever its layout (NAME/..., NAME/NAME/..., videos/...), `target` gets them directly,
    and appears only once complete. An empty `target` folder is replaced; any other
    existing `target` makes the rename fail with OSError. Raises ArchiveError for an
    unsafe or corrupt archive, or one holding no document.
    """
    archive, target, scratch = Path(archive), Path(target), Path(scratch)
    remove_path(scratch)
    try:
        result = extract_archive(archive, scratch, limits)
        root = _document_root(scratch, target.name, archive, layout)
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()
        os.rename(root, target)
    finally:
        remove_path(scratch)
    return result
