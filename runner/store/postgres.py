"""The ledger in a PostgreSQL database that a team and its CI machines share.

psycopg 3, synchronous: a statement is a short round trip on the event loop, as SQLite's commit
is (psycopg's async API does not run on trio, on which the tests run). Imported only when a
``postgresql://`` state is asked for; the extra ``mentionlab-runner[postgres]`` installs it.

Durability. An intent commits with ``synchronous_commit=on``: when the commit returns, the
intent is on the server's disk (and on its synchronous standbys, if it has any). Other writes
commit with ``synchronous_commit=off``: at once visible to every reader and safe from a crash of
the machine running mlrun; a crash of the database server may lose the last fraction of a second
of them, which resume repairs by settling from the API's state, as SQLite's ``NORMAL`` does.

One writer per run: a lease, a row of ``leases`` (key, holder, expiry by the database's clock),
taken when free or expired, renewed by a heartbeat, deleted at close. Every intent checks, in its
own transaction, that this writer's lease is still its own and unexpired, and keeps it from being
taken over until the intent is committed. A lease that ended, taken over or not, is lost: the
next intent or heartbeat raises :class:`LeaseLost`.

Migrations run under a transaction-level advisory lock, so processes opening a new database at
once create its schema once. This is the only module that touches psycopg; its errors become
:class:`LedgerError`, with the password removed from their text.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from runner.errors import LeaseLost, LedgerError
from runner.redact import Redactor, safe_url
from runner.store.base import LeaseTimings
from runner.store.records import LeaseHolder
from runner.store.sql import Row, SqlStore, created_tables
from runner.store.state import default_state_dir

CONNECT_TIMEOUT = 10  # seconds; unless the URL says otherwise
_SCHEMA_LOCK = 0x6D6C72756E  # "mlrun": the advisory lock held while the schema changes

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    status TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    base_url TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    created_by TEXT,
    key_fingerprint TEXT,
    run_key TEXT
)""",
    "CREATE INDEX runs_by_start ON runs (started_at)",
    "CREATE INDEX runs_by_key ON runs (run_key, started_at)",
    """CREATE TABLE actions (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    action_json TEXT NOT NULL,
    state TEXT NOT NULL,
    job_ids_json TEXT NOT NULL DEFAULT '[]',
    detail TEXT,
    settled_by TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    first_sent_at DOUBLE PRECISION,
    triggered_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
)""",
    """CREATE TABLE attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    intent_at DOUBLE PRECISION NOT NULL,
    outcome TEXT,
    http_status INTEGER,
    error TEXT,
    finished_at DOUBLE PRECISION
)""",
    "CREATE INDEX attempts_by_action ON attempts (run_id, key, attempt)",
    """CREATE TABLE jobs (
    run_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    counters_json TEXT NOT NULL DEFAULT '{}',
    created_at TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION,
    terminal_at DOUBLE PRECISION,
    anomalies_json TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, job_id)
)""",
    """CREATE TABLE run_keys (
    run_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL
)""",
    """CREATE TABLE query_counts (
    base_url TEXT NOT NULL,
    project_id TEXT NOT NULL,
    queries INTEGER NOT NULL,
    read_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (base_url, project_id)
)""",
    """CREATE TABLE project_jobs (
    base_url TEXT NOT NULL,
    project_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (base_url, project_id)
)""",
    """CREATE TABLE run_parts (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    part TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (run_id, part)
)""",
    """CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}'
)""",
    "CREATE INDEX events_by_run ON events (run_id, id)",
    """CREATE TABLE leases (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)""",
)

# The statements that take a schema of version N to N + 1 (the first schema here is version 2).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE runs ADD COLUMN run_key TEXT",
        "CREATE INDEX runs_by_key ON runs (run_key, started_at)",
        *created_tables(_SCHEMA, "run_keys", "query_counts", "project_jobs", "run_parts"),
    ),
}

_TAKE_LEASE = """
INSERT INTO leases (key, token, host, pid, taken_at, heartbeat_at, expires_at)
VALUES (?, ?, ?, ?, now(), now(), now() + make_interval(secs => ?))
ON CONFLICT (key) DO UPDATE SET token=excluded.token, host=excluded.host, pid=excluded.pid,
    taken_at=excluded.taken_at, heartbeat_at=excluded.heartbeat_at,
    expires_at=excluded.expires_at
WHERE leases.expires_at <= now()
RETURNING token
"""


@dataclass(frozen=True)
class _Lease:
    key: str
    token: str  # new at each taking: a lease taken over, even by this host, is another token


