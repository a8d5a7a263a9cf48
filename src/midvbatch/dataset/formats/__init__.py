"""Dataset formats: the registry, detection, and discovery through them.

Built-in formats: ``midv500``, ``midv2019`` (:mod:`.midv`) and ``folder`` (:mod:`.folder`).
Other packages add formats through entry points of group ``midvbatch.datasets``: each
entry point names a :class:`~midvbatch.dataset.formats.base.DatasetFormat` instance (or a
class or function returning one). ``discover(root)`` asks every format how sure it is that
the folder is one of its datasets and lets the surest read it; ``discover(root, "midv2019")``
names the format.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from midvbatch.dataset.formats._output import checked
from midvbatch.dataset.formats.base import Archive, ArchiveSource, DatasetFormat
from midvbatch.dataset.formats.folder import FOLDER_FORMAT
from midvbatch.dataset.model import Dataset
from midvbatch.errors import DatasetError, MidvBatchError
from midvbatch.plugins import DATASETS, Described, Registry

ENTRY_POINT_GROUP = DATASETS
_log = logging.getLogger("midvbatch")


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _make_format(obj: Any) -> Any:
    return obj() if callable(obj) and not isinstance(obj, DatasetFormat) else obj


def _accept(name: str, origin: str, fmt: Any) -> DatasetFormat:
    if not isinstance(fmt, DatasetFormat):
        raise DatasetError(f"dataset format {name!r} ({origin}) is not a DatasetFormat (got {type(fmt).__name__})")
    if not fmt.name:
        fmt.name = name
    return fmt


def _unknown(name: str, known: list[str]) -> str:
    return f"unknown dataset format {name[:80]!r} (known: {', '.join(known)})"


def new_format_registry() -> Registry[DatasetFormat]:
    """Return a new registry of dataset formats: the built-ins, entry points of group midvbatch.datasets,
    nothing registered; names compared in any case, without '-' and '_'; its errors are DatasetError."""
    return Registry(
        DATASETS, "dataset format", error=DatasetError, key=_key, make=_make_format, accept=_accept, unknown=_unknown
    )


@functools.cache
def format_registry() -> Registry[DatasetFormat]:
    """Return this process's registry of dataset formats (made on first use; see new_format_registry)."""
    return new_format_registry()


def register(fmt: DatasetFormat) -> DatasetFormat:
    """Add a format for this process (a script's own format); returns it. Entry points are
    the way for formats that workers in other processes must find too."""
    if not isinstance(fmt, DatasetFormat) or not fmt.name:
        raise DatasetError(f"cannot register {fmt!r}: a DatasetFormat with a name is needed")
    return format_registry().register(fmt.name, fmt)


def format_names() -> list[str]:
    """Every known format's name, built-ins first; entry points are listed, not loaded."""
    return format_registry().names()


def _formats(skip_broken: bool) -> Iterator[DatasetFormat]:
    """Every known format, loaded; a plugin that cannot be loaded raises, or is left out with a warning."""
    for entry in format_registry().describe():
        if entry.value is not None:
            yield entry.value
        elif not skip_broken:
            raise DatasetError(entry.error or f"dataset format {entry.name!r} cannot be loaded")
        else:
            _log.warning("%s; it is left out of format detection", entry.error)


def all_formats() -> list[DatasetFormat]:
    """Every known format, loaded: built-ins, registered ones, entry points (a broken one raises)."""
    return list(_formats(skip_broken=False))


@dataclass(frozen=True)
class FormatInfo:
    """What `midvbatch formats` shows of one format."""

    name: str
    title: str
    summary: str
    source: str  # "built-in", "registered", or "entry point MODULE:ATTR" (as midvbatch processors says it)
    fetchable: bool  # archives() says where to download it from
    error: str | None = None  # why a plugin cannot be loaded

    def to_dict(self) -> dict:
        """Return a JSON-ready record."""
        return asdict(self)


def _info(entry: Described[DatasetFormat]) -> FormatInfo:
    fmt = entry.value
    if fmt is None:
        return FormatInfo(entry.name, "", "", entry.source, False, entry.error)
    try:
        fetchable = fmt.archives() is not None
    except Exception as exc:  # a broken plugin is listed, with what is wrong
        message = exc.message if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}"
        return FormatInfo(entry.name, "", "", entry.source, False, message)
    return FormatInfo(fmt.name, fmt.title, fmt.summary, entry.source, fetchable)


