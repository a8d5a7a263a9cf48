"""docs/cli.md against the command line: each command's synopsis and options as --help prints them.

Every section `## midvbatch NAME` of docs/cli.md holds a block that starts with the line
`$ midvbatch NAME --help` followed by what that prints at a width of 80 columns (the
page's intro holds `$ midvbatch --help`). When a test here fails, the docs have drifted
from the code: `python tests/test_cli_docs.py` rewrites those blocks from --help (then
read the diff, and fix the prose around them too).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from midvbatch.cli import cli

CLI_MD = Path(__file__).parent.parent / "docs" / "cli.md"
WIDTH = 80
FENCE = "```"


def help_text(*command: str) -> str:
    """What `midvbatch COMMAND --help` prints in a terminal WIDTH columns wide."""
    result = CliRunner(env={"COLUMNS": str(WIDTH)}).invoke(
        cli, [*command, "--help"], prog_name="midvbatch", terminal_width=WIDTH)
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
    assert text[where[0]:where[1]] == help_text(), "the intro's `midvbatch --help` drifted: run tests/test_cli_docs.py"


@pytest.mark.parametrize("name", COMMANDS)
def test_cli_docs_synopsis_and_options_match_help(name):
    text = CLI_MD.read_text()
    assert f"## `midvbatch {name}`" in text, f"docs/cli.md has no section for {name}"
    section = _section(text, name)
    where = _block(section, (name,))
    assert where is not None, f"the {name} section has no `$ midvbatch {name} --help` block"
    documented = section[where[0]:where[1]].splitlines()
    printed = help_text(name).splitlines()
    # the synopsis, then the options, each compared on its own for a clear message
    assert documented[0] == printed[0], f"{name}: the synopsis drifted: run tests/test_cli_docs.py"
    options = printed.index("Options:")
    assert "Options:" in documented, f"{name}: the documented help has no options"
    assert documented[documented.index("Options:"):] == printed[options:], (
        f"{name}: the options drifted: run tests/test_cli_docs.py")
    assert documented == printed, f"{name}: the description drifted: run tests/test_cli_docs.py"


def test_cli_docs_help_is_fixed_by_the_width():
    """COLUMNS decides the wrapping, so the comparison does not depend on the terminal running it."""
    assert all(len(line) <= WIDTH for name in COMMANDS for line in help_text(name).splitlines())


def rewrite() -> None:
    """Replace every `$ midvbatch ... --help` block of docs/cli.md with what --help prints now."""
    text = CLI_MD.read_text()
    for command in [(), *((name,) for name in COMMANDS)]:
        where = _block(text, command)
        if where is None:
            print(f"no block for `midvbatch {' '.join(command)} --help`: add one by hand", file=sys.stderr)
            continue
        text = text[:where[0]] + help_text(*command) + text[where[1]:]
    CLI_MD.write_text(text)


if __name__ == "__main__":
    rewrite()
