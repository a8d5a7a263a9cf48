"""The commands of a run: run, plan, status, failures, retry."""

from __future__ import annotations

import json
import os
import sys

import click

from midvbatch.cli._echo import echo_findings, echo_json, plural, user_errors
from midvbatch.cli._params import PathType, SecondsType, alias, run_options, selection_options


@click.command("run")
@click.argument("dataset_dir", required=False, type=PathType(file_okay=False, path_type=str))
@run_options
@click.option(
    "--restart", is_flag=True, help="Discard the results of a different configuration in RUN_DIR and start over."
)
@click.option("--json", "as_json", is_flag=True, help="Print how the run ended as JSON.")
@selection_options
@user_errors
def run_command(dataset_dir, restart, as_json, config_file, **options):
    """Run every clip of DATASET_DIR through a pipeline; resumes when RUN_DIR exists.

    Exit status: 0 all clips done, 1 some clips dead (see the log), 130 interrupted
    (run the same command again to resume).
    """
    from midvbatch.config import build_config
    from midvbatch.engine.run import run

    config = build_config({"dataset": dataset_dir, **options}, config_file)
    _print_summary(run(config, restart=restart, **_run_display()), as_json)


def _run_display() -> dict:
    """The progress panel and log handler a run shows itself through, on standard error."""
    from midvbatch.ui import RunView, console_log_handler, stderr_console

    console = stderr_console()
    return {"progress": RunView(console), "log_handler": console_log_handler(console)}


def _print_summary(summary, as_json: bool, **extra) -> None:
    if as_json:
        echo_json({**extra, **summary.to_dict()})
    else:
        c = summary.counts
        click.echo(
            f"{summary.state}: {c['done']} done, {c['dead']} dead, {summary.left} left, "
            f"in {summary.seconds:.1f} s; results in {summary.run_dir}"
        )
    sys.exit(summary.exit_code)


