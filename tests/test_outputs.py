"""report and export replace only what they wrote: a user's file is refused unless --force, a dataset's always."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from conftest import midvbatch

from midvbatch.cli import cli
from midvbatch.dataset.synth import SynthConfig, synthesize


class _Done:
    def __init__(self, result):
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def _cli(*args) -> _Done:
    """The command in this process (CliRunner: no interpreter to start for each of these many small calls)."""
    return _Done(CliRunner().invoke(cli, [str(a) for a in args]))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A one-clip dataset and a finished ground-truth run of it."""
    root = tmp_path_factory.mktemp("outputs")
    synthesize(root / "data", SynthConfig(docs=1, clips="TA", seed=3))
    done = midvbatch("run", root / "data", "--out", root / "run", "--pipeline", "ground-truth", "--workers", "0")
    assert done.returncode == 0, done.stderr
    return root


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "command",
    [
        ["export", "--format", "jsonl"],
        ["export", "--format", "csv", "--fields"],
        ["export", "--format", "smartengines"],
        ["report", "--format", "md"],
        ["report", "--format", "html"],
    ],
)
def test_outputs_a_users_file_is_refused_unless_force(finished, tmp_path, command):
    mine = tmp_path / "notes.txt"
    mine.write_text("a user's notes\n")
    refused = _cli(command[0], finished / "run", "--out", mine, *command[1:])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"Error: {mine}: already exists and was not written by a report or export "
        "of this run: give --force to replace it, or another --out"
    )
    assert mine.read_text() == "a user's notes\n"
    forced = _cli(command[0], finished / "run", "--out", mine, *command[1:], "--force")
    assert forced.returncode == 0, forced.stderr
    assert mine.read_text() != "a user's notes\n"
    again = _cli(command[0], finished / "run", "--out", mine, *command[1:])  # its own output: replaced unasked
    assert again.returncode == 0, again.stderr
    mine.write_text(mine.read_text() + "edited by hand\n")  # changed since: no longer provably ours
    edited = _cli(command[0], finished / "run", "--out", mine, *command[1:])
    assert edited.returncode == 1 and "already exists" in edited.stderr
    assert mine.read_text().endswith("edited by hand\n")


@pytest.mark.parametrize(
    "command, target",
    [
        (["export"], "01_alb_id/ground_truth/TA/TA01_05.json"),
        (["report", "--format", "html"], "01_alb_id/videos/TA01.MOV"),
        (["export"], "01_alb_id/new-file.jsonl"),
    ],
)
def test_outputs_never_land_in_the_runs_dataset_even_with_force(finished, command, target):
    path = finished / "data" / target
    before = _digest(path) if path.exists() else None
    for extra in ([], ["--force"]):
        refused = _cli(command[0], finished / "run", "--out", path, *command[1:], *extra)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert (
            f"{path}: is inside the run's dataset ({finished / 'data'}): midvbatch never writes there, "
            "even with --force" in refused.stderr
        )
    assert (_digest(path) if path.exists() else None) == before


def test_outputs_the_html_reports_plots_are_claimed_too(finished, tmp_path):
    plots = tmp_path / "page-plots"
    plots.mkdir()
    (plots / "iou_distribution.png").write_bytes(b"a user's picture")
    refused = _cli("report", finished / "run", "--format", "html", "--out", tmp_path / "page.html")
    assert refused.returncode == 1 and f"{plots / 'iou_distribution.png'}: already exists" in refused.stderr
    assert (plots / "iou_distribution.png").read_bytes() == b"a user's picture"
    assert not (tmp_path / "page.html").exists()
    (plots / "iou_distribution.png").unlink()
    for _ in range(2):  # the second time, every file is one it wrote
        done = _cli("report", finished / "run", "--format", "html", "--out", tmp_path / "page.html")
        assert done.returncode == 0, done.stderr
    recorded = json.loads((finished / "run" / "outputs.json").read_text())["outputs"]
    assert str(tmp_path / "page.html") in recorded and str(plots / "iou_distribution.png") in recorded
