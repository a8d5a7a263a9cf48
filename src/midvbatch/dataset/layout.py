"""Moved: the data model is midvbatch.dataset.model, discovery midvbatch.dataset.formats.

Kept only while the readers of run folders move over; removed in the same change.
"""

from midvbatch.dataset.formats import discover
from midvbatch.dataset.model import Clip, Dataset, Document, Missing, select

__all__ = ["Clip", "Dataset", "Document", "Missing", "discover", "select"]
