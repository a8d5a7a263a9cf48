"""The command line as a whole: help, version, and docs that cover every command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from midvbatch import __version__
from midvbatch.cli import cli

DOCS = Path(__file__).parent.parent / "docs"
COMMANDS = sorted(cli.commands)


def test_cli_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"midvbatch, version {__version__}"


def test_cli_console_script_runs():
    exe = Path(sys.executable).parent / "midvbatch"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_cli_every_command_has_help(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert cli.commands[name].help, f"{name} has no help text"
    assert "Usage: midvbatch" in result.output or "Usage: cli" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_cli_every_command_and_option_is_documented(name):
    text = (DOCS / "cli.md").read_text()
    assert re.search(rf"^## `midvbatch {name}\b", text, re.M), f"docs/cli.md has no section for {name}"
    section = text.split(f"## `midvbatch {name}", 1)[1].split("\n## ", 1)[0]
    for param in cli.commands[name].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert opt in section, f"docs/cli.md does not mention {opt} of {name}"


def test_cli_unknown_option_is_a_usage_error():
    result = CliRunner().invoke(cli, ["ls", "--bogus", "x"])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["status", "{d}"],
        ["report", "{d}"],
        ["export", "{d}"],
        ["failures", "{d}"],
        ["retry", "{d}", "--all-dead"],
        ["report", "{d}/absent"],
        ["status", "{d}/absent"],
        ["validate", "{d}/absent"],
        ["plan", "{d}/absent"],
    ],
)
def test_cli_commands_on_something_that_is_not_a_run_or_dataset_say_so_in_one_line(tmp_path, args):
    result = CliRunner().invoke(cli, [a.format(d=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def test_cli_unwritable_outputs_and_damaged_ledger_are_one_line(tmp_path, dataset):
    from conftest import midvbatch

    run_dir = tmp_path / "run"
    assert midvbatch("run", dataset, "--out", run_dir, "--clips", "TA01", "--pipeline", "ground-truth").returncode == 0
    for args in (
        ["report", run_dir, "--out", tmp_path / "no" / "x.md"],
        ["export", run_dir, "--out", tmp_path / "no" / "x.jsonl"],
    ):
        result = midvbatch(*args)
        assert result.returncode == 1 and result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = midvbatch("run", dataset, "--out", a_file / "run", "--clips", "TA01")
    assert result.returncode == 1 and "cannot create the run folder" in result.stderr
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "ledger.sqlite").write_bytes(b"not a database at all" * 100)
    for command in ("status", "report", "export", "failures"):
        result = midvbatch(command, damaged)
        assert result.returncode == 1 and "damaged ledger" in result.stderr, (command, result.stderr)
    toml = tmp_path / "bad.toml"
    for text, message in (
        ("docs = 5\n", "docs must be a list"),
        ("catalog = 5\n", "catalog must be text"),
        ('pipeline = "nonesuch"\n', "unknown pipeline 'nonesuch'"),
    ):
        toml.write_text(f'dataset = "{dataset}"\nout = "{tmp_path / "r2"}"\n' + text)
        result = midvbatch("run", "--config", toml)
        assert result.returncode == 1 and message in result.stderr, result.stderr
