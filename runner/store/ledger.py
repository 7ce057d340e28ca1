"""The ledger: the durable journal of every run. If a fact is not here, it did not happen.

SQLite in WAL mode with ``synchronous=FULL``: a committed row survives a process kill and a
power loss. The engine writes the *intent* of a trigger before sending it and its *outcome* after;
on resume every action whose last attempt has an intent but no outcome is settled by reading the
server's state, never resent blindly. Reports, ``--resume``, ``mlrun runs`` and ``mlrun status``
are all views of this file.

Intents are the one write that must be durable before the next step (the request): they commit
with ``synchronous=FULL``. Other writes (outcomes, job statuses, events) commit with ``NORMAL``:
they survive a crash of the process; after a power loss the last of them may be lost, which
resume repairs by settling the trigger from the server's state, never by resending. A write
that fails raises :class:`LedgerError`, and nothing more may be sent.

One run at a time per ledger: an exclusive ``flock`` on a lock file beside it. The kernel releases
it when the process dies, so a killed run never blocks the next one.

This is the only module that touches sqlite3; its errors become :class:`LedgerError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TextIO

from runner.errors import LedgerError
from runner.plan import Action, Plan

SCHEMA_VERSION = 2

# The statements that take a ledger of version N to N + 1, applied in order on first use.
_MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE runs ADD COLUMN key_fingerprint TEXT",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    base_url TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    created_by TEXT,
    key_fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS actions (
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
);
CREATE TABLE IF NOT EXISTS attempts (
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
);
CREATE INDEX IF NOT EXISTS attempts_by_action ON attempts (run_id, key, attempt);
CREATE TABLE IF NOT EXISTS jobs (
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
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}'
);
"""


class ActionState(StrEnum):
    """Where an action stands; all but PENDING, IN_FLIGHT and AMBIGUOUS are settled."""

    PENDING = "pending"  # nothing sent yet
    IN_FLIGHT = "in_flight"  # an intent is recorded; its outcome is not (yet)
    AMBIGUOUS = "ambiguous"  # sent, outcome unknown: to be settled from server state
    TRIGGERED = "triggered"  # the API created the job(s); ids recorded
    FAILED = "failed"  # refused for good (4xx, retries exhausted, not created and not resent)
    UNKNOWN = "unknown"  # could not be settled: a human must look
    SKIPPED = "skipped"  # not triggered on purpose (budget, in-flight guard, fatal stop)


class AttemptOutcome(StrEnum):
    """What became of one attempt of a trigger (``attempts.outcome``)."""

    ACCEPTED = "accepted"  # the API answered with the job(s) it created
    ADOPTED = "adopted"  # ambiguous, then found in the project's job list
    AMBIGUOUS = "ambiguous"  # it may have been processed: settled from the job list
    INTERRUPTED = "interrupted"  # cancelled on the wire: settled on resume
    WITHDRAWN = "withdrawn"  # given up before it left: pending again, resent without a look
    RATE_LIMITED = "rate_limited"  # 429: not processed, resent after the wait
    NOT_PROCESSED = "not_processed"  # 503, or provably not sent: resent with backoff
    REJECTED = "rejected"  # a 4xx for this action: failed
    FATAL = "fatal"  # refused for the whole run (a bad key, no credits): failed, the run stops
    GAVE_UP = "gave_up"  # retries exhausted: failed
    ERROR = "error"  # anything else: failed


class SettledBy(StrEnum):
    """How an action's outcome became known (``actions.settled_by``)."""

    RESPONSE = "response"  # the trigger's own answer
    JOB_LIST = "adopted from the job list"  # an ambiguous attempt's job, found by a look
    UNSETTLED = "unsettled"  # looked for, never known: UNKNOWN


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class ActionRecord:
    """An action as the ledger knows it."""

    action: Action
    state: ActionState
    job_ids: tuple[str, ...]
    detail: str | None
    settled_by: str | None
    attempts: int
    rate_limited: int
    first_sent_at: float | None
    triggered_at: float | None


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    idempotency_key: str
    intent_at: float
    outcome: str | None
    http_status: int | None
    error: str | None
    finished_at: float | None


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    key: str
    kind: str
    status: str
    counters: dict[str, int]
    created_at: str | None
    first_seen: float
    last_seen: float | None
    terminal_at: float | None
    anomalies: tuple[str, ...]


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    started_at: float
    finished_at: float | None
    status: RunStatus
    manifest_digest: str
    base_url: str
    plan: Plan
    meta: dict[str, Any]
    created_by: str | None
    key_fingerprint: str | None = None  # of the key the run was started with; never the key


