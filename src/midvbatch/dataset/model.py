"""What a dataset is made of, whatever its format: clips, documents, frame rules, findings.

A dataset format (:mod:`midvbatch.dataset.formats`) turns a folder into a :class:`Dataset`;
everything above the dataset layer works on these types only.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from midvbatch.dataset.catalog import Catalog
from midvbatch.errors import DatasetError

VIDEO_EXTENSIONS = frozenset(
    {".mov", ".mp4", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv"}
)
ERROR, WARNING, NOTE = "error", "warning", "note"


@dataclass(frozen=True)
class FrameRule:
    """Which frames of a clip are annotated.

    By time (MIDV-500, MIDV-2019): frame k (1..count) is the picture shown at (k - 1) / fps
    seconds, as FFmpeg's ``fps`` filter samples it (30 at 10 fps). By number (MIDV-2020):
    `numbers` lists the annotated frames, 1-based in decode order (1, 7, 13, ...), or the
    numbers of a group's pictures; `count` is then their number and `fps` 0.
    """

    count: int = 30
    fps: float = 10.0
    numbers: tuple[int, ...] = ()

    @classmethod
    def by_number(cls, numbers: Iterable[int]) -> FrameRule:
        """The rule of a clip whose annotated frames are named by number."""
        chosen = tuple(sorted(set(numbers)))
        return cls(count=len(chosen), fps=0.0, numbers=chosen)

    @property
    def needed_seconds(self) -> float:
        """The shortest clip from which the sampler yields every annotated frame (0 for a rule by number)."""
        return (self.count - 0.5) / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class Problem:
    """One finding of validation: how bad, what kind, which file, what is wrong."""

    severity: str  # error | warning | note
    # missing | ground_truth | quad | template | video | decode | frame_mismatch | archive | extra,
    # and discovery's: link | duplicate | name | format
    kind: str
    path: str
    message: str
    clip: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _paths(files: dict[str, str]) -> dict[int, Path]:
    """{number: Path} of a record's {"number": file}. A clip's files are often one (MIDV-2020's annotation file of
    every frame) or in one folder (its pictures): each file and each folder is made a Path once, and a folder's
    files joined to it, a quarter of the time of a Path from every whole name (a clip's record has ~140)."""
    made: dict[str, Path] = {}
    out = {}
    for key, name in files.items():
        path = made.get(name)
        if path is None:
            folder, _, base = name.rpartition("/")
            if not folder or base in ("", ".", ".."):  # ("x", "/x", "a/"): as a whole name
                path = Path(name)
            else:
                parent = made.get(folder)
                if parent is None:
                    parent = made[folder] = Path(folder)
                path = parent / base
            made[name] = path
        out[int(key)] = path
    return out


@dataclass(slots=True)
class Clip:
    """One video clip of a dataset and the files that annotate it."""

    id: str  # unique in the dataset: "TA01" (code + document number), or the video's relative path
    document: str
    code: str  # clip code ("TA"), or the video's file stem outside MIDV structure
    video: Path | None
    format: str = "midv500"  # the name of the dataset format that found it (reads its ground truth)
    condition: str | None = None
    device: str | None = None
    ground_truth: dict[int, Path] = field(default_factory=dict)  # frame number -> JSON
    images: dict[int, Path] = field(default_factory=dict)  # frame number -> extracted frame
    frame_rule: FrameRule = FrameRule()
    frame_size: tuple[int, int] | None = None  # (width, height) as the format documents it; None: unknown
    frame_digits: int = 2  # digits of a frame number in frame ids: 2 (CCDD_KK), 6 (MIDV-2020's 000007)
    template: str | None = None  # where its text fields are: the format's reference (read_templates); None: none

    @property
    def runs_from_pictures(self) -> bool:
        """A clip without video whose pictures are its frames (a format naming its frames by number)."""
        return self.video is None and bool(self.frame_rule.numbers) and bool(self.images)

    def to_record(self) -> dict:
        """The clip as JSON-ready data, whole: what a run keeps of it in its ledger (see from_record)."""
        rule = self.frame_rule
        return {
            "id": self.id,
            "document": self.document,
            "code": self.code,
            "video": str(self.video) if self.video is not None else None,
            "format": self.format,
            "condition": self.condition,
            "device": self.device,
            "ground_truth": {str(k): str(p) for k, p in self.ground_truth.items()},
            "images": {str(k): str(p) for k, p in self.images.items()},
            "frame_rule": [rule.count, rule.fps, list(rule.numbers)],
            "frame_size": list(self.frame_size) if self.frame_size else None,
            "frame_digits": self.frame_digits,
            "template": self.template,
        }

    @classmethod
    def from_record(cls, record: dict) -> Clip:
        """The clip `to_record` gave."""
        count, fps, numbers = record["frame_rule"]
        size = record["frame_size"]
        return cls(
            id=record["id"],
            document=record["document"],
            code=record["code"],
            video=Path(record["video"]) if record["video"] is not None else None,
            format=record["format"],
            condition=record["condition"],
            device=record["device"],
            ground_truth=_paths(record["ground_truth"]),
            images=_paths(record["images"]),
            frame_rule=FrameRule(count, fps, tuple(numbers)),
            frame_size=(size[0], size[1]) if size else None,
            frame_digits=record["frame_digits"],
            template=record["template"],
        )

    def frame_id(self, number: int) -> str:
        """Name annotated frame `number` as the dataset does (CCDD_KK)."""
        return f"{self.id}_{number:0{self.frame_digits}d}"

    def to_dict(self) -> dict:
        """Return a JSON-ready summary of the clip."""
        return {
            "id": self.id,
            "document": self.document,
            "clip": self.code,
            "condition": self.condition,
            "device": self.device,
            "video": str(self.video) if self.video else None,
            "ground_truth": len(self.ground_truth),
            "images": len(self.images),
        }


@dataclass
class Document:
    """A document folder of a MIDV dataset."""

    name: str
    folder: Path
    template_image: Path | None
    template_json: Path | None
    clips: list[Clip]


@dataclass(frozen=True)
class Missing:
    """Something a complete dataset would hold and this one does not."""

    kind: str  # document | clip | video | ground_truth | template_image | template_json
    where: str  # document name or clip id
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(eq=False)
class Copy:
    """A second copy of something a dataset holds once (a document folder, a clip): one is used, one ignored.

    ``select`` takes the ignored copy instead when a ``--docs`` pattern names its path (relative
    to the root) and not the used one's.
    """

    what: str  # "document 01_alb_id", "clip cam1/receipt"
    used: str  # the used copy's path, relative to the root
    ignored: str  # the ignored copy's path, relative to the root
    clips: tuple[Clip, ...] = ()  # the ignored copy's clips
    replaces: tuple[str, ...] = ()  # the ids of the used copy's clips, which they replace when chosen

    def problem(self, root: Path, chosen: bool = False) -> Problem:
        """The one line saying which copy is used and which ignored (`chosen`: --docs took the ignored one)."""
        used, ignored = (self.ignored, self.used) if chosen else (self.used, self.ignored)
        how = "chosen by --docs" if chosen else f"--docs {path_pattern(self.ignored)} takes this one instead"
        message = f"a second copy of {self.what}, ignored: {root / used} is used ({how})"
        return Problem(WARNING, "duplicate", str(root / ignored), message)


@dataclass
class Dataset:
    """What discovery found under a root: documents, clips, and what is missing.

    `problems` and `copies` are what discovery could not use as it found it: links not
    followed, names without a number, clips a format gave that are not clips (set aside),
    second copies of documents and clips (one used, one ignored). ``findings`` says them.
    """

    root: Path
    format: str  # the name of the dataset format that read it
    catalog: Catalog | None  # documents, conditions, devices; None: a folder of videos
    documents: list[Document]
    clips: list[Clip]
    missing: list[Missing]
    problems: list[Problem] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)

    def findings(self, chosen: Iterable[Clip] = ()) -> list[Problem]:
        """Discovery's problems, one line each, and a line per second copy (`chosen`: the clips
        ``select`` gave, which may hold ignored copies that --docs chose)."""
        taken = {id(c) for c in chosen}
        copies = [c.problem(self.root, any(id(x) in taken for x in c.clips)) for c in self.copies]
        return [*self.problems, *copies]

    @functools.cached_property
    def _by_id(self) -> dict[str, Clip]:
        return {c.id: c for c in self.clips}

    def clip(self, clip_id: str) -> Clip:
        """Return the clip with this id; raise DatasetError if there is none."""
        try:
            return self._by_id[clip_id]  # exports look up every clip of a run: not a scan each
        except KeyError:
            raise DatasetError(f"no clip {clip_id!r}", path=self.root) from None

    def to_dict(self, chosen: Iterable[Clip] | None = None) -> dict:
        """Return a JSON-ready summary: root, catalog, clips (`chosen`, by default all), missing parts, findings."""
        clips = self.clips if chosen is None else list(chosen)
        return {
            "root": str(self.root),
            "format": self.format,
            "catalog": self.catalog.name if self.catalog else None,
            "documents": len(self.documents),
            "clips": [c.to_dict() for c in clips],
            "missing": [{"kind": m.kind, "where": m.where, "detail": m.detail} for m in self.missing],
            "problems": [asdict(p) for p in self.findings(clips)],
        }


