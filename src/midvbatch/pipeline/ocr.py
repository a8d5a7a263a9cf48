"""The built-in ``ocr`` pipeline: read every text field of every annotated frame with Tesseract.

The classic baseline of the MIDV datasets: each field is cut out of the frame where the
template's field lies (through the ground-truth document quad by default, as the papers
evaluate field recognition in isolation; or through the quad the ``localize`` pipeline
finds, ``--option quad=localize``: end to end), rectified to a line of text, and read by
Tesseract 5 as a single line. Tesseract comes through ``tesserocr`` (its wheel carries
the library); the language data is Debian's ``tesseract-ocr-<lang>`` packages
(``.ci/tesseract`` installs those of every language the catalog's documents print), found in
the usual folders or at ``--option tessdata=DIR`` or ``$TESSDATA_PREFIX``. Nothing is
downloaded.

Languages: by default (``lang=auto``) each document is read in the languages the catalog
gives its type (catalog.DOCUMENT_LANGUAGES: ``rus`` for the Russian internal passport,
``ell+eng`` for the Greek passport, ``srp+srp_latn`` for the Serbian ID; a document in Latin
letters with English's model first, ``eng+deu``, which reads plain capitals best), and a
machine-readable-zone line (a field named ``mrz...``, or one whose first reading holds
three '<' or more: MIDV-500 names its fields field01, ...) in English, its letters limited to
A-Z, 0-9 and '<'. ``lang=rus+eng`` reads every field in those. A clip whose languages have
no data here fails with one line naming the package to install.

Each reading carries Tesseract's per-character alternatives (the LSTM's choices at each
character, ``lstm_choice_mode`` 2) beside its text: what the combination with alternatives
and the expected-distance stopping rule (scoring.stream) work on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from midvbatch.dataset.catalog import document_languages, document_scripts
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
AUTO = "auto"  # lang: each document's languages (catalog.DOCUMENT_LANGUAGES)
MRZ_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"  # what a machine-readable zone prints (ICAO 9303)
MRZ_FILLERS = 3  # a reading with this many '<' is an MRZ line (MIDV-500 names its fields field01...): read again


def find_tessdata(given: str = "", lang: str = "eng") -> Path:
    """The folder holding ``<lang>.traineddata`` for each of `lang` ('eng+rus'): `given`, else
    $TESSDATA_PREFIX, else the usual system folders. PermanentError naming the packages to install."""
    candidates = [given] if given else [os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_FOLDERS]
    wanted = lang.split("+")
    for folder in filter(None, candidates):
        if all((Path(folder) / f"{name}.traineddata").is_file() for name in wanted):
            return Path(folder)
    where = given or ", ".join(filter(None, candidates))
    missing = [n for n in wanted if not any((Path(f) / f"{n}.traineddata").is_file() for f in filter(None, candidates))]
    packages = " ".join(f"tesseract-ocr-{name.lower().replace('_', '-')}" for name in missing or wanted)
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


def check(quad: str = "truth", lang: str = AUTO, height: int = 48, tessdata: str = "") -> None:
    """Check, before a run, that Tesseract and its language data are here (English for lang=auto: a document
    type's own languages are checked as its clips start); PermanentError saying how to install what is
    missing. A run calls this once (processors' ``check``), so that a missing engine is one line before
    anything starts, not every clip dead at setup."""
    processor = OcrProcessor(quad=quad, lang=lang, height=height, tessdata=tessdata)  # the options' own checks
    processor.engine("eng" if processor.lang == AUTO else processor.lang)
    processor.close()


class OcrProcessor(Processor):
    """Read every text field of the document with Tesseract 5 (the MIDV baseline); ground-truth quads by default."""

    def __init__(self, quad: str = "truth", lang: str = AUTO, height: int = 48, tessdata: str = "") -> None:
        if quad not in QUAD_SOURCES:
            raise ProcessorError(f"quad must be one of {', '.join(QUAD_SOURCES)}, not {quad!r}")
        if isinstance(height, bool) or not isinstance(height, int) or not 16 <= height <= 256:
            raise ProcessorError(f"height must be a whole number of pixels from 16 to 256, not {height!r}")
        if not isinstance(lang, str) or not lang or not all(part.isidentifier() for part in lang.split("+")):
            raise ProcessorError(
                f"lang must be auto or Tesseract language names joined by '+' ('eng', 'eng+rus'), not {lang!r}"
            )
        self.quad, self.lang, self.height, self.tessdata = quad, lang, height, str(tessdata)
        self._engines: dict[str, Any] = {}  # Tesseract, one per set of languages (and one for MRZ lines)
        self._localizer: Any = None

    def setup(self) -> None:
        """Load the localizer for quad=localize (Tesseract starts per set of languages, as first needed)."""
        if self.quad == "localize":
            from midvbatch.pipeline import localize

            self._localizer = localize.make()

    def engine(self, lang: str, mrz: bool = False) -> Any:
        """Tesseract reading `lang` (limited to MRZ_LETTERS with `mrz`), started on first use; PermanentError
        naming the language data to install when it is not here."""
        key = f"{lang}#mrz" if mrz else lang
        api = self._engines.get(key)
        if api is None:
            tesserocr = _import_tesserocr()
            folder = find_tessdata(self.tessdata, lang)
            try:
                api = tesserocr.PyTessBaseAPI(path=f"{folder}/", lang=lang, psm=PSM_SINGLE_LINE)
            except RuntimeError as exc:
                raise PermanentError(f"Tesseract cannot start with {lang!r} from {folder}: {exc}") from None
            api.SetVariable("lstm_choice_mode", "2")  # each character's alternatives
            if mrz:
                api.SetVariable("tessedit_char_whitelist", MRZ_LETTERS)
            self._engines[key] = api
        return api

    def languages(self, document: str, field: str) -> tuple[str, bool]:
        """The languages field `field` of `document` is read in, and whether it is an MRZ line."""
        if self.lang != AUTO:
            return self.lang, False
        if "mrz" in field.lower():
            return "eng", True
        languages = document_languages(document)
        if document_scripts(document)[0] == "Latin":  # English's model first: it reads plain capitals best
            languages = ("eng", *(language for language in languages if language != "eng"))
        return "+".join(languages), False

    def close(self) -> None:
        """Stop Tesseract."""
        for api in self._engines.values():
            api.End()
        self._engines = {}

    def process_frame(self, frame: Frame) -> dict:
        """Return {"fields": {name: {"text", "confidence", "alternatives"}}} (and the localized "quad" with
        quad=localize)."""
        if self.quad == "localize" and self._localizer is None:
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
            if crop is None:
                read[name] = {"text": "", "confidence": 0.0}
                continue
            lang, mrz = self.languages(frame.clip.document, name)
            reading = self.read_line(crop, self.engine(lang, mrz))
            if not mrz and self.lang == AUTO and reading["text"].count("<") >= MRZ_FILLERS:
                reading = self.read_line(crop, self.engine("eng", mrz=True))  # an MRZ line under a generic name
            read[name] = reading
        result["fields"] = read
        return result

    def read_line(self, image: np.ndarray, api: Any = None) -> dict:
        """Read one line of text off a BGR image with `api` (English Tesseract when None): {"text", "confidence"
        (0..1), "alternatives" (one {character: membership} per character, a space between words)}."""
        import cv2

        api = api if api is not None else self.engine("eng")
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        background = int(np.percentile(gray, 90))  # the card's tint: the margin must not look like an edge
        padded = cv2.copyMakeBorder(gray, MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT, value=background)
        padded = np.ascontiguousarray(padded)
        height, width = padded.shape
        api.SetImageBytes(padded.tobytes(), width, height, 1, width)
        api.Recognize()
        text = " ".join(api.GetUTF8Text().split())
        confidence = max(0, api.MeanTextConf()) / 100.0
        return {"text": text, "confidence": round(confidence, 3), "alternatives": _alternatives(api)}


def _alternatives(api: Any) -> list[dict[str, float]]:
    """Each recognised character's alternatives (LSTM choices, by confidence), a certain space between words.
    A character whose choices all have confidence 0 is certain of itself."""
    import tesserocr

    level = tesserocr.RIL.SYMBOL
    out: list[dict[str, float]] = []
    iterator = api.GetIterator()
    if iterator is None:
        return out
    for symbol in tesserocr.iterate_level(iterator, level):
        try:
            text = symbol.GetUTF8Text(level)
        except RuntimeError:  # tesserocr's "No text returned": nothing recognised there
            continue
        if not text:
            continue
        if out and symbol.IsAtBeginningOf(tesserocr.RIL.WORD):
            out.append({" ": 1.0})
        choices: dict[str, float] = {}
        for choice in symbol.GetChoiceIterator():
            try:
                label = choice.GetUTF8Text()
            except RuntimeError:
                continue
            if label:
                choices[label] = choices.get(label, 0.0) + max(0.0, float(choice.Confidence()))
        if not sum(choices.values()):
            choices = {text: 1.0}
        out.append(choices)
    return out


def make(quad: str = "truth", lang: str = AUTO, height: int = 48, tessdata: str = "") -> OcrProcessor:
    """Factory of the built-in ocr pipeline: --option quad=truth|localize, lang=auto, height=48, tessdata=DIR.

    lang=auto reads each document in its own languages; lang=eng, lang=rus+eng, ... every field in those."""
    return OcrProcessor(quad=quad, lang=lang, height=height, tessdata=tessdata)


make.check = check  # type: ignore[attr-defined]  # what a run checks first (pipeline.registry)
