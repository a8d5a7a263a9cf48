"""Our visibility subsets against the real Smart Engines MIDV-500 runlists.

tests/data/midv500-real/runlists/ holds the lines of documents 01 and 50 of the four
upstream runlists (see its SOURCES.md); midv500_coco.json holds the ground-truth quads of
the same 600 frames. For every frame and every subset, membership computed by
``midvbatch.dataset.visibility.subsets`` must equal membership in the runlist.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from midvbatch.dataset import Quad, subsets
from midvbatch.dataset.visibility import SUBSETS, inside_fraction

W, H = 1080, 1920


def _frames(real_data) -> dict[str, list[int]]:
    """Frame id (e.g. 'CA01_01') -> raw quad [x0, y0, ..., x3, y3], for all 600 frames."""
    coco = json.loads((real_data / "midv500_coco.json").read_text())
    names = {img["id"]: PurePosixPath(img["file_name"]).stem for img in coco["images"]}
    frames = {names[a["image_id"]]: list(a["segmentation"][0]) for a in coco["annotations"]}
    assert len(frames) == 600
    return frames


def _runlist(real_data, subset: str) -> list[str]:
    path = real_data / "runlists" / f"{subset}.lst"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("subset", SUBSETS)
def test_runlists_name_only_known_frames_once(real_data, subset):
    frames = _frames(real_data)
    ids = _runlist(real_data, subset)
    unknown = sorted(set(ids) - set(frames))
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not unknown, f"{subset}: runlist ids not among the 600 frames: {unknown}"
    assert not dupes, f"{subset}: runlist ids listed more than once: {dupes}"


@pytest.mark.parametrize("subset", SUBSETS)
def test_runlists_membership_matches_computed_subsets(real_data, subset):
    frames = _frames(real_data)
    listed = set(_runlist(real_data, subset))

    mismatches = []
    for frame_id, seg in sorted(frames.items()):
        quad = Quad.from_list(seg)
        computed = subset in subsets(quad, W, H)
        expected = frame_id in listed
        if computed != expected:
            side = "in runlist only" if expected else "computed only"
            frac = inside_fraction(quad, W, H)
            mismatches.append(f"  {frame_id} ({side}): quad={seg} inside_fraction={frac:.6f}")

    assert not mismatches, (
        f"{subset}: {len(mismatches)} of {len(frames)} frames disagree with the runlist "
        f"({len(listed)} listed), frame {W}x{H}:\n" + "\n".join(mismatches)
    )
