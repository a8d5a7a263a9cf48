"""Probing and reading annotated frames with FFmpeg (PyAV), on real H.264 files."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import image_index, write_video

from midvbatch.cli import cli
from midvbatch.errors import VideoError
from midvbatch.video import probe, read_annotated_frames
from midvbatch.video.reader import sample_slot, source_indices


def ffmpeg_fps_filter(path, fps=10):
    """Indices of the frames FFmpeg's own fps filter outputs, read off the pictures."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    graph = av.filter.Graph()
    src = graph.add_buffer(template=stream)
    fps_node = graph.add("fps", f"fps={fps}")
    sink = graph.add("buffersink")
    src.link_to(fps_node)
    fps_node.link_to(sink)
    graph.configure()
    out = []

    def drain():
        while True:
            try:
                frame = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            out.append(image_index(frame.to_ndarray(format="bgr24")))

    for frame in container.decode(stream):
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    container.close()
    return out


@pytest.mark.parametrize("rate", [30, Fraction(30000, 1001), 25, 24, 60])
def test_video_reader_picks_the_frames_ffmpeg_fps_filter_outputs(tmp_path, rate):
    path = write_video(tmp_path / "v.mp4", frames=200, rate=rate)
    frames = list(read_annotated_frames(path))
    assert [f.number for f in frames] == list(range(1, 31))
    picked = [image_index(f.image) for f in frames]
    assert picked == [f.source_index for f in frames]
    assert picked == ffmpeg_fps_filter(path)[:30]
    times = [i / float(rate) for i in range(200)]
    assert source_indices(times, 10, 30) == picked
    for f in frames:
        assert abs(f.time - f.source_index / float(rate)) < 1e-3


def test_video_sample_slot_rounds_half_away_from_zero():
    assert [sample_slot(t, 10) for t in (0.0, 0.0333, 0.05, 0.0999, 0.15, -0.05)] == [0, 0, 1, 1, 2, -1]


@pytest.mark.parametrize("rotation", [0, 90, 180, -90])
def test_video_rotation_is_applied_so_frames_come_out_as_displayed(tmp_path, rotation):
    def marker(i, w, h):
        img = np.zeros((h, w, 3), np.uint8)
        img[:16, :16] = 255  # top-left corner of the displayed picture
        return img

    path = write_video(tmp_path / "r.mov", frames=40, width=64, height=96, rotation=rotation, draw=marker)
    info = probe(path)
    assert info.rotation == rotation % 360
    assert (info.display_width, info.display_height) == (64, 96)
    if rotation % 180:
        assert (info.width, info.height) == (96, 64)
    image = next(read_annotated_frames(path, count=1)).image
    assert image.shape == (96, 64, 3)
    assert image[:16, :16].mean() > 200
    assert image[-16:, -16:].mean() < 20


def test_video_rotation_matches_ffmpeg_transpose(tmp_path):
    """A display rotation of 90 (counter-clockwise) is FFmpeg's transpose=cclock."""
    path = write_video(
        tmp_path / "r.mov",
        frames=5,
        width=64,
        height=96,
        rotation=90,
        draw=lambda i, w, h: np.random.default_rng(1).integers(0, 255, (h, w, 3), np.uint8),
    )
    container = av.open(str(path))
    stream = container.streams.video[0]
    graph = av.filter.Graph()
    src = graph.add_buffer(template=stream)
    node = graph.add("transpose", "cclock")
    sink = graph.add("buffersink")
    src.link_to(node)
    node.link_to(sink)
    graph.configure()
    graph.push(next(container.decode(stream)))
    expected = graph.pull().to_ndarray(format="bgr24")
    container.close()
    got = next(read_annotated_frames(path, count=1)).image
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 1.0


