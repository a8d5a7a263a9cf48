"""The ``midvbatch`` command line: parse options, call one library function, print.

Every error a user can cause is a MidvBatchError; it is printed as one line
("Error: PATH: problem") with exit status 1, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import re
import sys

import click

from midvbatch import __version__
from midvbatch.errors import MidvBatchError


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _size(ctx, param, value):
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not m:
        raise click.BadParameter(f"{value!r} is not a size like 180x320 (width x height)")
    return int(m.group(1)), int(m.group(2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="midvbatch")
def cli():
    """Put a whole identity-document video dataset (MIDV-500 and kin) through a pipeline.

    Start with `midvbatch synth DIR` for a small synthetic dataset, or point
    `midvbatch ls` at a MIDV-500 folder.
    """


_MISSING_LABELS = {
    "document": "documents",
    "clip": "clips",
    "video": "videos",
    "ground_truth": "clips with incomplete ground truth",
    "template_image": "template images",
    "template_json": "template JSON files",
}


@cli.command("ls")
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--docs", multiple=True, metavar="PATTERN", help="Only documents matching this glob (repeatable).")
@click.option("--clips", multiple=True, metavar="PATTERN", help="Only clips whose code or id matches (repeatable).")
@click.option("--frames", "show_frames", is_flag=True, help="One record per annotated frame: quad and visibility subsets.")
@click.option("--missing", "show_missing", is_flag=True, help="List every missing document, clip and file.")
@click.option("--catalog", metavar="NAME", help="Dataset the folder holds (midv500, midv2019); guessed by default.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_user_errors
def ls_command(dataset_dir, docs, clips, show_frames, show_missing, catalog, as_json):
    """List the clips of DATASET_DIR, or with --frames its annotated frames."""
    from midvbatch.dataset import discover, frame_truths, select

    dataset = discover(dataset_dir, catalog=catalog)
    chosen = select(dataset, docs, clips)
    if show_frames:
        records = list(frame_truths(chosen))  # all read before printing: a bad file prints one line only
        if as_json:
            _echo_json({"root": str(dataset.root), "frames": [r.to_dict() for r in records]})
            return
        click.echo(f"{'FRAME':<10} {'CLIP':<24} {'SIZE':<10} SUBSETS")
        short = {
            "four_vertices_in_frame": "4v",
            "at_least_three_vertices_in_frame_closed": "3v-closed",
            "at_least_three_vertices_in_frame_half_closed": "3v-half",
            "doc_area_in_frame_more_than_ninety_percent": "area90",
        }
        for r in records:
            names = " ".join(short[s] for s in r.subsets) or "-"
            click.echo(f"{r.id:<10} {r.clip:<24} {f'{r.width}x{r.height}':<10} {names}")
        return
    if as_json:
        summary = dataset.to_dict()
        summary["clips"] = [c.to_dict() for c in chosen]
        _echo_json(summary)
        return
    click.echo(f"{'CLIP':<28} {'CONDITION':<10} {'DEVICE':<18} {'GT':>3}  VIDEO")
    for c in chosen:
        video = str(c.video) if c.video else "(missing)"
        click.echo(f"{c.id:<28} {c.condition or '-':<10} {c.device or '-':<18} {len(c.ground_truth):>3}  {video}")
    title = dataset.catalog.title if dataset.catalog else "a folder of videos"
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
@click.argument("video", type=click.Path(path_type=str))
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
@click.option("--docs", default="2", show_default=True, metavar="N|PATTERN",
              help="The first N documents of the catalog, or names matching a glob like '0[1-5]_*'.")
@click.option("--clips", default="*", show_default=True, metavar="PATTERN", help="Clip codes to write, e.g. 'T*' or 'CA'.")
@click.option("--size", callback=_size, default="180x320", show_default=True, metavar="WxH",
              help="Annotated frame size, portrait (MIDV-500 is 1080x1920).")
@click.option("--seconds", default=3.2, show_default=True, type=float, help="Clip length; at least the 3 s the annotations span.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--with-frames", is_flag=True, help="Also write the 30 annotated frames of each clip as TIFF under images/.")
@click.option("--trajectories", type=click.Path(dir_okay=False, path_type=str), metavar="COCO_JSON",
              help="Move documents along real MIDV-500 quads from a COCO export.")
@click.option("--catalog", default="midv500", show_default=True, help="Dataset layout to imitate.")
@_user_errors
def synth_command(out_dir, docs, clips, size, seconds, seed, with_frames, trajectories, catalog):
    """Write a synthetic dataset in the MIDV-500 layout to OUT_DIR."""
    from midvbatch.dataset.synth import SynthConfig, synthesize

    config = SynthConfig(
        docs=int(docs) if docs.isdigit() else docs, clips=clips, width=size[0], height=size[1],
        seconds=seconds, seed=seed, with_frames=with_frames, trajectories=trajectories, catalog=catalog,
    )
    report = synthesize(out_dir, config, progress=lambda line: click.echo(f"  {line}", err=True))
    click.echo(
        f"wrote {_plural(len(report.documents), 'document')}, {_plural(report.clips, 'clip')}, {report.frames} annotated frames "
        f"to {report.root} in {report.seconds:.1f} s"
    )


@cli.command("frames")
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=str))
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

    chosen = [c for c in select(discover(dataset_dir), docs, clips) if c.video is not None]
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
        click.echo(f"{len(results) - len(failed)} of {len(results)} clips decoded, {frames} frames, "
                   f"{seconds:.1f} s ({rate:.0f} frames/s)")
    if failed:
        sys.exit(1)


def main() -> None:
    """Run the command line."""
    cli(prog_name="midvbatch")


if __name__ == "__main__":
    main()
