"""The interface of a dataset format: what every format tells the rest of midvbatch.

A format is an object (usually one instance of a :class:`DatasetFormat` subclass) that:

- ``detect(root)``: says how sure it is that a folder is in its format (0: not mine);
- ``discover(root)``: lists the folder's documents and clips, each clip with its video, its
  ground-truth files, its :class:`~midvbatch.dataset.model.FrameRule` and expected frame size,
  from names alone (nothing decoded, nothing parsed);
- ``read_quads(files)``: reads the document quads of a clip's annotated frames from those
  files (workers call it, so it must work from the format's registered name alone);
- ``check_layout(dataset)``: what ``validate`` reports about the folder's structure;
- ``archives()``: where its archives come from, for ``fetch`` (None: nothing to fetch);
- ``catalog``: documents, conditions, devices, frame size, template sizes (None: unknown).

Formats are found by name through :mod:`midvbatch.dataset.formats` (built-ins, then entry
points of group ``midvbatch.datasets``). docs/dataset.md ("Adding a dataset format") has a
complete example.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from midvbatch.dataset.catalog import Catalog
from midvbatch.dataset.groundtruth import Quad, load_frame_quad
from midvbatch.dataset.model import Dataset, Problem


@dataclass(frozen=True)
class Archive:
    """One archive of a dataset: the unit a user selects and fetch downloads."""

    name: str  # what it unpacks to and what --docs matches, e.g. "01_alb_id"
    file: str  # its file name under the source's base URL, e.g. "01_alb_id.zip"


@dataclass(frozen=True)
class ArchiveSource:
    """Where a dataset's archives lie: a folder URL, its archives, the checksum list beside them."""

    base_url: str
    archives: tuple[Archive, ...]
    checksums: str | None = "md5.txt"  # file name of the md5 list under base_url; None: none published
    layout: tuple[str, ...] = ("videos", "ground_truth", "images")  # what an unpacked archive's root holds


class DatasetFormat:
    """A dataset format. Subclass it, set the class attributes, override what differs.

    The defaults read ground truth as MIDV-500 does (one JSON file per annotated frame
    with a ``quad`` of four [x, y] corners), check no layout and offer no archives.
    """

    name: str = ""  # the registry name, e.g. "midv500": lower case, stored with every run
    title: str = ""  # the human name, e.g. "MIDV-500"
    summary: str = ""  # one line for `midvbatch formats`
    catalog: Catalog | None = None

    def detect(self, root: Path) -> float:
        """How sure this format is that `root` is one of its datasets: 0 for not at all.

        The highest answer wins; the plain folder of videos answers 0.1, MIDV formats
        answer 1 and more. Must be cheap: look at names, not contents.
        """
        return 0.0

    def discover(self, root: Path) -> Dataset:
        """List what `root` holds; raise DatasetError when it holds nothing usable."""
        raise NotImplementedError(f"dataset format {self.name!r} does not implement discover()")

    def read_quads(self, files: Mapping[int, str | Path]) -> dict[int, Quad]:
        """Read the document quad of each annotated frame from its ground-truth file.

        `files` maps frame number -> the file ``discover`` gave ``Clip.ground_truth``.
        Raises GroundTruthError naming the first malformed file.
        """
        return {int(number): load_frame_quad(path) for number, path in files.items()}

    def check_layout(self, dataset: Dataset) -> list[Problem]:
        """Return what is wrong with the folder's structure (missing parts, stray files)."""
        return []

    def archives(self) -> ArchiveSource | None:
        """Return where the official archives lie; None when the format has none to fetch."""
        return None

    def __repr__(self) -> str:
        return f"<dataset format {self.name}>"
