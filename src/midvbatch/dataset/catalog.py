"""What a dataset of the MIDV family holds: documents, clip codes, frames, archives.

A :class:`Catalog` is pure data. MIDV-500 and MIDV-2019 share one layout and differ only
in their documents' clips (conditions and devices), frame size and archive location, so
each is one :class:`Catalog` value read by one dataset format
(:mod:`midvbatch.dataset.formats.midv`); a dataset with another layout is a format of its
own (see docs/dataset.md, "Adding a dataset format").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from midvbatch.dataset.names import ascii_number
from midvbatch.errors import DatasetError

# The 50 document types of MIDV-500, in archive order. MIDV-2019 films the same documents.
MIDV500_DOCUMENTS: tuple[str, ...] = (
    "01_alb_id",
    "02_aut_drvlic_new",
    "03_aut_id_old",
    "04_aut_id",
    "05_aze_passport",
    "06_bra_passport",
    "07_chl_id",
    "08_chn_homereturn",
    "09_chn_id",
    "10_cze_id",
    "11_cze_passport",
    "12_deu_drvlic_new",
    "13_deu_drvlic_old",
    "14_deu_id_new",
    "15_deu_id_old",
    "16_deu_passport_new",
    "17_deu_passport_old",
    "18_dza_passport",
    "19_esp_drvlic",
    "20_esp_id_new",
    "21_esp_id_old",
    "22_est_id",
    "23_fin_drvlic",
    "24_fin_id",
    "25_grc_passport",
    "26_hrv_drvlic",
    "27_hrv_passport",
    "28_hun_passport",
    "29_irn_drvlic",
    "30_ita_drvlic",
    "31_jpn_drvlic",
    "32_lva_passport",
    "33_mac_id",
    "34_mda_passport",
    "35_nor_drvlic",
    "36_pol_drvlic",
    "37_prt_id",
    "38_rou_drvlic",
    "39_rus_internalpassport",
    "40_srb_id",
    "41_srb_passport",
    "42_svk_id",
    "43_tur_id",
    "44_ukr_id",
    "45_ukr_passport",
    "46_ury_passport",
    "47_usa_bordercrossing",
    "48_usa_passportcard",
    "49_usa_ssn82",
    "50_xpo_id",
)

# Template sizes, for the metrics (the template rectangle) and the synthesizer.
# Physical size in tenths of a millimetre (ISO/IEC 7810), as the reference's report.json
# gives it ("template_size": [856, 540] for 01_alb_id; the report itself is not public
# beyond that example). Only formats known for sure are listed: any other document falls
# back to its template image, whose aspect ratio is right, and the aspect ratio is all
# that matters (iou_gt does not depend on the size at all, min_d only on w / h).
ID1 = (856, 540)  # 85.60 x 53.98 mm: cards
ID3 = (1250, 880)  # 125 x 88 mm: passport data pages
_ID1_DOCUMENTS = (
    "alb_id", "aut_drvlic_new", "aut_id", "chl_id", "chn_homereturn", "chn_id", "cze_id",
    "deu_drvlic_new", "deu_id_new", "esp_drvlic", "esp_id_new", "esp_id_old", "est_id",
    "fin_drvlic", "fin_id", "hrv_drvlic", "irn_drvlic", "ita_drvlic", "jpn_drvlic",
    "mac_id", "nor_drvlic", "pol_drvlic", "prt_id", "rou_drvlic", "srb_id", "svk_id",
    "tur_id", "ukr_id", "usa_bordercrossing", "usa_passportcard", "xpo_id",
)  # fmt: skip
_ID3_DOCUMENTS = (
    "aze_passport", "bra_passport", "cze_passport", "deu_passport_new", "deu_passport_old",
    "dza_passport", "grc_passport", "hrv_passport", "hun_passport", "lva_passport",
    "mda_passport", "srb_passport", "ukr_passport", "ury_passport",
)  # fmt: skip
TEMPLATE_SIZES: dict[str, tuple[int, int]] = {
    **{name: ID1 for name in _ID1_DOCUMENTS},
    **{name: ID3 for name in _ID3_DOCUMENTS},
}


# The languages each document type prints its fields in, as Tesseract names its language data (ISO 639-2/T,
# chi_sim, srp_latn), the main one first; "eng" where a passport also prints names in Latin letters (its data
# page's transliteration and machine-readable zone). MIDV-500 and MIDV-2019 name types NN_<type>, MIDV-2020
# <type>: both are looked up by <type>. A type not listed reads as English.
DOCUMENT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "alb_id": ("sqi",), "aut_drvlic_new": ("deu",), "aut_id_old": ("deu",), "aut_id": ("deu",),
    "aze_passport": ("aze", "eng"), "bra_passport": ("por", "eng"), "chl_id": ("spa",),
    "chn_homereturn": ("chi_sim", "eng"), "chn_id": ("chi_sim",), "cze_id": ("ces",), "cze_passport": ("ces", "eng"),
    "deu_drvlic_new": ("deu",), "deu_drvlic_old": ("deu",), "deu_id_new": ("deu",), "deu_id_old": ("deu",),
    "deu_passport_new": ("deu", "eng"), "deu_passport_old": ("deu", "eng"), "dza_passport": ("ara", "fra", "eng"),
    "esp_drvlic": ("spa",), "esp_id_new": ("spa",), "esp_id_old": ("spa",), "esp_id": ("spa",), "est_id": ("est",),
    "fin_drvlic": ("fin",), "fin_id": ("fin",), "grc_passport": ("ell", "eng"), "hrv_drvlic": ("hrv",),
    "hrv_passport": ("hrv", "eng"), "hun_passport": ("hun", "eng"), "irn_drvlic": ("fas", "eng"),
    "ita_drvlic": ("ita",), "jpn_drvlic": ("jpn",), "lva_passport": ("lav", "eng"), "mac_id": ("chi_tra", "por"),
    "mda_passport": ("ron", "eng"), "nor_drvlic": ("nor",), "pol_drvlic": ("pol",), "prt_id": ("por",),
    "rou_drvlic": ("ron",), "rus_internalpassport": ("rus", "eng"), "srb_id": ("srp", "srp_latn"),
    "srb_passport": ("srp", "srp_latn", "eng"), "svk_id": ("slk",), "tur_id": ("tur",), "ukr_id": ("ukr", "eng"),
    "ukr_passport": ("ukr", "eng"), "ury_passport": ("spa", "eng"), "usa_bordercrossing": ("eng",),
    "usa_passportcard": ("eng",), "usa_ssn82": ("eng",), "xpo_id": ("eng",),
}  # fmt: skip
# The script of each language's letters (ISO 15924 names); a language not listed writes in Latin letters.
LANGUAGE_SCRIPTS: dict[str, str] = {
    "rus": "Cyrillic", "ukr": "Cyrillic", "srp": "Cyrillic", "ell": "Greek", "ara": "Arabic", "fas": "Arabic",
    "chi_sim": "Han", "chi_tra": "Han", "jpn": "Japanese",
}  # fmt: skip


def document_type(document: str) -> str:
    """A document's type without its folder or MIDV-500's number: '39_rus_internalpassport' and
    'ds/39_rus_internalpassport' -> 'rus_internalpassport'; MIDV-2020's 'rus_internalpassport' as it is."""
    name = document.rsplit("/", 1)[-1]
    head, _, rest = name.partition("_")
    return rest if head.isascii() and head.isdigit() and rest else name


