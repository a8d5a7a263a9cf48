"""The ``midvbatch`` command line: parse options, call one library function, print.

Every error a user can cause is a MidvBatchError; it is printed as one line
("Error: PATH: problem") with exit status 1, never as a traceback.

One grammar for every command: the folder it works on is its positional argument; one
option name per idea (``--catalog`` names the dataset format, ``--clips`` and ``--docs``
select, ``--json`` prints the command's report as JSON); names replaced since are kept as
hidden aliases (``fetch --dest``, ``fetch --dataset``, ``retry --clip``). What is drawn
(tables, progress, log lines) is built by ``midvbatch.ui`` and handed to the library.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import sys
from typing import NoReturn

import click

from midvbatch import __version__
from midvbatch.config import (
    MAX_BATCH_SIZE,
    MAX_JOBS,
    MAX_PREFETCH,
    MAX_RETRIES,
    MAX_RETRY_DELAY,
    MAX_TASK_TIMEOUT,
    PIPELINES,
    ConfigError,
    check_finite,
    parse_count,
    parse_seconds,
    scheduler_address,
)
from midvbatch.errors import EXIT_INTERRUPTED, MidvBatchError, shown
from midvbatch.fileio import name_too_long


def _user_errors(func):
    """Turn MidvBatchError into click's one-line error with exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MidvBatchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _echo_json(obj) -> None:
    """Print JSON; the items of a top-level list value go one per line, compact."""
    if isinstance(obj, dict) and any(isinstance(v, list) for v in obj.values()):
        parts = []
        for key, value in obj.items():
            if isinstance(value, list) and value:
                items = ",\n  ".join(json.dumps(v, ensure_ascii=False) for v in value)
                parts.append(f" {json.dumps(key)}: [\n  {items}\n ]")
            else:
                parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
        click.echo("{\n" + ",\n".join(parts) + "\n}")
    elif isinstance(obj, list):
        click.echo("[\n" + ",\n".join(" " + json.dumps(v, ensure_ascii=False) for v in obj) + "\n]" if obj else "[]")
    else:
        click.echo(json.dumps(obj, indent=1, ensure_ascii=False))


def _alias(old: str, new: str, target: str, **attrs):
    """Add a hidden option `old`: the former name of `new` (parameter `target`), for old command lines.

    A repeatable option adds its values to the target's; a single value fills the target,
    and giving both names different values is a usage error.
    """
    key = f"alias_{target}"

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(key)
            if attrs.get("multiple"):
                kwargs[target] = tuple(kwargs.get(target) or ()) + tuple(value)
            elif value is not None:
                if kwargs.get(target) not in (None, value):
                    raise click.UsageError(
                        f"{old} is the former name of {new}: give one of them", ctx=click.get_current_context()
                    )
                kwargs[target] = value
            return func(*args, **kwargs)

        return click.option(old, key, hidden=True, **attrs)(wrapper)

    return decorate


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Seconds(click.ParamType):
    """Finite seconds from `low` (excluded when `above`) to `high`: nan, inf and 1e309 are usage errors."""

    name = "seconds"

    def __init__(self, low: float, high: float, *, above: bool = False):
        self.low, self.high, self.above = low, high, above

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{shown(value)} is not a number of seconds", param, ctx)
        try:  # the bounds as the configuration checks them (TOML too)
            return parse_seconds(number, param.name.replace("_", " "), self.low, self.high, above=self.above)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class _Path(click.Path):
    """click.Path that refuses, as a usage error, a name longer than the system can hold (255 bytes, 4096 in all)."""

    def convert(self, value, param, ctx):
        if name_too_long(value):
            self.fail(f"{shown(os.fsdecode(value))} is too long for a file name", param, ctx)
        return super().convert(value, param, ctx)


class _Count(click.ParamType):
    """A whole number of at least `minimum`, or 'auto'; capped to the machine later, by RunConfig."""

    name = "count"

    def __init__(self, minimum: int):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        try:
            return parse_count(value.strip() if isinstance(value, str) else value, param.name, minimum=self.minimum)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class _Scheduler(click.ParamType):
    """'local' or a Dask scheduler's address, checked as the configuration checks it (TOML too)."""

    name = "address"

    def convert(self, value, param, ctx):
        try:
            scheduler_address(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="midvbatch")
def cli():
    """Put a whole identity-document video dataset (MIDV-500 and kin) through a pipeline.

    Start with `midvbatch synth DIR` for a small synthetic dataset, or point
    `midvbatch ls` at a MIDV-500 folder.
    """


