"""The synthesizer: MIDV-500 layout, videos the reader reads back, ground truth that fits."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from midvbatch.dataset.catalog import MIDV500
from midvbatch.dataset.groundtruth import MISSING_VALUE, load_frame_quad, load_template
from midvbatch.dataset.synth import SynthConfig, SynthReport, synthesize
from midvbatch.errors import SynthError
from midvbatch.video.probe import probe
from midvbatch.video.reader import read_annotated_frames, source_indices

REAL = Path(__file__).parent / "data" / "midv500-real"
COCO = REAL / "midv500_coco.json"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[SynthReport, list[str]]:
    """One document, its two table clips, with frames; and the progress lines."""
    lines: list[str] = []
    config = SynthConfig(docs=1, clips="T*", with_frames=True)
    report = synthesize(tmp_path_factory.mktemp("table"), config, progress=lines.append)
    return report, lines


@pytest.fixture(scope="module")
def every_clip(tmp_path_factory) -> SynthReport:
    """Document 18 (a passport with '*' values), all ten clips."""
    return synthesize(tmp_path_factory.mktemp("all"), SynthConfig(docs="18_*"))


def _videos(report: SynthReport) -> list[Path]:
    return sorted(report.root.glob("*/videos/*"))


def _truth(video: Path, k: int) -> np.ndarray:
    document = video.parent.parent
    path = document / "ground_truth" / video.stem[:2] / f"{video.stem}_{k:02d}.json"
    return np.array(load_frame_quad(path).to_list(), np.float64)


def _inside(quad: np.ndarray, width: int, height: int) -> bool:
    return bool((quad >= 0).all() and (quad[:, 0] <= width).all() and (quad[:, 1] <= height).all())


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_synth_layout(table):
    report, lines = table
    root, doc = report.root, "01_alb_id"
    assert (report.documents, report.clips, report.frames) == ([doc], 2, 60)
    assert lines == [f"{doc}/TA", f"{doc}/TS"]
    assert sorted(p.name for p in (root / doc / "videos").iterdir()) == ["TA01.MOV", "TS01.mp4"]
    assert (root / doc / "images" / f"{doc}.tif").is_file()
    template = load_template(root / doc / "ground_truth" / f"{doc}.json")
    assert "photo" in template.fields and not template.fields["photo"].has_text
    names = [n for n in template.fields if n.startswith("field")]
    assert names == [f"field{i:02d}" for i in range(1, len(names) + 1)] and len(names) >= 6
    assert all(template.fields[n].value for n in names)
    for code in ("TA", "TS"):
        files = sorted(p.name for p in (root / doc / "ground_truth" / code).iterdir())
        assert files == [f"{code}01_{k:02d}.json" for k in range(1, 31)]
        for k in (1, 30):
            quad = load_frame_quad(root / doc / "ground_truth" / code / f"{code}01_{k:02d}.json")
            assert all(isinstance(v, int) for corner in quad.points for v in corner)
    assert not list(root.rglob("*.part")), "no partial video left behind"


def test_synth_videos_are_stored_like_the_phones(table):
    report, _ = table
    apple = probe(report.root / "01_alb_id" / "videos" / "TA01.MOV")
    assert (apple.codec, apple.rotation, apple.width, apple.height) == ("h264", 270, 320, 180)
    assert (apple.display_width, apple.display_height) == (180, 320)
    samsung = probe(report.root / "01_alb_id" / "videos" / "TS01.mp4")
    assert (samsung.rotation, samsung.width, samsung.height) == (0, 180, 320)
    assert samsung.fps == pytest.approx(30.0) and samsung.duration == pytest.approx(3.2, abs=0.05)


def test_synth_annotated_frames_are_the_rendered_ones(table):
    """The reader yields the source frames the ground truth describes, upright."""
    report, _ = table
    picks = source_indices([i / 30 for i in range(96)], 10, 30)
    for video in _videos(report):
        frames = list(read_annotated_frames(video))
        assert [f.source_index for f in frames] == picks
        for f in frames[::7]:
            rendered = cv2.imread(
                str(video.parent.parent / "images" / video.stem[:2] / f"{video.stem}_{f.number:02d}.tif")
            )
            assert f.image.shape == rendered.shape == (320, 180, 3)
            assert np.abs(f.image.astype(int) - rendered).mean() < 8  # compression, noise


def test_synth_with_frames_writes_readable_tiffs(table):
    report, _ = table
    for code in ("TA", "TS"):
        tiffs = sorted((report.root / "01_alb_id" / "images" / code).glob("*.tif"))
        assert [p.name for p in tiffs] == [f"{code}01_{k:02d}.tif" for k in range(1, 31)]
        for path in tiffs:
            image = cv2.imread(str(path))
            assert image is not None and image.shape == (320, 180, 3)


def _match(frame: np.ndarray, template: np.ndarray, quad: np.ndarray) -> float:
    """Correlate the frame's content inside `quad`, warped flat, with the template."""
    h, w = template.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    to_frame = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    flat = cv2.warpPerspective(frame, to_frame, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a = cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY)[3:-3, 3:-3].astype(np.float64)
    b = cv2.cvtColor(template, cv2.COLOR_BGR2GRAY)[3:-3, 3:-3].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_synth_ground_truth_agrees_with_pixels(every_clip):
    """Warped back along its ground truth, each frame shows the template, to the pixel.

    Measured over seeds 0-5 and three documents: correlation 0.76-0.97 at the true quad
    (a hand over the edge costs most), at least 0.25 less for a quad shifted by a tenth
    of the document's width; the true quad beats 1-pixel shifts on average.
    """
    root = every_clip.root / "18_dza_passport"
    template = cv2.imread(str(root / "images" / "18_dza_passport.tif"))
    small = cv2.resize(template, (template.shape[1] // 5, template.shape[0] // 5), interpolation=cv2.INTER_AREA)
    for video in _videos(every_clip):
        checked, offsets = 0, np.zeros(5)
        for frame in read_annotated_frames(video):
            quad = _truth(video, frame.number)
            if not _inside(quad, 180, 320):
                continue
            checked += 1
            here = _match(frame.image, small, quad)
            assert here > 0.7, f"{video.name} frame {frame.number}: {here:.2f}"
            step = 0.1 * np.linalg.norm(quad[1] - quad[0])
            shifted = max(_match(frame.image, small, quad + d) for d in ([step, 0], [0, -step]))
            assert shifted < here - 0.15, f"{video.name} frame {frame.number}: {here:.2f} vs {shifted:.2f}"
            offsets += [here] + [_match(frame.image, small, quad + d) for d in ([1, 0], [-1, 0], [0, 1], [0, -1])]
        if video.name.startswith("P"):  # mostly partly out of view, by design
            continue
        assert checked == 30
        assert offsets.argmax() == 0, f"{video.name}: a 1-pixel shift fits better ({offsets / checked})"


def test_synth_partial_clips_leave_the_frame(every_clip):
    for video in _videos(every_clip):
        outside = sum(not _inside(_truth(video, k), 180, 320) for k in range(1, 31))
        if video.name.startswith("P"):
            assert outside >= 10, f"{video.name}: only {outside} of 30 frames leave the frame"
        else:
            assert outside <= 5, f"{video.name}: {outside} of 30 frames leave the frame"


def test_synth_templates_look_like_midv500(every_clip, table):
    passport = every_clip.root / "18_dza_passport"
    fields = load_template(passport / "ground_truth" / "18_dza_passport.json").fields
    raw = json.loads((passport / "ground_truth" / "18_dza_passport.json").read_text())
    assert any(spec.get("value") == MISSING_VALUE for spec in raw.values()), "document 18 has '*' values"
    assert "value" not in raw["photo"]
    image = cv2.imread(str(passport / "images" / "18_dza_passport.tif"))
    assert image.shape[:2] == (880, 1250)
    for field in fields.values():  # every quad lies on the template
        xs, ys = zip(*field.quad.points, strict=True)
        assert min(xs) >= 0 and max(xs) <= 1250 and min(ys) >= 0 and max(ys) <= 880
    card = cv2.imread(str(table[0].root / "01_alb_id" / "images" / "01_alb_id.tif"))
    assert card.shape[:2] == (540, 856)
    # Text is dark on light: the darkest pixels inside a value's quad are near black.
    field01 = load_template(table[0].root / "01_alb_id" / "ground_truth" / "01_alb_id.json").fields["field01"]
    (x0, y0), _, (x1, y1), _ = field01.quad.points
    patch = cv2.cvtColor(card[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    assert patch.min() < 60 and np.median(patch) > 150


def test_synth_value_quads_hold_their_text_tightly(every_clip, table):
    """Each value's quad holds all its ink with a few pixels of margin: a crop of it is an OCR input."""
    for root, doc in ((table[0].root, "01_alb_id"), (every_clip.root, "18_dza_passport")):
        gray = cv2.imread(str(root / doc / "images" / f"{doc}.tif"), cv2.IMREAD_GRAYSCALE)
        template = load_template(root / doc / "ground_truth" / f"{doc}.json")
        for field in template.text_fields():
            (x0, y0), (x1, _), (_, y1), (x, y) = field.quad.points
            assert (x, y) == (x0, y1), f"{field.name}: corners not in TL, TR, BR, BL order"
            around = gray[y0 - 8 : y1 + 8, x0 - 8 : x1 + 8]
            ink_ys, ink_xs = np.nonzero(around < 60)  # the text's dark core
            left, top = ink_xs.min() - 8, ink_ys.min() - 8
            right, bottom = x1 - x0 + 7 - ink_xs.max(), y1 - y0 + 7 - ink_ys.max()
            margins = [left, top, right, bottom]
            assert all(0 <= m <= 6 for m in margins), f"{field.name} {field.value!r}: {margins}"


def test_synth_is_deterministic(tmp_path):
    config = SynthConfig(docs=1, clips="TA,HS", with_frames=True)
    first = _digests(synthesize(tmp_path / "a", config).root)
    again = _digests(synthesize(tmp_path / "b", config).root)
    assert first == again
    other = _digests(synthesize(tmp_path / "c", dataclasses.replace(config, seed=1)).root)
    assert other.keys() == first.keys()
    for name in (
        "01_alb_id/videos/TA01.MOV",
        "01_alb_id/videos/HS01.mp4",
        "01_alb_id/ground_truth/TA/TA01_01.json",
    ):
        assert other[name] != first[name]


def test_synth_follows_real_trajectories(tmp_path):
    """With real quads, our annotated frame k has the real frame k's quad, scaled."""
    coco = json.loads(COCO.read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    real = {names[a["image_id"]]: np.reshape(a["segmentation"][0], (4, 2)) for a in coco["annotations"]}
    config = SynthConfig(docs=2, clips="CA", width=540, height=960, trajectories=str(COCO))
    report = synthesize(tmp_path, config)
    # Document 1 follows 01_alb_id's clip CA, document 2 the file's other one (50_xpo_id).
    for document, source in (
        ("01_alb_id", "01_alb_id/images/CA/CA01"),
        ("02_aut_drvlic_new", "50_xpo_id/images/CA/CA50"),
    ):
        video = report.root / document / "videos" / f"CA{document[:2]}.MOV"
        for k in range(1, 31):
            expected = real[f"{source}_{k:02d}.tif"] * 0.5
            assert np.abs(_truth(video, k) - expected).max() <= 1, f"{document} frame {k}"


def test_synth_other_frame_rates_keep_frames_and_truth_in_step(tmp_path):
    report = synthesize(tmp_path, SynthConfig(docs=1, clips="KS", fps=25, seconds=3.0))
    video = _videos(report)[0]
    picks = source_indices([i / 25 for i in range(75)], 10, 30)
    assert [f.source_index for f in read_annotated_frames(video)] == picks


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 0}, "width must be an even number of pixels from 16 to 7680"),
        ({"width": 181}, "width must be an even number of pixels from 16 to 7680"),
        ({"height": -320}, "height must be an even number of pixels from 16 to 7680"),
        ({"width": 14}, "width must be an even number of pixels from 16 to 7680"),
        ({"height": 100_000}, "height must be an even number of pixels from 16 to 7680"),
        ({"width": 7680, "height": 7680}, "more than 8K video's 33,177,600"),
        ({"seconds": 2.9}, "seconds must be at least 3"),
        ({"seconds": float("nan")}, "seconds must be at least 3"),
        ({"seconds": float("inf")}, "and at most 600"),
        ({"seconds": 1e9}, "and at most 600"),
        ({"fps": 0}, "fps must be a positive number"),
        ({"fps": float("inf")}, "fps must be a positive number up to 240"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"seed": 2**64}, "seed must be a whole number from 0 to 9223372036854775807"),
        ({"docs": 0}, "docs must be 1..50"),
        ({"docs": "51"}, "docs must be 1..50"),
        ({"docs": "99_*"}, "docs pattern '99_*' matches no MIDV-500 document"),
        ({"clips": "X*"}, "clips pattern 'X*' matches no MIDV-500 clip code"),
        ({"catalog": "midv9"}, "unknown dataset 'midv9'"),
        ({"docs": "9" * 5000}, "docs must be 1..50"),
        ({"trajectories": "missing.json"}, "missing.json: trajectories file: no such file"),
        ({"trajectories": "broken.json"}, "broken.json: trajectories file: bad JSON"),
        ({"trajectories": "list.json"}, "list.json: not a COCO file of document quads"),
        (
            {"trajectories": "coco.json", "clips": "TA"},
            "coco.json: trajectories file has no quads for clip TA",
        ),
    ],
)
def test_synth_rejects_bad_options(tmp_path, changes, message):
    (tmp_path / "broken.json").write_text('{"images": [')
    (tmp_path / "list.json").write_text("[]")
    image = {"id": 1, "file_name": "01_alb_id/images/CA/CA01_01.tif", "width": 1080, "height": 1920}
    annotation = {"image_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
    (tmp_path / "coco.json").write_text(json.dumps({"images": [image], "annotations": [annotation]}))
    if "trajectories" in changes:
        changes = {**changes, "trajectories": str(tmp_path / changes["trajectories"])}
    with pytest.raises(SynthError) as caught:
        synthesize(tmp_path / "out", SynthConfig(**{"docs": 1, **changes}))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists(), "options are checked before anything is written"


def test_synth_refuses_a_file_as_output(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SynthError, match="not a folder"):
        synthesize(tmp_path / "taken", SynthConfig(docs=1, clips="TS"))
    with pytest.raises(SynthError, match="cannot write"):
        synthesize(tmp_path / "taken" / "sub", SynthConfig(docs=1, clips="TS"))


def test_synth_selects_documents_by_pattern(tmp_path):
    config = SynthConfig(docs="0[2-3]_*,50_*", clips="cs", seconds=3.0)
    report = synthesize(tmp_path, config)
    assert report.documents == ["02_aut_drvlic_new", "03_aut_id_old", "50_xpo_id"]
    assert sorted(p.name for p in report.root.glob("*/videos/*")) == [
        "CS02.mp4",
        "CS03.mp4",
        "CS50.mp4",
    ]
    assert MIDV500.clip_kind("CS").device.container == ".mp4"
