"""The one "rich on a terminal, plain lines otherwise" helper: consoles and tables."""

from __future__ import annotations

import io
import sys
from collections.abc import Collection, Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text


def stderr_console() -> Console:
    """Return a console on standard error: colours and live displays on a terminal, plain text otherwise."""
    return Console(stderr=True)


def echo_table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, right: Collection[str] = ()) -> None:
    """Print `rows` under the `columns` headings on standard output, two blanks between columns.

    On a terminal: a rich table that fits the window (long cells fold). Otherwise (a pipe,
    a file, a test): plain lines, no colour, no wrapping, no trailing blanks, so that
    ``grep`` and ``awk`` see one row per line. Columns named in `right` are right-aligned.
    """
    cells = [[str(value) for value in row] for row in rows]
    terminal = sys.stdout.isatty()
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 1),
        show_header=True,
        show_edge=False,
        header_style="bold" if terminal else "",
        highlight=False,
    )
    for name in columns:
        table.add_column(
            Text(name), justify="right" if name in right else "left", no_wrap=not terminal, overflow="fold"
        )
    for row in cells:
        table.add_row(*(Text(value) for value in row))
    if terminal:
        Console(file=sys.stdout, highlight=False).print(table)
        return
    widths = [max([len(name), *(len(row[i]) for row in cells if i < len(row))]) for i, name in enumerate(columns)]
    buffer = io.StringIO()
    Console(
        file=buffer,
        width=sum(widths) + 2 * len(widths) + 8,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        highlight=False,
    ).print(table)
    for line in buffer.getvalue().splitlines():
        click.echo(line.rstrip())