def document_languages(document: str) -> tuple[str, ...]:
    """The languages a document type prints its fields in (Tesseract's names), main first: DOCUMENT_LANGUAGES."""
    return DOCUMENT_LANGUAGES.get(document_type(document), ("eng",))


def document_scripts(document: str) -> tuple[str, ...]:
    """The scripts of a document type's fields (Latin, Cyrillic, Greek, ...), main first."""
    return tuple(dict.fromkeys(LANGUAGE_SCRIPTS.get(language, "Latin") for language in document_languages(document)))


def physical_template_size(document: str) -> tuple[int, int] | None:
    """Return a document's known physical format in tenths of a millimetre, None when not known for sure.

    `document` is a folder name such as ``01_alb_id`` (the number is optional).
    """
    return TEMPLATE_SIZES.get(document_type(document))


DOCUMENT_NAME = re.compile(r"^([0-9]{2})_[a-z0-9]+(?:_[a-z0-9]+)*$")  # ASCII digits ('\d' takes '١')


@dataclass(frozen=True)
class Condition:
    """A capturing condition, the first letter of a clip code (T: table, ...)."""

    code: str
    name: str


@dataclass(frozen=True)
class Device:
    """The phone that filmed a clip, the second letter of a clip code."""

    code: str
    name: str
    container: str  # the file extension its clips are stored with, e.g. ".MOV"
    rotated: bool  # stores frames landscape with a display rotation, as iPhones do


@dataclass(frozen=True)
class ClipKind:
    """A clip code resolved: condition and device."""

    code: str
    condition: Condition
    device: Device
    collection: str | None = None  # the part of a dataset it belongs to (MIDV-2020's clips, photo, ...)


