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
    help="JSON lines, CSV (result fields become result.KEY columns), COCO, the "
    "report.json of the reference evaluation, or Parquet (the table of docs/api.md; needs --out).",
)
@click.option("--predictions", is_flag=True, help="coco: the predicted quads instead of the ground truth.")
@click.option("--subset", metavar="NAME", help="smartengines: write the runlist of this visibility subset instead.")
@click.option(
    "--fields",
    is_flag=True,
    help="jsonl, csv, parquet: one record per text field scored; coco: the text fields' quads too.",
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
@click.option(
    "--stop-thresholds",
    metavar="RULE=V,...;...",
    help="The Video stream section's sweep of stopping-rule thresholds, e.g. "
    "'expected_distance=0.1,0.05;stable=2,3;fixed=5,10' (rules not named keep the default sweep).",
)
@user_errors
def report_command(run_dir, fmt, out, force, stop_thresholds):
    """Report the accuracy (MIDV-500 protocol) and speed of RUN_DIR, overall and per group.

    Works on a run that is still going or was interrupted (the report says so).
    """
    from midvbatch.report import write_report

    text = write_report(run_dir, fmt, out, force=force, stop_thresholds=stop_thresholds)
    if out:
        click.echo(f"wrote {fmt} report to {out}")
    else:
        click.echo(text, nl=not text.endswith("\n"))


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=PathType(file_okay=False, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json", "csv", "html"]),
    default="md",
    show_default=True,
    help="Markdown (the terminal), JSON (every figure, `ci`: [low, high]), CSV (a row per figure) or HTML (with "
    "the changed clips' frames drawn).",
)
@click.option(
    "--out", type=PathType(dir_okay=False, path_type=str), help="Write to this file instead of standard output."
)
@click.option(
    "--unit",
    type=click.Choice(["clip", "document"]),
    default="clip",
    show_default=True,
    help="What the bootstrap resamples: frames of one clip are not independent.",
)
@click.option("--resamples", type=click.IntRange(1, 1_000_000), default=2000, show_default=True, metavar="N",
              help="Bootstrap resamples.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0), default=None, metavar="N",
              help="The bootstrap's seed (default: a fixed one, so the same runs give the same intervals).")  # fmt: skip
@click.option(
    "--fail-if-worse",
    "rule",
    metavar="FIGURE[:MARGIN]",
    help="Exit 1 when a run is worse than the first on FIGURE (accuracy, mean_ngld, ...) by more than MARGIN, "
    "its whole interval beyond it.",
)
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@user_errors
def compare_command(run_dirs, fmt, out, unit, resamples, seed, rule, force):
    """Compare runs of one dataset: each of RUN_DIRS after the first against the first.

    For every headline figure, overall and per document, condition, device, collection
    and field type: A, B, B - A with its 95% interval from a paired bootstrap over clips,
    and for the accuracies the exact McNemar test of the frames that changed. Exit
    status 1 with --fail-if-worse when a run is worse by more than the margin.
    """
    from midvbatch.report.comparison import compare_output

    result = compare_output(run_dirs, fmt, out, unit=unit, resamples=resamples, seed=seed, rule=rule, force=force)
    if out:
        click.echo(f"wrote {fmt} comparison to {out}")
    else:
        click.echo(result.text, nl=not result.text.endswith("\n"))
    for line in result.failures:
        click.echo(line, err=True)
    if result.failures:
        raise SystemExit(1)
