"""The ledger's durability: an intent is on disk before it returns; a failed write is final."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from runner.errors import LedgerError
from runner.plan import Plan
from runner.store import ActionState, SqliteStore

from harness import job_actions

ACTIONS = job_actions(3)


def _ledger(path: Path) -> SqliteStore:
    ledger = SqliteStore.open(path)
    ledger.create_run("r", Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
    return ledger


def _outside_view(path: Path) -> dict[str, ActionState]:
    """What another process reading the file sees (``mlrun status`` during a run, or resume)."""
    with SqliteStore.open(path) as other:
        return {r.action.key: r.state for r in other.actions("r")}


def _synchronous_level(ledger: SqliteStore) -> int:
    return int(ledger._db.execute("PRAGMA synchronous").fetchone()[0])


def test_an_intent_is_committed_fully_synced_and_seen_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = _ledger(path)
    ledger.set_action_state("r", ACTIONS[1].key, ActionState.FAILED, now=0.5)
    assert _synchronous_level(ledger) == 1  # NORMAL: an outcome survives a crash of the process
    key = ACTIONS[0].key
    assert ledger.record_intent("r", key, idempotency_key="k", now=1.0) == 1
    assert _synchronous_level(ledger) == 2  # FULL: the intent survives a power loss
    # Not closed (a killed process closes nothing): the intent is already in the file.
    assert _outside_view(path)[key] == ActionState.IN_FLIGHT
    assert ledger.record_intent("r", key, idempotency_key="k", now=2.0) == 2
    ledger.close()


def test_a_failed_transaction_writes_none_of_its_writes(tmp_path: Path) -> None:
    key = ACTIONS[0].key
    with _ledger(tmp_path / "ledger.sqlite") as ledger:

        def fail_midway() -> None:
            with ledger.transaction():
                ledger.set_action_state("r", key, ActionState.FAILED, now=1.0)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_midway()
        assert ledger.action_state("r", key) == ActionState.PENDING


def test_a_write_the_database_refuses_raises_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = _ledger(path)
    # Another connection holds the write lock past the busy timeout.
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    ledger._db.execute("PRAGMA busy_timeout=10")  # fail fast instead of after 5 s
    with pytest.raises(LedgerError, match="cannot be written"):
        ledger.record_intent("r", ACTIONS[0].key, idempotency_key="k", now=1.0)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert ledger.action_state("r", ACTIONS[0].key) == ActionState.PENDING
    ledger.close()


def test_job_anomalies_are_appended_once_each(tmp_path: Path) -> None:
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        key = ACTIONS[0].key

        def upsert(status: str, anomaly: str) -> None:
            ledger.upsert_job(
                "r", "j1", key=key, kind="job", status=status, counters={}, created_at=None,
                now=1.0, terminal=status == "completed", anomaly=anomaly,
            )  # fmt: skip

        upsert("pending", "late")
        ledger.add_job_anomaly("r", "j1", "late")
        ledger.add_job_anomaly("r", "j1", "lost")
        upsert("completed", "lost")
        (job,) = ledger.jobs("r")
        assert job.anomalies == ("late", "lost")
        assert job.status == "completed"


def test_a_write_after_close_is_refused_not_dropped(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.sqlite")
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.set_action_state("r", ACTIONS[0].key, ActionState.FAILED, now=1.0)
