"""A dataset format in 60 lines: videos, each with one JSON file listing its document's corners.

    dataset/
        cam1/receipt.mp4
        cam1/receipt.quads.json     {"fps": 10, "frames": 30, "size": [1080, 1920],
                                     "quads": {"1": [[x, y], [x, y], [x, y], [x, y]], ...}}

Register it in your package's pyproject.toml:

    [project.entry-points."midvbatch.datasets"]
    quadlist = "quadlist_format:FORMAT"
"""

from __future__ import annotations

from pathlib import Path

from midvbatch.dataset import Clip, Dataset, DatasetFormat, FrameRule
from midvbatch.dataset.groundtruth import parse_quad, read_ground_truth_json
from midvbatch.errors import DatasetError, GroundTruthError

SUFFIX = ".quads.json"


class QuadListFormat(DatasetFormat):
    name = "quadlist"
    title = "videos with quad lists"
    summary = "NAME.mp4 beside NAME.quads.json: the document's corners in each annotated frame"

    def detect(self, root: Path) -> float:
        # cheap: names only; 2 beats the plain folder of videos (0.1)
        return 2.0 if next(root.rglob(f"*{SUFFIX}"), None) is not None else 0.0

    def discover(self, root: Path) -> Dataset:
        clips = []
        for listing in sorted(root.rglob(f"*{SUFFIX}")):
            video = listing.with_name(listing.name[: -len(SUFFIX)] + ".mp4")
            header = read_ground_truth_json(listing)  # read with a size cap; errors are one line
            if not isinstance(header, dict) or not isinstance(header.get("quads"), dict):
                raise DatasetError("not a quad list (no 'quads' object)", path=listing)
            try:
                rule = FrameRule(count=int(header.get("frames", 30)), fps=float(header.get("fps", 10)))
                frames = sorted(int(k) for k in header["quads"])
                size = (int(header["size"][0]), int(header["size"][1])) if "size" in header else None
            except (TypeError, ValueError, IndexError, KeyError):
                raise DatasetError("bad 'frames', 'fps', 'size' or frame number", path=listing) from None
            clips.append(Clip(
                id=video.relative_to(root).with_suffix("").as_posix(),
                document=video.parent.relative_to(root).as_posix(),
                code=video.stem,
                video=video if video.exists() else None,
                format=self.name,  # workers find read_quads() by this name
                ground_truth={k: listing for k in frames},  # every frame: the same file
                frame_rule=rule,
                frame_size=size,
            ))
        if not clips:
            raise DatasetError(f"no *{SUFFIX} file", path=root)
        return Dataset(root, self.name, None, [], clips, [])

    def read_quads(self, files):
        quads, parsed = {}, {}
        for number, path in files.items():
            if path not in parsed:  # one file holds every frame: read it once
                parsed[path] = read_ground_truth_json(path)
            points = parsed[path].get("quads", {}).get(str(number))
            if points is None:
                raise GroundTruthError(f"no quad for frame {number}", path=path)
            quads[int(number)] = parse_quad(points, Path(path), f'"quads" frame {number}')
        return quads


FORMAT = QuadListFormat()
