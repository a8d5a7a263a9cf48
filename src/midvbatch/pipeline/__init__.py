"""One clip through a processor: frames in, JSON-ready results out."""

from midvbatch.pipeline.processor import ClipInfo, Frame, Processor
from midvbatch.pipeline.registry import load_processor_factory, processor_registry

__all__ = ["ClipInfo", "Frame", "Processor", "load_processor_factory", "processor_registry"]
