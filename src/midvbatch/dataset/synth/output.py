"""Where the synthesizer writes: the output folder, files refused or written, write errors as SynthError."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import cv2
import numpy as np

from midvbatch.errors import SynthError
from midvbatch.fileio import write_atomic
from midvbatch.video import ffmpeg_reason


def output_root(out_dir: str | Path) -> Path:
    """Return `out_dir` as a Path; SynthError if it exists and is not a folder."""
    root = Path(out_dir)
    try:
        if root.exists() and not root.is_dir():
            raise SynthError("exists and is not a folder", path=root)
    except OSError as exc:  # a name too long, a loop of links
        raise SynthError(f"cannot use as the output folder: {exc.strerror or exc}", path=root) from None
    return root


def refuse_existing(root: Path, outputs: Iterator[Path]) -> None:
    """Raise SynthError, naming the first and counting them all, if any of `outputs` exists under `root`."""
    if not root.is_dir():
        return
    taken = [path for path in outputs if os.path.lexists(root / path)]
    if taken:
        raise SynthError(
            f"holds a dataset already: {len(taken)} of the files to write exist ({taken[0].as_posix()} "
            f"first); use --force to overwrite them, or choose an empty folder",
            path=root,
        )


@contextmanager
def writing(root: Path) -> Iterator[None]:
    """Turn a failure to write (disk full, no permission) into a SynthError naming the file."""
    try:
        yield
    except av.FFmpegError as exc:
        raise SynthError(f"cannot encode video: {ffmpeg_reason(exc)}", path=root) from None
    except OSError as exc:
        raise SynthError(f"cannot write: {exc.strerror or exc}", path=exc.filename or root) from None


def imwrite(path: Path, image: np.ndarray) -> int:
    """Write an image atomically, in the format its suffix names; return its size in bytes."""
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise SynthError("cannot encode image", path=path)
    write_atomic(path, data.tobytes())
    return len(data)
