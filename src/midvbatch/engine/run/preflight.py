"""The checks a run makes of its clips before any starts: invalid ones are set aside, dead with their reason.

The checks are dataset/validate.py's fast ones, cached in the ledger by the files' size
and time, so a resumed run checks only what changed; a clip whose files were fixed
since is put back in the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from midvbatch.dataset.model import Clip
from midvbatch.engine.ledger import Ledger
from midvbatch.errors import DatasetError, ErrorClass, shortage

CHECK_CHUNK = 2000  # clips checked, and their findings held, at a time


def check_clips(
    ledger: Ledger,
    clips: Mapping[str, Clip],
    *,
    jobs: int,
    strict: bool,
    dataset: str | Path,
    clock: Callable[[], float],
    log: logging.Logger,
) -> None:
    """Validate the clips still to run (fast checks, cached by file size and time); set invalid ones aside.

    Clips go through in chunks, so a run of a million clips holds one chunk's findings at a
    time. With `strict`, an invalid clip is an error (DatasetError) instead.
    """
    candidates = [(task_id, clip, state) for task_id, clip, state in ledger.check_candidates() if clip in clips]
    started = time.monotonic()
    invalid, unchecked, checked = _check(ledger, candidates, clips, jobs, log)
    if checked:
        log.info("checked %d clips in %.1f s", checked, time.monotonic() - started)
    if invalid and strict:
        first_error = next(iter(invalid.values()))[0]
        raise DatasetError(
            f"{len(invalid)} selected clip(s) invalid, first: {first_error}; `midvbatch validate` "
            "lists them all (or run without --strict to set them aside)",
            path=dataset,
        )
    with ledger.transaction():
        for task_id, clip_id, state in candidates:
            msgs = invalid.get(clip_id)
            if clip_id in unchecked:
                continue
            if msgs and state != "dead":
                more = f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else ""
                ledger.fail(
                    task_id,
                    now=clock(),
                    state="dead",
                    error_class=ErrorClass.INVALID,
                    error=f"invalid: {msgs[0]}{more}",
                    stage="check",
                )
                log.error("%s invalid: %s%s", clip_id, msgs[0], more, extra={"clip": clip_id, "stage": "check"})
            elif not msgs and state == "dead":
                ledger.revive([task_id])  # its files were fixed since
                log.info("%s valid again: back in the queue", clip_id, extra={"clip": clip_id})


def _check(
    ledger: Ledger, candidates: list, clips: Mapping[str, Clip], jobs: int, log: logging.Logger
) -> tuple[dict[str, list[str]], set[str], int]:
    """Check the candidates not in the cache, chunk by chunk; return (problems of the invalid ones, clips left
    unchecked because the machine ran short, how many were checked)."""
    from midvbatch.dataset.validate import check_clips as validate
    from midvbatch.dataset.validate import clip_signature

    cache = ledger.validation_cache()
    invalid: dict[str, list[str]] = {}
    unchecked: set[str] = set()  # clips left unchecked: the machine ran short (threads, descriptors)
    checked = 0
    for first in range(0, len(candidates), CHECK_CHUNK):
        fresh = []
        for _, clip_id, _ in candidates[first : first + CHECK_CHUNK]:
            clip = clips[clip_id]
            signature = clip_signature(clip)
            known = cache.pop(clip_id, None)
            if known is not None and known[0] == signature:
                if known[1]:
                    invalid[clip_id] = known[1]
            else:
                fresh.append((clip, signature))
        if not fresh:
            continue
        if unchecked:  # the machine ran short on an earlier chunk
            unchecked.update(c.id for c, _ in fresh)
            continue
        try:
            found = validate([c for c, _ in fresh], jobs=jobs)
        except Exception as exc:
            short = shortage(exc)
            if short is None:
                raise
            log.warning("the machine ran out of %s checking the clips (%s): the rest run unchecked", short, exc)
            unchecked.update(c.id for c, _ in fresh)
            continue
        ledger.store_validation((c.id, sig, [str(p) for p in found.get(c.id, ())]) for c, sig in fresh)
        invalid.update({clip_id: [str(p) for p in problems] for clip_id, problems in found.items()})
        checked += len(fresh)
    return invalid, unchecked, checked
