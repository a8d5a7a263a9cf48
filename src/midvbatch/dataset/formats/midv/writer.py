"""MIDV-500 and MIDV-2019 written: per document its template, per clip its video, ground truth and frames.

Each clip is rendered frame by frame (a document template moving over a surface) and
encoded to H.264 as the phones stored it: Apple clips as QuickTime ``.MOV`` with
landscape frames and a display rotation, Samsung clips as upright ``.mp4``. The ground
truth of annotated frame k is the quad of exactly the source frame the reader picks for
it (:func:`midvbatch.video.reader.source_indices`), so frames and ground truth agree to
the pixel, up to rounding and compression. Paths are :mod:`.layout`'s, as the reader's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from midvbatch.dataset.catalog import Catalog, ClipKind, document_number
from midvbatch.dataset.formats.midv.layout import (
    GROUND_TRUTH,
    IMAGES,
    STRUCTURE_DIRS,
    frame_file,
    template_files,
    truth_file,
    video_file,
)
from midvbatch.dataset.groundtruth import Quad, write_frame_quad, write_template
from midvbatch.dataset.synth import render
from midvbatch.dataset.synth.options import Selection, SynthConfig, Written
from midvbatch.dataset.synth.output import imwrite, writing
from midvbatch.dataset.synth.trajectories import RealClip
from midvbatch.errors import SynthError
from midvbatch.video.reader import read_annotated_frames, source_indices
from midvbatch.video.writer import VideoWriter


class MidvWriter:
    """Writes a dataset of one catalog (MIDV-500 or MIDV-2019) in the MIDV-500 layout."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def _timing(self, selection: Selection, config: SynthConfig) -> tuple[list[float], list[int]]:
        """Return the source frame times (seconds) and the source frame of each annotated frame;
        SynthError when the clip is too short for the catalog's annotated frames."""
        n = max(1, round(selection.seconds * selection.rate))
        times = [float(Fraction(i) / selection.rate) for i in range(n)]
        picks = source_indices(times, self.catalog.sample_fps, self.catalog.frames_per_clip)
        if len(picks) < self.catalog.frames_per_clip:
            raise SynthError(
                f"{selection.seconds:g} s at {config.fps:g} fps is too short for "
                f"{self.catalog.frames_per_clip} annotated frames"
            )
        return times, picks

    def outputs(self, selection: Selection, config: SynthConfig) -> Iterator[Path]:
        """Yield every file :meth:`write` writes, relative to its output folder."""
        picks = self._timing(selection, config)[1]
        for document in selection.documents:
            number, folder = document_number(document), Path(document)
            yield from template_files(folder, document)
            for code in selection.codes:
                kind = self.catalog.clip_kind(code)
                assert kind is not None  # the selection's codes are the catalog's
                yield video_file(folder, kind, number)
                for k in range(1, len(picks) + 1):
                    frame_id = self.catalog.frame_id(code, document, k)
                    yield truth_file(folder, code, frame_id)
                    if config.with_frames:
                        yield frame_file(folder, code, frame_id)

    def write(
        self, root: Path, selection: Selection, config: SynthConfig, progress: Callable[[str], None] | None
    ) -> Written:
        """Write, per document NAME and clip code CC: ``NAME/videos/CCDD.ext``,
        ``NAME/ground_truth/NAME.json``, ``NAME/images/NAME.tif``,
        ``NAME/ground_truth/CC/CCDD_KK.json`` and, with `config.with_frames`,
        ``NAME/images/CC/CCDD_KK.tif``; `progress` gets 'NAME/CC' after each clip."""
        times, picks = self._timing(selection, config)
        trajectories = selection.trajectories
        clips = 0
        for index, document in enumerate(selection.documents):
            number = document_number(document)
            with writing(root):
                template = _write_template(root / document, document, number, config.seed)
            for code in selection.codes:
                # Real trajectories: alternate between the file's documents that have this clip.
                real = trajectories[code][index % len(trajectories[code])] if trajectories else None
                kind = self.catalog.clip_kind(code)
                assert kind is not None  # the selection's codes are the catalog's
                clip = _Clip(self.catalog, document, number, kind, np.asarray(times), picks, selection.rate)
                with writing(root):
                    clip.write(root / document, template, config, real)
                clips += 1
                if progress is not None:
                    progress(f"{document}/{code}")
        return Written(clips, clips * len(picks))


