"""What happens to a run's actions, written down: the ledger first, then the live counters.

The engine and the settler never write the ledger themselves: every change of an action's
state goes through the run's :class:`Journal`, which records it (an attempt's intent, its
outcome, the jobs it created, events) and counts it in :class:`~runner.run.progress.RunProgress`.
It also holds what the run has learnt (its key's ``createdBy``, the job ids already attributed)
and why it stopped sending, if it did.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import anyio

from runner.api import CachedJob, Job, Reply
from runner.clock import Clock
from runner.errors import ApiError
from runner.plan import Action
from runner.run.known import ended_projects, remember_job
from runner.run.options import EngineOptions
from runner.run.progress import ProjectProgress, RunProgress
from runner.store import ActionState, AttemptOutcome, AttemptRecord, SettledBy, Store

_SETTLED_COUNTERS = {
    ActionState.TRIGGERED: "triggered",
    ActionState.FAILED: "failed",
    ActionState.UNKNOWN: "unknown",
    ActionState.SKIPPED: "skipped",
}


def idempotency_key(run_id: str, action_key: str) -> str:
    """A deterministic key per (run, action): the same on every resend and on resume."""
    digest = hashlib.sha256(f"{run_id}\x00{action_key}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class Journal:
    """One run's record of its actions, in the ledger and in the progress counters."""

    def __init__(
        self,
        *,
        ledger: Store,
        run_id: str,
        clock: Clock,
        options: EngineOptions,
        progress: RunProgress,
    ) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock
        self.options = options
        self.progress = progress
        record = ledger.run(run_id)
        self.created_by: str | None = record.created_by
        self.base_url = record.base_url
        self.ended_projects = ended_projects(ledger, record.base_url)  # no in-flight guard read
        self.known_jobs = ledger.known_job_ids()  # attributed to an action: never adopted again
        self.stop_reason: str | None = None
        self.on_job: Callable[[Action, Job], None] | None = None  # e.g. the follower's add
        self._failures = 0

    # -- reading ----------------------------------------------------------------------------------

    def state(self, action: Action) -> ActionState:
        return self.ledger.action_state(self.run_id, action.key)

    def last_attempt(self, action: Action) -> AttemptRecord:
        return self.ledger.attempts(self.run_id, action.key)[-1]

    def count_known(self, actions: list[Action]) -> None:
        """Start the counters from the ledger: a resumed run has history."""
        states = {r.action.key: r.state for r in self.ledger.actions(self.run_id)}
        self.progress.total = len(actions)
        for action in actions:
            self.progress.projects.setdefault(action.project, ProjectProgress()).actions += 1
            counter = _SETTLED_COUNTERS.get(states.get(action.key, ActionState.PENDING))
            if counter is not None:
                self.progress.note(action.project, **{counter: 1})

    # -- an attempt -------------------------------------------------------------------------------

    def intent(self, action: Action, key: str) -> tuple[int, float]:
        """Record that the next attempt of ``action`` is about to be sent; its number and time.

        On disk when this returns (``synchronous=FULL``): the request may go on the wire.
        """
        now = self.clock.wall()
        attempt = self.ledger.record_intent(self.run_id, action.key, idempotency_key=key, now=now)
        return attempt, now

    def accepted(self, action: Action, attempt: int, reply: Reply[Any]) -> None:
        """The API answered with what it created: the outcome and the jobs, in one commit."""
        value = reply.value
        jobs: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
        job_ids = tuple(job.id for job in jobs)
        with self.ledger.transaction():
            self._outcome(
                action,
                attempt,
                AttemptOutcome.ACCEPTED,
                state=ActionState.TRIGGERED,
                http_status=reply.status,
                job_ids=job_ids,
                settled_by=SettledBy.RESPONSE,
            )
            self.known_jobs.update(job_ids)
            if isinstance(value, tuple):
                self._cached_jobs(action, value)
            if isinstance(value, Job):
                self._job(action, value)
        self.progress.note(action.project, triggered=1)

    def withdrawn(self, action: Action, attempt: int, *, reason: str = "") -> None:
        """An attempt whose intent is on disk but which provably never left: pending again."""
        self._outcome(
            action,
            attempt,
            AttemptOutcome.WITHDRAWN,
            state=ActionState.PENDING,
            detail=f"not sent: {reason or self.stop_reason}",
        )

    def interrupted(self, action: Action, attempt: int) -> None:
        """Cancelled with the request on the wire: it may have been processed."""
        # Shielded: the cancellation under way must not cancel this write in turn.
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write on purpose
            self._outcome(
                action,
                attempt,
                AttemptOutcome.INTERRUPTED,
                state=ActionState.AMBIGUOUS,
                detail="interrupted while the trigger was in flight; settled on resume",
            )

    def withdrawn_on_cancel(self, action: Action, attempt: int) -> None:
        """Cancelled after its intent, before the wire: it never left."""
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write on purpose
            self.withdrawn(action, attempt, reason="interrupted before it was sent")

    def ambiguous(self, action: Action, attempt: int, exc: Exception) -> None:
        """No telling whether it was processed: the action waits to be settled."""
        self._outcome(
            action,
            attempt,
            AttemptOutcome.AMBIGUOUS,
            state=ActionState.AMBIGUOUS,
            http_status=exc.status if isinstance(exc, ApiError) else None,
            error=str(exc),
        )
        self.event("ambiguous", key=action.key)
        self.progress.ambiguous += 1

    def not_processed(
        self, action: Action, attempt: int, outcome: AttemptOutcome, exc: Exception
    ) -> None:
        """Provably not processed (429, 503, never sent): pending, to be sent again."""
        self._outcome(
            action,
            attempt,
            outcome,
            state=ActionState.PENDING,
            http_status=exc.status if isinstance(exc, ApiError) else None,
            error=str(exc),
        )
        if outcome == AttemptOutcome.RATE_LIMITED:
            self.progress.rate_limited += 1

    def failed(
        self,
        action: Action,
        attempt: int,
        reason: str,
        *,
        outcome: AttemptOutcome = AttemptOutcome.GAVE_UP,
        status: int | None = None,
    ) -> None:
        """Failed for good; with ``--fail-fast`` or ``--max-failures``, the run stops too."""
        self._outcome(
            action,
            attempt,
            outcome,
            state=ActionState.FAILED,
            http_status=status,
            error=reason,
            detail=reason,
        )
        self.progress.note(action.project, failed=1)
        self._failures += 1
        if self.options.fail_fast:
            self.stop(f"--fail-fast after {action.key} failed")
        elif self.options.max_failures is not None and self._failures >= self.options.max_failures:
            self.stop(f"--max-failures {self.options.max_failures} reached")

    # -- settling -------------------------------------------------------------------------------

    def adopted(self, action: Action, attempt: int, job: Job) -> None:
        """An ambiguous attempt's job, found in the job list: triggered, never resent."""
        with self.ledger.transaction():
            self._outcome(
                action,
                attempt,
                AttemptOutcome.ADOPTED,
                state=ActionState.TRIGGERED,
                job_ids=(job.id,),
                settled_by=SettledBy.JOB_LIST,
            )
            self.known_jobs.add(job.id)
            self._job(action, job)
        self.progress.note(action.project, triggered=1)

    def not_created(self, action: Action, attempt: int) -> None:
        """The job list showed nothing for the whole grace: resending is known to be safe."""
        with self.ledger.transaction():
            self.event("settled_not_created", key=action.key)
            self.ledger.set_action_state(
                self.run_id,
                action.key,
                ActionState.PENDING,
                now=self.clock.wall(),
                detail=f"attempt {attempt} was not created (the job list showed nothing for "
                f"{self.options.settle_grace:.0f}s); resent",
            )

    def unknown(self, action: Action, attempt: int, why: str) -> None:
        """Could not be settled: UNKNOWN, for a human to look at."""
        self.ledger.set_action_state(
            self.run_id,
            action.key,
            ActionState.UNKNOWN,
            now=self.clock.wall(),
            detail=f"attempt {attempt}: {why}",
            settled_by=SettledBy.UNSETTLED,
        )
        self.progress.note(action.project, unknown=1)

    # -- the run --------------------------------------------------------------------------------

    def skipped(self, action: Action, reason: str) -> None:
        """Not triggered on purpose (the in-flight guard, the run stopped)."""
        self.ledger.set_action_state(
            self.run_id, action.key, ActionState.SKIPPED, now=self.clock.wall(), detail=reason
        )
        self.progress.note(action.project, skipped=1)

    def stop(self, reason: str) -> None:
        """Stop sending: nothing new goes out; recorded once, with the first reason."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.progress.stop_reason = reason
            self.event("stop", reason=reason)

    def event(self, kind: str, *, key: str | None = None, **detail: Any) -> None:
        self.ledger.record_event(self.run_id, kind, now=self.clock.wall(), key=key, **detail)

    # -- the ledger's rows ------------------------------------------------------------------------

    def _outcome(  # noqa: PLR0913 - the fields of one journal row, by name
        self,
        action: Action,
        attempt: int,
        outcome: AttemptOutcome,
        *,
        state: ActionState,
        http_status: int | None = None,
        error: str | None = None,
        job_ids: tuple[str, ...] | None = None,
        detail: str | None = None,
        settled_by: SettledBy | None = None,
    ) -> None:
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome=outcome,
            now=self.clock.wall(),
            http_status=http_status,
            error=error,
            state=state,
            job_ids=job_ids,
            detail=detail,
            settled_by=settled_by,
        )

    def _cached_jobs(self, action: Action, cached: tuple[CachedJob, ...]) -> None:
        """What the cached-jobs trigger returned, for the report to reconcile per query."""
        jobs = [
            {
                "id": job.id,
                "queryId": job.query_id,
                "aiModels": list(job.ai_models),
                "executionCount": job.execution_count,
                "status": job.status,
            }
            for job in cached
        ]
        self.event("cached_jobs", key=action.key, jobs=jobs)

    def seen(self, project_id: str, job: Job) -> None:
        """Remember ``job`` as the project's latest, for the in-flight guard of later runs."""
        remember_job(self.ledger, self.base_url, project_id, job, now=self.clock.wall())

    def _job(self, action: Action, job: Job) -> None:
        if self.created_by is None and job.created_by:
            self.created_by = job.created_by  # this key's user: the job list is filtered by it
            self.ledger.set_created_by(self.run_id, job.created_by)
        if self.on_job is not None:
            self.on_job(action, job)
        self.seen(action.project_id, job)
        self.ledger.upsert_job(
            self.run_id,
            job.id,
            key=action.key,
            kind="job",
            status=job.status,
            counters=job.counters(),
            created_at=job.created_at,
            now=self.clock.wall(),
            terminal=job.terminal,
        )
