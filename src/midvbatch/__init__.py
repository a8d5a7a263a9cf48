"""midvbatch: put a whole identity-document video dataset through a document-processing pipeline.

The Python API (see docs/api.md)::

    ds = midvbatch.open_dataset(path)           # a dataset: clips, annotated frames with their truth
    summary = midvbatch.run(path, out, ...)     # run a configuration, as `midvbatch run`
    results = midvbatch.open_run(out)           # a run folder: clips, frames, status, report figures
    midvbatch.import_predictions(file, path, out)  # score outputs made elsewhere, as `midvbatch import`

Everything is imported on first use, so ``import midvbatch`` stays light (no numpy, PyAV or
rich, not even pathlib): ``python -m midvbatch`` imports this module before its own, whose
first act is to make a Ctrl-C exit 130 in one line.
"""

from __future__ import annotations

from midvbatch.version import __version__

TYPE_CHECKING = False  # (typing is not imported: ``python -m midvbatch`` sets its Ctrl-C handler after this module)
if TYPE_CHECKING:
    from typing import Any

    from midvbatch.api import run
    from midvbatch.config import RunConfig
    from midvbatch.dataset.api import AnnotatedDataset, DatasetFrame, open_dataset
    from midvbatch.engine.run import RunSummary
    from midvbatch.errors import (
        DatasetError,
        GroundTruthError,
        MidvBatchError,
        PermanentError,
        TransientError,
        VideoError,
    )
    from midvbatch.results import (
        Accuracy,
        ClipResult,
        FrameResult,
        ReportFigures,
        RunMeta,
        RunResults,
        TextAccuracy,
        TextFigures,
        open_run,
    )
    from midvbatch.results.imports import ImportSummary, import_predictions

# public name -> the module that defines it, imported when the name is first used
_LAZY = {
    "DatasetError": "midvbatch.errors",
    "GroundTruthError": "midvbatch.errors",
    "MidvBatchError": "midvbatch.errors",
    "PermanentError": "midvbatch.errors",
    "TransientError": "midvbatch.errors",
    "VideoError": "midvbatch.errors",
    "open_dataset": "midvbatch.dataset.api",
    "AnnotatedDataset": "midvbatch.dataset.api",
    "DatasetFrame": "midvbatch.dataset.api",
    "run": "midvbatch.api",
    "import_predictions": "midvbatch.results.imports",
    "ImportSummary": "midvbatch.results.imports",
    "RunConfig": "midvbatch.config",
    "RunSummary": "midvbatch.engine.run",
    "open_run": "midvbatch.results",
    "RunResults": "midvbatch.results",
    "RunMeta": "midvbatch.results",
    "ClipResult": "midvbatch.results",
    "FrameResult": "midvbatch.results",
    "ReportFigures": "midvbatch.results",
    "Accuracy": "midvbatch.results",
    "TextFigures": "midvbatch.results",
    "TextAccuracy": "midvbatch.results",
}

__all__ = [
    "Accuracy",
    "AnnotatedDataset",
    "ClipResult",
    "DatasetError",
    "DatasetFrame",
    "FrameResult",
    "GroundTruthError",
    "ImportSummary",
    "MidvBatchError",
    "PermanentError",
    "ReportFigures",
    "RunConfig",
    "RunMeta",
    "RunResults",
    "RunSummary",
    "TextAccuracy",
    "TextFigures",
    "TransientError",
    "VideoError",
    "__version__",
    "import_predictions",
    "open_dataset",
    "open_run",
    "run",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'midvbatch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