def describe_formats() -> list[FormatInfo]:
    """Describe every known format; a plugin that cannot be loaded is described with its error."""
    return [_info(entry) for entry in format_registry().describe()]


def get_format(name: str) -> DatasetFormat:
    """Return the format called `name` ('midv500', 'MIDV-2019', 'folder', a plugin's name).

    Raises DatasetError naming the known formats when there is none by that name.
    """
    return format_registry().get(name)


def detect_format(root: str | Path) -> DatasetFormat:
    """Return the format surest that `root` is one of its datasets (the folder format at least).

    A plugin whose detect() raises is taken as not sure at all, with a warning.
    """
    root = Path(root)
    best: DatasetFormat = FOLDER_FORMAT
    best_score = 0.0
    for fmt in _formats(skip_broken=True):  # a plugin that cannot be loaded: not a candidate
        try:
            score = float(fmt.detect(root))
        except (Exception, SystemExit) as exc:  # a plugin's bug must not hide the other formats
            _log.warning(
                "dataset format %s: detect() failed (%s: %s); taken as not this format",
                fmt.name,
                type(exc).__name__,
                exc,
            )
            continue
        if score > best_score:  # NaN compares false: never chosen
            best, best_score = fmt, score
    return best


def discover(root: str | Path, format: str | None = None) -> Dataset:
    """Find every document, clip, video and annotation file under `root`.

    `format` names the dataset format ('midv500', 'midv2019', 'folder', a plugin's);
    by default the folder tells. Raises DatasetError if root is not a folder or holds
    nothing the format can use.
    """
    root, fmt = _format_of(root, format)
    return _checked(fmt, root, _read(fmt, root, lambda: fmt.discover(root)))


def discover_parts(root: str | Path, format: str | None = None, size: int = 5000) -> Iterator[Dataset]:
    """`discover`, a part of about `size` clips at a time (see DatasetFormat.discover_parts): what a run reads,
    so that it never holds every clip of a dataset of a million. Each part is checked as `discover` checks a
    whole dataset."""
    root, fmt = _format_of(root, format)
    parts = fmt.discover_parts(root, size)
    while (part := _read(fmt, root, lambda: next(parts, _END))) is not _END:
        yield _checked(fmt, root, part)


_END = object()  # (the parts are all read)


def _format_of(root: str | Path, format: str | None) -> tuple[Path, DatasetFormat]:
    root = Path(root)
    if not root.exists():
        raise DatasetError("no such folder", path=root)
    if not root.is_dir():
        raise DatasetError("not a folder", path=root)
    return root, (get_format(format) if format else detect_format(root))


def _read(fmt: DatasetFormat, root: Path, read: Callable[[], Any]) -> Any:
    """What `read` gives of `fmt`'s dataset at `root`; a plugin's bug is one line naming the format."""
    try:
        return read()
    except MidvBatchError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's bug: one line naming the format, not a traceback
        raise DatasetError(
            f"dataset format {fmt.name} failed to read it: {type(exc).__name__}: {exc}", path=root
        ) from None


def _checked(fmt: DatasetFormat, root: Path, dataset: Any) -> Dataset:
    """`dataset` as `fmt` gave it, checked: a clip that is not one is one line, set aside."""
    if not isinstance(dataset, Dataset):
        raise DatasetError(
            f"dataset format {fmt.name}: discover() returned {type(dataset).__name__}, not a Dataset", path=root
        )
    builtin = fmt in format_registry().builtins()  # a built-in's clips have their ids checked only
    return checked(dataset, fmt.name, trusted=builtin)


__all__ = [
    "ENTRY_POINT_GROUP",
    "Archive",
    "ArchiveSource",
    "DatasetFormat",
    "FormatInfo",
    "all_formats",
    "describe_formats",
    "detect_format",
    "discover",
    "discover_parts",
    "format_names",
    "format_registry",
    "get_format",
    "new_format_registry",
    "register",
]
