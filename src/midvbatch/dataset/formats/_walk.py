"""The folders under a dataset root, each real folder once: the one walk of discovery.

A link to a folder (``cp -rs`` copies, a subset assembled with ``ln -s``) is followed
after every real folder has been read, and only to a folder not read yet: a link back up
(``DATASET/sl -> .``) would otherwise list every clip again at each level. Each link not
followed is one warning naming it. `walk` gives whole folders in name order; `files` gives
their files one at a time, for a run's discovery of a folder of a million videos.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from midvbatch.dataset.model import WARNING, Problem


@dataclass
class Folder:
    """One folder of the walk. Clear or filter `subfolders` to keep the walk out of them."""

    path: Path  # as reached from the root (through links, when `linked`)
    depth: int  # 0: the root
    linked: bool  # reached through a link to a folder
    subfolders: list[os.DirEntry]  # its folders (links to folders included), hidden ones left out, in name order
    files: list[os.DirEntry]  # everything else (files, FIFOs, broken links), hidden ones included, in name order;
    # none when the walk was asked for folders only


def _entries(path: Path) -> Iterator[tuple[os.DirEntry, bool]]:
    """A folder's entries, each with whether it is a folder (hidden folders left out), one at a time in no order;
    none from where it cannot be read (or stops being readable)."""
    try:
        with os.scandir(path) as it:
            for entry in it:
                is_dir = _is_dir(entry)
                if not (is_dir and entry.name.startswith(".")):
                    yield entry, is_dir
    except OSError:
        return


def _listing(path: Path, keep_files: bool) -> tuple[list[os.DirEntry], list[os.DirEntry]]:
    """A folder's subfolders (hidden ones left out) and, when `keep_files`, its other entries, each in name order.
    A folder of 200,000 videos walked for its folders holds none of them."""
    subfolders, others = [], []
    for entry, is_dir in _entries(path):
        if is_dir:
            subfolders.append(entry)
        elif keep_files:
            others.append(entry)
    subfolders.sort(key=lambda e: e.name)
    others.sort(key=lambda e: e.name)
    return subfolders, others


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether an entry is a folder, or a link to one. A link is followed by a stat the entry does not keep: a
    folder of 200,000 links to videos would otherwise hold 200,000 stat results for the whole walk."""
    try:
        if entry.is_symlink():
            return os.path.isdir(entry.path)
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


class _Walk:
    """What a walk has seen: the real folders read or queued, the links it will follow last."""

    def __init__(self, root: Path, problems: list[Problem]):
        self.root, self.root_real, self.problems = root, os.path.realpath(root), problems
        self.seen = {self.root_real}
        self.links: deque[tuple[Path, int]] = deque()
        self.stack: list[tuple[Path, str, int, bool]] = [(Path(root), self.root_real, 0, False)]

    def next(self) -> tuple[Path, str, int, bool] | None:
        """The next folder to read, (path, real path, depth, linked): real folders first, then links; None: done."""
        while self.stack or self.links:
            if self.stack:
                return self.stack.pop()
            link, depth = self.links.popleft()
            target = os.path.realpath(link)
            if target in self.seen or self.root_real.startswith(target.rstrip(os.sep) + os.sep):
                where = _shown(target, self.root, self.root_real)
                why = "a folder already read" if target in self.seen else "a folder holding the dataset"
                self.problems.append(Problem(WARNING, "link", str(link), f"a link to {where}, {why}: not followed"))
                continue
            self.seen.add(target)
            return link, target, depth, True
        return None

    def child(self, entry: os.DirEntry, real: str, depth: int, linked: bool) -> tuple[Path, str, int, bool] | None:
        """A subfolder of the folder (`real`, at `depth`) to read later: a link is kept for the end, a folder
        already read is said; None when it is not to be read now."""
        if entry.is_symlink():
            self.links.append((Path(entry.path), depth + 1))
            return None
        child_real = os.path.join(real, entry.name)  # a real folder: no need to resolve it
        if child_real in self.seen:  # inside a linked folder, a folder read through another link
            where = _shown(child_real, self.root, self.root_real)
            self.problems.append(
                Problem(WARNING, "link", entry.path, f"the folder {where}, already read: not read again")
            )
            return None
        self.seen.add(child_real)
        return Path(entry.path), child_real, depth + 1, linked


def walk(
    root: Path, problems: list[Problem], max_depth: int | None = None, with_files: bool = True
) -> Iterator[Folder]:
    """Yield the folders under `root` (itself first), real folders depth-first in name order, then those
    reached through links; go no deeper than `max_depth`; list their files unless `with_files` is false. A link not
    followed is added to `problems`."""
    state = _Walk(root, problems)
    while (step := state.next()) is not None:
        path, real, depth, linked = step
        folder = Folder(path, depth, linked, *_listing(path, with_files))
        yield folder
        if max_depth is not None and depth >= max_depth:
            continue
        children = [state.child(entry, real, depth, linked) for entry in folder.subfolders]
        state.stack.extend(reversed([c for c in children if c is not None]))


def files(root: Path, problems: list[Problem]) -> Iterator[tuple[Path, os.DirEntry]]:
    """Yield (folder, entry) for every entry that is not a folder under `root`, as `walk` finds them but in no
    order within a folder, holding no folder's listing: a folder of 1,000,000 videos costs one entry at a time.
    A link not followed is added to `problems`."""
    state = _Walk(root, problems)
    while (step := state.next()) is not None:
        path, real, depth, linked = step
        children = []
        for entry, is_dir in _entries(path):
            if not is_dir:
                yield path, entry
            elif (child := state.child(entry, real, depth, linked)) is not None:
                children.append(child)
        children.sort(key=lambda c: c[0].name)
        state.stack.extend(reversed(children))


def _shown(real: str, root: Path, root_real: str) -> str:
    """A resolved folder as the user knows it: under the root as given, or its absolute path."""
    if real == root_real:
        return str(root)
    if real.startswith(root_real + os.sep):
        return str(root / os.path.relpath(real, root_real))
    return real
