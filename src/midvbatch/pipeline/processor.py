"""The processor plugin interface, and finding processors by name or MODULE:FACTORY.

A processor is any object with either ``process_frame(frame) -> dict | None`` (the
engine reads the annotated frames and calls it once per frame) or
``process_clip(clip) -> dict`` (the processor reads the video itself), and optionally
``setup()`` (once per worker, before the first clip: load a model) and ``close()``.
A *factory* makes it: a callable taking the run's processor options as keyword
arguments. Factories are found by name in the registry (the built-in pipelines, and
entry points of group ``midvbatch.processors``) or as ``MODULE:FACTORY``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.dataset.groundtruth import Quad
from midvbatch.errors import ProcessorError
from midvbatch.runfolder import RESERVED, is_reserved

ENTRY_POINT_GROUP = "midvbatch.processors"


@dataclass
class ClipInfo:
    """What a processor knows of the clip it works on."""

    id: str  # TA01, or the video's path relative to a plain folder
    document: str
    code: str
    condition: str | None
    device: str | None
    video: Path | None
    frames: int  # annotated frames to read
    fps: float  # annotated-frame sampling rate
    ground_truth: dict[int, Quad] = field(default_factory=dict)  # frame number -> quad
    output_dir: Path | None = None  # write artifacts here; moved into RUN_DIR on success
    template_size: tuple[int, int] | None = None  # (w, h) of the document's template rectangle

    def artifact(self, relative: str | Path) -> Path:
        """Return where to write an artifact that ends up at RUN_DIR/`relative`."""
        if self.output_dir is None:
            raise ProcessorError("this run keeps no artifacts")
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or is_reserved(rel):
            raise ProcessorError(f"artifact path {str(relative)!r} must be relative, inside the run folder, and "
                                 f"not one of the run's own files ({', '.join(RESERVED)})")
        path = self.output_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Frame:
    """One annotated frame handed to ``process_frame``."""

    image: np.ndarray  # H x W x 3, uint8, BGR, as displayed (rotation applied)
    number: int  # 1..30
    time: float  # seconds from the clip's start
    clip: ClipInfo

    @property
    def id(self) -> str:
        """The frame's dataset name, CCDD_KK."""
        return f"{self.clip.id}_{self.number:02d}"

    @property
    def quad(self) -> Quad | None:
        """The ground-truth quad of this frame, if the dataset has one."""
        return self.clip.ground_truth.get(self.number)


class Processor:
    """Optional base class: override ``process_frame`` or ``process_clip``."""

    def setup(self) -> None:
        """Prepare once per worker (load a model); default: nothing."""

    def close(self) -> None:
        """Release what setup() took; default: nothing."""


Factory = Callable[..., Any]


def _builtin() -> dict[str, Factory]:
    from midvbatch.pipeline import builtin, localize

    return {
        "localize": localize.make,
        "ground-truth": builtin.GroundTruthProcessor,
        "frames": builtin.FramesProcessor,
        "extract": builtin.ExtractProcessor,
        "probe": builtin.ProbeProcessor,
    }


def processor_registry() -> dict[str, Factory]:
    """Return the named processors: built-in pipelines, then entry points (group midvbatch.processors)."""
    registry = _builtin()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        registry.setdefault(ep.name, ep)  # loaded on use: a broken plugin only fails when chosen
    return registry


def load_processor_factory(spec: str, import_dir: str | None = None) -> Factory:
    """Return the factory named by `spec`: a registered name or MODULE:FACTORY.

    MODULE is imported from `import_dir` (default: the current directory) or PYTHONPATH.
    Raises ProcessorError with what went wrong.
    """
    if ":" not in spec:
        registry = processor_registry()
        if spec not in registry:
            known = ", ".join(sorted(registry))
            raise ProcessorError(f"unknown processor {spec!r} (known: {known}; or give MODULE:FACTORY)")
        factory = registry[spec]
        if hasattr(factory, "load") and hasattr(factory, "group"):
            try:
                factory = factory.load()
            except Exception as exc:  # a plugin's import error, whatever it is
                raise ProcessorError(f"cannot load processor {spec!r}: {type(exc).__name__}: {exc}") from None
        return factory
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ProcessorError(f"bad processor {spec!r}: expected MODULE:FACTORY")
    where = import_dir or os.getcwd()
    if where not in sys.path:
        sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProcessorError(f"cannot import module {module_name!r} of processor {spec!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ProcessorError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ProcessorError(f"module {module_name!r} has no {attr!r}")
    if not callable(factory):
        raise ProcessorError(f"{spec!r} is not callable")
    return factory


def check_processor(spec: str, options: dict[str, Any], import_dir: str | None = None) -> Factory:
    """Check, without building it, that the processor `spec` exists and takes `options`; return its factory.

    A run calls this before it creates anything, so a misspelt --processor or --option
    is one line, not a run folder full of dead clips. Raises ProcessorError.
    """
    factory = load_processor_factory(spec, import_dir)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return factory
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = [p.name for p in signature.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        hint = f" (it takes: {', '.join(accepted)})" if accepted else " (it takes no options)"
        raise ProcessorError(f"processor {spec!r} does not take these options: {exc}{hint}") from None
    return factory


def make_processor(spec: str, options: dict[str, Any], import_dir: str | None = None) -> Any:
    """Build the processor named by `spec` with `options`; check it has a process method."""
    factory = load_processor_factory(spec, import_dir)
    try:
        processor = factory(**options)
    except TypeError as exc:
        raise ProcessorError(f"processor {spec!r} does not take these options: {exc}") from None
    if not (hasattr(processor, "process_frame") or hasattr(processor, "process_clip")):
        raise ProcessorError(f"processor {spec!r} has neither process_frame nor process_clip")
    return processor
