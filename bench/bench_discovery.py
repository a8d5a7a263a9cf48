"""How long discovery takes, against a bare os.walk of the same tree (the baseline).

Builds three trees in a temporary folder: a full MIDV-500 layout (50 documents, 500
videos, 15,000 ground-truth files, names only), a full MIDV-2020 layout (1,000 clips with
68,409 annotated JPEGs and their videos, 4,000 pictures: 74,449 files) and a plain folder
of 100,000 video files; prints seconds and the ratio to os.walk measured in the same run.

    python bench/bench_discovery.py [--plain 100000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from midvbatch.dataset import MIDV500, discover


def build_midv(root: Path) -> int:
    for name in MIDV500.documents:
        folder = root / name
        (folder / "videos").mkdir(parents=True)
        (folder / "images").mkdir()
        (folder / "ground_truth").mkdir()
        (folder / "ground_truth" / f"{name}.json").touch()
        (folder / "images" / f"{name}.tif").touch()
        for code in MIDV500.clip_codes:
            ext = ".MOV" if code[1] == "A" else ".mp4"
            (folder / "videos" / f"{code}{name[:2]}{ext}").touch()
            gt = folder / "ground_truth" / code
            gt.mkdir()
            for k in range(1, 31):
                (gt / f"{code}{name[:2]}_{k:02d}.json").touch()
    return 500


def build_midv2020(root: Path) -> int:
    """MIDV-2020 at full size, names only: 4,000 pictures with their 40 annotation files, and
    1,000 clips with 68,409 annotated JPEGs, 1,000 annotation files and 1,000 videos."""
    from midvbatch.dataset.catalog import MIDV2020_DOCUMENTS, MIDV2020_IMAGE_COLLECTIONS

    for collection in MIDV2020_IMAGE_COLLECTIONS:
        (root / collection / "annotations").mkdir(parents=True)
        for name in MIDV2020_DOCUMENTS:
            (root / collection / "annotations" / f"{name}.json").touch()
            (root / collection / "images" / name).mkdir(parents=True)
            for n in range(100):
                (root / collection / "images" / name / f"{n:02d}.jpg").touch()
    frames_left = 68_409
    for t, name in enumerate(MIDV2020_DOCUMENTS):
        (root / "clips" / "annotations" / name).mkdir(parents=True)
        (root / "clips_video" / "video" / name).mkdir(parents=True)
        for n in range(100):
            clips_left = 1000 - (t * 100 + n)
            count = frames_left // clips_left  # 68 or 69: 68,409 in all
            frames_left -= count
            folder = root / "clips" / "images" / name / f"{n:02d}"
            folder.mkdir(parents=True)
            for k in range(count):
                (folder / f"{6 * k + 1:06d}.jpg").touch()
            (root / "clips" / "annotations" / name / f"{n:02d}.json").touch()
            (root / "clips_video" / "video" / name / f"{n:02d}.mp4").touch()
    return 1_000 + 30 + 160  # clips, scans and templates per type, photo blocks


def build_plain(root: Path, count: int) -> int:
    per_folder = 1000
    for i in range(count):
        folder = root / f"batch{i // per_folder:04d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"clip{i:06d}.mp4").touch()
    return count


def timed(func, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def walk(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=int, default=100_000, help="video files in the plain tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        midv, midv2020, plain = Path(tmp) / "midv", Path(tmp) / "midv2020", Path(tmp) / "plain"
        build_midv(midv)
        build_midv2020(midv2020)
        build_plain(plain, args.plain)
        # The catalog is named for the MIDV trees rather than guessed; a plain folder has none.
        trees = (
            ("MIDV-500 layout, 500 clips", midv, "midv500"),
            ("MIDV-2020 layout, 1,000 clips", midv2020, "midv2020"),
            (f"plain folder, {args.plain} clips", plain, None),
        )
        for label, root, catalog in trees:
            base, files = timed(lambda: walk(root))
            took, ds = timed(lambda: discover(root, catalog))
            print(f"{label:<34} discover {took:7.3f} s  os.walk {base:7.3f} s  "
                  f"ratio {took / base:5.1f}x  ({len(ds.clips)} clips, {files} files)")


if __name__ == "__main__":
    main()
