"""Putting a run's dead clips back in the queue, and running it again (`midvbatch retry`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

from midvbatch.config import RunConfig, build_config
from midvbatch.dataset.formats import discover
from midvbatch.engine.ledger import Ledger, check_written_by_midvbatch
from midvbatch.errors import ConfigError, LedgerError
from midvbatch.runfolder import CONFIG, kind_of_folder


def revive_dead(run_dir: str | Path, clips: list[str] | tuple[str, ...] = (), all_dead: bool = False) -> list[str]:
    """Put dead clips matching `clips` (globs on id or code), or all dead clips, back in the queue.

    Return the ids revived. Raises ConfigError when neither is asked or nothing matches.
    """
    if not clips and not all_dead:
        raise ConfigError("say which dead clips to retry: --clip PATTERN (repeatable) or --all-dead")
    if not Path(run_dir).is_dir():
        raise LedgerError("no such run folder", path=run_dir)
    from midvbatch.engine.lock import RunLock

    if kind_of_folder(run_dir) not in ("run", "legacy"):
        raise LedgerError("not a midvbatch run folder (no midvbatch-run.json)", path=run_dir)
    check_written_by_midvbatch(run_dir)
    lock = RunLock(run_dir)
    lock.acquire()  # only one writer: refused while a run is alive
    ledger = Ledger(run_dir)
    try:
        dead = ledger.tasks(states=("dead",))
        chosen = [
            t
            for t in dead
            if all_dead or any(fnmatch.fnmatchcase(t.clip, p) or fnmatch.fnmatchcase(t.code, p) for p in clips)
        ]
        if not chosen:
            what = "no dead clips" if not dead else f"no dead clip matches {' '.join(clips)}"
            raise LedgerError(what, path=run_dir)
        ledger.revive(t.id for t in chosen)
        ledger.log_event("info", f"retry: {len(chosen)} dead clips back in the queue")
        return [t.clip for t in chosen]
    finally:
        ledger.close()
        lock.release()


def retry(
    run_dir: str | Path,
    clips: list[str] | tuple[str, ...] = (),
    all_dead: bool = False,
    announce: Callable[[RunConfig], None] | None = None,
    **run_options,
):
    """Revive dead clips, then resume the run with its saved configuration; return (revived ids, RunSummary).

    The saved configuration names the code that runs (``--processor MODULE:FACTORY``
    imports MODULE), like a Makefile: `announce` is shown it before anything runs.
    """
    from midvbatch.engine.run import run

    config_file = Path(run_dir) / CONFIG
    if not config_file.is_file():
        raise LedgerError("not a run folder (no config.toml)", path=run_dir)
    config = build_config({"out": str(run_dir)}, config_file)  # this folder, wherever retry runs from
    discover(config.dataset, config.catalog)  # a dataset that moved fails before anything is revived
    if announce is not None:
        announce(config)
    revived = revive_dead(run_dir, clips, all_dead)
    return revived, run(config, **run_options)
