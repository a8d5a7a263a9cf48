"""Template fields carried into frames through the homography of the document's corners."""

from __future__ import annotations

import numpy as np
import pytest

from midvbatch.dataset.fields import fields_in_frame
from midvbatch.dataset.groundtruth import Quad, parse_template

TEMPLATE = parse_template(
    {
        "field01": {"value": "ERIKSSON", "quad": [[100, 50], [300, 50], [300, 80], [100, 80]]},
        "field02": {"value": "*", "quad": [[100, 100], [200, 100], [200, 130], [100, 130]]},
        "photo": {"quad": [[20, 40], [90, 40], [90, 140], [20, 140]]},
    },
    "t.json",
)


def test_fields_follow_a_scaled_and_shifted_document():
    document = Quad(((10, 20), (10 + 428, 20), (10 + 428, 20 + 270), (10, 20 + 270)))  # half of 856 x 540
    fields = fields_in_frame(TEMPLATE, (856, 540), document)
    assert set(fields) == {"field01", "field02", "photo"}
    assert np.allclose(fields["field01"].quad.points, [(60, 45), (160, 45), (160, 60), (60, 60)])
    assert fields["field01"].value == "ERIKSSON" and fields["field01"].has_text
    assert fields["field02"].value is None and fields["field02"].has_text  # '*': empty on this document
    assert fields["photo"].value is None and not fields["photo"].has_text


def test_fields_follow_a_perspective_document_and_a_rotated_one():
    # the document seen in perspective: the field's corners map as the document's do
    document = Quad(((200, 100), (900, 150), (950, 600), (150, 550)))
    fields = fields_in_frame(TEMPLATE, (856, 540), document)
    whole = parse_template({"all": {"quad": [[0, 0], [856, 0], [856, 540], [0, 540]]}}, "w.json")
    assert np.allclose(fields_in_frame(whole, (856, 540), document)["all"].quad.points, document.points)
    # a quarter turn: the document's first corner is at the top right of the frame
    turned = Quad(((540, 0), (540, 856), (0, 856), (0, 0)))
    quad = fields_in_frame(TEMPLATE, (856, 540), turned)["field01"].quad
    assert np.allclose(quad.points, [(490, 100), (490, 300), (460, 300), (460, 100)])
    from midvbatch.geometry import area, clip_convex

    inside = clip_convex(list(fields["field01"].quad.points), list(document.points))
    assert area(inside) == pytest.approx(fields["field01"].quad.area())  # within the document


def test_no_fields_for_a_degenerate_document():
    flat = Quad(((0, 0), (10, 0), (20, 0), (0, 10)))  # three corners on one line
    assert fields_in_frame(TEMPLATE, (856, 540), flat) == {}


@pytest.mark.parametrize("size", [(856, 540), (1712, 1080)])
def test_template_size_is_the_pictures(size):
    scale = size[0] / 856
    template = parse_template(
        {
            "f": {
                "value": "x",
                "quad": [
                    [428 * scale, 270 * scale],
                    [856 * scale, 270 * scale],
                    [856 * scale, 540 * scale],
                    [428 * scale, 540 * scale],
                ],
            }
        },
        "s.json",
    )
    document = Quad(((0, 0), (100, 0), (100, 60), (0, 60)))
    assert np.allclose(
        fields_in_frame(template, size, document)["f"].quad.points, [(50, 30), (100, 30), (100, 60), (50, 60)]
    )


def test_field_crop_rectifies_a_field_seen_in_perspective():
    import cv2

    from midvbatch.dataset.fields import field_crop

    flat = np.zeros((40, 160, 3), np.uint8)
    flat[:, :80] = (255, 255, 255)  # left half white, right half black
    seen = Quad(((300, 100), (620, 140), (610, 220), (290, 170)))
    h = cv2.getPerspectiveTransform(np.float32([[0, 0], [160, 0], [160, 40], [0, 40]]), np.float32(seen.points))
    frame = cv2.warpPerspective(flat, h, (800, 400))
    crop = field_crop(frame, seen, height=40)
    assert crop is not None and crop.shape[0] == 40 and 150 < crop.shape[1] < 190  # about 4:1 as the field
    half = crop.shape[1] // 2
    assert crop[5:-5, 5 : half - 10].mean() > 200 and crop[5:-5, half + 10 : -5].mean() < 50
    # a quarter turn of the corners turns the crop: the field's order decides what is up
    assert field_crop(frame, Quad((seen.points[3], seen.points[0], seen.points[1], seen.points[2])), 40).shape[0] == 40
    assert field_crop(frame, Quad(((0, 0), (10, 0), (20, 0), (30, 0))), 40) is None
    with pytest.raises(ValueError):
        field_crop(frame, seen, height=0)
