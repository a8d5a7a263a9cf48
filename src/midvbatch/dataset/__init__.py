"""The dataset layer: catalog, discovery, ground truth, visibility subsets, synthesis."""

from midvbatch.dataset.catalog import CATALOGS, MIDV500, MIDV2019, Catalog, get_catalog
from midvbatch.dataset.frames import FrameTruth, clip_frame_truths, frame_truths
from midvbatch.dataset.groundtruth import Quad, Template, TemplateField, load_frame_quad, load_template
from midvbatch.dataset.layout import Clip, Dataset, Document, Missing, discover, select
from midvbatch.dataset.visibility import SUBSETS, subsets

__all__ = [
    "CATALOGS", "MIDV500", "MIDV2019", "Catalog", "Clip", "Dataset", "Document", "FrameTruth",
    "Missing", "Quad", "SUBSETS", "Template", "TemplateField", "clip_frame_truths", "discover",
    "frame_truths", "get_catalog", "load_frame_quad", "load_template", "select", "subsets",
]
