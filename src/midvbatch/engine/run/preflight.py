"""The checks a run makes of its clips before any starts: invalid ones are set aside, dead with their reason.

The checks are dataset/validate.py's fast ones, cached in the ledger by the files' size
and time, so a resumed run checks only what changed; a clip whose files were fixed
since is put back in the queue. The clips are read from the ledger a page at a time
(their records, as this run's discovery found them), so a run of a million clips
holds one page of them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from midvbatch.dataset.model import Clip
from midvbatch.engine.ledger import Candidate, Ledger
from midvbatch.errors import DatasetError, ErrorClass, shortage

CHECK_CHUNK = 256  # clips checked, and their findings held, at a time (a MIDV-2020 clip's record is ~20 KB)


@dataclass
class _Scan:
    """What one pass over the candidates found."""

    checked: int = 0  # clips checked afresh (not found in the cache)
    invalid: int = 0
    first_error: str | None = None
    short: bool = False  # the machine ran short: the clips not yet checked are left unchecked


def check_clips(
    ledger: Ledger,
    *,
    discovery: str,
    jobs: int,
    strict: bool,
    dataset: str | Path,
    clock: Callable[[], float],
    log: logging.Logger,
) -> None:
    """Validate the clips still to run that discovery `discovery` found (fast checks, cached by file size and
    time); set invalid ones aside, dead, and put back those fixed since. With `strict`, an invalid clip is an
    error (DatasetError) instead, and nothing is marked."""
    started = time.monotonic()
    scan = _pass(ledger, discovery, jobs, log, None if strict else clock)
    if scan.checked:
        log.info("checked %d clips in %.1f s", scan.checked, time.monotonic() - started)
    if not strict:
        return
    if scan.invalid:
        raise DatasetError(
            f"{scan.invalid} selected clip(s) invalid, first: {scan.first_error}; `midvbatch validate` "
            "lists them all (or run without --strict to set them aside)",
            path=dataset,
        )
    _pass(ledger, discovery, jobs, log, clock)  # (every clip found in the cache now: marks only, revivals)


def _pass(ledger: Ledger, discovery: str, jobs: int, log: logging.Logger, clock: Callable[[], float] | None) -> _Scan:
    """One pass over the candidates, page by page: check those not in the cache; with a `clock`, mark them."""
    scan = _Scan()
    for page in ledger.check_candidates(discovery, CHECK_CHUNK):
        clips = {task_id: Clip.from_record(json.loads(record)) for task_id, _, record, _ in page}
        problems, unchecked = _check_page(ledger, page, clips, jobs, log, scan)
        for task_id, _, _, _ in page:
            if problems.get(task_id):
                scan.invalid += 1
                scan.first_error = scan.first_error or problems[task_id][0]
        if clock is not None:
            _mark(ledger, page, clips, problems, unchecked, clock(), log)
    return scan


def _check_page(
    ledger: Ledger, page: list[Candidate], clips: dict[int, Clip], jobs: int, log: logging.Logger, scan: _Scan
) -> tuple[dict[int, list[str]], set[int]]:
    """The problems of each clip of a page (from the cache, or checked now and stored); and the clips left
    unchecked because the machine ran short."""
    from midvbatch.dataset.validate import check_clips as validate
    from midvbatch.dataset.validate import clip_signature

    problems: dict[int, list[str]] = {}
    fresh = []
    for task_id, _, _, known in page:
        signature = clip_signature(clips[task_id])
        if known is not None and known[0] == signature:
            problems[task_id] = known[1]
        else:
            fresh.append((task_id, signature))
    if not fresh or scan.short:
        return problems, {task_id for task_id, _ in fresh}
    try:
        found = validate([clips[task_id] for task_id, _ in fresh], jobs=jobs)
    except Exception as exc:
        short = shortage(exc)
        if short is None:
            raise
        log.warning("the machine ran out of %s checking the clips (%s): the rest run unchecked", short, exc)
        scan.short = True
        return problems, {task_id for task_id, _ in fresh}
    stored = [(clips[t].id, sig, [str(p) for p in found.get(clips[t].id, ())]) for t, sig in fresh]
    ledger.store_validation(stored)
    problems.update({task_id: messages for (task_id, _), (_, _, messages) in zip(fresh, stored, strict=True)})
    scan.checked += len(fresh)
    return problems, set()


def _mark(
    ledger: Ledger,
    page: list[Candidate],
    clips: dict[int, Clip],
    problems: dict[int, list[str]],
    unchecked: set[int],
    now: float,
    log: logging.Logger,
) -> None:
    """Set a page's invalid clips aside (dead, class invalid), and put back those valid again."""
    with ledger.transaction():
        for task_id, state, _, _ in page:
            if task_id in unchecked:
                continue
            msgs, clip_id = problems.get(task_id), clips[task_id].id
            if msgs and state != "dead":
                more = f" (+{len(msgs) - 1} more)" if len(msgs) > 1 else ""
                ledger.fail(
                    task_id,
                    now=now,
                    state="dead",
                    error_class=ErrorClass.INVALID,
                    error=f"invalid: {msgs[0]}{more}",
                    stage="check",
                )
                log.error("%s invalid: %s%s", clip_id, msgs[0], more, extra={"clip": clip_id, "stage": "check"})
            elif not msgs and state == "dead":
                ledger.revive([task_id])  # its files were fixed since
                log.info("%s valid again: back in the queue", clip_id, extra={"clip": clip_id})
