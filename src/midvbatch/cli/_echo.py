"""What every command shares: user errors as one line, JSON on standard output, counted nouns, discovery's findings."""

from __future__ import annotations

import functools
import json

import click

from midvbatch.errors import MidvBatchError


def user_errors(func):
    """Turn MidvBatchError into click's one-line error with exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MidvBatchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def echo_json(obj) -> None:
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


def plural(n: int, word: str) -> str:
    """'1 clip', '2 clips'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def echo_findings(dataset, chosen) -> None:
    """Discovery's findings on standard error: links not followed, second copies, clips set aside; one line each."""
    for finding in dataset.findings(chosen):
        click.echo(f"{finding.severity}: {finding}", err=True)
