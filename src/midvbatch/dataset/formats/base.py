"""The interface of a dataset format: what every format tells the rest of midvbatch.

A format is an object (usually one instance of a :class:`DatasetFormat` subclass) that:

- ``detect(root)``: says how sure it is that a folder is in its format (0: not mine);
- ``discover(root)``: lists the folder's documents and clips, each clip with its video, its
  ground-truth files, its :class:`~midvbatch.dataset.model.FrameRule` and expected frame size,
  from names alone (nothing decoded, nothing parsed);
- ``read_quads(files)``: reads the document quads of a clip's annotated frames from those
  files (workers call it, so it must work from the format's registered name alone);
- ``read_templates(template, frames)``: reads the text fields (names, values, quads in a
  template picture) that each annotated frame shows, from the reference ``discover`` gave
  ``Clip.template`` (workers call it too);
- ``check_layout(dataset)``: what ``validate`` reports about the folder's structure;
- ``archives()``: where its archives come from, for ``fetch`` (None: nothing to fetch);
- ``writer()``: a :class:`FormatWriter` that writes synthetic datasets in the format, for
  ``synth`` (None: it cannot be written);
- ``catalog``: documents, conditions, devices, frame size, template sizes (None: unknown).

Formats are found by name through :mod:`midvbatch.dataset.formats` (built-ins, then entry
points of group ``midvbatch.datasets``). docs/dataset.md ("Adding a dataset format") has a
complete example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from midvbatch.dataset.catalog import Catalog
from midvbatch.dataset.groundtruth import Quad, Template, load_frame_quad, load_template
from midvbatch.dataset.model import Dataset, Problem
from midvbatch.errors import GroundTruthError
from midvbatch.video.image import image_size

if TYPE_CHECKING:
    from midvbatch.dataset.synth.options import Selection, SynthConfig, Written


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


class FormatWriter(Protocol):
    """Writes a synthetic dataset in a format's layout (``midvbatch synth``).

    `selection` is the options resolved (documents, clip codes, frame rate, clip length),
    `config` the options themselves (frame size, seed, ...). Every picture's random
    generator is derived from ``config.seed`` and where the picture sits, so a clip's bytes
    do not depend on which others are written with it.
    """

    def outputs(self, selection: Selection, config: SynthConfig) -> Iterator[Path]:
        """Yield every file :meth:`write` would write, relative to the dataset root (the driver
        refuses to overwrite them). Raises SynthError for a selection it cannot write."""
        ...

    def write(
        self, root: Path, selection: Selection, config: SynthConfig, progress: Callable[[str], None] | None
    ) -> Written:
        """Write the dataset under `root`, calling `progress` with 'DOCUMENT/CODE' after each clip.

        Raises SynthError (options it cannot honour, before anything is written; a file it
        cannot write, naming it)."""
        ...


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

    def discover_parts(self, root: Path, size: int) -> Iterator[Dataset]:
        """What a run reads: `root`'s clips in parts of about `size` clips, each part a Dataset of its clips (the
        documents, findings and copies in the last), in any order, so that a run of a million clips never holds
        them all. The default is `discover`'s whole Dataset as one part; a format of many clips streams them.
        """
        yield self.discover(root)

    def read_quads(self, files: Mapping[int, str | Path]) -> dict[int, Quad]:
        """Read the document quad of each annotated frame from its ground-truth file.

        `files` maps frame number -> the file ``discover`` gave ``Clip.ground_truth``.
        Raises GroundTruthError naming the first malformed file.
        """
        return {int(number): load_frame_quad(path) for number, path in files.items()}

    def read_templates(self, template: str, frames: Iterable[int]) -> dict[int, Template]:
        """Read the text fields each of `frames` shows, from `template` (the clip's ``Clip.template``).

        The default reads MIDV-500's: one template file (``ground_truth/NN_name.json``) for
        every frame of the clip, its fields leniently (a malformed field is left out and
        named in ``Template.problems``), with the size of its picture
        (``images/NN_name.tif``, or .png/.jpg) read from the picture's header. Raises
        GroundTruthError (file) or VideoError (picture) naming the file.
        """
        read = template_with_picture(Path(template), midv_template_picture(Path(template)))
        return {number: read for number in frames}

    def check_layout(self, dataset: Dataset) -> list[Problem]:
        """Return what is wrong with the folder's structure (missing parts, stray files)."""
        return []

    def archives(self) -> ArchiveSource | None:
        """Return where the official archives lie; None when the format has none to fetch."""
        return None

    def writer(self) -> FormatWriter | None:
        """Return what writes synthetic datasets in this format; None when it cannot be written."""
        return None

    def __repr__(self) -> str:
        return f"<dataset format {self.name}>"


TEMPLATE_PICTURES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")  # MIDV-500's template pictures are TIFF


def midv_template_picture(json_file: Path) -> Path | None:
    """The picture of a MIDV-500 template file (``ground_truth/NN_name.json``): ``images/NN_name.tif``
    (or .tiff, .png, .jpg, .jpeg); None when there is none."""
    images = json_file.parent.parent / "images"
    return next(
        (
            images / f"{json_file.stem}{ext}"
            for ext in TEMPLATE_PICTURES
            if (images / f"{json_file.stem}{ext}").is_file()
        ),
        None,
    )


def template_with_picture(json_file: Path, picture: Path | None) -> Template:
    """Read a template file leniently and give it its picture's size; GroundTruthError naming what is missing."""
    template = load_template(json_file, strict=False)
    if picture is None:
        raise GroundTruthError(
            "no template picture beside it (its field quads are in that picture's pixels)", path=json_file
        )
    return replace(template, size=image_size(picture))
