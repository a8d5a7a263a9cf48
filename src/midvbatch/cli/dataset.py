"""The commands on datasets and videos: ls, probe, synth, frames, fetch, validate, formats."""

from __future__ import annotations

import sys

import click

from midvbatch.cli._echo import echo_findings, echo_json, plural, user_errors
from midvbatch.cli._params import PathType, alias, option_flag
from midvbatch.config import MAX_JOBS
from midvbatch.errors import EXIT_INTERRUPTED

_MISSING_LABELS = {
    "document": "documents",
    "clip": "clips",
    "video": "videos",
    "ground_truth": "clips with incomplete ground truth",
    "template_image": "template images",
    "template_json": "template JSON files",
}


@click.command("ls")
@click.argument("dataset_dir", type=PathType(file_okay=False, path_type=str))
@option_flag("docs")
@option_flag("clips")
@click.option(
    "--frames", "show_frames", is_flag=True, help="One record per annotated frame: quad and visibility subsets."
)
@click.option("--missing", "show_missing", is_flag=True, help="List every missing document, clip and file.")
@option_flag("catalog")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def ls_command(dataset_dir, docs, clips, show_frames, show_missing, catalog, as_json):
    """List the clips of DATASET_DIR, or with --frames its annotated frames."""
    from midvbatch.dataset import discover, frame_truths, select
    from midvbatch.ui import echo_table

    dataset = discover(dataset_dir, catalog)
    chosen = select(dataset, docs, clips)
    echo_findings(dataset, chosen)
    if show_frames:
        records = list(frame_truths(chosen))  # all read before printing: a bad file prints one line only
        if as_json:
            echo_json({"root": str(dataset.root), "frames": [r.to_dict() for r in records]})
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
        echo_json(summary)
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
    click.echo(f"{plural(len(chosen), 'clip')} in {plural(docs_count, 'document')} of {title} under {dataset.root}")
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


@click.command("probe")
@click.argument("video", type=PathType(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def probe_command(video, as_json):
    """Print what the container of VIDEO says: codec, size, rotation, rate, duration."""
    from midvbatch.video import probe

    info = probe(video).to_dict()
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key:<15} {value if value is not None else '-'}")


@click.command("synth")
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
@user_errors
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
        echo_json(
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
        f"wrote {plural(len(report.documents), 'document')}, {plural(report.clips, 'clip')}, {report.frames} annotated frames "
        f"to {report.root} in {report.seconds:.1f} s"
    )


@click.command("frames")
@click.argument("dataset_dir", type=PathType(file_okay=False, path_type=str))
@option_flag("docs")
@option_flag("clips")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def frames_command(dataset_dir, docs, clips, as_json):
    """Decode the annotated frames of every clip of DATASET_DIR and report per clip.

    Exits with status 1 when any clip fails; the other clips are still decoded.
    """
    from midvbatch.dataset import discover, select
    from midvbatch.decode import decode_clips

    dataset = discover(dataset_dir)
    picked = select(dataset, docs, clips)
    echo_findings(dataset, picked)
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
        echo_json([r.to_dict() for r in results])
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


@click.command("fetch")
@click.argument("dest", required=False, metavar="DEST", type=PathType(path_type=str))
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
    type=PathType(path_type=str),
    metavar="DIR",
    help="Import archives downloaded by hand from DIR (no network); default: every archive there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@alias("--dest", "DEST", "dest", type=PathType(path_type=str), metavar="DIR")
@alias("--dataset", "--catalog", "catalog", metavar="NAME")
@user_errors
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
        echo_json(report.to_dict())
    else:
        width = max(len(d.document) for d in report.documents)
        for d in report.documents:
            click.echo(f"{d.document:<{width}}  {d.describe()}")
        click.echo(report.summary())
    if report.failed:
        sys.exit(1)


@click.command("validate")
@click.argument("dataset_dir", type=PathType(file_okay=False, path_type=str))
@click.option("--deep", is_flag=True, help="Also decode every annotated frame and compare it with its extracted TIFF.")
@option_flag("catalog")
@click.option("--jobs", type=click.IntRange(1, MAX_JOBS), default=2, show_default=True, help="Clips checked at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
def validate_command(dataset_dir, deep, catalog, jobs, as_json):
    """Check DATASET_DIR: structure, ground truth, videos, archives; exit status 1 if any error.

    Warnings (the irregular template files real MIDV-500 has) and notes (documents not
    present, extra files) do not fail validation.
    """
    from midvbatch.dataset.validate import validate

    report = validate(dataset_dir, deep=deep, catalog=catalog, jobs=jobs)
    if as_json:
        echo_json(report.to_dict())
    else:
        counts = report.counts()
        n = {sev: sum(counts.get(sev, {}).values()) for sev in ("error", "warning", "note")}
        click.echo(
            f"{report.root}: {plural(report.clips, 'clip')} checked{' deeply' if deep else ''}: "
            f"{plural(n['error'], 'error')}, {plural(n['warning'], 'warning')}, {plural(n['note'], 'note')}"
        )
        for severity in ("error", "warning", "note"):
            for kind, count in counts.get(severity, {}).items():
                click.echo(f"  {severity:<8}{kind:<15}{count}")
        order = {"error": 0, "warning": 1, "note": 2}
        for p in sorted(report.problems, key=lambda p: order[p.severity]):
            click.echo(f"{p.severity:<8}{p.kind:<15}{p}")
    if not report.ok:
        sys.exit(1)


@click.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
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
        echo_json([i.to_dict() for i in infos])
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