def _write_template(folder: Path, document: str, number: int, seed: int) -> np.ndarray:
    """Write the template image and JSON of a document; return the image."""
    for sub in STRUCTURE_DIRS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    image, fields = render.render_template(document, number, np.random.default_rng([seed, number, 0, 0]))
    image_file, json_file = template_files(folder, document)
    imwrite(image_file, image)
    write_template(json_file, fields)
    return image


@dataclass
class _Clip:
    """One clip to write: where it sits in the dataset and its frame timing."""

    catalog: Catalog
    document: str
    number: int
    kind: ClipKind
    times: np.ndarray  # source frame times, seconds
    picks: list[int]  # source frame index of each annotated frame
    rate: Fraction

    def trajectory(
        self,
        config: SynthConfig,
        template: np.ndarray,
        real: RealClip | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Return the document's quad in every source frame, (n, 4, 2) display pixels."""
        w, h = config.width, config.height
        if real is None:
            aspect = template.shape[0] / template.shape[1]
            return render.random_trajectory(self.kind.condition.code, aspect, w, h, self.times, rng)
        # Real annotated frame k becomes our annotated frame k: place it at the time of
        # the source frame the reader picks for k, so its ground truth is the real quad.
        ks = [k for k in sorted(real.frames) if 1 <= k <= len(self.picks)]
        knot_times = np.array([self.times[self.picks[k - 1]] for k in ks])
        knots = np.stack([real.frames[k] for k in ks]) * [w, h]
        return render.interpolate_quads(knot_times, knots, self.times)

    def write(self, folder: Path, template: np.ndarray, config: SynthConfig, real: RealClip | None) -> Path:
        """Write the clip's video, ground truth and (optionally) frames; return the video path."""
        code, w, h = self.kind.code, config.width, config.height
        code_index = self.catalog.clip_codes.index(code)
        rng = np.random.default_rng([config.seed, self.number, 1, code_index])
        quads = self.trajectory(config, template, real, rng)

        (folder / GROUND_TRUTH / code).mkdir(parents=True, exist_ok=True)
        wanted: dict[int, list[str]] = {}
        for k, i in enumerate(self.picks, start=1):
            frame_id = self.catalog.frame_id(code, self.document, k)
            corners = tuple((int(round(x)), int(round(y))) for x, y in quads[i])
            write_frame_quad(truth_file(folder, code, frame_id), Quad(corners))
            wanted.setdefault(i, []).append(frame_id)
        if config.with_frames:
            (folder / IMAGES / code).mkdir(parents=True, exist_ok=True)

        scene = render.make_scene(self.kind.condition.code, template, quads, self.times, w, h, rng)
        video = video_file(folder, self.kind, self.number)
        # Apple clips: landscape pictures with a -90 degree display rotation, as iPhones store them
        rotation = -90 if self.kind.device.rotated else 0
        with VideoWriter(video, self.rate, w, h, display_rotation=rotation) as writer:
            for i in range(len(self.times)):
                writer.write(render.render_frame(scene, quads[i], i, w, h))
        if config.with_frames:
            # As in MIDV-500, the extracted frames are decoded from the video, not the
            # pristine renders: a decoded annotated frame and its TIFF are the same picture.
            for frame in read_annotated_frames(video, count=len(self.picks), fps=self.catalog.sample_fps):
                for frame_id in wanted.get(frame.source_index, ()):
                    imwrite(frame_file(folder, code, frame_id), frame.image)
        return video
