"""Read still pictures (JPEG, PNG, TIFF) with FFmpeg through PyAV, as frames of a clip.

Datasets that ship their annotated frames as pictures (MIDV-2020's clips as JPEGs every
6th frame, its scans, photos and templates) are read here, with the same errors as the
videos: a VideoError naming the file. A picture's size alone is read from its header
with Pillow, in a fifth of the time FFmpeg takes to open it (a MIDV-2020 run reads
thousands); FFmpeg reads what Pillow does not know.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Mapping
from pathlib import Path

import av
import numpy as np

from midvbatch.errors import VideoError
from midvbatch.fileio import check_regular_file
from midvbatch.video._open import ffmpeg_reason, open_container
from midvbatch.video.reader import AnnotatedFrame

MAX_IMAGE_BYTES = 512 << 20  # a scan at 600 dpi is some tens of MB; larger is not a picture of a document
MAX_IMAGE_PIXELS = 200_000_000  # decoded as BGR: 600 MB at most


def read_image(path: str | Path) -> np.ndarray:
    """Return the picture at `path` as an H x W x 3 uint8 BGR array.

    Raises VideoError naming the file when it is missing, not a regular file, too large,
    or not a picture FFmpeg can decode.
    """
    path = Path(path)
    size = check_regular_file(path, VideoError, "a picture")
    if size == 0:
        raise VideoError("empty file (0 bytes), not a picture", path=path)
    if size > MAX_IMAGE_BYTES:
        raise VideoError(f"{size:,} bytes: too large for a picture (limit {MAX_IMAGE_BYTES:,})", path=path)
    container, stream = _open_picture(path)
    try:
        if stream.codec_context.width * stream.codec_context.height > MAX_IMAGE_PIXELS:
            raise VideoError(
                f"{stream.codec_context.width} x {stream.codec_context.height} pixels: too large for a picture",
                path=path,
            )
        try:
            frame = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot decode the picture ({ffmpeg_reason(exc)})", path=path) from None
        if frame is None:
            raise VideoError("holds no picture", path=path)
        image: np.ndarray = frame.to_ndarray(format="bgr24", threads=1)  # (FFmpeg's default: a thread per core)
        return image
    finally:
        container.close()


def read_images(images: Mapping[int, str | Path]) -> Generator[AnnotatedFrame, None, None]:
    """Yield the pictures of `images` (frame number -> file) as annotated frames, in number order.

    A picture has no time of its own: `time` is 0 and `source_index` the frame number.
    """
    for number in sorted(images):
        yield AnnotatedFrame(number, 0.0, number, read_image(images[number]))


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (width, height) of the picture at `path` without decoding it; VideoError if unreadable."""
    path = Path(path)
    check_regular_file(path, VideoError, "a picture")
    size = _header_size(path)
    if size is not None:
        return size
    container, stream = _open_picture(path)
    with container:
        codec = stream.codec_context
        if not codec.width or not codec.height:
            raise VideoError("not a picture (no size)", path=path)
        return codec.width, codec.height


def _header_size(path: Path) -> tuple[int, int] | None:
    """The size a picture's header gives, read by Pillow (nothing decoded); None where Pillow cannot tell it
    (a format it does not know, a damaged header, a size past its limit): FFmpeg then says what is wrong."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Pillow warns of large pictures and odd metadata)
            with Image.open(path) as picture:
                width, height = picture.size
    except Exception:  # noqa: BLE001 - Pillow's plugins raise many kinds for a damaged file: FFmpeg names it
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height


def _open_picture(path: Path):
    """Open a picture with FFmpeg: (container, its image stream); VideoError naming the file if it has none."""
    container = open_container(path, "picture")
    if not container.streams.video:
        container.close()
        raise VideoError("not a picture (no image in it)", path=path)
    return container, container.streams.video[0]
