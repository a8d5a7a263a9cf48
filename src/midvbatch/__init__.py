"""midvbatch: put a whole identity-document video dataset through a document-processing pipeline."""

from midvbatch.errors import (
    DatasetError,
    GroundTruthError,
    MidvBatchError,
    PermanentError,
    TransientError,
    VideoError,
)

__version__ = "0.1.0"

__all__ = [
    "DatasetError",
    "GroundTruthError",
    "MidvBatchError",
    "PermanentError",
    "TransientError",
    "VideoError",
    "__version__",
]
