"""MIDV-500 and MIDV-2019: one layout (:mod:`.layout`), read (:mod:`.reader`) and written (:mod:`.writer`), two catalogs."""

from midvbatch.dataset.formats.midv.layout import STRUCTURE_DIRS
from midvbatch.dataset.formats.midv.reader import MIDV500_FORMAT, MIDV2019_FORMAT, MidvFormat

__all__ = ["MIDV500_FORMAT", "MIDV2019_FORMAT", "STRUCTURE_DIRS", "MidvFormat"]
