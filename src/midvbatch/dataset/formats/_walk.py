"""The folders under a dataset root, each real folder once: the one walk of discovery.

A link to a folder (``cp -rs`` copies, a subset assembled with ``ln -s``) is followed
after every real folder has been read, and only to a folder not read yet: a link back up
(``DATASET/sl -> .``) would otherwise list every clip again at each level. Each link not
followed is one warning naming it.
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
    entries: list[os.DirEntry]  # everything in it, in name order
    subfolders: list[os.DirEntry]  # its folders (links to folders included), hidden ones left out
    files: list[os.DirEntry]  # everything else (files, FIFOs, broken links), hidden ones included


def scan(path: str | Path) -> list[os.DirEntry]:
    """The entries of a folder in name order; none when it cannot be read."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether an entry is a folder, or a link to one. A link is followed by a stat the entry does not keep: a
    folder of 200,000 links to videos would otherwise hold 200,000 stat results for the whole walk."""
    try:
        if entry.is_symlink():
            return os.path.isdir(entry.path)
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def walk(root: Path, problems: list[Problem], max_depth: int | None = None) -> Iterator[Folder]:
    """Yield the folders under `root` (itself first), real folders depth-first in name order, then those
    reached through links; go no deeper than `max_depth`. A link not followed is added to `problems`."""
    root_real = os.path.realpath(root)
    seen = {root_real}
    links: deque[tuple[Path, int]] = deque()
    stack: list[tuple[Path, str, int, bool]] = [(Path(root), root_real, 0, False)]
    while stack or links:
        if not stack:
            link, depth = links.popleft()
            target = os.path.realpath(link)
            if target in seen or root_real.startswith(target.rstrip(os.sep) + os.sep):
                where = _shown(target, root, root_real)
                why = "a folder already read" if target in seen else "a folder holding the dataset"
                problems.append(Problem(WARNING, "link", str(link), f"a link to {where}, {why}: not followed"))
                continue
            seen.add(target)
            stack.append((link, target, depth, True))
            continue
        path, real, depth, linked = stack.pop()
        entries = scan(path)
        dirs = {e.name for e in entries if _is_dir(e)}
        folder = Folder(
            path,
            depth,
            linked,
            entries,
            [e for e in entries if e.name in dirs and not e.name.startswith(".")],
            [e for e in entries if e.name not in dirs],
        )
        yield folder
        if max_depth is not None and depth >= max_depth:
            continue
        children = []
        for entry in folder.subfolders:
            if entry.is_symlink():
                links.append((Path(entry.path), depth + 1))
                continue
            child_real = os.path.join(real, entry.name)  # a real folder: no need to resolve it
            if child_real in seen:  # inside a linked folder, a folder read through another link
                where = _shown(child_real, root, root_real)
                problems.append(
                    Problem(WARNING, "link", entry.path, f"the folder {where}, already read: not read again")
                )
                continue
            seen.add(child_real)
            children.append((Path(entry.path), child_real, depth + 1, linked))
        stack.extend(reversed(children))


def _shown(real: str, root: Path, root_real: str) -> str:
    """A resolved folder as the user knows it: under the root as given, or its absolute path."""
    if real == root_real:
        return str(root)
    if real.startswith(root_real + os.sep):
        return str(root / os.path.relpath(real, root_real))
    return real