@click.command("plan")
@click.argument("dataset_dir", required=False, type=PathType(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@selection_options
@user_errors
def plan_command(dataset_dir, as_json, config_file, **selection):
    """Print the queue a run would take: each clip's priority and estimated cost, in order."""
    from midvbatch.config import build_config
    from midvbatch.dataset import discover
    from midvbatch.engine.scheduler import plan

    config = build_config({"dataset": dataset_dir, "out": "-", **selection}, config_file)
    dataset = discover(config.dataset, config.catalog)
    planned = plan(dataset, config.resolved())
    echo_findings(dataset, [p.clip for p in planned])
    if as_json:
        echo_json([p.to_dict(i) for i, p in enumerate(planned, 1)])
        return
    from midvbatch.ui import echo_table

    echo_table(
        ["#", "CLIP", "PRIORITY", "COST MB", "FRAMES"],
        ([i, p.clip.id, p.priority, f"{p.cost:.2f}", p.frames] for i, p in enumerate(planned, 1)),
        right={"#", "PRIORITY", "COST MB", "FRAMES"},
    )
    click.echo(
        f"{plural(len(planned), 'clip')}, {sum(p.frames for p in planned)} annotated frames, "
        f"{sum(p.cost for p in planned):.1f} MB of video"
    )


@click.command("status")
@click.argument("run_dir", type=PathType(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", is_flag=True, help="Refresh every --interval seconds until the run ends.")
@click.option(
    "--interval",
    type=SecondsType(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes of --watch.",
)
@user_errors
def status_command(run_dir, as_json, watch, interval):
    """Print where the run in RUN_DIR stands; works during the run, from another shell, and after."""
    import time as time_module

    from midvbatch.results.status import run_status
    from midvbatch.ui import echo_table, summary_line, worker_rows

    while True:
        snap = run_status(run_dir)
        if as_json:
            echo_json(snap.to_dict())
        else:
            click.echo(summary_line(snap))
            if snap.workers:
                echo_table(
                    ["WORKER", "CLIP", "STAGE", "FOR"],
                    worker_rows(snap),
                    right={"FOR"},
                )
        if not watch or snap.state in ("finished", "interrupted"):
            return
        time_module.sleep(interval)


@click.command("failures")
@click.argument("run_dir", type=PathType(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@user_errors
def failures_command(run_dir, as_json, as_csv):
    """List every failed or dead clip of RUN_DIR: attempts, error class, message, signal or exit code, stage."""
    import csv

    from midvbatch.results.failures import failures

    records = failures(run_dir)
    if as_json:
        echo_json(records)
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else ["clip"])
        writer.writeheader()
        writer.writerows(records)
    else:
        for r in records:
            how = (
                f"signal {r['signal']}"
                if r["signal"]
                else f"exit code {r['exitcode']}"
                if r["exitcode"] is not None
                else ""
            )
            click.echo(
                f"{r['clip']:<20} {r['state']:<6} attempts {r['attempts']}  {r['error_class']}: {r['error']}"
                + (f" ({how})" if how else "")
                + (f" [stage {r['stage']}]" if r["stage"] else "")
            )
            if r["traceback"]:
                click.echo(f"    {r['traceback'].splitlines()[-1]}")
        dead = sum(r["state"] == "dead" for r in records)
        click.echo(f"{plural(len(records), 'clip')} failed: {dead} dead, {len(records) - dead} waiting to retry")


@click.command("retry")
@click.argument("run_dir", type=PathType(path_type=str))
@click.option("--clips", multiple=True, metavar="PATTERN", help="Dead clips whose id or code matches (repeatable).")
@click.option("--all-dead", is_flag=True, help="Every dead clip.")
@click.option("--json", "as_json", is_flag=True, help="Print the clips retried and how the run ended as JSON.")
@alias("--clip", "--clips", "clips", multiple=True, metavar="PATTERN")
@user_errors
def retry_command(run_dir, clips, all_dead, as_json):
    """Put dead clips of RUN_DIR back in the queue with fresh attempts, then run them.

    For after fixing a file or a processor; the run's saved configuration is used.
    """
    from midvbatch.engine.retry import retry

    def announce(config) -> None:
        where = (
            f" (imports {config.processor.partition(':')[0]} from {os.getcwd()} or PYTHONPATH)"
            if config.processor and ":" in config.processor
            else ""
        )
        options = f" with options {json.dumps(config.options)}" if config.options else ""
        click.echo(
            f"the run's config.toml says: processor {config.processor_spec()}{options}{where}, "
            f"dataset {config.dataset}",
            err=True,
        )

    revived, summary = retry(run_dir, clips, all_dead, announce=announce, **_run_display())
    if not as_json:
        click.echo(f"retrying {plural(len(revived), 'clip')}: {' '.join(revived)}")
    _print_summary(summary, as_json, retried=revived)


@click.command("import")
@click.argument("predictions", type=PathType(dir_okay=False, path_type=str))
@click.argument("dataset_dir", type=PathType(file_okay=False, path_type=str))
@click.option("--out", required=True, type=PathType(file_okay=False, path_type=str), help="The run folder to make.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "coco", "smartengines", "csv"]),
    help="The file's format (default: told from its content).",
)
@click.option(
    "--images",
    type=PathType(dir_okay=False, path_type=str),
    help="coco: the COCO file whose image ids the results use (what `export --format coco` wrote).",
)
@click.option("--strict", is_flag=True, help="Refuse a file with records for clips or frames the dataset lacks.")
@click.option("--workers", type=click.IntRange(0), help="Worker count (default one per core; 0: inline).")
@click.option("--restart", is_flag=True, help="Discard what RUN_DIR holds of another file and score this one.")
@click.option("--json", "as_json", is_flag=True, help="Print what was read and how the scoring ended as JSON.")
@user_errors
def import_command(predictions, dataset_dir, out, fmt, images, strict, workers, restart, as_json):
    """Score PREDICTIONS, a file of outputs made elsewhere, against DATASET_DIR into a run folder.

    Formats: midvbatch's JSON lines (export --format jsonl), COCO results, the Smart
    Engines per-image localization report, CSV (clip,frame,x1,y1,...,y4 and/or
    clip,frame,field,text[,confidence]). Frames without a record are scored as without
    prediction. report, export, status and compare then read RUN_DIR like any run.
    """
    from midvbatch.engine.run import run
    from midvbatch.results.imports import import_predictions

    def scored(config, restart):
        return run(config, restart=restart, **_run_display())

    summary = import_predictions(
        predictions, dataset_dir, out, format=fmt, images=images, strict=strict, restart=restart,
        workers=workers, run=scored, read=None if as_json else _say_read,
    )  # fmt: skip
    assert summary.run is not None
    _print_summary(summary.run, as_json, imported=summary.to_dict() | {"run": None})


def _say_read(summary) -> None:
    """What an import read, before its scoring starts: the count on standard output, the findings on standard error."""
    click.echo(f"read {plural(summary.records, 'prediction')} ({summary.format}) for {summary.frames} frames and clips")
    for finding, what in (
        (summary.unknown, "for clips or frames the dataset does not have, left out"),
        (summary.unusable, "with a quad that is not 4 finite points, scored as no prediction"),
        (summary.truth, "whose ground truth differs from the dataset's"),
    ):
        if finding.count:
            click.echo(f"{plural(finding.count, 'record')} {what}:", err=True)
            for line in finding.shown:
                click.echo(f"  {line}", err=True)
            if finding.count > len(finding.shown):
                click.echo(f"  ... and {finding.count - len(finding.shown)} more", err=True)