def test_video_probe_reports_codec_rate_duration_and_count(tmp_path):
    path = write_video(tmp_path / "v.mp4", frames=45, rate=30, width=32, height=48)
    info = probe(path)
    assert info.codec == "h264"
    assert (info.width, info.height, info.rotation) == (32, 48, 0)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(1.5, abs=0.05)
    assert info.frame_count == 45
    assert info.size_bytes == path.stat().st_size


def test_video_reader_stops_decoding_after_the_last_needed_frame(tmp_path):
    path = write_video(tmp_path / "v.mp4", frames=250, rate=30)
    frames = list(read_annotated_frames(path))
    assert len(frames) == 30
    assert frames[-1].source_index < 100


@pytest.mark.parametrize("frames", [44, 45, 46, 88])
def test_video_short_clip_yields_what_ffmpeg_would_then_raises(tmp_path, frames):
    path = write_video(tmp_path / "short.mp4", frames=frames, rate=30)
    expected = ffmpeg_fps_filter(path)
    assert len(expected) < 30
    got = []
    with pytest.raises(VideoError, match=rf"short\.mp4: video ends after {len(expected)} of 30 annotated frames"):
        for frame in read_annotated_frames(path):
            got.append(image_index(frame.image))
    assert got == expected
    assert source_indices([i / 30 for i in range(frames)], 10, 30) == expected


def _truncated(tmp_path):
    path = write_video(
        tmp_path / "full.mp4",
        frames=120,
        rate=30,
        width=128,
        height=128,
        draw=lambda i, w, h: np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8),
    )
    data = path.read_bytes()
    out = tmp_path / "truncated.mp4"
    out.write_bytes(data[: len(data) // 3])
    return out


def _garbled(tmp_path):
    path = write_video(
        tmp_path / "full.mp4",
        frames=120,
        rate=30,
        width=128,
        height=128,
        draw=lambda i, w, h: np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8),
    )
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 10, len(data), 400):
        data[pos] = 0xFF
    out = tmp_path / "garbled.mp4"
    out.write_bytes(bytes(data))
    return out


def _written(name, data):
    def make(tmp):
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