@dataclass(frozen=True)
class Catalog:
    """One dataset of the MIDV family: its documents, clip codes and frame sampling."""

    name: str  # machine name, e.g. "midv500"
    title: str  # human name, e.g. "MIDV-500"
    documents: tuple[str, ...]
    conditions: tuple[Condition, ...]
    devices: tuple[Device, ...]
    frame_width: int  # of the annotated frames, portrait
    frame_height: int
    frames_per_clip: int = 30
    sample_fps: int = 10  # annotated frame k is at (k - 1) / sample_fps seconds
    archive_base: str = ""  # folder URL holding NN_name.zip and md5.txt

    @property
    def clip_codes(self) -> tuple[str, ...]:
        """Every clip code of a document, condition-major (TA, TS, KA, ...)."""
        return tuple(c.code + d.code for c in self.conditions for d in self.devices)

    @property
    def annotated_seconds(self) -> float:
        """How much of a clip the annotated frames span from its start, in seconds."""
        return self.frames_per_clip / self.sample_fps

    def clip_kind(self, code: str) -> ClipKind | None:
        """Resolve a clip code like 'TA'; None when it is not one of this catalog's."""
        if len(code) != 2:
            return None
        cond = next((c for c in self.conditions if c.code == code[0]), None)
        dev = next((d for d in self.devices if d.code == code[1]), None)
        if cond is None or dev is None:
            return None
        return ClipKind(code, cond, dev)

    def document(self, key: str | int) -> str:
        """Return a document's folder name from its number (1..50) or its name."""
        number = key if isinstance(key, int) else ascii_number(str(key))
        if number is not None:
            if 1 <= number <= len(self.documents):
                return self.documents[number - 1]
        elif key in self.documents:
            return str(key)
        raise DatasetError(f"{self.title} has no document {key!r}")

    def frame_id(self, clip_code: str, document: str, frame: int) -> str:
        """Name an annotated frame the way the dataset does: CCDD_KK (e.g. TA01_05)."""
        return f"{clip_code}{document_number(document):02d}_{frame:02d}"


def document_number(name: str) -> int:
    """Return the number a document folder name starts with ('01_alb_id' -> 1)."""
    match = DOCUMENT_NAME.match(name)
    if not match:
        raise DatasetError(f"{name!r} is not a document folder name like '01_alb_id'")
    return int(match.group(1))


_APPLE = Device("A", "Apple iPhone 5", ".MOV", rotated=True)
_SAMSUNG = Device("S", "Samsung Galaxy S3", ".mp4", rotated=False)

MIDV500 = Catalog(
    name="midv500",
    title="MIDV-500",
    documents=MIDV500_DOCUMENTS,
    conditions=(
        Condition("T", "table"),
        Condition("K", "keyboard"),
        Condition("H", "hand"),
        Condition("P", "partial"),
        Condition("C", "clutter"),
    ),
    devices=(_APPLE, _SAMSUNG),
    frame_width=1080,
    frame_height=1920,
    archive_base="ftp://smartengines.com/midv-500/dataset",
)

# MIDV-2019 adds two conditions filmed with two newer phones in 4K; same layout and
# sampling as MIDV-500 (Bulatov et al., 2019).
MIDV2019 = Catalog(
    name="midv2019",
    title="MIDV-2019",
    documents=MIDV500_DOCUMENTS,
    conditions=(Condition("D", "distorted"), Condition("L", "low light")),
    devices=(
        Device("X", "Apple iPhone XS Max", ".MOV", rotated=True),
        Device("G", "Samsung Galaxy S10", ".mp4", rotated=False),
    ),
    frame_width=2160,
    frame_height=3840,
    archive_base="ftp://smartengines.com/midv-500/extra/midv-2019/dataset",
)

# MIDV-2020 (Bulatov et al., 2020): 10 document types, 100 unique documents each, in five
# collections. Its clip codes are "<collection>/<number>" (see Midv2020Catalog.clip_kind).
MIDV2020_DOCUMENTS: tuple[str, ...] = (
    "alb_id",
    "aze_passport",
    "esp_id",
    "est_id",
    "fin_id",
    "grc_passport",
    "lva_passport",
    "rus_internalpassport",
    "srb_passport",
    "svk_id",
)
MIDV2020_COLLECTIONS: tuple[str, ...] = ("templates", "scan_upright", "scan_rotated", "photo", "clips")
MIDV2020_IMAGE_COLLECTIONS = MIDV2020_COLLECTIONS[:4]  # images/<TYPE>/NN.jpg + annotations/<TYPE>.json

