"""The commands on a run's results: export, report."""

from __future__ import annotations

import click

from midvbatch.cli._echo import plural, user_errors
from midvbatch.cli._params import LazyChoice, PathType

_FORCE_HELP = (
    "Replace an existing --out that a report or export of this run did not write (never a file of the run's dataset)."
)


@click.command("export")
@click.argument("run_dir", type=PathType(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=LazyChoice("midvbatch.results.exports", "FORMATS"),
    default="jsonl",
    show_default=True,
    help="JSON lines, CSV (result fields become result.KEY columns), COCO, or the "
    "report.json of the reference evaluation.",
)
@click.option("--predictions", is_flag=True, help="coco: the predicted quads instead of the ground truth.")
@click.option("--subset", metavar="NAME", help="smartengines: write the runlist of this visibility subset instead.")
@click.option(
    "--fields",
    is_flag=True,
    help="jsonl, csv: one record per text field scored; coco: the text fields' quads too.",
)
@click.option(
    "--out", type=PathType(dir_okay=False, path_type=str), help="Write to this file instead of standard output."
)
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@user_errors
def export_command(run_dir, fmt, predictions, subset, fields, out, force):
    """Export the results of RUN_DIR: one record per frame, or per clip for clip processors."""
    from midvbatch.results.exports import export_results

    count = export_results(run_dir, fmt, out, predictions=predictions, subset=subset, fields=fields, force=force)
    if out:
        click.echo(f"wrote {plural(count, 'record')} to {out}")


@click.command("report")
@click.argument("run_dir", type=PathType(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=LazyChoice("midvbatch.report", "FORMATS"),
    default="md",
    show_default=True,
    help="Markdown (the terminal), a self-contained HTML page with plots, JSON or CSV.",
)
@click.option(
    "--out",
    type=PathType(dir_okay=False, path_type=str),
    help="Write to this file (html also writes its plots as PNG beside it, in NAME-plots/).",
)
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@user_errors
def report_command(run_dir, fmt, out, force):
    """Report the accuracy (MIDV-500 protocol) and speed of RUN_DIR, overall and per group.

    Works on a run that is still going or was interrupted (the report says so).
    """
    from midvbatch.report import write_report

    text = write_report(run_dir, fmt, out, force=force)
    if out:
        click.echo(f"wrote {fmt} report to {out}")
    else:
        click.echo(text, nl=not text.endswith("\n"))