def default_ledger_path() -> Path:
    """``$MLRUN_STATE_DIR/ledger.sqlite``, by default in ``.mlrun/`` under the current directory."""
    return Path(os.environ.get("MLRUN_STATE_DIR", ".mlrun")) / "ledger.sqlite"


class Ledger:
    """The run journal. Open it with :meth:`open`; writes are committed durably at once."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._lock_file: TextIO | None = None
        self._depth = 0  # open transactions (nested ones join the outermost)
        self._full_sync = True  # open() sets synchronous=FULL

    # -- opening, locking -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> Ledger:
        """Open (or create) the ledger at ``path``."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=5000")
            connection.executescript(_SCHEMA)
            connection.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        ledger = cls(connection, path)
        ledger._migrate()
        return ledger

    def _migrate(self) -> None:
        """Bring an older ledger to :data:`SCHEMA_VERSION`; refuse a newer one."""
        row = self._query_one("SELECT value FROM meta WHERE key='schema_version'")
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if version is None or version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} has schema version {row and row[0]}, newer than this "
                f"mlrun reads ({SCHEMA_VERSION}): upgrade mentionlab-runner"
            )
        with self.transaction(durable=True):
            for step in range(version, SCHEMA_VERSION):
                self._write(_MIGRATIONS[step], ())
            self._write(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )

    def lock(self, *, wait: float = 0.0) -> None:
        """Take the one-run-at-a-time lock, waiting up to ``wait`` seconds."""
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
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def close(self) -> None:
        """Release the lock and close."""
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(LedgerError):  # the error under way says more
            self.close()

    # -- low level ------------------------------------------------------------------------------

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} cannot be written: {exc}") from exc

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        self._execute(sql, params)

    def _query_one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            return self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} cannot be read: {exc}") from exc

    def _query_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} cannot be read: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        """Several writes committed together; nested calls join the outer transaction.

        ``durable``: the commit is synced to disk before it returns (``synchronous=FULL``):
        required for what must survive a power loss, such as the intent of a trigger about to
        be sent. Other writes (outcomes, job statuses, events) commit with ``NORMAL``: they
        survive a crash of the process; after a power loss the last of them may be lost, which
        resume repairs by settling the trigger from the server's state, never by resending.
        A later durable commit syncs the earlier ones too (WAL).
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._set_synchronous(full=durable)
        self._execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            with contextlib.suppress(LedgerError):
                self._execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self._execute("COMMIT")

    def _set_synchronous(self, *, full: bool) -> None:
        if self._full_sync != full:
            self._execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._full_sync = full

    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        plan: Plan,
        *,
        base_url: str,
        meta: Mapping[str, Any],
        now: float,
        key_fingerprint: str | None = None,
    ) -> None:
        """Record a new run and its whole plan, every action pending, in one durable commit."""
        with self.transaction(durable=True):
            self._write(
                "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    run_id,
                    now,
                    RunStatus.RUNNING,
                    plan.manifest_digest,
                    base_url,
                    json.dumps(plan.to_json()),
                    json.dumps(meta),
                    key_fingerprint,
                ),
            )
            for position, action in enumerate(plan.actions):
                self._write(
                    "INSERT INTO actions (run_id, key, position, action_json, state, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, action.key, position, json.dumps(action.to_json()), "pending", now),
                )

    def set_run_status(self, run_id: str, status: RunStatus, *, now: float) -> None:
        finished = None if status == RunStatus.RUNNING else now
        self._write(
            "UPDATE runs SET status=?, finished_at=? WHERE run_id=?", (status, finished, run_id)
        )

    def set_created_by(self, run_id: str, user_id: str) -> None:
        self._write("UPDATE runs SET created_by=? WHERE run_id=?", (user_id, run_id))

    def run(self, run_id: str) -> RunRecord:
        row = self._query_one("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if row is None:
            raise LedgerError(f"no run {run_id!r} in the ledger {self.path}")
        return _run_record(row)

    def runs(self) -> list[RunRecord]:
        rows = self._query_all("SELECT * FROM runs ORDER BY started_at DESC")
        return [_run_record(row) for row in rows]

    def latest_run(self) -> RunRecord | None:
        row = self._query_one("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")
        return None if row is None else _run_record(row)

    def resolve_run_id(self, prefix: str) -> str:
        """A full run id from a unique prefix (or 'last')."""
        if prefix in {"last", "latest"}:
            latest = self.latest_run()
            if latest is None:
                raise LedgerError(f"the ledger {self.path} has no runs yet")
            return latest.run_id
        rows = self._query_all("SELECT run_id FROM runs WHERE run_id LIKE ?", (prefix + "%",))
        if len(rows) != 1:
            what = "no run" if not rows else f"{len(rows)} runs"
            raise LedgerError(f"{what} in the ledger match {prefix!r}")
        return str(rows[0][0])

    # -- actions and attempts -------------------------------------------------------------------

    def actions(self, run_id: str) -> list[ActionRecord]:
        rows = self._query_all(
            "SELECT action_json, state, job_ids_json, detail, settled_by, attempts, rate_limited,"
            " first_sent_at, triggered_at FROM actions WHERE run_id=? ORDER BY position",
            (run_id,),
        )
        return [_action_record(row) for row in rows]

    def action_state(self, run_id: str, key: str) -> ActionState:
        row = self._query_one("SELECT state FROM actions WHERE run_id=? AND key=?", (run_id, key))
        if row is None:
            raise LedgerError(f"no action {key!r} in run {run_id!r}")
        return ActionState(row[0])

    def record_intent(self, run_id: str, key: str, *, idempotency_key: str, now: float) -> int:
        """Record that attempt N of ``key`` is about to be sent, on disk when it returns; N."""
        with self.transaction(durable=True):
            row = self._execute(
                "UPDATE actions SET state=?, attempts=attempts+1, updated_at=?,"
                " first_sent_at=COALESCE(first_sent_at, ?) WHERE run_id=? AND key=?"
                " RETURNING attempts",
                (ActionState.IN_FLIGHT, now, now, run_id, key),
            ).fetchone()
            if row is None:
                raise LedgerError(f"no action {key!r} in run {run_id!r}")
            attempt = int(row[0])
            self._execute(
                "INSERT INTO attempts (run_id, key, attempt, idempotency_key, intent_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, key, attempt, idempotency_key, now),
            )
        return attempt

    def record_outcome(  # noqa: PLR0913 - keyword-only fields of one journal row
        self,
        run_id: str,
        key: str,
        *,
        attempt: int,
        outcome: AttemptOutcome,
        now: float,
        http_status: int | None = None,
        error: str | None = None,
        state: ActionState | None = None,
        job_ids: tuple[str, ...] | None = None,
        detail: str | None = None,
        settled_by: SettledBy | None = None,
    ) -> None:
        """The outcome of an attempt, and the action's new state, in one commit."""
        with self.transaction():
            self._write(
                "UPDATE attempts SET outcome=?, http_status=COALESCE(?, http_status),"
                " error=COALESCE(?, error), finished_at=?"
                " WHERE run_id=? AND key=? AND attempt=?",
                (outcome, http_status, error, now, run_id, key, attempt),
            )
            if outcome == AttemptOutcome.RATE_LIMITED:
                self._write(
                    "UPDATE actions SET rate_limited=rate_limited+1 WHERE run_id=? AND key=?",
                    (run_id, key),
                )
            if state is not None:
                self._set_state(run_id, key, state, now, job_ids, detail, settled_by)

    def set_action_state(
        self,
        run_id: str,
        key: str,
        state: ActionState,
        *,
        now: float,
        job_ids: tuple[str, ...] | None = None,
        detail: str | None = None,
        settled_by: str | None = None,
    ) -> None:
        with self.transaction():
            self._set_state(run_id, key, state, now, job_ids, detail, settled_by)

    def _set_state(
        self,
        run_id: str,
        key: str,
        state: ActionState,
        now: float,
        job_ids: tuple[str, ...] | None,
        detail: str | None,
        settled_by: str | None,
    ) -> None:
        triggered_at = now if state == ActionState.TRIGGERED else None
        self._write(
            "UPDATE actions SET state=?, updated_at=?,"
            " job_ids_json=COALESCE(?, job_ids_json), detail=COALESCE(?, detail),"
            " settled_by=COALESCE(?, settled_by), triggered_at=COALESCE(?, triggered_at)"
            " WHERE run_id=? AND key=?",
            (
                state,
                now,
                None if job_ids is None else json.dumps(list(job_ids)),
                detail,
                settled_by,
                triggered_at,
                run_id,
                key,
            ),
        )

    def attempts(self, run_id: str, key: str) -> list[AttemptRecord]:
        rows = self._query_all(
            "SELECT attempt, idempotency_key, intent_at, outcome, http_status, error, finished_at"
            " FROM attempts WHERE run_id=? AND key=? ORDER BY attempt",
            (run_id, key),
        )
        return [AttemptRecord(*row) for row in rows]

    def known_job_ids(self) -> set[str]:
        """Every job id any run of this ledger has attributed to an action."""
        ids: set[str] = set()
        for (raw,) in self._query_all("SELECT job_ids_json FROM actions"):
            ids.update(json.loads(raw))
        return ids

    # -- jobs (following) -----------------------------------------------------------------------

    def upsert_job(  # noqa: PLR0913 - keyword-only fields of one journal row
        self,
        run_id: str,
        job_id: str,
        *,
        key: str,
        kind: str,
        status: str,
        counters: dict[str, int],
        created_at: str | None,
        now: float,
        terminal: bool,
        anomaly: str | None = None,
    ) -> None:
        with self.transaction():
            self._write(
                "INSERT INTO jobs (run_id, job_id, key, kind, status, counters_json, created_at,"
                " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, job_id) DO UPDATE SET status=excluded.status,"
                " counters_json=excluded.counters_json, last_seen=excluded.last_seen",
                (run_id, job_id, key, kind, status, json.dumps(counters), created_at, now, now),
            )
            if terminal:
                self._write(
                    "UPDATE jobs SET terminal_at=COALESCE(terminal_at, ?)"
                    " WHERE run_id=? AND job_id=?",
                    (now, run_id, job_id),
                )
            if anomaly:
                self._add_anomaly(run_id, job_id, anomaly)

    def add_job_anomaly(self, run_id: str, job_id: str, anomaly: str) -> None:
        with self.transaction():
            self._add_anomaly(run_id, job_id, anomaly)

    def _add_anomaly(self, run_id: str, job_id: str, anomaly: str) -> None:
        # Appended in SQL, not read back and rewritten.
        self._write(
            "UPDATE jobs SET anomalies_json=json_insert(anomalies_json, '$[#]', ?)"
            " WHERE run_id=? AND job_id=? AND NOT EXISTS"
            " (SELECT 1 FROM json_each(jobs.anomalies_json) WHERE json_each.value=?)",
            (anomaly, run_id, job_id, anomaly),
        )

    def jobs(self, run_id: str) -> list[JobRecord]:
        rows = self._query_all(
            "SELECT job_id, key, kind, status, counters_json, created_at, first_seen, last_seen,"
            " terminal_at, anomalies_json FROM jobs WHERE run_id=? ORDER BY first_seen, job_id",
            (run_id,),
        )
        return [
            JobRecord(
                job_id=row[0],
                key=row[1],
                kind=row[2],
                status=row[3],
                counters=json.loads(row[4]),
                created_at=row[5],
                first_seen=row[6],
                last_seen=row[7],
                terminal_at=row[8],
                anomalies=tuple(json.loads(row[9])),
            )
            for row in rows
        ]

    # -- events (for the report's timeline) -----------------------------------------------------

    def record_event(
        self, run_id: str, kind: str, *, now: float, key: str | None = None, **detail: Any
    ) -> None:
        self._write(
            "INSERT INTO events (run_id, at, kind, key, detail_json) VALUES (?, ?, ?, ?, ?)",
            (run_id, now, kind, key, json.dumps(detail)),
        )

    def events(self, run_id: str) -> list[tuple[float, str, str | None, dict[str, Any]]]:
        rows = self._query_all(
            "SELECT at, kind, key, detail_json FROM events WHERE run_id=? ORDER BY id", (run_id,)
        )
        return [(row[0], row[1], row[2], json.loads(row[3])) for row in rows]


def _run_record(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        started_at=row[1],
        finished_at=row[2],
        status=RunStatus(row[3]),
        manifest_digest=row[4],
        base_url=row[5],
        plan=Plan.from_json(json.loads(row[6])),
        meta=json.loads(row[7]),
        created_by=row[8],
        key_fingerprint=row[9],
    )


def _action_record(row: Any) -> ActionRecord:
    return ActionRecord(
        action=Action.from_json(json.loads(row[0])),
        state=ActionState(row[1]),
        job_ids=tuple(json.loads(row[2])),
        detail=row[3],
        settled_by=row[4],
        attempts=row[5],
        rate_limited=row[6],
        first_sent_at=row[7],
        triggered_at=row[8],
    )