_S10 = Device("G", "Samsung Galaxy S10", ".mp4", rotated=False)
_XR = Device("R", "Apple iPhone XR", ".MOV", rotated=True)
_SCANNER = Device("N", "scanner", ".jpg", rotated=False)
_NONE = Device("-", "none (the template)", ".jpg", rotated=False)
_2020_CONDITIONS = {
    c.code: c
    for c in (
        Condition("lowlight", "low light"),
        Condition("keyboard", "keyboard"),
        Condition("table", "table"),
        Condition("cloth", "cloth"),
        Condition("text", "text documents"),
        Condition("outdoor", "outdoor"),
        Condition("projective", "projective"),
        Condition("highlight", "highlight"),
        Condition("upright", "upright scan"),
        Condition("rotated", "rotated scan"),
        Condition("template", "template"),
    )
}
# (first, last, condition, device) by number, from the dataset's readme: clips and photos
# use two different tables.
MIDV2020_CLIP_TABLE: tuple[tuple[int, int, str, Device], ...] = (
    (0, 9, "lowlight", _S10), (10, 19, "lowlight", _XR),
    (20, 24, "keyboard", _S10), (25, 29, "keyboard", _XR),
    (30, 34, "table", _S10), (35, 39, "table", _XR),
    (40, 44, "cloth", _S10), (45, 49, "cloth", _XR),
    (50, 54, "text", _S10), (55, 59, "text", _XR),
    (60, 64, "outdoor", _S10), (65, 69, "outdoor", _XR),
    (70, 79, "projective", _S10), (80, 89, "projective", _XR),
    (90, 94, "highlight", _S10), (95, 99, "highlight", _XR),
)  # fmt: skip
MIDV2020_PHOTO_TABLE: tuple[tuple[int, int, str, Device], ...] = (
    (0, 9, "projective", _XR), (10, 19, "projective", _S10),
    (20, 24, "text", _XR), (25, 29, "text", _S10),
    (30, 34, "keyboard", _XR), (35, 39, "keyboard", _S10),
    (40, 44, "outdoor", _XR), (45, 49, "outdoor", _S10),
    (50, 54, "table", _XR), (55, 59, "table", _S10),
    (60, 64, "highlight", _XR), (65, 69, "highlight", _S10),
    (70, 79, "lowlight", _XR), (80, 89, "lowlight", _S10),
    (90, 94, "cloth", _XR), (95, 99, "cloth", _S10),
)  # fmt: skip


@dataclass(frozen=True)
class Midv2020Catalog(Catalog):
    """MIDV-2020: clip codes name a collection and a number or block of numbers.

    ``clips/NN`` is video clip NN of a type; ``photo/NN-MM`` a block of photos taken in one
    condition with one phone; ``scan_upright``, ``scan_rotated`` and ``templates`` the
    scans and templates of a type.
    """

    @property
    def clip_codes(self) -> tuple[str, ...]:
        clips = tuple(f"clips/{n:02d}" for n in range(100))
        photos = tuple(f"photo/{first:02d}-{last:02d}" for first, last, _, _ in MIDV2020_PHOTO_TABLE)
        return ("templates", "scan_upright", "scan_rotated", *photos, *clips)

    def clip_kind(self, code: str) -> ClipKind | None:
        collection, _, number = code.partition("/")
        if not number:
            fixed = {"templates": ("template", _NONE), "scan_upright": ("upright", _SCANNER)}
            fixed["scan_rotated"] = ("rotated", _SCANNER)
            if collection not in fixed:
                return None
            condition, device = fixed[collection]
            return ClipKind(code, _2020_CONDITIONS[condition], device, collection)
        table = {"clips": MIDV2020_CLIP_TABLE, "photo": MIDV2020_PHOTO_TABLE}.get(collection)
        first = number.split("-", 1)[0]
        n = ascii_number(first) if len(first) == 2 else None
        if table is None or n is None:
            return None
        for low, high, condition, device in table:
            if low <= n <= high:
                return ClipKind(code, _2020_CONDITIONS[condition], device, collection)
        return None

    def photo_block(self, number: int) -> str | None:
        """Return the code of the photo block holding photo `number` ('photo/20-24'), None if none."""
        for low, high, _, _ in MIDV2020_PHOTO_TABLE:
            if low <= number <= high:
                return f"photo/{low:02d}-{high:02d}"
        return None


MIDV2020 = Midv2020Catalog(
    name="midv2020",
    title="MIDV-2020",
    documents=MIDV2020_DOCUMENTS,
    conditions=tuple(_2020_CONDITIONS.values()),
    devices=(_S10, _XR, _SCANNER, _NONE),
    frame_width=2160,  # the clips, as the readme reports them; images vary (read from the files)
    frame_height=3840,
    frames_per_clip=0,  # annotated frames vary per clip: every 6th, as the annotation names them
    sample_fps=0,
    archive_base="ftp://smartengines.com/midv-500/extra/midv-2020/dataset",
)

CATALOGS: dict[str, Catalog] = {c.name: c for c in (MIDV500, MIDV2019, MIDV2020)}


def get_catalog(name: str) -> Catalog:
    """Return the catalog called `name` ('midv500', 'midv2019'); raise DatasetError if none."""
    key = name.lower().replace("-", "")
    if key not in CATALOGS:
        known = ", ".join(CATALOGS)
        raise DatasetError(f"unknown dataset {name!r} (known: {known})")
    return CATALOGS[key]