BAD_FILES = {
    "zero-byte": (_written("empty.MOV", b""), "empty file"),
    "not a video": (_written("notes.mp4", b'{"quad": []}'), "not a readable video"),
    "missing": (lambda tmp: tmp / "absent.mp4", "no such file"),
    "folder": (lambda tmp: (tmp / "dir.mp4").mkdir() or tmp / "dir.mp4", "a folder, not a video file"),
    "FIFO": (lambda tmp: os.mkfifo(tmp / "TA01.mp4") or tmp / "TA01.mp4", r"a FIFO \(named pipe\), not a video file"),
    "/dev/zero": (
        lambda tmp: (tmp / "TA01.mp4").symlink_to("/dev/zero") or tmp / "TA01.mp4",
        "a character device, not a video file",
    ),
    "broken link": (
        lambda tmp: (tmp / "TA01.mp4").symlink_to(tmp / "gone.mp4") or tmp / "TA01.mp4",
        "a broken symbolic link",
    ),
    "PNG": (
        _written("TA01.mp4", cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))[1].tobytes()),
        r"not a video \(a PNG image\)",
    ),
    "JPEG": (
        _written("TA01.MOV", cv2.imencode(".jpg", np.zeros((10, 10, 3), np.uint8))[1].tobytes()),
        r"not a video \(a JPEG image\)",
    ),
    "TIFF": (
        _written("TA01.mp4", cv2.imencode(".tif", np.zeros((10, 10, 3), np.uint8))[1].tobytes()),
        r"not a video \(a TIFF image\)",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_video_bad_file_raises_typed_error_naming_it(tmp_path, case):
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(VideoError, match=message) as info:
        probe(path)
    assert str(path) in str(info.value)
    with pytest.raises(VideoError, match=message):
        list(read_annotated_frames(path))


@pytest.mark.parametrize("make", [_truncated, _garbled])
@pytest.mark.timeout(60)
def test_video_damaged_file_never_hangs_and_fails_typed(tmp_path, make):
    path = make(tmp_path)
    try:
        frames = list(read_annotated_frames(path))
    except VideoError as exc:
        assert str(path) in str(exc)
    else:  # FFmpeg conceals damage in some streams: then every frame must still be there
        assert len(frames) == 30


def test_video_probe_cli_prints_one_line_on_bad_file(tmp_path):
    bad = tmp_path / "broken.MOV"
    bad.write_bytes(b"\x00" * 1000)
    result = CliRunner().invoke(cli, ["probe", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert str(bad) in result.output and "Traceback" not in result.output


def test_video_probe_cli_json(tmp_path):
    path = write_video(tmp_path / "v.mp4", frames=40, width=32, height=48, rotation=90)
    result = CliRunner().invoke(cli, ["probe", str(path), "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["codec"] == "h264" and data["rotation"] == 90
    assert (data["display_width"], data["display_height"]) == (32, 48)


@pytest.mark.parametrize("rotation", [0, -90, 90, 180])
def test_video_writer_stores_the_display_rotation_the_reader_undoes(tmp_path, rotation):
    from midvbatch.video.writer import VideoWriter

    image = np.zeros((96, 64, 3), np.uint8)
    image[:16, :16] = 255  # top-left corner of the displayed picture
    path = tmp_path / "w.mov"
    with VideoWriter(path, 30, 64, 96, display_rotation=rotation) as writer:
        for _ in range(40):
            writer.write(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.mov"]  # no .part left behind
    info = probe(path)
    assert (info.codec, info.rotation, info.display_width, info.display_height) == ("h264", rotation % 360, 64, 96)
    frame = next(read_annotated_frames(path, count=1)).image
    assert frame.shape == (96, 64, 3)
    assert frame[:16, :16].mean() > 200 and frame[-16:, -16:].mean() < 20


def test_video_writer_failure_leaves_no_file(tmp_path):
    from midvbatch.video.writer import VideoWriter

    path = tmp_path / "w.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, 30, 64, 96) as writer:
        writer.write(np.zeros((96, 64, 3), np.uint8))
        raise RuntimeError("renderer failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="display rotation"):
        VideoWriter(path, 30, 64, 96, display_rotation=45)
    assert list(tmp_path.iterdir()) == []


def test_read_frames_at_yields_the_numbered_frames_in_decode_order(tmp_path):
    from midvbatch.video.reader import read_frames_at

    video = write_video(tmp_path / "c.mp4", frames=40)
    got = list(read_frames_at(video, [13, 1, 7, 37]))
    assert [f.number for f in got] == [1, 7, 13, 37]
    assert [f.source_index for f in got] == [0, 6, 12, 36]
    assert [image_index(f.image) for f in got] == [0, 6, 12, 36]
    with pytest.raises(VideoError, match="video ends after 40 frames; frame 43 is annotated") as info:
        list(read_frames_at(video, [1, 43]))
    assert str(video) in str(info.value)


def test_read_images_reads_pictures_and_names_a_bad_one(tmp_path):
    from midvbatch.video.image import image_size, read_images

    cv2.imwrite(str(tmp_path / "05.jpg"), np.full((30, 40, 3), 200, np.uint8))
    (tmp_path / "06.jpg").write_bytes(b"not a picture at all")
    frames = read_images({5: tmp_path / "05.jpg"})
    frame = next(frames)
    assert frame.number == 5 and frame.image.shape == (30, 40, 3) and abs(float(frame.image.mean()) - 200) < 3
    assert image_size(tmp_path / "05.jpg") == (40, 30)
    with pytest.raises(VideoError) as info:
        list(read_images({6: tmp_path / "06.jpg"}))
    assert "06.jpg" in str(info.value)
    with pytest.raises(VideoError, match="empty file"):
        (tmp_path / "07.jpg").write_bytes(b"")
        list(read_images({7: tmp_path / "07.jpg"}))
