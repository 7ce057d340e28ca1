"""The ledger in one SQLite file on this machine: the default state (``.mlrun/ledger.sqlite``).

WAL mode. An intent commits with ``synchronous=FULL`` (it survives a power loss); other writes
commit with ``NORMAL`` (they survive a crash of the process; the last of them may be lost to a
power loss, which resume repairs by settling from the server's state). One run at a time per
file: an exclusive ``flock`` on a lock file beside it, released by the kernel when the process
dies, so a killed run never blocks the next one.

This is the only module that touches sqlite3; its errors become :class:`LedgerError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from runner.errors import LedgerError
from runner.store.sql import Row, SqlStore, created_tables

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    base_url TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    created_by TEXT,
    key_fingerprint TEXT,
    run_key TEXT
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_key ON runs (run_key, started_at)",
    """CREATE TABLE IF NOT EXISTS actions (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    action_json TEXT NOT NULL,
    state TEXT NOT NULL,
    job_ids_json TEXT NOT NULL DEFAULT '[]',
    detail TEXT,
    settled_by TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    first_sent_at REAL,
    triggered_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, key)
)""",
    """CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    intent_at REAL NOT NULL,
    outcome TEXT,
    http_status INTEGER,
    error TEXT,
    finished_at REAL
)""",
    "CREATE INDEX IF NOT EXISTS attempts_by_action ON attempts (run_id, key, attempt)",
    """CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    counters_json TEXT NOT NULL DEFAULT '{}',
    created_at TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL,
    terminal_at REAL,
    anomalies_json TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, job_id)
)""",
    """CREATE TABLE IF NOT EXISTS run_keys (
    run_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS query_counts (
    base_url TEXT NOT NULL,
    project_id TEXT NOT NULL,
    queries INTEGER NOT NULL,
    read_at REAL NOT NULL,
    PRIMARY KEY (base_url, project_id)
)""",
    """CREATE TABLE IF NOT EXISTS project_jobs (
    base_url TEXT NOT NULL,
    project_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (base_url, project_id)
)""",
    """CREATE TABLE IF NOT EXISTS run_parts (
    run_id TEXT NOT NULL,
    part TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (run_id, part)
)""",
    """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}'
)""",
)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's

# The statements that take a ledger of version N to N + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE runs ADD COLUMN key_fingerprint TEXT",),
    2: (
        "ALTER TABLE runs ADD COLUMN run_key TEXT",
        "CREATE INDEX IF NOT EXISTS runs_by_key ON runs (run_key, started_at)",
        *created_tables(_SCHEMA, "run_keys", "query_counts", "project_jobs", "run_parts"),
    ),
}


class SqliteStore(SqlStore):
    """The ledger in a SQLite file. Open it with :meth:`open`."""

    schema = _SCHEMA
    migrations = _MIGRATIONS
    oldest_version = 1

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        super().__init__("the ledger", str(path))
        self._db = connection
        self.path = path
        self._lock_file: TextIO | None = None
        self._full_sync = True  # open() sets synchronous=FULL

    @classmethod
    def open(cls, path: Path | str) -> SqliteStore:
        """Open (or create) the ledger at ``path``, its schema brought up to date."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _turn_wal_on(connection)
            connection.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        store = cls(connection, path)
        try:
            store._prepare_schema()
        except LedgerError:
            store.close()
            raise
        return store

    @property
    def local_dir(self) -> Path:
        return self.path.parent

    # -- locking -------------------------------------------------------------------------------

    def held_by_another(self, key: str) -> bool:  # noqa: ARG002 - any key: the file is one lock
        return False  # one process at a time holds the file: no other is working beside this

    def lock(self, key: str, *, wait: float = 0.0) -> None:
        """Take the file's lock, whatever ``key`` names: one run at a time per ledger file."""
        lock_path = self.path.with_suffix(".lock")
        try:
            handle = lock_path.open("a+")
        except OSError as exc:
            raise LedgerError(f"cannot create the lock file {lock_path}: {exc}") from exc
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise LedgerError(
                        f"another mlrun run holds the ledger {self.path} (lock {lock_path}); "
                        "wait for it to finish, or use --lock-timeout SECONDS to wait"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} {key}\n")
        handle.flush()
        self._lock_file = handle

    @property
    def heartbeat(self) -> float | None:
        return None  # the kernel holds a file lock for as long as the process lives

    def renew_lease(self) -> None:
        pass  # a file lock is never taken over

    def close(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- the primitives ------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.name} cannot be written: {exc}") from exc

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._execute(sql, params)

    def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        try:
            row: Row | None = self._execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.name} cannot be written: {exc}") from exc
        return row

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        try:
            row: Row | None = self._db.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.name} cannot be read: {exc}") from exc
        return row

    def _read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.name} cannot be read: {exc}") from exc

    def _begin(self, *, durable: bool) -> None:
        self._set_synchronous(full=durable)
        self._write("BEGIN IMMEDIATE")

    def _set_synchronous(self, *, full: bool) -> None:
        if self._full_sync != full:
            self._write(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._full_sync = full

    def _commit(self) -> None:
        self._write("COMMIT")

    def _rollback(self) -> None:
        self._write("ROLLBACK")

    def _has_schema(self) -> bool:
        row = self._read_one("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        return row is not None


def _turn_wal_on(connection: sqlite3.Connection) -> None:
    """``journal_mode=WAL``, waiting for other processes opening the same new file.

    Switching a new file to WAL takes it exclusively, and SQLite answers "database is locked"
    at once, without waiting the busy timeout, to a process that comes meanwhile: it tries again.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
        else:
            return
