"""What the state holds, as values: runs, actions, attempts, jobs, and the holder of a lease.

Every :class:`~runner.store.base.Store` returns these, whichever database is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from runner.plan import Action, Plan


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
    """An action as the state knows it."""

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
    run_key: str | None = None  # the name the run was given (--run-key, or the CI job's)


@dataclass(frozen=True)
class ProjectJob:
    """A project's latest job as the state last saw it (any run, any machine)."""

    job_id: str
    created: float  # the server's createdAt, epoch seconds
    status: str
    terminal: bool
    seen_at: float


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, by the database's clock: for the message that names them."""

    host: str
    pid: int
    since: datetime
    expires_at: datetime
    token: str = field(repr=False)  # which taking of the lease it is

    def describe(self) -> str:
        """``host 'ci-7' (pid 4242) since 2025-06-15 12:00:03 UTC, until 12:01:03 UTC``."""
        since = self.since.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        until = self.expires_at.strftime("%H:%M:%S %Z").strip()
        return f"host {self.host!r} (pid {self.pid}) since {since}, lease until {until}"
