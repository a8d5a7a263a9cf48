"""Ground-truth parsing: real MIDV-500 samples and every malformed case."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from midvbatch.cli import cli
from midvbatch.dataset import Quad, load_frame_quad, load_template
from midvbatch.dataset.groundtruth import write_frame_quad, write_template
from midvbatch.errors import GroundTruthError


def test_groundtruth_parses_every_real_sample(real_data):
    files = sorted(real_data.glob("*/ground_truth/*/*.json"))
    assert len(files) == 90
    for path in files:
        quad = load_frame_quad(path)
        assert len(quad.points) == 4
        assert all(isinstance(v, int) for p in quad.points for v in p)


def test_groundtruth_known_real_values(real_data):
    assert load_frame_quad(real_data / "43_tur_id/ground_truth/CA/CA43_01.json").to_list() == [
        [139, 678],
        [940, 689],
        [966, 1180],
        [88, 1167],
    ]
    assert load_frame_quad(real_data / "01_alb_id/ground_truth/HA/HA01_01.json").to_list() == [
        [150, 549],
        [1070, 766],
        [959, 1344],
        [14, 1152],
    ]


def test_groundtruth_keeps_corners_outside_the_frame_as_given(real_data):
    quads = [load_frame_quad(p) for p in sorted(real_data.glob("*/ground_truth/*/*.json"))]
    outside = [q for q in quads if any(x < 0 or x > 1080 or y < 0 or y > 1920 for x, y in q.points)]
    assert outside, "the real samples include frames with corners out of view"
    coco = json.loads((real_data / "midv500_coco.json").read_text())
    xs = [v for a in coco["annotations"] for v in a["segmentation"][0][0::2]]
    assert min(xs) < -500 and max(xs) > 1900


def test_groundtruth_quad_area_and_flat_form():
    q = Quad.from_list([0, 0, 10, 0, 10, 5, 0, 5])
    assert q.area() == 50
    assert q.to_list() == [[0, 0], [10, 0], [10, 5], [0, 5]]
    assert q.scaled(0.5).to_list() == [[0, 0], [5, 0], [5, 2.5], [0, 2.5]]


MALFORMED = {
    "bad JSON": ('{"quad": [[1, 2], [3, 4]', "bad JSON"),
    "empty": ("", "empty file"),
    "not an object": ("[1, 2, 3]", "expected a JSON object"),
    "missing quad": ('{"corners": [[0, 0], [1, 0], [1, 1], [0, 1]]}', 'missing "quad"'),
    "three corners": ('{"quad": [[0, 0], [1, 0], [1, 1]]}', "4 \\[x, y\\] corners, got 3 items"),
    "corner of three": ('{"quad": [[0, 0, 0], [1, 0], [1, 1], [0, 1]]}', "corner 1 must be \\[x, y\\]"),
    "string coordinate": ('{"quad": [[0, 0], [1, "a"], [1, 1], [0, 1]]}', "corner 2 has a non-numeric coordinate 'a'"),
    "null coordinate": ('{"quad": [[0, 0], [1, 0], [null, 1], [0, 1]]}', "corner 3 has a non-numeric coordinate None"),
    "NaN": ('{"quad": [[0, 0], [1, 0], [1, 1], [NaN, 1]]}', "corner 4 has a coordinate nan"),
    "Infinity": ('{"quad": [[0, 0], [1, 0], [1, Infinity], [0, 1]]}', "corner 3 has a coordinate inf"),
    "boolean": ('{"quad": [[true, 0], [1, 0], [1, 1], [0, 1]]}', "non-numeric coordinate True"),
    "not UTF-8": (b"\xff\xfe\x00", "bad JSON"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_groundtruth_malformed_file_raises_typed_error_naming_it(tmp_path, case):
    content, message = MALFORMED[case]
    path = tmp_path / "TA01_01.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(GroundTruthError, match=message) as info:
        load_frame_quad(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["bad JSON", "missing quad", "NaN"])
def test_groundtruth_malformed_file_is_one_cli_line(tmp_path, case):
    doc = tmp_path / "01_alb_id" / "ground_truth" / "TA"
    doc.mkdir(parents=True)
    for k in range(1, 31):
        write_frame_quad(doc / f"TA01_{k:02d}.json", Quad.from_list([0, 0, 10, 0, 10, 10, 0, 10]))
    bad = doc / "TA01_07.json"
    bad.write_text(MALFORMED[case][0])
    result = CliRunner().invoke(cli, ["ls", str(tmp_path), "--frames", "--json"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {bad}: ")
    assert "Traceback" not in result.output


def test_groundtruth_template_fields(tmp_path):
    path = tmp_path / "18_dza_passport.json"
    path.write_text(
        json.dumps(
            {
                "field01": {"value": "DOE", "quad": [[1, 2], [30, 2], [30, 9], [1, 9]]},
                "field02": {"value": "*", "quad": [[1, 12], [30, 12], [30, 19], [1, 19]]},
                "photo": {"quad": [[40, 2], [60, 2], [60, 30], [40, 30]]},
                "signature": {"quad": [[40, 32], [60, 32], [60, 40], [40, 40]]},
            }
        )
    )
    t = load_template(path)
    assert list(t.fields) == ["field01", "field02", "photo", "signature"]
    assert t.fields["field01"].value == "DOE"
    assert t.fields["field02"].value is None and t.fields["field02"].has_text
    assert t.fields["photo"].value is None and not t.fields["photo"].has_text
    assert [f.name for f in t.text_fields()] == ["field01"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"field01": {"value": "A"}}', "field 'field01' is missing \"quad\""),
        ('{"field01": "A"}', "field 'field01' must be an object"),
        ('{"field01": {"value": 3, "quad": [[0,0],[1,0],[1,1],[0,1]]}}', "value must be text"),
        ('{"photo": {"quad": [[0,0],[1,0]]}}', "field 'photo' \"quad\" must be a list of 4"),
    ],
)
def test_groundtruth_malformed_template_raises(tmp_path, content, message):
    path = tmp_path / "01_alb_id.json"
    path.write_text(content)
    with pytest.raises(GroundTruthError, match=message):
        load_template(path)


def test_groundtruth_write_then_read_round_trip(tmp_path):
    q = Quad.from_list([[-5, 3], [200, -1], [210, 400], [1, 390]])
    write_frame_quad(tmp_path / "f.json", q)
    assert load_frame_quad(tmp_path / "f.json") == q
    write_template(tmp_path / "t.json", {"field01": (q, "X"), "photo": (q, None)})
    t = load_template(tmp_path / "t.json")
    assert t.fields["field01"].value == "X" and t.fields["photo"].quad == q


def test_groundtruth_writes_replace_the_file_atomically(tmp_path):
    # Written in place, a file linked elsewhere would overwrite the link's target, and a
    # crash would leave half a file; renamed into place, the link itself is replaced.
    mine = tmp_path / "mine.json"
    mine.write_text("keep")
    q = Quad.from_list([0, 0, 10, 0, 10, 10, 0, 10])
    for name, write in [
        ("TA01_01.json", lambda p: write_frame_quad(p, q)),
        ("01_alb_id.json", lambda p: write_template(p, {"photo": (q, None)})),
    ]:
        path = tmp_path / name
        path.symlink_to(mine)
        write(path)
        assert mine.read_text() == "keep" and not path.is_symlink()
    assert load_frame_quad(tmp_path / "TA01_01.json") == q
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_alb_id.json", "TA01_01.json", "mine.json"]
