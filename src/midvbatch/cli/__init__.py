"""The ``midvbatch`` command line: parse options, call one library function, print.

Every error a user can cause is a MidvBatchError; it is printed as one line
("Error: PATH: problem") with exit status 1, never as a traceback.

One grammar for every command: the folder it works on is its positional argument; one
option name per idea (``--catalog`` names the dataset format, ``--clips`` and ``--docs``
select, ``--json`` prints the command's report as JSON); names replaced since are kept as
hidden aliases (``fetch --dest``, ``fetch --dataset``, ``retry --clip``). What is drawn
(tables, progress, log lines) is built by ``midvbatch.ui`` and handed to the library.

This module holds the group and :func:`main` (exit statuses, Ctrl-C); the commands live
by what they work on: ``dataset.py`` (ls, probe, synth, frames, fetch, validate, formats),
``run.py`` (run, plan, status, failures, retry), ``results.py`` (export, report),
``processors.py``; the run's flags are made from the table of run options in ``_params.py``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import NoReturn

import click

from midvbatch.cli import dataset, processors, results, run
from midvbatch.errors import EXIT_INTERRUPTED
from midvbatch.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="midvbatch")
def cli():
    """Put a whole identity-document video dataset (MIDV-500 and kin) through a pipeline.

    Start with `midvbatch synth DIR` for a small synthetic dataset, or point
    `midvbatch ls` at a MIDV-500 folder.
    """


for _module in (dataset, run, results, processors):
    for _command in vars(_module).values():
        if isinstance(_command, click.Command):
            cli.add_command(_command)


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
