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
from importlib.metadata import entry_points
from pathlib import Path

from midvbatch.dataset.formats._output import checked
from midvbatch.dataset.formats.base import Archive, ArchiveSource, DatasetFormat
from midvbatch.dataset.formats.folder import FOLDER_FORMAT
from midvbatch.dataset.formats.midv import MIDV500_FORMAT, MIDV2019_FORMAT
from midvbatch.dataset.formats.midv2020 import MIDV2020_FORMAT
from midvbatch.dataset.model import Dataset
from midvbatch.errors import DatasetError, MidvBatchError
from midvbatch.plugins import PluginLoadError, load_plugin

ENTRY_POINT_GROUP = "midvbatch.datasets"
_log = logging.getLogger("midvbatch")

_BUILTIN: tuple[DatasetFormat, ...] = (MIDV500_FORMAT, MIDV2019_FORMAT, MIDV2020_FORMAT, FOLDER_FORMAT)
_registered: dict[str, DatasetFormat] = {}  # register(): formats added by the program itself
_loaded: dict[str, DatasetFormat] = {}  # entry points, loaded once, by _key(name)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _load_entry_point(ep) -> DatasetFormat:
    if _key(ep.name) in _loaded:
        return _loaded[_key(ep.name)]
    what = f"dataset format {ep.name!r} ({ep.value})"
    try:
        fmt = load_plugin(functools.partial(_make_format, ep), what)
    except PluginLoadError as exc:  # a plugin's import error, sys.exit included
        raise DatasetError(exc.message) from None
    if not isinstance(fmt, DatasetFormat):
        raise DatasetError(f"dataset format {ep.name!r} ({ep.value}) is not a DatasetFormat (got {type(fmt).__name__})")
    if not fmt.name:
        fmt.name = ep.name
    _loaded[_key(ep.name)] = fmt
    return fmt


def _make_format(ep) -> object:
    obj = ep.load()
    return obj() if callable(obj) and not isinstance(obj, DatasetFormat) else obj


def register(fmt: DatasetFormat) -> DatasetFormat:
    """Add a format for this process (a script's own format); returns it. Entry points are
    the way for formats that workers in other processes must find too."""
    if not isinstance(fmt, DatasetFormat) or not fmt.name:
        raise DatasetError(f"cannot register {fmt!r}: a DatasetFormat with a name is needed")
    _registered[_key(fmt.name)] = fmt
    return fmt


def _same(fmt: DatasetFormat) -> DatasetFormat:
    return fmt


def _sources() -> Iterator[tuple[str, str, Callable[[], DatasetFormat]]]:
    """(name, source, load) of every known format, one per name, in precedence order:
    built-ins, registered ones, entry points (loaded only when `load` is called; it may raise)."""
    seen: set[str] = set()
    for source, formats in (("built-in", _BUILTIN), ("registered", tuple(_registered.values()))):
        for fmt in formats:
            if _key(fmt.name) not in seen:
                seen.add(_key(fmt.name))
                yield fmt.name, source, functools.partial(_same, fmt)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if _key(ep.name) not in seen:
            seen.add(_key(ep.name))
            yield ep.name, f"entry point {ep.value}", functools.partial(_load_entry_point, ep)


def format_names() -> list[str]:
    """Every known format's name, built-ins first; entry points are listed, not loaded."""
    return [name for name, _, _ in _sources()]


def _formats(skip_broken: bool) -> list[DatasetFormat]:
    """Every known format, loaded; a plugin that cannot be loaded raises, or is left out with a warning."""
    found = []
    for _, _, load in _sources():
        try:
            found.append(load())
        except DatasetError as exc:
            if not skip_broken:
                raise
            _log.warning("%s; it is left out of format detection", exc.message)
    return found


def all_formats() -> list[DatasetFormat]:
    """Every known format, loaded: built-ins, registered ones, entry points (a broken one raises)."""
    return _formats(skip_broken=False)


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


def describe_formats() -> list[FormatInfo]:
    """Describe every known format; a plugin that cannot be loaded is described with its error."""
    out = []
    for name, source, load in _sources():
        try:
            fmt = load()
            fetchable = fmt.archives() is not None
        except Exception as exc:  # a broken plugin is listed, with what is wrong
            message = exc.message if isinstance(exc, MidvBatchError) else f"{type(exc).__name__}: {exc}"
            out.append(FormatInfo(name, "", "", source, False, message))
            continue
        out.append(FormatInfo(fmt.name, fmt.title, fmt.summary, source, fetchable))
    return out


def get_format(name: str) -> DatasetFormat:
    """Return the format called `name` ('midv500', 'MIDV-2019', 'folder', a plugin's name).

    Raises DatasetError naming the known formats when there is none by that name.
    """
    key = _key(str(name))
    for fmt in _BUILTIN:  # called per clip: the built-ins and loaded plugins without scanning entry points
        if _key(fmt.name) == key:
            return fmt
    known = _registered.get(key) or _loaded.get(key)
    if known is not None:
        return known
    for listed, _, load in _sources():
        if _key(listed) == key:
            return load()
    raise DatasetError(f"unknown dataset format {str(name)[:80]!r} (known: {', '.join(format_names())})")


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
    root = Path(root)
    if not root.exists():
        raise DatasetError("no such folder", path=root)
    if not root.is_dir():
        raise DatasetError("not a folder", path=root)
    fmt = get_format(format) if format else detect_format(root)
    try:
        dataset = fmt.discover(root)
    except MidvBatchError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's bug: one line naming the format, not a traceback
        raise DatasetError(
            f"dataset format {fmt.name} failed to read it: {type(exc).__name__}: {exc}", path=root
        ) from None
    if not isinstance(dataset, Dataset):
        raise DatasetError(
            f"dataset format {fmt.name}: discover() returned {type(dataset).__name__}, not a Dataset", path=root
        )
    return checked(dataset, fmt.name, trusted=fmt in _BUILTIN)  # a clip that is not one: one line, set aside


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
    "format_names",
    "get_format",
    "register",
]
