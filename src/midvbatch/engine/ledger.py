"""The ledger of a run: one SQLite file (WAL) in RUN_DIR, written by the orchestrator only.

Tables: ``meta`` (key/value: configuration fingerprint, live snapshot), ``tasks`` (one
per clip: state, attempts, stage, error, timings), ``frames`` (per-frame results),
``clips`` (per-clip results), ``events``.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A commit is in the WAL
file, in the operating system's hands, before ``commit()`` returns, so a killed
orchestrator (SIGKILL, crash) loses nothing it committed; only a power cut can lose the
last transactions, which a resumed run then redoes. ``synchronous=FULL`` (fsync per
commit) would also survive that, at several milliseconds per clip.

A clip's results and its ``done`` mark are written in one transaction.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from midvbatch.errors import LedgerError
from midvbatch.pipeline.prediction import valid_text
from midvbatch.runfolder import LEDGER as LEDGER_NAME
from midvbatch.runfolder import read_marker


class TaskState(StrEnum):
    """Where a clip stands in the ledger."""

    PENDING = "pending"  # queued
    RUNNING = "running"  # handed to a worker
    DONE = "done"  # its results recorded
    FAILED = "failed"  # an attempt failed: retried once its not_before time has passed
    DEAD = "dead"  # no retry left, a permanent failure, or set aside by the run's checks


STATES = tuple(s.value for s in TaskState)  # (plain strings: the keys of counts() and of what readers print)

# The only changes of state a clip may make: each state, and the states it may be reached from. Every UPDATE of
# a clip's state is guarded by this table; a change it does not allow is a LedgerError (never a silent overwrite).
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.RUNNING: frozenset({TaskState.PENDING, TaskState.FAILED}),  # dispatched
    TaskState.DONE: frozenset({TaskState.RUNNING}),  # its outcome recorded
    TaskState.FAILED: frozenset({TaskState.RUNNING}),  # an attempt failed, retries left
    # none left (running); set aside by the checks before the run (pending, failed)
    TaskState.DEAD: frozenset({TaskState.RUNNING, TaskState.PENDING, TaskState.FAILED}),
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.DEAD}),  # released, recovered; revived
}


def _from(state: TaskState) -> str:
    """The SQL condition that a clip may change to `state` (see TRANSITIONS). (The unary + keeps SQLite on the
    primary key of the clips named: on the queue's index by state, it would walk every pending clip.)"""
    return "+state IN (" + ", ".join(f"'{s}'" for s in sorted(TRANSITIONS[state])) + ")"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    clip TEXT UNIQUE NOT NULL,
    document TEXT NOT NULL,
    code TEXT NOT NULL,
    video TEXT,
    frames INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    position INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT,
    error_class TEXT,
    error TEXT,
    exitcode INTEGER,
    signal INTEGER,
    traceback TEXT,
    not_before REAL,
    started_at REAL,
    finished_at REAL,
    wall_seconds REAL,
    stage_seconds TEXT,
    cpu_seconds REAL,
    peak_rss INTEGER,
    frames_done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (state, priority DESC, position);
CREATE TABLE IF NOT EXISTS frames (
    task INTEGER NOT NULL REFERENCES tasks(id),
    frame INTEGER NOT NULL,
    time REAL,
    seconds REAL,
    result TEXT,
    scores TEXT,
    PRIMARY KEY (task, frame)
);
CREATE TABLE IF NOT EXISTS clips (
    task INTEGER PRIMARY KEY REFERENCES tasks(id),
    result TEXT,
    scores TEXT
);
CREATE TABLE IF NOT EXISTS validation (
    clip TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    errors TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    path TEXT PRIMARY KEY,
    task INTEGER NOT NULL,
    bytes INTEGER,
    mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    clip TEXT,
    attempt INTEGER,
    stage TEXT,
    message TEXT NOT NULL
);
"""


def _clip_scores(db: sqlite3.Connection) -> None:
    if "scores" not in _columns(db, "clips"):  # (a ledger made before clip scores, when it was not versioned)
        db.execute("ALTER TABLE clips ADD COLUMN scores TEXT")


# The ledger's schema, version by version: PRAGMA user_version is how many of these a ledger has had.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("the tables: meta, tasks, frames, clips, validation, artifacts, events", lambda db: _create(db, _SCHEMA)),
    ("clips.scores: a clip result's text fields scored", _clip_scores),
    (
        "clip_records: each clip as the last discovery found it, with that discovery's mark (apart from tasks, "
        "whose scans stay short)",
        lambda db: _create(
            db,
            "CREATE TABLE IF NOT EXISTS clip_records (task INTEGER PRIMARY KEY REFERENCES tasks(id), "
            "discovery TEXT NOT NULL, record TEXT NOT NULL)",
        ),
    ),
)


def _create(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the ledger's schema up to MIGRATIONS, each step in its own transaction with its version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise LedgerError(
            f"the ledger's schema is version {version}, newer than this midvbatch knows ({len(MIGRATIONS)}): "
            "read it with the midvbatch that wrote it",
            path=path,
        )
    for number, (_, step) in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _open_writable(path: Path, check: bool) -> sqlite3.Connection:
    """Open the ledger for the run (WAL), check it with `check`, and bring its schema up to date."""
    try:
        raw = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the ledger: {exc}", path=path) from None
    try:
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        if check:
            problems = [" ".join(str(r[0]).split()) for r in raw.execute("PRAGMA quick_check(3)")]  # (one line each)
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
        _migrate(raw, path)
    except sqlite3.DatabaseError as exc:
        raw.close()
        error = _ledger_error(exc, path)  # a full disk or a lock is not damage
        if error.message.startswith("damaged ledger"):
            error = LedgerError(f"{error.message}; start a new run folder (or --restart into a new --out)", path=path)
        raise error from None
    return raw


def _check_marker(raw: sqlite3.Connection, run_dir: Path, path: Path) -> None:
    """Refuse a ledger that is not its run folder's own (copied or swapped in from another run)."""
    try:
        row = raw.execute("SELECT value FROM meta WHERE key = 'run_id'").fetchone()
    except sqlite3.Error:
        return  # an older ledger: no id to compare
    marker = read_marker(run_dir)
    if row and marker is not None and json.loads(row[0]) != marker.run_id:
        raise LedgerError(
            "the ledger is not this run folder's own (its run id differs from midvbatch-run.json)", path=path
        )


def _open_readonly(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """Open read-only; a folder we may not write (archived, shared) is read from a private copy (returned too)."""
    try:
        uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"  # '#' or '?' in a folder name
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        db.execute("SELECT COUNT(*) FROM tasks").fetchone()
        return db, None
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            if "no such table" in str(exc):
                raise LedgerError("not a run folder (the ledger has no tasks)", path=path) from None
            raise LedgerError(f"cannot read the ledger: {exc}", path=path) from None
    except sqlite3.DatabaseError as exc:
        raise _ledger_error(exc, path) from None
    # a WAL ledger in a folder we cannot write: SQLite cannot share it, so read a copy
    try:
        copy = Path(tempfile.mkdtemp(prefix="midvbatch-ledger-")) / LEDGER_NAME
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger: {exc.strerror or exc}", path=path) from None
    try:
        shutil.copyfile(path, copy)
        wal = path.with_name(LEDGER_NAME + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(LEDGER_NAME + "-wal"))
        db = sqlite3.connect(copy, timeout=30, isolation_level=None)
        db.execute("SELECT COUNT(*) FROM tasks").fetchone()
        return db, copy
    except OSError as exc:
        shutil.rmtree(copy.parent, ignore_errors=True)
        raise LedgerError(f"cannot read the ledger: {exc.strerror or exc}", path=path) from None
    except sqlite3.DatabaseError as exc:
        shutil.rmtree(copy.parent, ignore_errors=True)
        raise _ledger_error(exc, path) from None


@dataclass(slots=True)
class TaskRow:
    """A task as the ledger holds it."""

    id: int
    clip: str
    document: str
    code: str
    video: str | None
    frames: int
    priority: int
    cost: float
    state: str
    attempts: int
    stage: str | None
    error_class: str | None
    error: str | None
    exitcode: int | None
    signal: int | None
    traceback: str | None
    not_before: float | None
    started_at: float | None
    finished_at: float | None
    wall_seconds: float | None
    cpu_seconds: float | None
    peak_rss: int | None
    frames_done: int


_TASK_COLUMNS = ", ".join(TaskRow.__dataclass_fields__)


def _ledger_error(exc: sqlite3.Error, path: Path) -> LedgerError:
    """Say in one line what an SQLite error means for the user."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = " ".join(str(exc).split())  # one line, whatever SQLite said (an integrity check's report has several)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return LedgerError(
            f"the disk is full ({text}); the run stopped cleanly: free some space, then run "
            "the same command again to resume",
            path=path,
        )
    if code == sqlite3.SQLITE_READONLY or "readonly" in text:
        return LedgerError(f"cannot write the ledger ({text}): is the run folder read-only?", path=path)
    if (
        isinstance(exc, sqlite3.DatabaseError)
        and not isinstance(exc, sqlite3.OperationalError)
        or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    ):
        return LedgerError(f"damaged ledger: {text}", path=path)
    return LedgerError(f"ledger error: {text}", path=path)


class _Cursor:
    """A cursor whose SQLite errors are LedgerErrors."""

    def __init__(self, cursor: sqlite3.Cursor, path: Path):
        self._cursor, self._path = cursor, path

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        try:
            return self._cursor.fetchone()
        except sqlite3.Error as exc:
            raise _ledger_error(exc, self._path) from None

    def fetchall(self) -> list:
        try:
            return self._cursor.fetchall()
        except sqlite3.Error as exc:
            raise _ledger_error(exc, self._path) from None

    def __iter__(self) -> Iterator:
        try:
            yield from self._cursor
        except sqlite3.Error as exc:
            raise _ledger_error(exc, self._path) from None


class _Connection:
    """An SQLite connection whose errors (damaged file, full disk) are LedgerErrors."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._db, self._path = db, path

    def execute(self, sql: str, args: Any = ()) -> _Cursor:
        try:
            return _Cursor(self._db.execute(sql, args), self._path)
        except sqlite3.Error as exc:
            raise _ledger_error(exc, self._path) from None

    def executemany(self, sql: str, rows: Iterable) -> _Cursor:
        try:
            return _Cursor(self._db.executemany(sql, rows), self._path)
        except sqlite3.Error as exc:
            raise _ledger_error(exc, self._path) from None

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class Completion:
    """A clip's results, to be recorded with its done mark."""

    task_id: int
    now: float
    frames: list[dict] | None
    clip_result: dict | None
    clip_scores: dict | None
    wall_seconds: float
    stage_seconds: dict[str, float]
    cpu_seconds: float | None
    peak_rss: int | None
    artifacts: list[tuple[str, int, int]]  # (path, bytes, mtime_ns) moved into place, claimed before

    def frame_rows(self) -> list[tuple]:
        """Its frames as rows of the frames table (their result and scores are JSON text: see ClipOutcome)."""
        return [
            (self.task_id, f["frame"], f.get("time"), f.get("seconds"), f["result"], f.get("scores"))
            for f in self.frames or ()
        ]

    def clip_row(self) -> tuple:
        """Its clip result as a row of the clips table."""
        scores = json.dumps(self.clip_scores) if self.clip_scores is not None else None
        return (self.task_id, json.dumps(self.clip_result), scores)

    def done_row(self) -> tuple:
        """The values of its tasks row's UPDATE to done (see Ledger.complete_many)."""
        stages = json.dumps(self.stage_seconds)
        frames = len(self.frames or ())
        return (self.now, self.wall_seconds, stages, self.cpu_seconds, self.peak_rss, frames, self.task_id)


@dataclass(frozen=True)
class NewTask:
    """A clip to enter in the ledger."""

    clip: str
    document: str
    code: str
    video: str | None
    frames: int
    priority: int
    cost: float
    record: str | None = None  # the clip as discovery found it (JSON: dataset.model.Clip.to_record)


Candidate = tuple[int, str, str, tuple[str, list[str]] | None]  # id, state, record, (signature, problems) or None


def _columns(db: Any, table: str) -> set[str]:
    """The column names of `table`."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _in_states(column: str, states: Iterable[str] | None) -> tuple[str, tuple[str, ...]]:
    """Return (" WHERE column IN (?, ...)", states) selecting `states`, or ("", ()) for every state."""
    if states is None:
        return "", ()
    chosen = tuple(states)
    return f" WHERE {column} IN ({', '.join('?' * len(chosen))})", chosen


_WAITING = "state IN ('pending', 'failed')"  # a clip still to run: its priority and place may change
_ENQUEUE = (
    "INSERT INTO tasks (clip, document, code, video, frames, priority, cost, position) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (clip) DO UPDATE SET "
    f"priority = CASE WHEN {_WAITING} THEN excluded.priority ELSE priority END, "
    f"cost = CASE WHEN {_WAITING} THEN excluded.cost ELSE cost END, "
    f"position = CASE WHEN {_WAITING} THEN excluded.position ELSE position END"
)
_FOUND = "INSERT OR REPLACE INTO clip_records (task, discovery, record) SELECT id, ?, ? FROM tasks WHERE clip = ?"
# (+t.state: not by the queue's index, which would read and sort every waiting clip for each page: a page walks
# clip_records from where the last one ended)
_CANDIDATES = (
    "SELECT t.id, t.state, r.record, v.signature, v.errors FROM clip_records r JOIN tasks t ON t.id = r.task "
    "LEFT JOIN validation v ON v.clip = t.clip WHERE r.task > ? AND r.discovery = ? AND (+t.state IN "
    "('pending', 'failed') OR (+t.state = 'dead' AND t.error_class = 'invalid')) ORDER BY r.task LIMIT ?"
)
_DONE = (
    "UPDATE tasks SET state = 'done', stage = NULL, finished_at = ?, wall_seconds = ?, stage_seconds = ?, "
    "cpu_seconds = ?, peak_rss = ?, frames_done = ?, error_class = NULL, error = NULL, exitcode = NULL, "
    f"signal = NULL, traceback = NULL WHERE id = ? AND {_from(TaskState.DONE)}"
)


class Ledger:
    """The run's SQLite ledger. Open one per process; only the orchestrator writes.

    Every SQLite error (a damaged file, a full disk) surfaces as a LedgerError: one line,
    never a traceback.
    """

    def __init__(self, run_dir: str | Path, *, readonly: bool = False, check: bool = False):
        self.path = Path(run_dir) / LEDGER_NAME
        self._copy: Path | None = None
        self._depth = 0  # nesting of transaction() blocks
        if readonly:
            if not self.path.is_file():
                raise LedgerError("not a run folder (no ledger.sqlite)", path=Path(run_dir))
            raw, self._copy = _open_readonly(self.path)
            try:
                _check_marker(raw, Path(run_dir), self.path)
            except LedgerError:
                raw.close()
                self._drop_copy()
                raise
        else:
            raw = _open_writable(self.path, check)
            self.identity = self._identity()
        raw.row_factory = sqlite3.Row
        self.db = _Connection(raw, self.path)

    def _drop_copy(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy.parent, ignore_errors=True)
            self._copy = None

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def check_identity(self) -> None:
        """Raise LedgerError if the ledger file was deleted or replaced since it was opened.

        An open SQLite file that was unlinked still takes writes, which then reach no one.
        """
        now = self._identity()
        if now != self.identity:
            what = "deleted" if now is None else "replaced by another file"
            raise LedgerError(
                f"the ledger was {what} while the run was running; stopping. Results of clips "
                "finished since then are lost: run the same command again (with --restart if "
                "the ledger is gone) to redo them",
                path=self.path,
            )

    def finish(self) -> None:
        """Fold the WAL into the ledger file and leave it in rollback mode, readable from a read-only folder."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("PRAGMA journal_mode=DELETE")
        except LedgerError:
            pass  # the next run or reader copes with a WAL file

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
        self._drop_copy()

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        """Run the block in one IMMEDIATE transaction; roll back if it raises.

        Nested blocks join the outer transaction: the orchestrator records all the clips
        finished since its last look in one commit.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except LedgerError:
                    pass  # the first error says what went wrong
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    # meta ------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return a JSON value stored under key."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under key (its own transaction)."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # tasks -----------------------------------------------------------------------------

    def add_tasks(self, tasks: Iterable[NewTask], discovery: str | None = None) -> int:
        """Enter clips not yet in the ledger; refresh priority and cost of pending ones, and every one's record
        and `discovery` mark (the clips a discovery found carry its mark). Return how many are new."""
        with self.transaction() as db:
            position = db.execute("SELECT COALESCE(MAX(position), 0) FROM tasks").fetchone()[0]
            before = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            for t in tasks:
                position += 1
                db.execute(_ENQUEUE, (t.clip, t.document, t.code, t.video, t.frames, t.priority, t.cost, position))
                if t.record is not None and discovery is not None:
                    db.execute(_FOUND, (discovery, t.record, t.clip))
            return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] - before

    def note_found(self, records: Iterable[tuple[str, str]], discovery: str) -> None:
        """Give the clips already in the ledger that a discovery found, but that are not enqueued again, their
        (clip, record) as found now and its `discovery` mark."""
        with self.transaction() as db:
            db.executemany(_FOUND, ((discovery, record, clip) for clip, record in records))

    def records(self, task_ids: Iterable[int], discovery: str) -> dict[int, str]:
        """The records (JSON) of those of these clips that discovery `discovery` found (see add_tasks)."""
        ids = list(task_ids)
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT task, record FROM clip_records WHERE task IN ({marks}) AND discovery = ?",
            (*ids, discovery),
        )
        return dict(rows.fetchall())

    def recover(self) -> int:
        """Return tasks left running by a dead orchestrator to pending; return how many.

        Their attempt is not counted: it was cut short, it did not fail, so a run killed
        many times does not use up a clip's retries.
        """
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE tasks SET state = 'pending', stage = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE state = 'running'"
            )
            return cur.rowcount

    def next_ready(
        self, limit: int, now: float, exclude: AbstractSet[int] = frozenset(), through: int | None = None
    ) -> list[TaskRow]:
        """Return up to `limit` tasks ready to dispatch, in queue order; with `through`, only
        task ids up to it (the clips checked so far). Ready: pending, or failed whose not-before time has passed.
        Two index walks (one per state) merged here: one query with OR would sort every pending task each time."""
        n = limit + len(exclude)
        bound, bounds = ("AND id <= ? ", (through,)) if through is not None else ("", ())
        rows = self.db.execute(
            f"SELECT {_TASK_COLUMNS}, position FROM tasks WHERE state = 'pending' {bound}"
            "ORDER BY priority DESC, position LIMIT ?",
            (*bounds, n),
        ).fetchall()
        failed = self.db.execute(
            f"SELECT {_TASK_COLUMNS}, position FROM tasks WHERE state = 'failed' {bound}"
            "AND (not_before IS NULL OR not_before <= ?) ORDER BY priority DESC, position LIMIT ?",
            (*bounds, now, n),
        ).fetchall()
        if failed:
            rows = sorted(rows + failed, key=lambda r: (-r["priority"], r["position"]))
        return [TaskRow(**{k: r[k] for k in TaskRow.__dataclass_fields__}) for r in rows if r["id"] not in exclude][
            :limit
        ]

    def next_retry_time(self) -> float | None:
        """Return when the next failed task may be retried; None if none waits."""
        row = self.db.execute("SELECT MIN(COALESCE(not_before, 0)) FROM tasks WHERE state = 'failed'").fetchone()
        return row[0]

    def mark_running_many(self, task_ids: list[int], now: float) -> dict[int, int]:
        """Mark tasks running and count their attempt, in one transaction; return {task id: attempt number}."""
        if not task_ids:
            return {}
        marks = ", ".join("?" * len(task_ids))
        with self.transaction() as db:  # (no RETURNING: older SQLite libraries lack it)
            changed = db.execute(
                "UPDATE tasks SET state = 'running', attempts = attempts + 1, started_at = ?, "
                f"stage = 'queued', not_before = NULL WHERE id IN ({marks}) AND {_from(TaskState.RUNNING)}",
                (now, *task_ids),
            ).rowcount
            _check_changed(self.path, changed, len(set(task_ids)), TaskState.RUNNING)
            return dict(db.execute(f"SELECT id, attempts FROM tasks WHERE id IN ({marks})", task_ids).fetchall())

    def complete_many(self, done: list[Completion]) -> None:
        """Write the results of finished clips and mark them done, all in one transaction (or the caller's).

        A clip is completed once (only --restart, which empties these tables, runs it
        again): there are no earlier results to delete; OR REPLACE keeps it idempotent.
        """
        if not done:
            return
        with self.transaction() as db:
            artifacts = [(size, mtime, path) for c in done for path, size, mtime in c.artifacts]
            if artifacts:
                db.executemany("UPDATE artifacts SET bytes = ?, mtime_ns = ? WHERE path = ?", artifacts)
            frames = [row for c in done for row in c.frame_rows()]
            if frames:
                db.executemany(
                    "INSERT OR REPLACE INTO frames (task, frame, time, seconds, result, scores) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    frames,
                )
            clips = [c.clip_row() for c in done if c.clip_result is not None]
            if clips:
                db.executemany("INSERT OR REPLACE INTO clips (task, result, scores) VALUES (?, ?, ?)", clips)
            changed = db.executemany(_DONE, [c.done_row() for c in done]).rowcount
            _check_changed(self.path, changed, len(done), TaskState.DONE)
            db.executemany(
                "INSERT INTO events (ts, level, clip, attempt, stage, message) "
                "SELECT ?, 'info', clip, attempts, NULL, 'done' FROM tasks WHERE id = ?",
                [(time.time(), c.task_id) for c in done],
            )

    def fail(
        self,
        task_id: int,
        *,
        now: float,
        state: str,
        error_class: str,
        error: str,
        stage: str | None = None,
        exitcode: int | None = None,
        signal: int | None = None,
        traceback: str | None = None,
        not_before: float | None = None,
        wall_seconds: float | None = None,
    ) -> None:
        """Record a failed attempt: state 'failed' (will retry after not_before) or 'dead'."""
        target = TaskState(state)
        assert target in (TaskState.FAILED, TaskState.DEAD)
        error = valid_text(error)  # SQLite holds UTF-8: a processor's message may carry lone surrogates
        traceback = valid_text(traceback) if traceback is not None else None
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE tasks SET state = ?, error_class = ?, error = ?, stage = COALESCE(?, stage), "
                "exitcode = ?, signal = ?, traceback = ?, not_before = ?, finished_at = ?, wall_seconds = ? "
                f"WHERE id = ? AND {_from(target)}",
                (state, error_class, error, stage, exitcode, signal, traceback, not_before, now, wall_seconds, task_id),
            ).rowcount
            _check_changed(self.path, changed, 1, target)
            self._event(
                db, task_id, "warning" if state == "failed" else "error", f"{state}: {error_class}: {error}", stage
            )

    def release(self, task_ids: Iterable[int]) -> None:
        """Return running tasks to pending without counting their attempt (interrupted)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE tasks SET state = 'pending', stage = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE id = ? AND state = 'running'",
                [(i,) for i in task_ids],
            )

    def restart(self) -> None:
        """Forget every task and result (the events stay). The artifact records stay until
        forget_artifacts(): the files are removed in between, so an interruption leaves
        no done clip without its files and no file midvbatch wrote unrecorded."""
        with self.transaction() as db:
            for table in ("frames", "clips", "validation", "clip_records", "tasks"):
                db.execute(f"DELETE FROM {table}")

    def forget_artifacts(self) -> None:
        """Drop the records of artifacts removed by a restart."""
        with self.transaction() as db:
            db.execute("DELETE FROM artifacts")

    # artifacts -------------------------------------------------------------------------

    def claim_artifacts(self, task_id: int, paths: Iterable[str]) -> None:
        """Record, before they are moved into place, the run-folder paths a task's artifacts will take.

        Committed at once (never inside another transaction): the claim must be durable
        before the first rename.
        """
        assert not self._depth, "artifacts are claimed in a transaction of their own"
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO artifacts (path, task) VALUES (?, ?)", [(p, task_id) for p in paths])

    def artifact_record(self, path: str) -> tuple[int, int | None, int | None] | None:
        """Return (task, bytes, mtime_ns) recorded for artifact `path`; bytes None: claimed, not yet in place."""
        row = self.db.execute("SELECT task, bytes, mtime_ns FROM artifacts WHERE path = ?", (path,)).fetchone()
        return tuple(row) if row else None

    def artifacts(self) -> list[tuple[str, int | None, int | None]]:
        """Return (path, bytes, mtime_ns) of every artifact moved into place."""
        return [tuple(r) for r in self.db.execute("SELECT path, bytes, mtime_ns FROM artifacts")]

    def _event(self, db: _Connection, task_id: int, level: str, message: str, stage: str | None) -> None:
        db.execute(
            "INSERT INTO events (ts, level, clip, attempt, stage, message) "
            "SELECT ?, ?, clip, attempts, ?, ? FROM tasks WHERE id = ?",
            (time.time(), level, stage, valid_text(message), task_id),
        )

    def log_event(
        self, level: str, message: str, clip: str | None = None, attempt: int | None = None, stage: str | None = None
    ) -> None:
        """Append an event."""
        self.db.execute(
            "INSERT INTO events (ts, level, clip, attempt, stage, message) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), level, clip, attempt, stage, valid_text(message)),
        )

    # reading ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Return the number of tasks in each state (every state present, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"):
            counts[state] = n
        return counts

    def tasks(self, states: Iterable[str] | None = None) -> list[TaskRow]:
        """Return tasks in queue order, optionally only those in `states`."""
        where, args = _in_states("state", states)
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks{where} ORDER BY priority DESC, position"
        return [TaskRow(**dict(r)) for r in self.db.execute(sql, args)]

    def frame_results(self, clips: Iterable[str] | None = None) -> Iterator[sqlite3.Row]:
        """Yield (clip, document, code, frame, time, seconds, result, scores) of done clips (of `clips` only, when
        given), in queue order."""
        chosen = list(clips) if clips is not None else None
        where, args = ("", ()) if chosen is None else (f" AND t.clip IN ({','.join('?' * len(chosen))})", tuple(chosen))
        yield from self.db.execute(
            "SELECT t.clip, t.document, t.code, f.frame, f.time, f.seconds, f.result, f.scores FROM frames f "
            f"JOIN tasks t ON t.id = f.task WHERE t.state = 'done'{where} ORDER BY t.priority DESC, t.position, f.frame",
            args,
        )

    def clip_rows(self, states: Iterable[str] | None = None) -> Iterator[sqlite3.Row]:
        """Yield every task (optionally only those in `states`) in queue order: its columns, its
        per-stage wall times (``stage_seconds``, JSON), its clip result (``clip_result``, JSON
        or None when it has none) and that result's scores (``clip_scores``, JSON or None)."""
        where, args = _in_states("t.state", states)
        scores = "c.scores" if "scores" in _columns(self.db, "clips") else "NULL"  # read-only: an older ledger
        sql = (
            f"SELECT {', '.join('t.' + c for c in TaskRow.__dataclass_fields__)}, t.stage_seconds, "
            f"c.result AS clip_result, {scores} AS clip_scores FROM tasks t LEFT JOIN clips c ON c.task = t.id{where}"
        )
        yield from self.db.execute(sql + " ORDER BY t.priority DESC, t.position", args)

    def check_candidates(self, discovery: str, page: int = 2000, after: int = 0) -> Iterator[list[Candidate]]:
        """Yield, a page at a time in the order they were entered (task ids above `after`), (id, state, record,
        the clip's validation or None) of the clips discovery `discovery` found that a run checks first: pending,
        failed, and dead as invalid. (Its rows may change state between pages: pending or failed to dead, dead
        to pending.)"""
        last = after
        while True:
            rows = self.db.execute(_CANDIDATES, (last, discovery, page)).fetchall()
            if not rows:
                return
            yield [(r[0], r[1], r[2], (r[3], json.loads(r[4])) if r[3] is not None else None) for r in rows]
            last = rows[-1][0]

    def store_validation(self, results: Iterable[tuple[str, str, list[str]]]) -> None:
        """Remember (clip, signature, error messages) of clips just validated."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO validation (clip, signature, errors) VALUES (?, ?, ?)",
                [(clip, sig, json.dumps(errors)) for clip, sig, errors in results],
            )

    def error_counts(self) -> dict[str, int]:
        """Return the number of failed and dead clips per error class."""
        return dict(
            self.db.execute(
                "SELECT error_class, COUNT(*) FROM tasks WHERE state IN ('failed', 'dead') GROUP BY error_class "
                "ORDER BY error_class"
            ).fetchall()
        )

    def revive(self, task_ids: Iterable[int]) -> int:
        """Put dead clips back in the queue with fresh attempts; return how many."""
        with self.transaction() as db:
            return db.executemany(
                "UPDATE tasks SET state = 'pending', attempts = 0, not_before = NULL, error_class = NULL, "
                "error = NULL, exitcode = NULL, signal = NULL, traceback = NULL, stage = NULL "
                "WHERE id = ? AND state = 'dead'",
                [(i,) for i in task_ids],
            ).rowcount

    def remaining_frames(self) -> int:
        """Return the estimated frames of every clip not yet done or dead."""
        return self.db.execute(
            "SELECT COALESCE(SUM(frames), 0) FROM tasks WHERE state NOT IN ('done', 'dead')"
        ).fetchone()[0]


def check_written_by_midvbatch(run_dir: str | Path) -> None:
    """Raise LedgerError unless RUN_DIR's ledger.sqlite was written by a midvbatch run.

    Read-only: never write into an SQLite file some other program left there.
    """
    probe = Ledger(run_dir, readonly=True)
    try:
        if probe.get_meta("fingerprint") is None:
            raise LedgerError(
                "holds a ledger.sqlite that no midvbatch run wrote; give --out a new or empty folder",
                path=Path(run_dir),
            )
    finally:
        probe.close()


def _check_changed(path: Path, changed: int, asked: int, state: TaskState) -> None:
    """Raise LedgerError when fewer clips than `asked` could change to `state` (see TRANSITIONS)."""
    if changed != asked:
        allowed = " or ".join(sorted(TRANSITIONS[state]))
        raise LedgerError(
            f"{asked - changed} of {asked} clip(s) could not be marked {state}: only a clip {allowed} can", path=path
        )


_FOUND_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE clips (
    id TEXT PRIMARY KEY,
    line TEXT,  -- its line of the dataset's fingerprint; NULL: a second copy --docs chose, not counted
    chosen INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    cost REAL NOT NULL,
    frames INTEGER NOT NULL,
    pixels INTEGER,
    document TEXT NOT NULL,
    code TEXT NOT NULL,
    video TEXT,
    record TEXT NOT NULL
) WITHOUT ROWID;
"""
_QUEUE_ORDER = "ORDER BY priority DESC, cost DESC, id"  # scheduler.plan's order: priority, then cost, then id


class _TemporaryStore:
    """A SQLite file of midvbatch's own in the system's temporary folder, removed by `close`: what is kept while
    a large input is read a part at a time. `what` names what it keeps, in its errors."""

    prefix = "midvbatch-"
    what = "data"
    schema = ""

    def __init__(self) -> None:
        try:
            fd, name = tempfile.mkstemp(prefix=self.prefix, suffix=".sqlite")
        except OSError as exc:  # (a temporary folder gone, full or not a folder)
            raise LedgerError(
                f"cannot make a file for {self.what} ({exc.strerror}): set TMPDIR to a folder with room",
                path=tempfile.gettempdir(),
            ) from None
        os.close(fd)
        self.path = Path(name)
        self.db: sqlite3.Connection | None = None
        try:
            self.db = sqlite3.connect(name, isolation_level=None)
            self.db.executescript(self.schema)
        except sqlite3.Error as exc:
            self.close()
            raise self._error(exc) from None

    def close(self) -> None:
        """Remove the file (midvbatch's own)."""
        db, self.db = self.db, None
        if db is not None:
            db.close()
        self.path.unlink(missing_ok=True)

    @property
    def _db(self) -> sqlite3.Connection:
        if self.db is None:
            raise LedgerError(f"{self.what} are no longer kept (closed)", path=self.path)
        return self.db

    def _query(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        text = " ".join(str(exc).split())
        return LedgerError(f"cannot keep {self.what} ({text})", path=self.path)


class FoundClips(_TemporaryStore):
    """The clips a run's discovery found, before the ledger takes them: a SQLite file of its own in the system's
    temporary folder, removed by `close` (see engine/run/discovery.py). A row: (id, fingerprint line or None,
    chosen, priority, cost, frames, pixels or None, document, code, video, record)."""

    prefix = "midvbatch-discovery-"
    what = "the clips discovery found"
    schema = _FOUND_SCHEMA

    def add(self, rows: Iterable[tuple]) -> None:
        """Keep these clips (a later row of the same id replaces an earlier one)."""
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO clips VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def keep_first(self, limit: int) -> None:
        """Leave chosen only the first `limit` chosen clips in queue order."""
        self._query(
            f"UPDATE clips SET chosen = 0 WHERE chosen = 1 AND id NOT IN "
            f"(SELECT id FROM clips WHERE chosen = 1 {_QUEUE_ORDER} LIMIT ?)",
            (limit,),
        )

    def chosen(self) -> int:
        """How many clips are chosen."""
        return self._query("SELECT COUNT(*) FROM clips WHERE chosen = 1").fetchone()[0]

    def fingerprint_lines(self) -> tuple[int, Iterator[str]]:
        """How many clips have a fingerprint line, and their lines in the order of their ids."""
        count = self._query("SELECT COUNT(*) FROM clips WHERE line IS NOT NULL").fetchone()[0]
        rows = self._query("SELECT line FROM clips WHERE line IS NOT NULL ORDER BY id")
        return count, (line for (line,) in rows)

    def typical_frames(self) -> int:
        """The median number of annotated frames of the clips (at least 1)."""
        row = self._query(
            "SELECT frames FROM clips ORDER BY frames LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM clips)"
        ).fetchone()
        return max(1, row[0]) if row else 1

    def largest_frame(self) -> int | None:
        """The most pixels of a frame of the clips, where known; None: unknown for every clip."""
        return self._query("SELECT MAX(pixels) FROM clips").fetchone()[0]

    def enter(self, ledger: Ledger, discovery: str) -> None:
        """Enter the chosen clips in the ledger's queue, in queue order (those there already keep their state); every
        clip that is there already gets its record as found now and the mark of `discovery` (Ledger.add_tasks)."""
        ledger.note_found(self._query("SELECT id, record FROM clips WHERE chosen = 0"), discovery)
        rows = self._query(
            "SELECT id, document, code, video, frames, priority, cost, record FROM clips WHERE chosen = 1 "
            + _QUEUE_ORDER
        )
        ledger.add_tasks((NewTask(*row) for row in rows), discovery)


_STAGED_SCHEMA = """
CREATE TABLE parts (
    clip TEXT NOT NULL,
    frame INTEGER NOT NULL,  -- -1: the clip's own result
    part TEXT NOT NULL,  -- "result" (a whole result), "quad", or "field:NAME"
    place TEXT NOT NULL,  -- where the input said it: FILE:LINE, or FILE: record N
    value TEXT NOT NULL,  -- JSON
    holds INTEGER NOT NULL,  -- a whole result's keys: 1 "quad", 2 "fields" (added), else 0
    PRIMARY KEY (clip, frame, part)
) WITHOUT ROWID;
"""


class StagedPredictions(_TemporaryStore):
    """Predictions read from a file made elsewhere, by clip and frame, before a run scores them: a SQLite file of
    its own in the system's temporary folder (an input of gigabytes is never held), removed by `close`."""

    prefix = "midvbatch-import-"
    what = "the predictions read"
    schema = _STAGED_SCHEMA

    def __init__(self) -> None:
        super().__init__()
        self._query("BEGIN")

    def add(self, clip: str, frame: int, part: str, place: str, value: str, holds: int = 0) -> str | None:
        """Keep one part of a frame's prediction (`frame` -1: of the clip's own result; `holds`: see the schema);
        return the place of an earlier part of the same clip, frame and kind, which this one does not replace,
        else None."""
        cursor = self._query(
            "INSERT INTO parts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (clip, frame, part, place, value, holds),
        )
        if cursor.rowcount:
            return None
        row = self._query("SELECT place FROM parts WHERE clip = ? AND frame = ? AND part = ?", (clip, frame, part))
        return str(row.fetchone()[0])

    def kinds(self) -> set[str]:
        """The kinds of parts kept: "result", "quad", "field" (the first part of "field:NAME")."""
        rows = self._query("SELECT DISTINCT CASE WHEN part LIKE 'field:%' THEN 'field' ELSE part END FROM parts")
        return {kind for (kind,) in rows}

    def clips(self) -> Iterator[tuple[str, list[tuple[int, str, str, int]]]]:
        """Each clip's parts, (frame, part, value, holds) in frame order, clip by clip in the order of their ids."""
        if self._db.in_transaction:
            self._query("COMMIT")
        clip: str | None = None
        parts: list[tuple[int, str, str, int]] = []
        for row in self._query("SELECT clip, frame, part, value, holds FROM parts ORDER BY clip, frame, part"):
            if row[0] != clip:
                if clip is not None:
                    yield clip, parts
                clip, parts = row[0], []
            parts.append((row[1], row[2], row[3], row[4]))
        if clip is not None:
            yield clip, parts
