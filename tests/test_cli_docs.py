"""docs/cli.md against the command line: each command's synopsis and options as --help prints them.

Every section `## midvbatch NAME` of docs/cli.md holds a block that starts with the line
`$ midvbatch NAME --help` followed by what that prints at a width of 80 columns (the
page's intro holds `$ midvbatch --help`); the run section holds the table of run options
made from OPTIONS. When a test here fails, the docs have drifted from the code:
`python tests/test_cli_docs.py` rewrites those blocks from --help and the table from
OPTIONS (then read the diff, and fix the prose around them too).
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from midvbatch.cli import cli
from midvbatch.config import OPTIONS, RunConfig, Settings
from midvbatch.config.options import options_table

CLI_MD = Path(__file__).parent.parent / "docs" / "cli.md"
WIDTH = 80
FENCE = "```"
TABLE = re.compile(r"(<!-- run options: generated from OPTIONS -->\n)(.*?)(\n<!-- end of run options -->)", re.S)


def help_text(*command: str) -> str:
    """What `midvbatch COMMAND --help` prints in a terminal WIDTH columns wide."""
    result = CliRunner(env={"COLUMNS": str(WIDTH)}).invoke(
        cli, [*command, "--help"], prog_name="midvbatch", terminal_width=WIDTH
    )
    assert result.exit_code == 0, result.output
    return result.output.rstrip("\n")


def _block(text: str, command: tuple[str, ...]) -> tuple[int, int] | None:
    """(start, end) offsets of the lines after `$ midvbatch COMMAND --help` up to its closing fence."""
    prompt = " ".join(["$ midvbatch", *command, "--help"])
    match = re.search(rf"^{FENCE}[a-z]*\n{re.escape(prompt)}\n", text, re.M)
    if match is None:
        return None
    end = text.index(f"\n{FENCE}", match.end() - 1)
    return match.end(), end


def _section(text: str, name: str) -> str:
    return text.split(f"## `midvbatch {name}`", 1)[1].split("\n## ", 1)[0]


COMMANDS = sorted(cli.commands)


def test_cli_docs_overview_matches_help():
    text = CLI_MD.read_text()
    where = _block(text.split("\n## ", 1)[0], ())
    assert where is not None, "docs/cli.md's intro has no `$ midvbatch --help` block"
    assert text[where[0] : where[1]] == help_text(), (
        "the intro's `midvbatch --help` drifted: run tests/test_cli_docs.py"
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_cli_docs_synopsis_and_options_match_help(name):
    text = CLI_MD.read_text()
    assert f"## `midvbatch {name}`" in text, f"docs/cli.md has no section for {name}"
    section = _section(text, name)
    where = _block(section, (name,))
    assert where is not None, f"the {name} section has no `$ midvbatch {name} --help` block"
    documented = section[where[0] : where[1]].splitlines()
    printed = help_text(name).splitlines()
    # the synopsis, then the options, each compared on its own for a clear message
    assert documented[0] == printed[0], f"{name}: the synopsis drifted: run tests/test_cli_docs.py"
    options = printed.index("Options:")
    assert "Options:" in documented, f"{name}: the documented help has no options"
    assert documented[documented.index("Options:") :] == printed[options:], (
        f"{name}: the options drifted: run tests/test_cli_docs.py"
    )
    assert documented == printed, f"{name}: the description drifted: run tests/test_cli_docs.py"


def test_cli_docs_help_is_fixed_by_the_width():
    """COLUMNS decides the wrapping, so the comparison does not depend on the terminal running it."""
    assert all(len(line) <= WIDTH for name in COMMANDS for line in help_text(name).splitlines())


def test_cli_docs_run_options_table_matches_options():
    found = TABLE.search(CLI_MD.read_text())
    assert found is not None, "docs/cli.md has no table of run options"
    assert found.group(2) == options_table(), "the table of run options drifted: run tests/test_cli_docs.py"


def _flags(command: str, besides: set[str]) -> dict[str, object]:
    return {p.name: p for p in cli.commands[command].params if p.name not in besides}


def test_cli_docs_options_are_the_run_flags_and_the_config_fields():
    """One row of OPTIONS per run flag, TOML key, RunConfig field and Settings field: nothing declared twice."""
    rows = [o for o in OPTIONS if o.where]
    run = _flags("run", {"dataset_dir", "restart", "as_json", "config_file"})
    assert list(run) == [o.name for o in rows]
    for option in rows:
        flag = run[option.name]
        assert (flag.opts, flag.help, flag.metavar) == ([option.cli_flag], option.describe(), option.metavar)
    plan = _flags("plan", {"dataset_dir", "as_json", "config_file"})
    assert list(plan) == [o.name for o in rows if o.where == "selection"]
    assert [f.name for f in fields(RunConfig)] == [o.name for o in OPTIONS]
    assert RunConfig() == RunConfig(**{o.name: o.default for o in OPTIONS})
    assert {f.name for f in fields(Settings)} == {o.name for o in OPTIONS} | {"notes", "warnings"}


def rewrite() -> None:
    """Replace every `$ midvbatch ... --help` block of docs/cli.md with what --help prints now."""
    text = CLI_MD.read_text()
    for command in [(), *((name,) for name in COMMANDS)]:
        where = _block(text, command)
        if where is None:
            print(f"no block for `midvbatch {' '.join(command)} --help`: add one by hand", file=sys.stderr)
            continue
        text = text[: where[0]] + help_text(*command) + text[where[1] :]
    text = TABLE.sub(lambda m: m.group(1) + options_table() + m.group(3), text)
    CLI_MD.write_text(text)


if __name__ == "__main__":
    rewrite()
