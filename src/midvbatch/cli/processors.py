"""The command that lists processors."""

from __future__ import annotations

import json

import click

from midvbatch.cli._echo import echo_json, user_errors


@click.command("processors")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
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
        echo_json([i.to_dict() for i in infos])
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
