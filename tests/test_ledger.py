"""The ledger on its own: queue order, batched transactions, artifacts, errors as one line."""

from __future__ import annotations

import os

import pytest

from midvbatch.engine.ledger import Completion, Ledger, NewTask
from midvbatch.errors import LedgerError


def _ledger(tmp_path, n=6) -> Ledger:
    ledger = Ledger(tmp_path)
    ledger.add_tasks(
        NewTask(f"C{i:02d}", "doc", "TA", None, 30, priority, 1.0) for i, priority in enumerate([0, 5, 0, 5, 0, 0][:n])
    )
    return ledger


def test_ledger_next_ready_merges_pending_and_retryable_in_queue_order(tmp_path):
    ledger = _ledger(tmp_path)
    ids = {t.clip: t.id for t in ledger.tasks()}
    ledger.mark_running_many([ids["C01"], ids["C02"]], now=1.0)
    ledger.fail(ids["C01"], now=2.0, state="failed", error_class="transient", error="x", not_before=10.0)
    ledger.fail(ids["C02"], now=2.0, state="failed", error_class="transient", error="x", not_before=None)
    assert [t.clip for t in ledger.next_ready(10, now=5.0)] == ["C03", "C00", "C02", "C04", "C05"]
    assert [t.clip for t in ledger.next_ready(10, now=11.0)] == ["C01", "C03", "C00", "C02", "C04", "C05"]
    assert [t.clip for t in ledger.next_ready(2, now=11.0)] == ["C01", "C03"]
    # only the clips checked so far (task ids up to `through`), pending or retryable alike
    assert [t.clip for t in ledger.next_ready(10, now=11.0, through=ids["C02"])] == ["C01", "C00", "C02"]
    assert ledger.next_ready(10, now=11.0, through=0) == []
    ledger.close()


def test_ledger_nested_transactions_commit_once_and_roll_back_together(tmp_path):
    ledger = _ledger(tmp_path)
    ids = [t.id for t in ledger.tasks()]
    with pytest.raises(RuntimeError):
        with ledger.transaction():
            ledger.mark_running_many(ids[:2], now=1.0)  # a transaction of its own, joined to the outer one
            raise RuntimeError("boom")
    assert ledger.counts()["running"] == 0
    with ledger.transaction():
        attempts = ledger.mark_running_many(ids[:2], now=1.0)
    assert attempts == {ids[0]: 1, ids[1]: 1} and ledger.counts()["running"] == 2
    with ledger.transaction(), pytest.raises(AssertionError):
        ledger.claim_artifacts(ids[0], ["frames/x.png"])  # must be durable before any rename
    ledger.close()


def test_ledger_artifacts_are_claimed_then_recorded(tmp_path):
    ledger = _ledger(tmp_path, 1)
    task = ledger.tasks()[0].id
    ledger.claim_artifacts(task, ["frames/a.png"])
    assert (
        ledger.artifact_record("frames/a.png") == (task, None, None) and ledger.artifact_record("frames/b.png") is None
    )
    ledger.mark_running_many([task], now=1.0)
    ledger.complete_many([Completion(task, 2.0, [], None, None, 1.0, {}, None, None, [("frames/a.png", 12, 34)])])
    assert ledger.artifacts() == [("frames/a.png", 12, 34)]
    ledger.restart()  # tasks go first; the records stay until the files are removed
    assert ledger.counts() == dict.fromkeys(ledger.counts(), 0) and ledger.artifacts() == [("frames/a.png", 12, 34)]
    ledger.forget_artifacts()
    assert ledger.artifacts() == []
    ledger.close()


def test_ledger_sqlite_errors_are_ledger_errors_in_one_line(tmp_path):
    ledger = _ledger(tmp_path, 2)
    ledger.close()
    path = tmp_path / "ledger.sqlite"
    data = bytearray(path.read_bytes())
    data[100 : len(data)] = os.urandom(len(data) - 100)  # the schema pages too
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerError) as caught:
        Ledger(tmp_path, check=True)
    assert "damaged ledger" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(LedgerError):
        Ledger(tmp_path, readonly=True)


def test_ledger_notices_being_deleted_or_replaced(tmp_path):
    ledger = _ledger(tmp_path, 1)
    ledger.check_identity()
    os.rename(tmp_path / "ledger.sqlite", tmp_path / "elsewhere.sqlite")
    with pytest.raises(LedgerError, match="deleted"):
        ledger.check_identity()
    (tmp_path / "ledger.sqlite").write_bytes(b"")
    with pytest.raises(LedgerError, match="replaced"):
        ledger.check_identity()
    ledger.close()


def test_ledger_refuses_a_change_of_state_its_transitions_do_not_allow(tmp_path):
    """A clip is marked done only from running, running only from pending or failed: a bug that records a clip
    twice, or runs a done one, is a LedgerError, not a silent overwrite."""
    from midvbatch.engine.ledger import TRANSITIONS, Completion, TaskState

    assert set(TRANSITIONS) == set(TaskState)
    ledger = Ledger(tmp_path)
    ledger.add_tasks([NewTask("C01", "01_alb_id", "CA", None, 30, 0, 1.0)])
    [row] = ledger.next_ready(1, 0.0)
    with pytest.raises(LedgerError, match=r"1 of 1 clip\(s\) could not be marked done: only a clip running can"):
        ledger.complete_many([Completion(row.id, 1.0, [], None, None, 1.0, {}, None, None, [])])
    assert ledger.mark_running_many([row.id], 1.0) == {row.id: 1}
    ledger.complete_many([Completion(row.id, 2.0, [], None, None, 1.0, {}, None, None, [])])
    with pytest.raises(LedgerError, match="could not be marked running: only a clip failed or pending can"):
        ledger.mark_running_many([row.id], 3.0)
    with pytest.raises(LedgerError, match="could not be marked failed"):
        ledger.fail(row.id, now=4.0, state="failed", error_class="crash", error="x")
    assert ledger.counts()["done"] == 1
    ledger.close()


def test_ledger_schema_is_versioned_and_an_unversioned_ledger_is_brought_up_to_date(tmp_path):
    """PRAGMA user_version counts the migrations a ledger has had; one written before the schema was versioned
    (no clip scores column) gains the column, and one newer than this midvbatch is refused in one line."""
    import sqlite3

    from midvbatch.engine.ledger import MIGRATIONS

    Ledger(tmp_path).close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()

    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "ledger.sqlite")
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE clips (task INTEGER PRIMARY KEY, result TEXT);"
        "INSERT INTO clips VALUES (1, '{}');"
    )
    db.close()
    Ledger(old).close()
    db = sqlite3.connect(old / "ledger.sqlite")
    assert [r[1] for r in db.execute("PRAGMA table_info(clips)")] == ["task", "result", "scores"]
    assert db.execute("SELECT result FROM clips").fetchall() == [("{}",)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match=r"schema is version \d+, newer than this midvbatch knows"):
        Ledger(old)


def test_ledger_an_sqlite_report_of_several_lines_is_one_line(tmp_path):
    """SQLite's integrity report of a damaged file spans lines ("*** in database main ***", then a line per
    page): the error says it on one."""
    import sqlite3

    from midvbatch.engine.ledger import _ledger_error

    report = "*** in database main ***\nPage 10: Extends off end of page\n"
    error = _ledger_error(sqlite3.DatabaseError(report), tmp_path / "ledger.sqlite")
    assert "\n" not in str(error)
    assert str(error).endswith("damaged ledger: *** in database main *** Page 10: Extends off end of page")
