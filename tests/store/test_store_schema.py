"""Versioned schemas on each backend: created on first use, migrated, a newer one refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from runner.errors import LedgerError
from runner.plan import Plan
from runner.store import SqliteStore, Store, is_postgres_url, open_store
from runner.store.sql import SCHEMA_VERSION, SqlStore

OPENERS = 4


def _execute(state: str, sql: str) -> list[tuple[object, ...]]:
    """``sql`` through the database's own client, as an operator (or another mlrun) would."""
    if is_postgres_url(state):
        import psycopg  # noqa: PLC0415 - the postgres extra

        with psycopg.connect(state, autocommit=True) as connection:
            cursor = connection.execute(sql.encode())
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(state, isolation_level=None) as connection:
        return connection.execute(sql).fetchall()


def _version(state: str) -> list[tuple[object, ...]]:
    return _execute(state, "SELECT value FROM meta WHERE key='schema_version'")


def test_each_dialect_migrates_every_version_up_to_this_one() -> None:
    from runner.store.postgres import PostgresStore  # noqa: PLC0415 - the postgres extra

    dialects: list[type[SqlStore]] = [SqliteStore, PostgresStore]
    for dialect in dialects:
        assert set(dialect.migrations) == set(range(dialect.oldest_version, SCHEMA_VERSION))


def test_a_new_state_is_created_at_this_version(state: str) -> None:
    open_store(state).close()
    assert _version(state) == [(str(SCHEMA_VERSION),)]


def test_a_state_with_a_newer_schema_is_refused_with_upgrade(state: str) -> None:
    open_store(state).close()
    _execute(state, f"UPDATE meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    with pytest.raises(LedgerError, match=r"newer than this mlrun.*upgrade mentionlab-runner"):
        open_store(state)


def test_processes_opening_a_new_state_at_once_create_it_once(state: str) -> None:
    start = threading.Barrier(OPENERS)
    failures: list[BaseException] = []

    def open_at_once() -> None:
        start.wait()
        try:
            open_store(state).close()
        except LedgerError as error:
            failures.append(error)

    threads = [threading.Thread(target=open_at_once) for _ in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert _version(state) == [(str(SCHEMA_VERSION),)]


V1_RUNS = """CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL,
    manifest_digest TEXT NOT NULL, base_url TEXT NOT NULL, plan_json TEXT NOT NULL,
    meta_json TEXT NOT NULL, created_by TEXT
)"""


def test_a_sqlite_ledger_of_version_1_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        old.execute(V1_RUNS)
        old.execute(
            "INSERT INTO runs VALUES ('r1', 1.0, 2.0, 'finished', 'd', 'x', ?, '{}', NULL)",
            ('{"actions": [], "manifestDigest": "d"}',),
        )
    with SqliteStore.open(path) as store:
        _both_runs_read(store)
    assert _version(str(path)) == [(str(SCHEMA_VERSION),)]


def _both_runs_read(store: Store) -> None:
    store.create_run("r2", Plan((), "d"), base_url="x", meta={}, now=3.0, key_fingerprint="fp")
    assert [(r.run_id, r.key_fingerprint) for r in store.runs()] == [("r2", "fp"), ("r1", None)]


def test_a_state_of_version_2_gains_run_keys_and_what_runs_share(state: str) -> None:
    open_store(state).close()
    for statement in (  # back to version 2, as the mlrun before run keys left it
        "DROP TABLE run_parts",
        "DROP TABLE project_jobs",
        "DROP TABLE query_counts",
        "DROP TABLE run_keys",
        "DROP INDEX runs_by_key",
        "ALTER TABLE runs DROP COLUMN run_key",
        "UPDATE meta SET value='2' WHERE key='schema_version'",
    ):
        _execute(state, statement)
    with open_store(state) as store:
        store.create_run("r1", Plan((), "d"), base_url="x", meta={}, now=1.0, run_key="k")
        found = store.run_by_key("k")
        assert found is not None
        assert found.run_id == "r1"
        store.record_query_counts("x", {"p": 3}, now=1.0)
        assert store.query_counts("x", since=0.0) == {"p": 3}
    assert _version(state) == [(str(SCHEMA_VERSION),)]
