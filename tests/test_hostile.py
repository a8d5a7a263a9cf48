"""Hostile option values: every command, every option, never a traceback.

Each (command, parameter, value) case runs the command in-process with CliRunner and
minimal valid other arguments (a one-clip synthetic dataset, a finished one-clip run),
so that the value under test is what decides the outcome. It must end with exit status
0, 1, 2 or 130, without a traceback; an error is one line ("Error: ..."), the last one
of standard error (click's usage block before it is allowed for exit status 2).
Parameters are read from click, so a new option is covered without touching this file.
"""

from __future__ import annotations

import os
import shutil

import click
import pytest
from click.testing import CliRunner

from midvbatch.cli import cli
from midvbatch.dataset.synth import SynthConfig, synthesize

# One value per way in: "-inf" went with "inf" (every parser takes both as a non-finite float, or neither as a
# number; a dash-led word is "-1" and "-").
VALUES = [
    "-1",
    "0",
    "1",
    "1.5",
    "-0.5",
    "99999999999999999999999",
    "9" * 5000,
    "9" * 5000 + "GB",
    "1e309",
    "nan",
    "inf",
    "",
    " ",
    "abc",
    "'",
    "-",
    "200%",
    "nan%",
    "auto",
    "none",
    "x=NaN",
    "clip=T*:99999999999999999999999",
]
PATHS = ["<fifo>", "<folder>", "<file>", "<missing>"]  # for path parameters, on top of VALUES

# Minimal valid arguments per command; {d} is the dataset, {r} the finished run, {p} its export (JSON lines),
# {t} the test's folder.
BASE = {
    "ls": (["{d}"], {}),
    "probe": (["{v}"], {}),
    "synth": (["{t}/synth"], {"--docs": "1", "--clips": "TA", "--seconds": "3", "--size": "32x48"}),  # (small: fast)
    "frames": (["{d}"], {}),
    "run": (["{d}"], {"--out": "{t}/run", "--pipeline": "ground-truth", "--workers": "0", "--no-check": None}),
    "plan": (["{d}"], {}),
    "status": (["{r}"], {}),
    "failures": (["{r}"], {}),
    "retry": (["{t}/copy"], {"--all-dead": None}),
    "fetch": (["{t}/dest"], {"--from-archives": "{t}/empty", "--mirror": "http://127.0.0.1:9/"}),
    "validate": (["{d}"], {}),
    "export": (["{r}"], {"--out": "{t}/export.jsonl"}),
    "report": (["{r}"], {}),
    "import": (["{p}", "{d}"], {"--out": "{t}/imported", "--workers": "0"}),
    "compare": (["{r}", "{r}"], {"--resamples": "20"}),
    "processors": ([], {}),
    "formats": ([], {}),
}


def _is_path(param: click.Parameter) -> bool:
    return isinstance(param.type, click.Path) or param.name in ("out", "dest")


def _cases():
    for name in sorted(cli.commands):
        for param in cli.commands[name].params:
            if param.name == "help":
                continue
            if isinstance(param, click.Option) and param.is_flag:
                yield pytest.param(name, param.name, None, id=f"{name}-{param.name}-flag")
                continue
            values = VALUES + (PATHS if _is_path(param) else [])
            for i, value in enumerate(values):
                label = value if len(value) <= 12 else f"{value[:6]}..{len(value)}"
                yield pytest.param(name, param.name, value, id=f"{name}-{param.name}-{i}:{label!r}")


def test_hostile_every_command_has_base_arguments():
    assert set(BASE) == set(cli.commands), "give the new command minimal valid arguments in BASE"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A one-clip dataset (180x320) and a finished ground-truth run over it."""
    root = tmp_path_factory.mktemp("hostile")
    synthesize(root / "data", SynthConfig(docs=1, clips="TA", seed=1))
    run_dir = root / "run"
    result = CliRunner().invoke(
        cli, ["run", str(root / "data"), "--out", str(run_dir), "--pipeline", "ground-truth", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    video = next((root / "data").rglob("videos/*.*"))
    exported = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(root / "predictions.jsonl")])
    assert exported.exit_code == 0, exported.output
    return {"d": str(root / "data"), "r": str(run_dir), "v": str(video), "p": str(root / "predictions.jsonl")}


def _argv(command: str, param: click.Parameter, value: str | None, places: dict[str, str]) -> list[str]:
    positional, options = BASE[command]
    positional = [p.format(**places) for p in positional]
    options = {k: (v.format(**places) if v is not None else None) for k, v in options.items()}
    if isinstance(param, click.Argument):
        index = [p for p in cli.commands[command].params if isinstance(p, click.Argument)].index(param)
        positional = positional + [""] * (index + 1 - len(positional))
        positional[index] = value
    else:
        options[param.opts[0]] = value
    argv = [command]
    for key, v in options.items():
        argv += [key] if v is None else [key, v]
    return argv + ["--"] + positional if positional else argv


def _path_value(value: str, tmp_path) -> str:
    special = {
        "<fifo>": tmp_path / "fifo",
        "<folder>": tmp_path / "folder",
        "<file>": tmp_path / "file.txt",
        "<missing>": tmp_path / "missing" / "x",
    }
    if value not in special:
        return value
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("not what was asked for\n")
    return str(special[value])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("command, name, value", list(_cases()))
def test_hostile_value_gives_one_line_never_a_traceback(world, tmp_path, monkeypatch, command, name, value):
    monkeypatch.chdir(tmp_path)  # a relative path given as a value lands here
    (tmp_path / "empty").mkdir()
    if command == "retry":
        shutil.copytree(world["r"], tmp_path / "copy")
    param = next(p for p in cli.commands[command].params if p.name == name)
    if value is not None:
        value = _path_value(value, tmp_path)
    argv = _argv(command, param, value, {**world, "t": str(tmp_path)})
    result = CliRunner().invoke(cli, argv)
    shown = f"{argv[:12]}\n{result.output[-2000:]}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{shown}"
    )
    assert "Traceback" not in result.output, shown
    assert result.exit_code in (0, 1, 2, 130), shown
    if result.exit_code:
        lines = result.stderr.rstrip("\n").splitlines()
        errors = [i for i, line in enumerate(lines) if line.startswith("Error")]
        assert len(errors) <= 1, shown
        if errors:
            assert errors[0] == len(lines) - 1, f"the error is not one line:\n{shown}"
        if result.exit_code == 2:
            assert errors, f"a usage error without an 'Error:' line:\n{shown}"
        if result.exit_code == 1:
            assert lines or result.stdout.strip(), f"exit status 1 without a word:\n{shown}"