_CATALOG_HELP = "Dataset format the folder holds (midv500, midv2019, midv2020, folder, a plugin's: see `midvbatch formats`); found from the folder by default."

_MISSING_LABELS = {
    "document": "documents",
    "clip": "clips",
    "video": "videos",
    "ground_truth": "clips with incomplete ground truth",
    "template_image": "template images",
    "template_json": "template JSON files",
}


def _echo_findings(dataset, chosen) -> None:
    """Discovery's findings on standard error: links not followed, second copies, clips set aside; one line each."""
    for finding in dataset.findings(chosen):
        click.echo(f"{finding.severity}: {finding}", err=True)


@cli.command("ls")
@click.argument("dataset_dir", type=_Path(file_okay=False, path_type=str))
@click.option("--docs", multiple=True, metavar="PATTERN", help="Only documents matching this glob (repeatable).")
@click.option("--clips", multiple=True, metavar="PATTERN", help="Only clips whose code or id matches (repeatable).")
@click.option(
    "--frames", "show_frames", is_flag=True, help="One record per annotated frame: quad and visibility subsets."
)
@click.option("--missing", "show_missing", is_flag=True, help="List every missing document, clip and file.")
@click.option("--catalog", metavar="NAME", help=_CATALOG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def ls_command(dataset_dir, docs, clips, show_frames, show_missing, catalog, as_json):
    """List the clips of DATASET_DIR, or with --frames its annotated frames."""
    from midvbatch.dataset import discover, frame_truths, select
    from midvbatch.ui import echo_table

    dataset = discover(dataset_dir, catalog)
    chosen = select(dataset, docs, clips)
    _echo_findings(dataset, chosen)
    if show_frames:
        records = list(frame_truths(chosen))  # all read before printing: a bad file prints one line only
        if as_json:
            _echo_json({"root": str(dataset.root), "frames": [r.to_dict() for r in records]})
            return
        short = {
            "four_vertices_in_frame": "4v",
            "at_least_three_vertices_in_frame_closed": "3v-closed",
            "at_least_three_vertices_in_frame_half_closed": "3v-half",
            "doc_area_in_frame_more_than_ninety_percent": "area90",
        }
        echo_table(
            ["FRAME", "CLIP", "SIZE", "SUBSETS"],
            ([r.id, r.clip, f"{r.width}x{r.height}", " ".join(short[s] for s in r.subsets) or "-"] for r in records),
        )
        return
    if as_json:
        summary = dataset.to_dict(chosen)
        _echo_json(summary)
        return
    echo_table(
        ["CLIP", "CONDITION", "DEVICE", "GT", "VIDEO"],
        ([c.id, c.condition or "-", c.device or "-", len(c.ground_truth), _video_column(c)] for c in chosen),
        right={"GT"},
    )
    title = (
        dataset.catalog.title
        if dataset.catalog
        else "a folder of videos"
        if dataset.format == "folder"
        else f"a {dataset.format} dataset"
    )
    docs_count = len({c.document for c in chosen})
    click.echo(f"{_plural(len(chosen), 'clip')} in {_plural(docs_count, 'document')} of {title} under {dataset.root}")
    if dataset.missing:
        kinds: dict[str, int] = {}
        for m in dataset.missing:
            kinds[m.kind] = kinds.get(m.kind, 0) + 1
        parts = ", ".join(f"{n} {_MISSING_LABELS.get(k, k)}" for k, n in kinds.items())
        if show_missing:
            click.echo(f"missing ({parts}):")
            for m in dataset.missing:
                click.echo(f"  {m}")
        else:
            click.echo(f"missing: {parts} (--missing lists them)")


@cli.command("probe")
@click.argument("video", type=_Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def probe_command(video, as_json):
    """Print what the container of VIDEO says: codec, size, rotation, rate, duration."""
    from midvbatch.video import probe

    info = probe(video).to_dict()
    if as_json:
        _echo_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key:<15} {value if value is not None else '-'}")


@cli.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--docs",
    default="2",
    show_default=True,
    metavar="N|PATTERN",
    help="The first N documents of the catalog, or names matching a glob like '0[1-5]_*'.",
)
@click.option(
    "--clips",
    metavar="PATTERN",
    help="Clip codes to write, a glob: 'T*', 'CA'; MIDV-2020's: 'templates', 'scan_*', 'photo/00-09', "
    "'clips/1?'.  [default: all; midv2020: templates,scan_*,photo/00-09,clips/0[01]]",
)
@click.option(
    "--size",
    default="180x320",
    show_default=True,
    metavar="WxH",
    help="Annotated frame size, portrait, even sides of 16 to 7680 (MIDV-500 is 1080x1920).",
)
@click.option(
    "--seconds",
    type=float,
    help="Clip length, at most 600; MIDV-500/2019: at least the 3 s the annotations span.  "
    "[default: 3.2; midv2020: 1.2, so 36 frames at 30 fps, every 6th annotated]",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes (0 to 2**63-1).")
@click.option(
    "--with-frames",
    is_flag=True,
    help="Also write the 30 annotated frames of each clip as TIFF under images/ (MIDV-2020 always writes its JPEGs).",
)
@click.option(
    "--trajectories",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="COCO_JSON",
    help="Move documents along real MIDV-500 quads from a COCO export.",
)
@click.option(
    "--catalog",
    default="midv500",
    show_default=True,
    metavar="NAME",
    help="Dataset format to imitate (midv500, midv2019, midv2020).",
)
@click.option(
    "--images",
    default=2,
    show_default=True,
    type=int,
    metavar="N",
    help="MIDV-2020: documents 00, 01, ... of the templates and each scan collection, and photos per photo block.",
)
@click.option("--force", is_flag=True, help="Overwrite the files of a dataset already in OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@_user_errors
def synth_command(
    out_dir, docs, clips, size, seconds, seed, with_frames, trajectories, catalog, images, force, as_json
):
    """Write a synthetic dataset in a MIDV layout to OUT_DIR.

    MIDV-500 by default; --catalog midv2019 or midv2020 for theirs. Refuses to
    overwrite the files of a dataset already there, unless --force.
    """
    from midvbatch.dataset.synth import SynthConfig, parse_size, synthesize
    from midvbatch.errors import SynthError

    try:
        width, height = parse_size(size)
    except SynthError as exc:
        raise click.BadParameter(exc.message, param_hint="'--size'") from None
    config = SynthConfig(
        docs=docs,
        clips=clips,
        width=width,
        height=height,
        seconds=seconds,
        seed=seed,
        with_frames=with_frames,
        trajectories=trajectories,
        catalog=catalog,
        images=images,
    )
    report = synthesize(out_dir, config, progress=lambda line: click.echo(f"  {line}", err=True), overwrite=force)
    if as_json:
        _echo_json(
            {
                "root": str(report.root),
                "documents": report.documents,
                "clips": report.clips,
                "frames": report.frames,
                "seconds": round(report.seconds, 3),
            }
        )
        return
    click.echo(
        f"wrote {_plural(len(report.documents), 'document')}, {_plural(report.clips, 'clip')}, {report.frames} annotated frames "
        f"to {report.root} in {report.seconds:.1f} s"
    )


@cli.command("frames")
@click.argument("dataset_dir", type=_Path(file_okay=False, path_type=str))
@click.option("--docs", multiple=True, metavar="PATTERN", help="Only documents matching this glob (repeatable).")
@click.option("--clips", multiple=True, metavar="PATTERN", help="Only clips whose code or id matches (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def frames_command(dataset_dir, docs, clips, as_json):
    """Decode the annotated frames of every clip of DATASET_DIR and report per clip.

    Exits with status 1 when any clip fails; the other clips are still decoded.
    """
    from midvbatch.dataset import discover, select
    from midvbatch.decode import decode_clips

    dataset = discover(dataset_dir)
    picked = select(dataset, docs, clips)
    _echo_findings(dataset, picked)
    chosen = [c for c in picked if c.video is not None]
    results = []
    for r in decode_clips(chosen):
        results.append(r)
        if not as_json:
            size = f"{r.width}x{r.height}" if r.width else "-"
            status = "ok" if r.ok else f"FAILED: {r.error}"
            click.echo(f"{r.clip:<28} {r.frames:>3} frames  {size:<10} {r.seconds:6.2f} s  {status}")
    failed = [r for r in results if not r.ok]
    if as_json:
        _echo_json([r.to_dict() for r in results])
    else:
        frames = sum(r.frames for r in results)
        seconds = sum(r.seconds for r in results)
        rate = frames / seconds if seconds else 0.0
        click.echo(
            f"{len(results) - len(failed)} of {len(results)} clips decoded, {frames} frames, "
            f"{seconds:.1f} s ({rate:.0f} frames/s)"
        )
    if failed:
        sys.exit(1)


def _option(ctx, param, values):
    options = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except ValueError:  # JSONDecodeError, or an integer of 4300+ digits
            options[key] = raw
        try:
            check_finite(options[key], key)  # NaN, Infinity, 1e999: as the configuration checks them
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
    return options or None


def _selection_options(func):
    for decorator in reversed(
        [
            click.option(
                "--docs", multiple=True, metavar="PATTERN", help="Only documents matching this glob (repeatable)."
            ),
            click.option(
                "--clips", multiple=True, metavar="PATTERN", help="Only clips whose code or id matches (repeatable)."
            ),
            click.option(
                "--limit", type=click.IntRange(min=1), metavar="N", help="Only the first N clips of the queue."
            ),
            click.option(
                "--priority",
                multiple=True,
                metavar="RULE",
                help="KEY=PATTERN:WEIGHT with KEY clip, doc or id, e.g. 'clip=H*:10'; higher goes first (repeatable).",
            ),
            click.option("--catalog", metavar="NAME", help=_CATALOG_HELP),
            click.option(
                "--config",
                "config_file",
                type=_Path(dir_okay=False, path_type=str),
                metavar="FILE.toml",
                help="Read options from a TOML file; flags given here win.",
            ),
        ]
    ):
        func = decorator(func)
    return func


@cli.command("run")
@click.argument("dataset_dir", required=False, type=_Path(file_okay=False, path_type=str))
@click.option(
    "--out",
    type=_Path(path_type=str),
    metavar="RUN_DIR",
    help="Run folder: ledger, logs, artifacts. Run again to resume.",
)
@click.option(
    "--pipeline",
    type=click.Choice(PIPELINES),
    help="Built-in pipeline (default localize).",
)
@click.option("--processor", metavar="MODULE:FACTORY", help="Your processor: MODULE:FACTORY or a registered name.")
@click.option(
    "--option",
    "options",
    multiple=True,
    callback=_option,
    metavar="KEY=VALUE",
    help="Option for the processor's factory; VALUE is JSON or text (repeatable).",
)
@click.option(
    "--workers",
    type=_Count(0),
    metavar="N|auto",
    help="Worker count (default one per core; 0 runs clips inline, for debugging).",
)
@click.option(
    "--pool",
    type=click.Choice(["process", "thread", "dask"]),
    help="Worker processes (default), threads, or a Dask cluster (see --scheduler).",
)
@click.option(
    "--scheduler",
    type=_Scheduler(),
    metavar="ADDRESS",
    help="With --pool dask: the scheduler (tcp://host:8786), or 'local'.",
)
@click.option(
    "--artifacts",
    type=click.Choice(["shared", "return"]),
    help="With --pool dask: workers write artifacts into the shared run folder (default), or return them "
    "with the results (up to 64 MiB a clip) when it is not shared.",
)
@click.option(
    "--decode-threads",
    type=_Count(1),
    metavar="N|auto",
    help="FFmpeg decoding threads per worker (default auto: the cores shared among the workers).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    metavar="N",
    help="Annotated frames per process_batch call, within a clip (processors that define it; default 1).",
)
@click.option(
    "--prefetch",
    type=click.IntRange(0, MAX_PREFETCH),
    metavar="N",
    help="Frames each worker decodes ahead, in a thread, while its processor works (default 0: none).",
)
@click.option(
    "--batch-across-clips",
    is_flag=True,
    default=None,
    help="Let a batch hold frames of the next clips a worker holds (with --batch-size).",
)
@click.option("--image-format", type=click.Choice(["png", "jpg", "tif"]), help="Image format of --pipeline extract.")
@click.option(
    "--retries",
    type=click.IntRange(0, MAX_RETRIES),
    metavar="N",
    help="Attempts after the first for a failing clip (default 2).",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Console log level (default info)."
)
@click.option(
    "--retry-delay",
    type=_Seconds(0, MAX_RETRY_DELAY),
    metavar="SECONDS",
    help="Wait before the first retry; doubles each attempt, at most 1 hour (default 2; 0 to 3600).",
)
@click.option(
    "--task-timeout",
    type=_Seconds(0, MAX_TASK_TIMEOUT, above=True),
    metavar="SECONDS",
    help="Kill a clip's worker after this long; the clip fails with 'timeout'.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop dispatching once N clips are dead (default: never).",
)
@click.option(
    "--max-tasks-per-worker",
    type=click.IntRange(min=1),
    metavar="N",
    help="Replace each worker after N clips, to contain leaks.",
)
@click.option(
    "--min-free-memory",
    metavar="SIZE|N%",
    help="Dispatch only while this much memory is available (default 10% of RAM or 1GiB, the smaller).",
)
@click.option(
    "--worker-memory",
    metavar="SIZE|none",
    help="Kill a worker whose resident memory passes SIZE (1GB, 512MiB); its clip fails with 'memory' "
    "(default 80% of RAM shared among the workers; none: no limit).",
)
@click.option(
    "--devices",
    metavar="LIST|auto",
    help="Accelerators for the workers, one each in turn: cuda:0,cuda:1, or auto (the GPUs nvidia-smi lists); "
    "each worker sees only its own (CUDA_VISIBLE_DEVICES). Default: none.",
)
@click.option(
    "--device-memory",
    metavar="SIZE",
    help="Kill a worker holding more than SIZE of its device's memory (as nvidia-smi tells); its clip fails "
    "with 'oom'.",
)
@click.option(
    "--min-free-disk",
    metavar="SIZE|N%",
    help="Dispatch only while RUN_DIR's disk has this much free plus the next clip's output "
    "(default 1GiB or 10% of the disk, the smaller).",
)
@click.option(
    "--on-disk-full",
    type=click.Choice(["wait", "stop"]),
    help="Below --min-free-disk: wait for space (default) or stop cleanly.",
)
@click.option("--strict", is_flag=True, default=None, help="Refuse to start when a selected clip is invalid.")
@click.option(
    "--no-check",
    "no_check",
    is_flag=True,
    default=None,
    help="Skip the checks of the clips before the run (they are cached; a resume does not redo them).",
)
@click.option(
    "--restart", is_flag=True, help="Discard the results of a different configuration in RUN_DIR and start over."
)
@click.option("--json", "as_json", is_flag=True, help="Print how the run ended as JSON.")
@_selection_options
@_user_errors
def run_command(
    dataset_dir,
    out,
    pipeline,
    processor,
    options,
    workers,
    pool,
    scheduler,
    artifacts,
    decode_threads,
    batch_size,
    prefetch,
    batch_across_clips,
    image_format,
    retries,
    log_level,
    retry_delay,
    task_timeout,
    max_failures,
    max_tasks_per_worker,
    min_free_memory,
    worker_memory,
    devices,
    device_memory,
    min_free_disk,
    on_disk_full,
    strict,
    no_check,
    restart,
    as_json,
    docs,
    clips,
    limit,
    priority,
    catalog,
    config_file,
):
    """Run every clip of DATASET_DIR through a pipeline; resumes when RUN_DIR exists.

    Exit status: 0 all clips done, 1 some clips dead (see the log), 130 interrupted
    (run the same command again to resume).
    """
    from midvbatch.config import build_config
    from midvbatch.engine.run import run

    config = build_config(
        dict(
            dataset=dataset_dir,
            out=out,
            pipeline=pipeline,
            processor=processor,
            options=options,
            workers=workers,
            pool=pool,
            scheduler=scheduler,
            artifacts=artifacts,
            decode_threads=decode_threads,
            batch_size=batch_size,
            prefetch=prefetch,
            batch_across_clips=batch_across_clips,
            image_format=image_format,
            retries=retries,
            log_level=log_level,
            docs=docs,
            clips=clips,
            limit=limit,
            priority=priority,
            catalog=catalog,
            retry_delay=retry_delay,
            task_timeout=task_timeout,
            max_failures=max_failures,
            max_tasks_per_worker=max_tasks_per_worker,
            min_free_memory=min_free_memory,
            worker_memory=worker_memory,
            devices=devices,
            device_memory=device_memory,
            min_free_disk=min_free_disk,
            on_disk_full=on_disk_full,
            strict=strict,
            check=False if no_check else None,
        ),
        config_file,
    )
    _print_summary(run(config, restart=restart, **_run_display()), as_json)


def _run_display() -> dict:
    """The progress panel and log handler a run shows itself through, on standard error."""
    from midvbatch.ui import RunView, console_log_handler, stderr_console

    console = stderr_console()
    return {"progress": RunView(console), "log_handler": console_log_handler(console)}


def _print_summary(summary, as_json: bool, **extra) -> None:
    if as_json:
        _echo_json({**extra, **summary.to_dict()})
    else:
        c = summary.counts
        click.echo(
            f"{summary.state}: {c['done']} done, {c['dead']} dead, {summary.left} left, "
            f"in {summary.seconds:.1f} s; results in {summary.run_dir}"
        )
    sys.exit(summary.exit_code)


@cli.command("plan")
@click.argument("dataset_dir", required=False, type=_Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_selection_options
@_user_errors
def plan_command(dataset_dir, as_json, docs, clips, limit, priority, catalog, config_file):
    """Print the queue a run would take: each clip's priority and estimated cost, in order."""
    from midvbatch.config import build_config
    from midvbatch.dataset import discover
    from midvbatch.engine.scheduler import plan

    config = build_config(
        dict(dataset=dataset_dir, out="-", docs=docs, clips=clips, limit=limit, priority=priority, catalog=catalog),
        config_file,
    )
    dataset = discover(config.dataset, config.catalog)
    planned = plan(dataset, config)
    _echo_findings(dataset, [p.clip for p in planned])
    if as_json:
        _echo_json([p.to_dict(i) for i, p in enumerate(planned, 1)])
        return
    from midvbatch.ui import echo_table

    echo_table(
        ["#", "CLIP", "PRIORITY", "COST MB", "FRAMES"],
        ([i, p.clip.id, p.priority, f"{p.cost:.2f}", p.frames] for i, p in enumerate(planned, 1)),
        right={"#", "PRIORITY", "COST MB", "FRAMES"},
    )
    click.echo(
        f"{_plural(len(planned), 'clip')}, {sum(p.frames for p in planned)} annotated frames, "
        f"{sum(p.cost for p in planned):.1f} MB of video"
    )


@cli.command("status")
@click.argument("run_dir", type=_Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", is_flag=True, help="Refresh every --interval seconds until the run ends.")
@click.option(
    "--interval", type=_Seconds(0.1, 3600), default=2.0, show_default=True, help="Seconds between refreshes of --watch."
)
@_user_errors
def status_command(run_dir, as_json, watch, interval):
    """Print where the run in RUN_DIR stands; works during the run, from another shell, and after."""
    import time as time_module

    from midvbatch.engine.status import run_status
    from midvbatch.ui import echo_table, summary_line, worker_rows

    while True:
        snap = run_status(run_dir)
        if as_json:
            _echo_json(snap.to_dict())
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


@cli.command("failures")
@click.argument("run_dir", type=_Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@_user_errors
def failures_command(run_dir, as_json, as_csv):
    """List every failed or dead clip of RUN_DIR: attempts, error class, message, signal or exit code, stage."""
    import csv

    from midvbatch.engine.failures import failures

    records = failures(run_dir)
    if as_json:
        _echo_json(records)
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
        click.echo(f"{_plural(len(records), 'clip')} failed: {dead} dead, {len(records) - dead} waiting to retry")


@cli.command("retry")
@click.argument("run_dir", type=_Path(path_type=str))
@click.option("--clips", multiple=True, metavar="PATTERN", help="Dead clips whose id or code matches (repeatable).")
@click.option("--all-dead", is_flag=True, help="Every dead clip.")
@click.option("--json", "as_json", is_flag=True, help="Print the clips retried and how the run ended as JSON.")
@_alias("--clip", "--clips", "clips", multiple=True, metavar="PATTERN")
@_user_errors
def retry_command(run_dir, clips, all_dead, as_json):
    """Put dead clips of RUN_DIR back in the queue with fresh attempts, then run them.

    For after fixing a file or a processor; the run's saved configuration is used.
    """
    from midvbatch.engine.failures import retry

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
        click.echo(f"retrying {_plural(len(revived), 'clip')}: {' '.join(revived)}")
    _print_summary(summary, as_json, retried=revived)


@cli.command("fetch")
@click.argument("dest", required=False, metavar="DEST", type=_Path(path_type=str))
@click.option("--catalog", metavar="NAME", help="Dataset to fetch: midv500 (default), midv2019 or midv2020.")
@click.option(
    "--docs",
    "--collections",
    multiple=True,
    metavar="PATTERN",
    help="Only the archives matching these globs: documents ('0[1-5]_*'), MIDV-2020 collections "
    "('clips,photo'); comma-separated or repeated.",
)
@click.option(
    "--mirror",
    metavar="URL",
    help="ftp://, http:// or https:// folder holding the archives and md5.txt, instead of the official one.",
)
@click.option(
    "--jobs", default=2, show_default=True, type=click.IntRange(1, MAX_JOBS), help="Archives fetched at once."
)
@click.option(
    "--from-archives",
    type=_Path(path_type=str),
    metavar="DIR",
    help="Import archives downloaded by hand from DIR (no network); default: every archive there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_alias("--dest", "DEST", "dest", type=_Path(path_type=str), metavar="DIR")
@_alias("--dataset", "--catalog", "catalog", metavar="NAME")
@_user_errors
def fetch_command(dest, catalog, docs, mirror, jobs, from_archives, as_json):
    """Download, verify (md5.txt) and unpack the dataset's archives into DEST.

    DEST is created; run again to resume: downloads resume where they stopped and
    documents already fetched are skipped. Exit status: 0 when every asked document is
    present, 1 when some failed (each listed with the reason; the others are completed),
    130 when interrupted.
    """
    from midvbatch.dataset.fetch import fetch
    from midvbatch.ui import FetchView

    if dest is None:
        raise click.UsageError("Missing argument 'DEST'.", ctx=click.get_current_context())
    try:
        report = fetch(
            dest,
            catalog=catalog if catalog is not None else "midv500",
            docs=docs,
            mirror=mirror,
            jobs=jobs,
            from_archives=from_archives,
            progress=FetchView(),
        )
    except KeyboardInterrupt:
        click.echo("interrupted: partial downloads are kept; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        _echo_json(report.to_dict())
    else:
        width = max(len(d.document) for d in report.documents)
        for d in report.documents:
            click.echo(f"{d.document:<{width}}  {d.describe()}")
        click.echo(report.summary())
    if report.failed:
        sys.exit(1)


@cli.command("validate")
@click.argument("dataset_dir", type=_Path(file_okay=False, path_type=str))
@click.option("--deep", is_flag=True, help="Also decode every annotated frame and compare it with its extracted TIFF.")
@click.option("--catalog", metavar="NAME", help=_CATALOG_HELP)
@click.option("--jobs", type=click.IntRange(1, MAX_JOBS), default=2, show_default=True, help="Clips checked at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_user_errors
def validate_command(dataset_dir, deep, catalog, jobs, as_json):
    """Check DATASET_DIR: structure, ground truth, videos, archives; exit status 1 if any error.

    Warnings (the irregular template files real MIDV-500 has) and notes (documents not
    present, extra files) do not fail validation.
    """
    from midvbatch.dataset.validate import validate

    report = validate(dataset_dir, deep=deep, catalog=catalog, jobs=jobs)
    if as_json:
        _echo_json(report.to_dict())
    else:
        counts = report.counts()
        n = {sev: sum(counts.get(sev, {}).values()) for sev in ("error", "warning", "note")}
        click.echo(
            f"{report.root}: {_plural(report.clips, 'clip')} checked{' deeply' if deep else ''}: "
            f"{_plural(n['error'], 'error')}, {_plural(n['warning'], 'warning')}, {_plural(n['note'], 'note')}"
        )
        for severity in ("error", "warning", "note"):
            for kind, count in counts.get(severity, {}).items():
                click.echo(f"  {severity:<8}{kind:<15}{count}")
        order = {"error": 0, "warning": 1, "note": 2}
        for p in sorted(report.problems, key=lambda p: order[p.severity]):
            click.echo(f"{p.severity:<8}{p.kind:<15}{p}")
    if not report.ok:
        sys.exit(1)


_FORCE_HELP = (
    "Replace an existing --out that a report or export of this run did not write (never a file of the run's dataset)."
)


@cli.command("export")
@click.argument("run_dir", type=_Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "coco", "smartengines"]),
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
@click.option("--out", type=_Path(dir_okay=False, path_type=str), help="Write to this file instead of standard output.")
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@_user_errors
def export_command(run_dir, fmt, predictions, subset, fields, out, force):
    """Export the results of RUN_DIR: one record per frame, or per clip for clip processors."""
    from midvbatch.engine.export import export_results

    count = export_results(run_dir, fmt, out, predictions=predictions, subset=subset, fields=fields, force=force)
    if out:
        click.echo(f"wrote {_plural(count, 'record')} to {out}")


@cli.command("report")
@click.argument("run_dir", type=_Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json", "csv"]),
    default="md",
    show_default=True,
    help="Markdown (the terminal), a self-contained HTML page with plots, JSON or CSV.",
)
@click.option(
    "--out",
    type=_Path(dir_okay=False, path_type=str),
    help="Write to this file (html also writes its plots as PNG beside it, in NAME-plots/).",
)
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@_user_errors
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


@cli.command("processors")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def processors_command(as_json):
    """List the processors --processor can name: the built-in pipelines and plugins' entry points.

    Each with where it comes from, the options --option KEY=VALUE can give it (with their
    defaults), and the first line of its documentation. A plugin that cannot be loaded is
    listed with the reason. MODULE:FACTORY names any other processor.
    """
    from midvbatch.pipeline.registry import describe_processors
    from midvbatch.ui import echo_table

    infos = describe_processors()
    if as_json:
        _echo_json([i.to_dict() for i in infos])
        return

    def options(info) -> str:
        return (
            " ".join(
                f"{o['name']}=REQUIRED"
                if o.get("required")
                else f"{o['name']}={json.dumps(o['default'], ensure_ascii=False)}"
                for o in info.options
            )
            or "-"
        )

    echo_table(
        ["NAME", "FROM", "OPTIONS", "DESCRIPTION"],
        ([i.name, i.source, options(i), i.error or i.doc or "-"] for i in infos),
    )


@cli.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def formats_command(as_json):
    """List the dataset formats --catalog can name: the built-in ones and plugins' entry points.

    Each with where it comes from, whether fetch can download it, and what it reads. A
    folder is read by the format surest it is one of its datasets; a plugin that cannot be
    loaded is listed with the reason.
    """
    from midvbatch.dataset.formats import describe_formats
    from midvbatch.ui import echo_table

    infos = describe_formats()
    if as_json:
        _echo_json([i.to_dict() for i in infos])
        return
    echo_table(
        ["NAME", "FROM", "FETCH", "DESCRIPTION"],
        ([i.name, i.source, "yes" if i.fetchable else "-", i.error or f"{i.title}: {i.summary}"] for i in infos),
    )


def _video_column(clip) -> str:
    """What `ls` shows a clip's frames come from: its video, its pictures, or nothing."""
    if clip.video:
        return str(clip.video)
    if clip.runs_from_pictures:
        return f"({len(clip.images)} pictures)"
    return "(missing)"


def main(args: list[str] | None = None) -> None:
    """Run the command line; exit 0, 1 (an error, one line), 2 (usage) or 130 (interrupted).

    A Ctrl-C at any moment exits 130 with one line, never a traceback or click's "Aborted!".
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C is KeyboardInterrupt
    atexit.register(_exit_interrupted)  # the first exit handler registered runs last
    try:
        code = cli.main(args=args, prog_name="midvbatch", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _last_words("interrupted; nothing was lost: run the same command again to go on")
        _leave_interrupted()
    except SystemExit as exc:  # a command that said its own last words (fetch)
        if exc.code == EXIT_INTERRUPTED:
            _leave_interrupted()
        raise
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MemoryError:
        _last_words("Error: out of memory; try fewer --workers or a smaller input")
        sys.exit(1)
    except BrokenPipeError:  # `midvbatch export RUN | head`: the reader has gone; so do we, quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


_interrupted: list[bool] = []  # set when main() exits 130; read by _exit_interrupted


def _leave_interrupted() -> NoReturn:
    """Exit 130 after an interrupt; a second Ctrl-C from here on ends the process at once."""
    _interrupted.append(True)
    signal.signal(signal.SIGINT, _exit_at_once)
    sys.exit(EXIT_INTERRUPTED)


def _exit_at_once(signum, frame) -> None:
    _flush_std()
    os._exit(EXIT_INTERRUPTED)


def _exit_interrupted() -> None:
    """Run last at exit: after an interrupt, end with status 130 whatever the interpreter noted.

    CPython notes a KeyboardInterrupt that ends code run by exec() of a string (dataclasses
    build their methods so; a Ctrl-C during a lazy import can land there) and, once every
    exit handler has run, kills the process with SIGINT even though the interrupt was
    caught: the status would read "killed by SIGINT", not 130. Only the interpreter's own
    teardown is skipped here; the other exit handlers (multiprocessing's) have run.
    """
    if _interrupted:
        _flush_std()
        os._exit(EXIT_INTERRUPTED)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream must not turn into a traceback
            pass


def _last_words(line: str) -> None:
    try:
        click.echo(line, err=True)
    except Exception:  # noqa: BLE001 - a closed stderr must not turn into a traceback
        pass


if __name__ == "__main__":
    main()