def _names_path(path: str, patterns: Iterable[str]) -> bool:
    """Whether a path glob (one with a '/': ``backup/*``, ``./01_alb_id``) names `path`, relative to the root.

    A glob without '/' names documents, never a copy's path."""
    return any("/" in p and fnmatch.fnmatchcase(path, p[2:] if p.startswith("./") else p) for p in patterns)


def path_pattern(path: str) -> str:
    """The --docs glob that names `path` (relative to the root) and no other copy: ``./01_alb_id`` for a top folder."""
    return path if "/" in path else f"./{path}"


def select(
    dataset: Dataset, docs: list[str] | tuple[str, ...] = (), clips: list[str] | tuple[str, ...] = ()
) -> list[Clip]:
    """Return the clips whose document matches any `docs` glob and whose code or id matches any `clips` glob.

    An empty list of patterns selects everything. A `docs` glob with a '/' that names the
    path of a second copy (``backup/01_alb_id``, ``./01_alb_id``) and not the first's takes
    that copy instead.
    Raises DatasetError when patterns select nothing, naming them.
    """
    chosen = choose(dataset, docs, clips)
    if not chosen and (docs or clips):
        raise no_match(dataset.root, docs, clips)
    return chosen


def choose(dataset: Dataset, docs: Iterable[str] = (), clips: Iterable[str] = ()) -> list[Clip]:
    """`select`, raising nothing: a run chooses among a part of a dataset at a time."""
    docs, clips = list(docs), list(clips)
    pool, taken = dataset.clips, set[int]()  # taken: clips a path glob named
    for copy in dataset.copies if docs else ():
        gone = set(copy.replaces)
        if _names_path(copy.ignored, docs) and not _names_path(copy.used, docs):
            at = next((i for i, c in enumerate(pool) if c.id in gone), len(pool))
            pool = [*pool[:at], *copy.clips, *(c for c in pool[at:] if c.id not in gone)]
            taken.update(id(c) for c in copy.clips)
        elif _names_path(copy.used, docs):
            taken.update(id(c) for c in pool if c.id in gone)
    return [
        c
        for c in pool
        if (not docs or id(c) in taken or any(fnmatch.fnmatchcase(c.document, p) for p in docs))
        and (not clips or any(fnmatch.fnmatchcase(c.code, p) or fnmatch.fnmatchcase(c.id, p) for p in clips))
    ]


def no_match(root: Path, docs: Iterable[str], clips: Iterable[str]) -> DatasetError:
    """The error of patterns that select no clip of the dataset at `root`, naming them."""
    wanted = " ".join([f"--docs {p}" for p in docs] + [f"--clips {p}" for p in clips])
    return DatasetError(f"no clip matches {wanted}", path=root)
