"""Synthesize datasets in the exact MIDV-500 (and MIDV-2019, MIDV-2020) layout, for tests, benchmarks and demos.

This module is the driver: it checks the options (:mod:`.options`), refuses to overwrite a
dataset (:mod:`.output`) and hands the rest to the catalog's dataset format, which writes
its own layout (``DatasetFormat.writer()``): MIDV-500 and MIDV-2019 clips encoded as their
phones stored them, ground truth that agrees with the frames to the pixel
(:mod:`midvbatch.dataset.formats.midv.writer`); MIDV-2020's five collections annotated in
VGG Image Annotator 2.0 files (:mod:`midvbatch.dataset.formats.midv2020.writer`). The
pictures are :mod:`.render`'s, the real trajectories :mod:`.trajectories`'.

A seed decides every byte: same options and seed, same files (on the same FFmpeg/x264
build); x264 runs with a fixed thread count so the machine's core count does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from midvbatch.dataset.catalog import Catalog
from midvbatch.dataset.formats import get_format
from midvbatch.dataset.formats.base import FormatWriter
from midvbatch.dataset.synth.options import (
    DEFAULT_CLIPS,
    DEFAULT_SECONDS,
    MAX_FPS,
    MAX_IMAGES,
    MAX_PIXELS,
    MAX_SECONDS,
    MAX_SEED,
    MAX_SIDE,
    MIN_SIDE,
    Selection,
    SynthConfig,
    check,
    parse_frame_size,
)
from midvbatch.dataset.synth.output import output_root, refuse_existing
from midvbatch.errors import SynthError

parse_size = parse_frame_size  # the name cli.py imports

__all__ = [
    "DEFAULT_CLIPS",
    "DEFAULT_SECONDS",
    "MAX_FPS",
    "MAX_IMAGES",
    "MAX_PIXELS",
    "MAX_SECONDS",
    "MAX_SEED",
    "MAX_SIDE",
    "MIN_SIDE",
    "Selection",
    "SynthConfig",
    "SynthReport",
    "parse_frame_size",
    "parse_size",
    "synthesize",
]


@dataclass
class SynthReport:
    """What :func:`synthesize` wrote."""

    root: Path
    documents: list[str]  # MIDV-2020: document types
    clips: int  # MIDV-2020: clip codes written per type, summed (a template or scan collection, a photo block, a clip)
    frames: int  # annotated frames with ground truth (MIDV-2020: annotated images and clip frames)
    seconds: float  # wall time


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),
    progress: Callable[[str], None] | None = None,
    *,
    overwrite: bool = False,
) -> SynthReport:
    """Write a synthetic dataset under `out_dir` in the catalog's layout.

    Writes, per document NAME and clip code CC: ``NAME/videos/CCDD.ext``,
    ``NAME/ground_truth/NAME.json``, ``NAME/images/NAME.tif``,
    ``NAME/ground_truth/CC/CCDD_KK.json`` for the annotated frames and, with
    `config.with_frames`, ``NAME/images/CC/CCDD_KK.tif`` (decoded from the written video,
    as MIDV-500's were extracted with FFmpeg). Every file is written under a temporary
    name and renamed into place. If any of these files exists already, SynthError is
    raised before anything is written, unless `overwrite` (the CLI's ``--force``).
    `progress` is called with 'NAME/CC' after each clip. Raises SynthError for options
    that cannot be honoured (checked before anything is written) or an unwritable folder.

    MIDV-2020 writes, per document type TYPE, document number NN and annotated frame
    number FFFFFF: ``COLLECTION/images/TYPE/NN.jpg`` and ``COLLECTION/annotations/TYPE.json``
    for the templates, scan_upright, scan_rotated and photo collections;
    ``clips_video/video/TYPE/NN.mp4`` (upright H.264), ``clips/images/TYPE/NN/FFFFFF.jpg``
    (its frames 1, 7, 13, ..., decoded from the written video) and
    ``clips/annotations/TYPE/NN.json``. The annotations are VIA 2.0 project files as
    MIDV-2020's: each image keyed by file name and byte size, with a "face" rect and the
    "doc_quad" polygon (corners in document order); a template's whole image is its
    document, and its text fields are rects with their values. `progress` is called with
    'TYPE/CODE' after each clip code ('alb_id/photo/00-09').
    """
    started = time.perf_counter()
    catalog, selection = check(config)
    writer = _writer(catalog)
    root = output_root(out_dir)
    if not overwrite:
        refuse_existing(root, writer.outputs(selection, config))
    written = writer.write(root, selection, config, progress)
    return SynthReport(root, list(selection.documents), written.clips, written.frames, time.perf_counter() - started)


def _writer(catalog: Catalog) -> FormatWriter:
    """The writer of the catalog's dataset format (each catalog has one of the same name)."""
    writer = get_format(catalog.name).writer()
    if writer is None:
        raise SynthError(f"the {catalog.title} format cannot be written")
    return writer
