"""Reading a run folder: its identity, clips, frames, status and report figures, as typed records."""

from midvbatch.results.figures import (
    Accuracy,
    ReportFigures,
    RunOverview,
    Speed,
    WorstClip,
)
from midvbatch.results.reader import RunResults, open_run
from midvbatch.results.records import ClipResult, FrameResult, RunMeta
from midvbatch.results.textfigures import Curve, TextAccuracy, TextCurves, TextFigures, WorstField

__all__ = [
    "Accuracy",
    "ClipResult",
    "Curve",
    "FrameResult",
    "ReportFigures",
    "RunMeta",
    "RunOverview",
    "RunResults",
    "Speed",
    "TextAccuracy",
    "TextCurves",
    "TextFigures",
    "WorstClip",
    "WorstField",
    "open_run",
]
