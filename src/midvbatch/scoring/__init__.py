"""Scoring of processor outputs against the ground truth.

``localization``: the MIDV-500 document-localization metrics (iou, iou_gt, mean_iou,
min_d) and their aggregation, as Smart Engines publish them.
"""

from midvbatch.dataset.catalog import ID1, ID3, TEMPLATE_SIZES  # the template sizes the metrics use
from midvbatch.scoring.localization import (
    METRICS,
    MISSING,
    THRESHOLDS,
    FrameScore,
    aggregate,
    as_corners,
    document_template_size,
    polygon_iou,
    score_frame,
    template_size,
)

__all__ = [
    "ID1",
    "ID3",
    "METRICS",
    "MISSING",
    "TEMPLATE_SIZES",
    "THRESHOLDS",
    "FrameScore",
    "aggregate",
    "as_corners",
    "document_template_size",
    "polygon_iou",
    "score_frame",
    "template_size",
]
