"""The built-in ``ocr`` pipeline: read every text field of every annotated frame with Tesseract.

The classic baseline of the MIDV datasets: each field is cut out of the frame where the
template's field lies (through the ground-truth document quad by default, as the papers
evaluate field recognition in isolation; or through the quad the ``localize`` pipeline
finds, ``--option quad=localize``: end to end), rectified to a line of text, and read by
Tesseract 5 as a single line. Tesseract comes through ``tesserocr`` (its wheel carries
the library); the language data is Debian's ``tesseract-ocr-eng`` (``.ci/tesseract``
installs it), found in the usual folders or at ``--option tessdata=DIR`` or
``$TESSDATA_PREFIX``. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.dataset.groundtruth import Quad
from midvbatch.errors import PermanentError, ProcessorError
from midvbatch.pipeline.processor import Frame, Processor

TESSDATA_FOLDERS = (  # where distributions put the language data (Debian, Fedora, Homebrew, source builds)
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
QUAD_SOURCES = ("truth", "localize")
PSM_SINGLE_LINE = 7  # Tesseract's page segmentation mode: the image is one line of text
MARGIN = 8  # white-ish pixels around a field: Tesseract reads poorly up to the image's edge


def find_tessdata(given: str = "", lang: str = "eng") -> Path:
    """The folder holding ``<lang>.traineddata`` for each of `lang` ('eng+rus'): `given`, else
    $TESSDATA_PREFIX, else the usual system folders. PermanentError saying how to install it."""
    candidates = [given] if given else [os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_FOLDERS]
    wanted = lang.split("+")
    for folder in filter(None, candidates):
        if all((Path(folder) / f"{name}.traineddata").is_file() for name in wanted):
            return Path(folder)
    where = given or ", ".join(filter(None, candidates))
    packages = " ".join(f"tesseract-ocr-{name.lower().replace('_', '-')}" for name in wanted)
    raise PermanentError(
        f"no Tesseract language data for {lang!r} in {where}: install it with 'apt-get install {packages}' "
        "(Debian, Ubuntu), or give --option tessdata=DIR"
    )


def _import_tesserocr() -> Any:
    try:
        import tesserocr
    except ImportError as exc:
        raise PermanentError(
            f"the ocr pipeline needs tesserocr ({exc}): install it with pip install 'midvbatch[ocr]'"
        ) from None
    return tesserocr


def check(quad: str = "truth", lang: str = "eng", height: int = 48, tessdata: str = "") -> None:
    """Check, before a run, that Tesseract and its language data are here; PermanentError saying how to
    install what is missing. A run calls this once (processors' ``check``), so that a missing engine is
    one line before anything starts, not every clip dead at setup."""
    processor = OcrProcessor(quad=quad, lang=lang, height=height, tessdata=tessdata)  # the options' own checks
    tesserocr = _import_tesserocr()
    folder = find_tessdata(processor.tessdata, processor.lang)
    try:
        api = tesserocr.PyTessBaseAPI(path=f"{folder}/", lang=processor.lang, psm=PSM_SINGLE_LINE)
    except RuntimeError as exc:
        raise PermanentError(f"Tesseract cannot start with {processor.lang!r} from {folder}: {exc}") from None
    api.End()


class OcrProcessor(Processor):
    """Read every text field of the document with Tesseract 5 (the MIDV baseline); ground-truth quads by default."""

    def __init__(self, quad: str = "truth", lang: str = "eng", height: int = 48, tessdata: str = "") -> None:
        if quad not in QUAD_SOURCES:
            raise ProcessorError(f"quad must be one of {', '.join(QUAD_SOURCES)}, not {quad!r}")
        if isinstance(height, bool) or not isinstance(height, int) or not 16 <= height <= 256:
            raise ProcessorError(f"height must be a whole number of pixels from 16 to 256, not {height!r}")
        if not isinstance(lang, str) or not lang or not all(part.isidentifier() for part in lang.split("+")):
            raise ProcessorError(
                f"lang must be Tesseract language names joined by '+' ('eng', 'eng+rus'), not {lang!r}"
            )
        self.quad, self.lang, self.height, self.tessdata = quad, lang, height, str(tessdata)
        self._api: Any = None
        self._localizer: Any = None

    def setup(self) -> None:
        """Start Tesseract once per worker (and the localizer for quad=localize)."""
        tesserocr = _import_tesserocr()
        folder = find_tessdata(self.tessdata, self.lang)
        try:
            self._api = tesserocr.PyTessBaseAPI(path=f"{folder}/", lang=self.lang, psm=PSM_SINGLE_LINE)
        except RuntimeError as exc:
            raise PermanentError(f"Tesseract cannot start with {self.lang!r} from {folder}: {exc}") from None
        if self.quad == "localize":
            from midvbatch.pipeline import localize

            self._localizer = localize.make()

    def close(self) -> None:
        """Stop Tesseract."""
        if self._api is not None:
            self._api.End()
            self._api = None

    def process_frame(self, frame: Frame) -> dict:
        """Return {"fields": {name: {"text", "confidence"}}} (and the localized "quad" with quad=localize)."""
        if self._api is None:
            self.setup()
        result: dict[str, Any] = {}
        if self._localizer is not None:
            found = self._localizer.process_frame(frame)["quad"]
            result["quad"] = found
            fields = frame.fields_at(Quad.from_list(found)) if found is not None else {}
        else:
            fields = frame.fields
        read = {}
        for name, field in fields.items():
            if not field.has_text:
                continue
            crop = frame.crop(field.quad, self.height)
            read[name] = self.read_line(crop) if crop is not None else {"text": "", "confidence": 0.0}
        result["fields"] = read
        return result

    def read_line(self, image: np.ndarray) -> dict:
        """Read one line of text off a BGR image: {"text", "confidence" (0..1)}."""
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        background = int(np.percentile(gray, 90))  # the card's tint: the margin must not look like an edge
        padded = cv2.copyMakeBorder(gray, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT, value=background)
        padded = np.ascontiguousarray(padded)
        height, width = padded.shape
        self._api.SetImageBytes(padded.tobytes(), width, height, 1, width)
        text = " ".join(self._api.GetUTF8Text().split())
        confidence = max(0, self._api.MeanTextConf()) / 100.0
        return {"text": text, "confidence": round(confidence, 3)}


def make(quad: str = "truth", lang: str = "eng", height: int = 48, tessdata: str = "") -> OcrProcessor:
    """Factory of the built-in ocr pipeline: --option quad=truth|localize, lang=eng, height=48, tessdata=DIR."""
    return OcrProcessor(quad=quad, lang=lang, height=height, tessdata=tessdata)


make.check = check  # type: ignore[attr-defined]  # what a run checks first (pipeline.registry)
