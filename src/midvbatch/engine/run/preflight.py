"""The checks a run makes of its clips before they start: invalid ones are set aside, dead with their reason.

The checks are dataset/validate.py's fast ones, cached in the ledger by the files' size
and time, so a resumed run checks only what changed; a clip whose files were fixed
since is put back in the queue. The clips are read from the ledger a page at a time
(their records, as this run's discovery found them), so a run of a million clips
holds one page of them.

With --strict every clip is checked before any runs (an invalid one is an error). Else
the first page is checked before the run starts and the rest beside it (`Checking`, a
thread with its own connection to the ledger): the run dispatches only the clips
checked so far, so that its workers start while a large dataset is still being checked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from midvbatch.config import Settings
from midvbatch.dataset.model import Clip
from midvbatch.engine.ledger import Candidate, Ledger
from midvbatch.errors import DatasetError, ErrorClass, shortage

CHECK_CHUNK = 256  # clips checked, and their findings held, at a time (a MIDV-2020 clip's record is ~20 KB)
FIRST_CHECKS = 64  # clips checked before a run without --strict starts (the rest beside it): a quarter second


@dataclass
class _Scan:
    """What one pass over the candidates found."""

    checked: int = 0  # clips checked afresh (not found in the cache)
    invalid: int = 0
    first_error: str | None = None
    short: bool = False  # the machine ran short: the clips not yet checked are left unchecked


def start_checks(
    ledger: Ledger,
    settings: Settings,
    discovery: str,
    opener: Callable[[], Ledger],
    clock: Callable[[], float],
    log: logging.Logger,
) -> Checking | None:
    """Check the clips discovery `discovery` found as the run's settings say: not at all (--no-check), every clip
    before any runs (--strict: check_clips), else the first FIRST_CHECKS now and the rest beside the run (the
    Checking returned). `opener` opens another connection to the run's ledger, for the thread."""
    jobs = max(2, settings.workers)
    if settings.check and settings.strict:
        check_clips(ledger, discovery=discovery, jobs=jobs, dataset=settings.dataset, clock=clock, log=log)
    elif settings.check:
        return Checking(ledger, opener=opener, discovery=discovery, jobs=jobs, clock=clock, log=log)
    return None


def check_clips(
    ledger: Ledger,
    *,
    discovery: str,
    jobs: int,
    dataset: str | Path,
    clock: Callable[[], float],
    log: logging.Logger,
) -> None:
    """Validate every clip still to run that discovery `discovery` found, before any runs (--strict): an invalid
    clip is an error (DatasetError) and nothing is marked; else the clips fixed since are put back."""
    started = time.monotonic()
    scan = _pass(ledger, discovery, jobs, log, None)
    if scan.checked:
        log.info("checked %d clips in %.1f s", scan.checked, time.monotonic() - started)
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
        _page(ledger, page, jobs, log, clock, scan)
    return scan


def _page(
    ledger: Ledger,
    page: list[Candidate],
    jobs: int,
    log: logging.Logger,
    clock: Callable[[], float] | None,
    scan: _Scan,
) -> None:
    """Check one page of candidates (those not in the cache) and count what is invalid; with a `clock`, mark them."""
    clips = {task_id: Clip.from_record(json.loads(record)) for task_id, _, record, _ in page}
    problems, unchecked = _check_page(ledger, page, clips, jobs, log, scan)
    for task_id, _, _, _ in page:
        if problems.get(task_id):
            scan.invalid += 1
            scan.first_error = scan.first_error or problems[task_id][0]
    if clock is not None:
        _mark(ledger, page, clips, problems, unchecked, clock(), log)


class Checking:
    """The checks of a run without --strict: the first FIRST_CHECKS clips now, the rest in a thread beside the run.

    `through` is the highest task id checked so far (the clips are checked in the order
    they were entered), None once all are: the run dispatches no clip above it.
    `failure` is what stopped the thread, if anything did (the run raises it).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        opener: Callable[[], Ledger],
        discovery: str,
        jobs: int,
        clock: Callable[[], float],
        log: logging.Logger,
    ) -> None:
        self.through: int | None = 0
        self.failure: BaseException | None = None
        self._jobs, self._clock, self._log = jobs, clock, log
        self._scan = _Scan()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        first = next(ledger.check_candidates(discovery, FIRST_CHECKS), None)
        if first is not None:
            self._step(ledger, first)
        if first is None or len(first) < FIRST_CHECKS:  # (the first page held them all: nothing left for a thread)
            self._end()
            return
        self._thread = threading.Thread(
            target=self._rest, args=(opener, discovery, first[-1][0]), name="checks", daemon=True
        )
        self._thread.start()

    def waiting(self) -> bool:
        """Whether a run with nothing else to do waits for the checks; raises what stopped the thread, if anything
        did."""
        if self.failure is not None:
            raise self.failure
        return self.through is not None

    def _step(self, ledger: Ledger, page: list[Candidate]) -> None:
        _page(ledger, page, self._jobs, self._log, self._clock, self._scan)
        self.through = page[-1][0] if not self._scan.short else None  # (short: the rest run unchecked)

    def _rest(self, opener: Callable[[], Ledger], discovery: str, after: int) -> None:
        try:
            ledger = opener()
            try:
                for page in ledger.check_candidates(discovery, CHECK_CHUNK, after=after):
                    if self._stop.is_set():
                        return
                    self._step(ledger, page)
            finally:
                ledger.close()
            self._end()
        except BaseException as exc:  # (the run stops on it, as it would on a check before it started)
            self.failure = exc

    def _end(self) -> None:
        if self._scan.checked:
            self._log.info("checked %d clips in %.1f s", self._scan.checked, time.monotonic() - self._started)
        self.through = None

    def stop(self) -> None:
        """Stop checking (after the page being checked) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


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