class PostgresStore(SqlStore):
    """The ledger in a PostgreSQL database. Open it with :meth:`open`."""

    schema = _SCHEMA
    migrations = _MIGRATIONS
    oldest_version = 2
    for_update = " FOR UPDATE"

    def __init__(
        self, connection: psycopg.Connection[Any], url: str, timings: LeaseTimings
    ) -> None:
        super().__init__("the state", safe_url(url))
        self._db = connection
        self._redact = _password_redactor(url)
        self.timings = timings
        self._lease: _Lease | None = None

    @classmethod
    def open(cls, url: str, *, timings: LeaseTimings | None = None) -> PostgresStore:
        """Connect to the database at ``url`` and bring its schema up to date.

        The password comes from the URL, ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads the last
        two itself); no message ever shows it.
        """
        try:
            connection = psycopg.connect(url, autocommit=True, **_connect_options(url))
            connection.execute("SET synchronous_commit TO off")
            connection.execute("SET TIME ZONE 'UTC'")
        except psycopg.Error as exc:
            reason = _one_line(_password_redactor(url)(str(exc)))
            raise LedgerError(f"cannot open the state {safe_url(url)}: {reason}") from exc
        store = cls(connection, url, timings or LeaseTimings())
        try:
            store._prepare_schema()
        except LedgerError:
            store.close()
            raise
        return store

    @property
    def local_dir(self) -> Path:
        return default_state_dir()

    # -- the lease -----------------------------------------------------------------------------

    def lock(self, key: str, *, wait: float = 0.0) -> None:
        """Take the lease ``key``, free or expired, waiting up to ``wait`` seconds for it."""
        if self._lease is not None:
            raise LedgerError(f"this process already holds the lease {self._lease.key}")
        lease = _Lease(key, uuid.uuid4().hex)
        deadline = time.monotonic() + wait
        while not self._take(lease):
            holder = self._holder(key)
            remaining = deadline - time.monotonic()
            if holder is not None and remaining <= 0:
                raise LedgerError(
                    f"another mlrun run holds {key} in {self.name}: {holder.describe()}; wait "
                    "for it to finish, or use --lock-timeout SECONDS to wait (a holder that "
                    "died lets go when its lease ends)"
                )
            time.sleep(max(0.0, min(self.timings.poll, remaining)))
        self._lease = lease

    def _take(self, lease: _Lease) -> bool:
        row = self._write_returning(
            _TAKE_LEASE,
            (lease.key, lease.token, socket.gethostname(), os.getpid(), self.timings.duration),
        )
        return row is not None

    def _holder(self, key: str) -> LeaseHolder | None:
        row = self._read_one(
            "SELECT host, pid, taken_at, expires_at, token FROM leases WHERE key=?", (key,)
        )
        return None if row is None else LeaseHolder(*row)

    def held_by_another(self, key: str) -> bool:
        row = self._read_one("SELECT token FROM leases WHERE key=? AND expires_at > now()", (key,))
        return row is not None and (self._lease is None or row[0] != self._lease.token)

    @property
    def heartbeat(self) -> float | None:
        return None if self._lease is None else self.timings.heartbeat

    def renew_lease(self) -> None:
        """Extend the lease by its duration from now; :class:`LeaseLost` if it has ended."""
        lease = self._held()
        row = self._write_returning(
            "UPDATE leases SET heartbeat_at=now(), expires_at=now() + make_interval(secs => ?)"
            " WHERE key=? AND token=? AND expires_at > now() RETURNING 1",
            (self.timings.duration, lease.key, lease.token),
        )
        if row is None:
            raise self._lost(lease)

    def _fence(self) -> None:
        """The lease still this writer's and unexpired, kept so until the intent commits."""
        lease = self._held()
        row = self._read_one(
            "SELECT 1 FROM leases WHERE key=? AND token=? AND expires_at > now() FOR SHARE",
            (lease.key, lease.token),
        )
        if row is None:
            raise self._lost(lease)

    def _held(self) -> _Lease:
        if self._lease is None:
            raise LedgerError(
                f"an intent is recorded in {self.name} only under the run's lease: none is held"
            )
        return self._lease

    def _lost(self, lease: _Lease) -> LeaseLost:
        """Why the lease is no longer this writer's: ended unrenewed, taken over, released."""
        holder = self._holder(lease.key)
        if holder is None:
            why = "was released"
        elif holder.token == lease.token:
            why = f"ended at {holder.expires_at:%H:%M:%S %Z} unrenewed (this process stalled)"
        else:
            why = f"was taken over by {holder.describe()}"
        return LeaseLost(
            f"the lease on {lease.key} in {self.name} {why}: this process sends nothing more"
        )

    def close(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(LedgerError):
                self._write("DELETE FROM leases WHERE key=? AND token=?", (lease.key, lease.token))
        with contextlib.suppress(psycopg.Error):
            self._db.close()

    # -- the primitives ------------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any], doing: str, rows: int | None) -> list[Row]:
        """Run one statement; its first ``rows`` rows (None: all of them)."""
        try:
            if params:
                cursor = self._db.execute(_placeholders(sql), tuple(params))
            else:
                cursor = self._db.execute(sql)
            if rows == 0:
                return []
            return cursor.fetchall() if rows is None else cursor.fetchmany(rows)
        except psycopg.Error as exc:
            reason = _one_line(self._redact(str(exc)))
            raise LedgerError(f"{self.name} cannot be {doing}: {reason}") from exc

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params, "written", 0)

    def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return next(iter(self._run(sql, params, "written", 1)), None)

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return next(iter(self._run(sql, params, "read", 1)), None)

    def _read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(sql, params, "read", None)

    def _begin(self, *, durable: bool) -> None:
        self._write("BEGIN; SET LOCAL synchronous_commit TO on" if durable else "BEGIN")

    def _commit(self) -> None:
        self._write("COMMIT")

    def _rollback(self) -> None:
        self._write("ROLLBACK")

    def _has_schema(self) -> bool:
        row = self._read_one("SELECT to_regclass('meta') IS NOT NULL")
        return row is not None and bool(row[0])

    def _lock_schema(self) -> None:
        self._read_one("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _connect_options(url: str) -> dict[str, Any]:
    given = _conninfo(url)
    options: dict[str, Any] = {"application_name": "mlrun"}
    if "connect_timeout" not in given:
        options["connect_timeout"] = CONNECT_TIMEOUT
    return {key: value for key, value in options.items() if key not in given}


def _conninfo(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        return {}  # psycopg.connect says what is wrong with it


def _password_redactor(url: str) -> Redactor:
    password = _conninfo(url).get("password")
    return Redactor([str(password or ""), os.environ.get("PGPASSWORD", "")])


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
