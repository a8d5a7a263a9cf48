"""The built-in pipelines: frames (the throughput baseline), extract, probe."""

from __future__ import annotations

from midvbatch.config import IMAGE_FORMATS
from midvbatch.errors import ProcessorError
from midvbatch.pipeline.processor import ClipInfo, Frame, Processor
from midvbatch.video.probe import probe


class FramesProcessor(Processor):
    """Decode the annotated frames and record each one's size: the throughput baseline."""

    def process_frame(self, frame: Frame) -> dict:
        """Return the frame's width and height."""
        height, width = frame.image.shape[:2]
        return {"width": width, "height": height}


class ExtractProcessor(Processor):
    """Write the annotated frames as images under RUN_DIR/frames/DOC/CLIP/CCDD_KK.<format>."""

    def __init__(self, image_format: str = "png"):
        if image_format not in IMAGE_FORMATS:
            raise ProcessorError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
        self.image_format = image_format

    def process_frame(self, frame: Frame) -> dict:
        """Write the frame and return its path relative to the run folder."""
        clip = frame.clip
        if clip.condition:  # MIDV: frames/DOC/CLIP/CCDD_KK
            relative = f"frames/{clip.document}/{clip.code}/{frame.id}.{self.image_format}"
        else:  # a plain video: its relative path (suffix included, so x.mov and x.mp4 differ) as the folder
            relative = f"frames/{clip.id}/{frame.number:02d}.{self.image_format}"
        import cv2  # here, not at import: workers of other pipelines need not load OpenCV

        path = clip.artifact(relative)
        if not cv2.imwrite(str(path), frame.image):
            raise ProcessorError(f"could not write {relative}")
        return {"path": relative, "bytes": path.stat().st_size}


class GroundTruthProcessor(Processor):
    """Return each frame's ground truth as the prediction (document quad, text fields): every score must be perfect.

    The end-to-end check of the scoring path: the one pipeline that sees the fields' values.
    """

    field_values = True

    def process_frame(self, frame: Frame) -> dict:
        """Return {"quad": the ground truth, or None where the dataset has none; "fields": the true values}."""
        quad = frame.quad
        result: dict = {"quad": quad.to_list() if quad is not None else None}
        template = frame.clip.templates.get(frame.number)
        if template is not None:  # every value, also of a field the frame's quad cannot place
            result["fields"] = {f.name: f.value for f in template.fields.values() if f.value is not None}
        return result


class ProbeProcessor(Processor):
    """Record each clip's container metadata."""

    def process_clip(self, clip: ClipInfo) -> dict:
        """Return the probe of the clip's video."""
        # A clip without a video fails here with probe's TypeError, classified "error" like
        # any processor bug; narrowing it to a named error would change that outcome.
        return probe(clip.video).to_dict()  # type: ignore[arg-type]
