"""The ledger's SQL, written once for both dialects: what :class:`SqlStore` shares.

Statements use ``?`` placeholders and only what SQLite and PostgreSQL both understand
(``ON CONFLICT ... DO UPDATE``, ``RETURNING``, ``COALESCE``); a JSON list is appended in
Python inside the transaction, not with a dialect's JSON functions. Each dialect supplies the
primitives (running a statement, beginning and committing a transaction), its own DDL and
migrations, and its lock; :class:`SqlStore` turns rows into records.
"""

from __future__ import annotations

import contextlib
import json
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from runner.errors import LedgerError
from runner.plan import Action, Plan
from runner.store.base import Event, Store
from runner.store.records import (
    ActionRecord,
    ActionState,
    AttemptOutcome,
    AttemptRecord,
    JobRecord,
    ProjectJob,
    RunRecord,
    RunStatus,
    SettledBy,
)

# The shape of the ledger this mlrun writes. Each dialect creates it at once in a new database
# and migrates an older one step by step (its ``migrations``); a newer one is refused.
SCHEMA_VERSION = 3

Row = Sequence[Any]

_RUN_COLUMNS = (
    "run_id, started_at, finished_at, status, manifest_digest, base_url, plan_json, meta_json,"
    " created_by, key_fingerprint, run_key"
)
_SELECT_RUNS = f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608 - constants only
_INSERT_RUN = f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, NULL, ?, ?)"  # noqa: S608


def created_tables(schema: Sequence[str], *tables: str) -> tuple[str, ...]:
    """The statements of ``schema`` that create ``tables``: a migration that adds them."""
    return tuple(
        statement
        for statement in schema
        if statement.startswith("CREATE TABLE") and statement.split("(", 1)[0].split()[-1] in tables
    )


