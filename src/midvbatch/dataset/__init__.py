"""The dataset layer: formats (discovery), catalog, ground truth, visibility subsets, synthesis."""

from midvbatch.dataset.catalog import CATALOGS, MIDV500, MIDV2019, Catalog, get_catalog
from midvbatch.dataset.formats import DatasetFormat, all_formats, detect_format, discover, get_format, register
from midvbatch.dataset.frames import FrameTruth, clip_frame_truths, frame_truths
from midvbatch.dataset.groundtruth import Quad, Template, TemplateField, load_frame_quad, load_template
from midvbatch.dataset.model import Clip, Dataset, Document, FrameRule, Missing, Problem, select
from midvbatch.dataset.visibility import SUBSETS, subsets

__all__ = [
    "CATALOGS",
    "MIDV500",
    "MIDV2019",
    "Catalog",
    "Clip",
    "Dataset",
    "DatasetFormat",
    "Document",
    "FrameRule",
    "FrameTruth",
    "Missing",
    "Problem",
    "Quad",
    "SUBSETS",
    "Template",
    "TemplateField",
    "all_formats",
    "clip_frame_truths",
    "detect_format",
    "discover",
    "frame_truths",
    "get_catalog",
    "get_format",
    "load_frame_quad",
    "load_template",
    "register",
    "select",
    "subsets",
]
