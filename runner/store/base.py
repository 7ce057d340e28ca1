"""The state of runs behind one interface: :class:`Store`, whichever database holds it.

Two implementations share its SQL (:mod:`runner.store.sql`): ``SqliteStore``, one file on this
machine (the default), and ``PostgresStore``, a database a team and its CI machines share.
:func:`runner.store.open_store` chooses one from a path or a URL.

The contract every implementation keeps:

* **An intent is durable before it returns.** :meth:`Store.record_intent` commits so that the
  intent survives a crash of this machine and of the database's (a power loss), because the
  trigger it announces goes on the wire next. Other writes (outcomes, job statuses, events)
  survive a crash of this process; the last of them may be lost to a crash of the database's
  machine, which resume repairs by settling the trigger from the server's state, never by
  resending. A write that fails raises :class:`~runner.errors.LedgerError`: nothing more may be
  sent.
* **One writer per run.** :meth:`Store.lock` takes the writer's lock: a file lock on SQLite (one
  run at a time per file, released by the kernel when the process dies), a lease on PostgreSQL
  (a row that expires unless its holder renews it, so a dead machine blocks nobody longer than
  the lease). On PostgreSQL an intent is recorded only under an unexpired lease, checked in the
  intent's own transaction: a writer that lost its lease cannot send a trigger.
* **The schema is versioned.** Opening a store migrates an older schema in one transaction, safe
  when several processes open a new database at once, and refuses a newer one ("upgrade").
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from runner.errors import LedgerError
from runner.plan import Plan
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

Event = tuple[float, str, str | None, dict[str, Any]]


@dataclass(frozen=True)
class LeaseTimings:
    """How long a lease lasts unless renewed, how often its holder renews it, how often a
    writer waiting for it (``--lock-timeout``) looks again. Seconds."""

    duration: float = 60.0
    heartbeat: float = 15.0
    poll: float = 1.0


def run_lease_key(run_id: str) -> str:
    """The name of the lock that makes one process at a time the writer of ``run_id``."""
    return f"run:{run_id}"


class Store(ABC):
    """The durable journal of runs: if a fact is not here, it did not happen.

    Open one with :func:`runner.store.open_store`; use it as a context manager (closing
    releases its lock). Methods are synchronous: a commit is a short wait on the event loop,
    as the order of the writes (intent, then the request) requires.
    """

    location: str  # for messages: a path, or a URL without its password or query

    # -- opening, locking ----------------------------------------------------------------------

    @property
    @abstractmethod
    def local_dir(self) -> Path:
        """Where a run keeps files on this machine (a sandbox run's state)."""

    @abstractmethod
    def lock(self, key: str, *, wait: float = 0.0) -> None:
        """Become the one writer of ``key`` (:func:`run_lease_key`), waiting up to ``wait`` s.

        Refused with a :class:`LedgerError` naming the holder when another process holds it.
        """

    @abstractmethod
    def held_by_another(self, key: str) -> bool:
        """Whether another live process holds ``key`` now (a shard of the run still working)."""

    @property
    @abstractmethod
    def heartbeat(self) -> float | None:
        """Seconds between two :meth:`renew_lease` calls; None when no lease needs renewing."""

    @abstractmethod
    def renew_lease(self) -> None:
        """Extend the lease taken by :meth:`lock`; :class:`~runner.errors.LeaseLost` once it
        has ended (taken over or not)."""

    @abstractmethod
    def close(self) -> None:
        """Release the lock and close."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(LedgerError):  # the error under way says more
            self.close()

    @abstractmethod
    def transaction(self, *, durable: bool = False) -> contextlib.AbstractContextManager[None]:
        """Several writes committed together; nested calls join the outer transaction.

        ``durable``: committed so as to survive a power loss before it returns, as the intent
        of a trigger about to be sent must be; other commits survive a crash of the process.
        """

    # -- runs ----------------------------------------------------------------------------------

    @abstractmethod
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
        """Record a new run and its whole plan, every action pending, in one durable commit.

        With ``run_key``, the run takes the name unless another run holds it: then nothing is
        written and that run's id is returned (another process was first: join it). To name a
        new run over an older one (``--new-run``), ``replacing`` is the older run's id. Returns
        the id of the run the key names afterwards (``run_id`` itself without a key).
        """

    @abstractmethod
    def set_plan(self, run_id: str, plan: Plan) -> None:
        """Replace the run's recorded plan by ``plan``, the same actions with more facts (the
        query counts a shared run learns once every shard has read its own)."""

    @abstractmethod
    def hold_run(self, run_id: str) -> None:
        """Inside a transaction: the run is this writer's alone until the transaction ends.

        Writers that decide something once for a whole run (a shared run's budget) hold it, so
        that they decide one after the other, each seeing what the one before recorded.
        """

    @abstractmethod
    def run_by_key(self, run_key: str) -> RunRecord | None:
        """The run named ``run_key``, if any."""

    @abstractmethod
    def set_run_status(self, run_id: str, status: RunStatus, *, now: float) -> None:
        """Set the run's status; any status but ``running`` sets its end time."""

    @abstractmethod
    def set_created_by(self, run_id: str, user_id: str) -> None:
        """Record the API's id of the key's user, learnt from the run's first trigger."""

    @abstractmethod
    def run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; LedgerError when there is none."""

    @abstractmethod
    def runs(self) -> list[RunRecord]:
        """Every run, newest first."""

    @abstractmethod
    def latest_run(self) -> RunRecord | None:
        """The newest run, if any."""

    @abstractmethod
    def resolve_run_id(self, prefix: str) -> str:
        """A full run id from a unique prefix (or ``last``); LedgerError otherwise."""

    # -- actions and attempts ------------------------------------------------------------------

    @abstractmethod
    def actions(self, run_id: str) -> list[ActionRecord]:
        """The run's actions, in the plan's order."""

    @abstractmethod
    def action_state(self, run_id: str, key: str) -> ActionState:
        """Where one action stands."""

    @abstractmethod
    def record_intent(self, run_id: str, key: str, *, idempotency_key: str, now: float) -> int:
        """Record that attempt N of ``key`` is about to be sent, durable when it returns; N."""

    @abstractmethod
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

    @abstractmethod
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
        """Set an action's state (and what settled it) outside an attempt."""

    @abstractmethod
    def attempts(self, run_id: str, key: str) -> list[AttemptRecord]:
        """The attempts of one action, in order."""

    @abstractmethod
    def known_job_ids(self) -> set[str]:
        """Every job id any run in this state has attributed to an action."""

    # -- jobs (following) ----------------------------------------------------------------------

    @abstractmethod
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
        """Record what was seen of a job: its status and counters, when it ended, an anomaly."""

    @abstractmethod
    def add_job_anomaly(self, run_id: str, job_id: str, anomaly: str) -> None:
        """Note an anomaly of a job, once."""

    @abstractmethod
    def jobs(self, run_id: str) -> list[JobRecord]:
        """The run's jobs, in the order they were first seen."""

    # -- events (the report's timeline) --------------------------------------------------------

    @abstractmethod
    def record_event(
        self, run_id: str, kind: str, *, now: float, key: str | None = None, **detail: Any
    ) -> None:
        """Append an event (a pause, a settlement, the in-flight guard) to the run's timeline."""

    @abstractmethod
    def events(self, run_id: str) -> list[Event]:
        """The run's events in the order they were recorded: ``(at, kind, key, detail)``."""

    # -- parts (the shards of one run) -----------------------------------------------------------

    @abstractmethod
    def set_part_status(self, run_id: str, part: str, status: RunStatus, *, now: float) -> None:
        """Record the status of one part of a run (a shard ``i/n``, or ``all``)."""

    @abstractmethod
    def parts(self, run_id: str) -> dict[str, RunStatus]:
        """Every part of the run with its status."""

    # -- what the state knows across runs ------------------------------------------------------

    @abstractmethod
    def record_query_counts(self, base_url: str, counts: Mapping[str, int], *, now: float) -> None:
        """Remember each project's query count (by project id) as read from ``base_url`` now."""

    @abstractmethod
    def query_counts(self, base_url: str, *, since: float) -> dict[str, int]:
        """The query counts read from ``base_url`` at or after ``since``, by project id."""

    @abstractmethod
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
        """Remember the project's latest job as seen now (``created``: epoch seconds, the
        server's ``createdAt``): an older job never replaces a newer one."""

    @abstractmethod
    def project_jobs(self, base_url: str) -> dict[str, ProjectJob]:
        """The latest job the state has seen of each project of ``base_url``, by project id."""