class SqlStore(Store):
    """A :class:`Store` over a SQL database; subclasses speak to one database."""

    # Statements creating the latest schema in an empty database.
    schema: ClassVar[tuple[str, ...]]
    # The statements that take a schema of version N to N + 1, applied in order.
    migrations: ClassVar[Mapping[int, tuple[str, ...]]]
    # The oldest schema version this dialect knows how to migrate from.
    oldest_version: ClassVar[int]
    # Appended to a SELECT that reads a row the transaction then rewrites.
    for_update: ClassVar[str] = ""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind  # "the ledger" or "the state"
        self.location = location  # a path, or a URL without its password or query
        self.name = f"{kind} {location}"  # the subject of messages
        self._depth = 0  # open transactions (nested ones join the outermost)

    # -- what each dialect supplies ------------------------------------------------------------

    @abstractmethod
    def _write(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def _write_returning(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    def _read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def _begin(self, *, durable: bool) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _has_schema(self) -> bool:
        """Whether the database holds a ledger already (its ``meta`` table)."""

    def _lock_schema(self) -> None:
        """Keep other processes out of the schema until the transaction ends."""

    def _fence(self) -> None:
        """Inside an intent's transaction: refuse it unless this writer still holds its lock."""

    # -- transactions, schema ------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin(durable=durable)
        self._depth = 1
        try:
            yield
        except BaseException:
            with contextlib.suppress(LedgerError):
                self._rollback()
            raise
        finally:
            self._depth = 0
        self._commit()

    def _prepare_schema(self) -> None:
        """Create the schema in a new database, or bring an older one to SCHEMA_VERSION."""
        with self.transaction(durable=True):
            self._lock_schema()
            if not self._has_schema():
                for statement in self.schema:
                    self._write(statement)
                self._write(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                return
            version = self._schema_version()
            for step in range(version, SCHEMA_VERSION):
                for statement in self.migrations[step]:
                    self._write(statement)
            self._write(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )

    def _schema_version(self) -> int:
        row = self._read_one("SELECT value FROM meta WHERE key='schema_version'")
        found = None if row is None else str(row[0])
        if found is None or not found.isdigit() or int(found) > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.name} has schema version {found}, newer than this mlrun reads "
                f"({SCHEMA_VERSION}): upgrade mentionlab-runner"
            )
        if int(found) < self.oldest_version:
            raise LedgerError(f"{self.name} has schema version {found}, too old to migrate")
        return int(found)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(  # noqa: PLR0913 - keyword-only fields of one journal row
        self,
        run_id: str,
        plan: Plan,
        *,
        base_url: str,
        meta: Mapping[str, Any],
        now: float,
        key_fingerprint: str | None = None,
        run_key: str | None = None,
        replacing: str | None = None,
    ) -> str:
        with self.transaction(durable=True):
            if run_key is not None and not self._claim(run_key, run_id, replacing):
                holder = self._read_one("SELECT run_id FROM run_keys WHERE run_key=?", (run_key,))
                if holder is None:  # pragma: no cover - a claim fails only against a holder
                    raise LedgerError(f"the run key {run_key!r} could not be claimed")
                return str(holder[0])
            self._write(
                _INSERT_RUN,
                (
                    run_id,
                    now,
                    RunStatus.RUNNING.value,
                    plan.manifest_digest,
                    base_url,
                    json.dumps(plan.to_json()),
                    json.dumps(meta),
                    key_fingerprint,
                    run_key,
                ),
            )
            for position, action in enumerate(plan.actions):
                self._write(
                    "INSERT INTO actions (run_id, key, position, action_json, state, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, action.key, position, json.dumps(action.to_json()), "pending", now),
                )
        return run_id

    def _claim(self, run_key: str, run_id: str, replacing: str | None) -> bool:
        """Name ``run_id`` by ``run_key``: free, or held by ``replacing``; atomic on both."""
        if replacing is None:
            row = self._write_returning(
                "INSERT INTO run_keys (run_key, run_id) VALUES (?, ?)"
                " ON CONFLICT (run_key) DO NOTHING RETURNING run_id",
                (run_key, run_id),
            )
        else:
            row = self._write_returning(
                "UPDATE run_keys SET run_id=? WHERE run_key=? AND run_id=? RETURNING run_id",
                (run_id, run_key, replacing),
            )
        return row is not None

    def set_run_status(self, run_id: str, status: RunStatus, *, now: float) -> None:
        finished = None if status == RunStatus.RUNNING else now
        self._write(
            "UPDATE runs SET status=?, finished_at=? WHERE run_id=?",
            (status.value, finished, run_id),
        )

    def set_created_by(self, run_id: str, user_id: str) -> None:
        self._write("UPDATE runs SET created_by=? WHERE run_id=?", (user_id, run_id))

    def run(self, run_id: str) -> RunRecord:
        row = self._read_one(f"{_SELECT_RUNS} WHERE run_id=?", (run_id,))
        if row is None:
            raise LedgerError(f"no run {run_id!r} in {self.name}")
        return _run_record(row)

    def runs(self) -> list[RunRecord]:
        rows = self._read_all(f"{_SELECT_RUNS} ORDER BY started_at DESC")
        return [_run_record(row) for row in rows]

    def set_plan(self, run_id: str, plan: Plan) -> None:
        with self.transaction():
            self._write(
                "UPDATE runs SET plan_json=? WHERE run_id=?", (json.dumps(plan.to_json()), run_id)
            )
            for action in plan.actions:
                self._write(
                    "UPDATE actions SET action_json=? WHERE run_id=? AND key=?",
                    (json.dumps(action.to_json()), run_id, action.key),
                )

    def hold_run(self, run_id: str) -> None:
        # PostgreSQL locks the row; SQLite's write transaction already excludes other writers.
        self._read_one(
            "SELECT 1 FROM runs WHERE run_id=?" + self.for_update,  # noqa: S608 - a constant
            (run_id,),
        )

    def run_by_key(self, run_key: str) -> RunRecord | None:
        row = self._read_one(
            f"{_SELECT_RUNS} WHERE run_id=(SELECT run_id FROM run_keys WHERE run_key=?)",  # noqa: S608
            (run_key,),
        )
        return None if row is None else _run_record(row)

    def latest_run(self) -> RunRecord | None:
        row = self._read_one(f"{_SELECT_RUNS} ORDER BY started_at DESC LIMIT 1")
        return None if row is None else _run_record(row)

    def resolve_run_id(self, prefix: str) -> str:
        if prefix in {"last", "latest"}:
            latest = self.latest_run()
            if latest is None:
                raise LedgerError(f"{self.name} has no runs yet")
            return latest.run_id
        rows = self._read_all("SELECT run_id FROM runs WHERE run_id LIKE ?", (prefix + "%",))
        if len(rows) != 1:
            what = "no run" if not rows else f"{len(rows)} runs"
            raise LedgerError(f"{what} in {self.kind} match {prefix!r}")
        return str(rows[0][0])

    # -- actions and attempts ------------------------------------------------------------------

    def actions(self, run_id: str) -> list[ActionRecord]:
        rows = self._read_all(
            "SELECT action_json, state, job_ids_json, detail, settled_by, attempts, rate_limited,"
            " first_sent_at, triggered_at FROM actions WHERE run_id=? ORDER BY position",
            (run_id,),
        )
        return [_action_record(row) for row in rows]

    def action_state(self, run_id: str, key: str) -> ActionState:
        row = self._read_one("SELECT state FROM actions WHERE run_id=? AND key=?", (run_id, key))
        if row is None:
            raise LedgerError(f"no action {key!r} in run {run_id!r}")
        return ActionState(row[0])

    def record_intent(self, run_id: str, key: str, *, idempotency_key: str, now: float) -> int:
        with self.transaction(durable=True):
            self._fence()
            row = self._write_returning(
                "UPDATE actions SET state=?, attempts=attempts+1, updated_at=?,"
                " first_sent_at=COALESCE(first_sent_at, ?) WHERE run_id=? AND key=?"
                " RETURNING attempts",
                (ActionState.IN_FLIGHT.value, now, now, run_id, key),
            )
            if row is None:
                raise LedgerError(f"no action {key!r} in run {run_id!r}")
            attempt = int(row[0])
            self._write(
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
        with self.transaction():
            self._write(
                "UPDATE attempts SET outcome=?, http_status=COALESCE(?, http_status),"
                " error=COALESCE(?, error), finished_at=?"
                " WHERE run_id=? AND key=? AND attempt=?",
                (str(outcome), http_status, error, now, run_id, key, attempt),
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
        settled_by: SettledBy | None = None,
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
        settled_by: SettledBy | None,
    ) -> None:
        triggered_at = now if state == ActionState.TRIGGERED else None
        self._write(
            "UPDATE actions SET state=?, updated_at=?,"
            " job_ids_json=COALESCE(?, job_ids_json), detail=COALESCE(?, detail),"
            " settled_by=COALESCE(?, settled_by), triggered_at=COALESCE(?, triggered_at)"
            " WHERE run_id=? AND key=?",
            (
                state.value,
                now,
                None if job_ids is None else json.dumps(list(job_ids)),
                detail,
                None if settled_by is None else str(settled_by),
                triggered_at,
                run_id,
                key,
            ),
        )

    def attempts(self, run_id: str, key: str) -> list[AttemptRecord]:
        rows = self._read_all(
            "SELECT attempt, idempotency_key, intent_at, outcome, http_status, error, finished_at"
            " FROM attempts WHERE run_id=? AND key=? ORDER BY attempt",
            (run_id, key),
        )
        return [AttemptRecord(*row) for row in rows]

    def known_job_ids(self) -> set[str]:
        ids: set[str] = set()
        for (raw,) in self._read_all("SELECT job_ids_json FROM actions"):
            ids.update(json.loads(raw))
        return ids

    # -- jobs (following) ----------------------------------------------------------------------

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
        # Read and rewritten inside the caller's transaction, the row locked where that matters.
        row = self._read_one(
            "SELECT anomalies_json FROM jobs WHERE run_id=? AND job_id=?"  # noqa: S608
            + self.for_update,  # a constant clause of the dialect
            (run_id, job_id),
        )
        if row is None:
            return
        anomalies: list[str] = json.loads(row[0])
        if anomaly in anomalies:
            return
        self._write(
            "UPDATE jobs SET anomalies_json=? WHERE run_id=? AND job_id=?",
            (json.dumps([*anomalies, anomaly]), run_id, job_id),
        )

    def jobs(self, run_id: str) -> list[JobRecord]:
        rows = self._read_all(
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

    # -- events --------------------------------------------------------------------------------

    def record_event(
        self, run_id: str, kind: str, *, now: float, key: str | None = None, **detail: Any
    ) -> None:
        self._write(
            "INSERT INTO events (run_id, at, kind, key, detail_json) VALUES (?, ?, ?, ?, ?)",
            (run_id, now, kind, key, json.dumps(detail)),
        )

    def events(self, run_id: str) -> list[Event]:
        rows = self._read_all(
            "SELECT at, kind, key, detail_json FROM events WHERE run_id=? ORDER BY id", (run_id,)
        )
        return [(row[0], row[1], row[2], json.loads(row[3])) for row in rows]

    # -- parts ----------------------------------------------------------------------------------

    def set_part_status(self, run_id: str, part: str, status: RunStatus, *, now: float) -> None:
        finished = None if status == RunStatus.RUNNING else now
        self._write(
            "INSERT INTO run_parts (run_id, part, status, started_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, part) DO UPDATE"
            " SET status=excluded.status, finished_at=excluded.finished_at",
            (run_id, part, status.value, now, finished),
        )

    def parts(self, run_id: str) -> dict[str, RunStatus]:
        rows = self._read_all(
            "SELECT part, status FROM run_parts WHERE run_id=? ORDER BY part", (run_id,)
        )
        return {row[0]: RunStatus(row[1]) for row in rows}

    # -- across runs ----------------------------------------------------------------------------

    def record_query_counts(self, base_url: str, counts: Mapping[str, int], *, now: float) -> None:
        with self.transaction():
            # In one order, so that two writers of overlapping counts wait in turn, never deadlock.
            for project_id, queries in sorted(counts.items()):
                self._write(
                    "INSERT INTO query_counts (base_url, project_id, queries, read_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (base_url, project_id) DO UPDATE"
                    " SET queries=excluded.queries, read_at=excluded.read_at",
                    (base_url, project_id, queries, now),
                )

    def query_counts(self, base_url: str, *, since: float) -> dict[str, int]:
        rows = self._read_all(
            "SELECT project_id, queries FROM query_counts WHERE base_url=? AND read_at>=?",
            (base_url, since),
        )
        return {row[0]: int(row[1]) for row in rows}

    def record_project_job(
        self,
        base_url: str,
        project_id: str,
        *,
        job_id: str,
        created: float,
        status: str,
        terminal: bool,
        now: float,
    ) -> None:
        self._write(
            "INSERT INTO project_jobs"
            " (base_url, project_id, job_id, created, status, terminal, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (base_url, project_id) DO UPDATE"
            " SET job_id=excluded.job_id, created=excluded.created,"
            " status=excluded.status, terminal=excluded.terminal, seen_at=excluded.seen_at"
            " WHERE project_jobs.job_id=excluded.job_id OR project_jobs.created<excluded.created",
            (base_url, project_id, job_id, created, status, int(terminal), now),
        )

    def project_jobs(self, base_url: str) -> dict[str, ProjectJob]:
        rows = self._read_all(
            "SELECT project_id, job_id, created, status, terminal, seen_at"
            " FROM project_jobs WHERE base_url=?",
            (base_url,),
        )
        return {
            row[0]: ProjectJob(row[1], float(row[2]), row[3], bool(row[4]), float(row[5]))
            for row in rows
        }


def _run_record(row: Row) -> RunRecord:
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
        run_key=row[10],
    )


def _action_record(row: Row) -> ActionRecord:
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
