"""The trigger phase: every action of a plan sent once, concurrently across projects.

Properties it keeps (see docs/architecture.md):

* **Never double-trigger.** A trigger is sent again only when the previous attempt provably did
  not take effect: not sent (connect refused or timed out), 429, 503. Anything else that may
  have been processed is *ambiguous* and goes to the :class:`~runner.run.settle.Settler`, which
  adopts the job it finds, resends only once it knows nothing was created, or leaves UNKNOWN.
* **Nothing lost.** Each attempt's intent is on disk before the request goes on the wire, its
  outcome after (:class:`~runner.run.journal.Journal`). A resumed run settles every intent
  without an outcome before anything else.
* **At most one trigger in flight per project**, concurrency across projects (a task per
  project, ``concurrency`` of them at a time): this is what makes settling by the job list
  unambiguous.
* **One budget.** Every request goes through the run's :class:`~runner.run.gateway.Gateway`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

import anyio

from runner.api import JobPage, MentionLabClient, Reply
from runner.clock import Clock
from runner.errors import (
    AnswerOutOfBounds,
    ApiError,
    AuthError,
    NotFound,
    NotSent,
    NotTheApi,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
    TransportError,
)
from runner.manifest.model import Endpoint
from runner.plan import Action
from runner.ratelimit import RequestKind
from runner.run.gateway import AMBIGUOUS_ERRORS, FATAL_ERRORS, Gateway, Tries, Withdrawn
from runner.run.journal import Journal, idempotency_key
from runner.run.options import EngineOptions
from runner.run.settle import Settler
from runner.store import ActionState, AttemptOutcome


class Next(Enum):
    """What to do after one attempt of a trigger."""

    DONE = auto()  # settled: triggered, failed, or the run stopped
    WITHDRAWN = auto()  # never left (the run is stopping)
    AMBIGUOUS = auto()  # may have been processed: settle before anything else
    THROTTLED = auto()  # 429: the limiter holds the resend until the pause ends
    RETRY = auto()  # not processed, and the outage breaker spaces the resend
    BACKOFF = auto()  # not processed: resend after a jittered backoff


@dataclass
class _Sent:
    """The attempt number and intent time of a trigger, known once its intent is recorded."""

    number: int = 0
    intent_wall: float = 0.0
    on_the_wire: bool = False  # the request may have left: only then is a cancel ambiguous


class Engine:
    """Runs the trigger phase of a plan against the API, journaled in the ledger."""

    def __init__(
        self,
        *,
        client: MentionLabClient,
        gateway: Gateway,
        journal: Journal,
        clock: Clock,
        options: EngineOptions,
        concurrency: int,
    ) -> None:
        self.client = client
        self.gateway = gateway
        self.journal = journal
        self.clock = clock
        self.options = options
        self.settler = Settler(
            client=client, gateway=gateway, journal=journal, clock=clock, options=options
        )
        self._concurrency = max(1, concurrency)
        self._slots: anyio.CapacityLimiter  # per trigger(): concurrency projects at a time
        self._slot_holders: set[str] = set()  # projects holding one of the slots

    @property
    def stop_reason(self) -> str | None:
        return self.journal.stop_reason

    async def trigger(self, actions: Sequence[Action]) -> None:
        """Trigger every action not yet settled; projects in parallel, actions of one in order."""
        by_project: dict[str, list[Action]] = defaultdict(list)
        for action in actions:
            by_project[action.project_id].append(action)
        self.journal.count_known(list(actions))
        self._slots = anyio.CapacityLimiter(self._concurrency)
        async with anyio.create_task_group() as group:
            for project_actions in by_project.values():
                group.start_soon(self._trigger_project_in_a_slot, project_actions)
        if self.stop_reason:
            self._skip_remaining(actions)

    # -- projects -----------------------------------------------------------------------------

    async def _trigger_project_in_a_slot(self, actions: list[Action]) -> None:
        """One project, holding one of ``concurrency`` slots until it is done or first sleeps."""
        project = actions[0].project_id
        await self._slots.acquire()
        self._slot_holders.add(project)
        try:
            await self._trigger_project(actions)
        finally:
            self._leave_slot(project)

    def _leave_slot(self, project: str) -> None:
        if project in self._slot_holders:
            self._slot_holders.discard(project)
            self._slots.release()

    async def _sleep_aside(self, action: Action, seconds: float) -> None:
        """Sleep without holding up other projects: the project leaves its slot for good.

        Another project starts in it. Awake, this one goes on without a slot rather than queue
        behind every project not yet started (its retries would wait for most of the run, past
        ``max_retry_seconds``); the limiter still bounds the requests in flight.
        """
        self._leave_slot(action.project_id)
        await self.clock.sleep(seconds)

    async def _trigger_project(self, actions: list[Action]) -> None:
        if not self.options.allow_stacking and await self._project_busy(actions):
            return
        for action in actions:
            if self.stop_reason:
                return
            await self._trigger_action(action)

    def _guard_reads(self, actions: list[Action]) -> bool:
        """Whether the in-flight guard must read the project's job list before its triggers."""
        if {self.journal.state(action) for action in actions} != {ActionState.PENDING}:
            return False  # this run already started the project: its jobs are ours
        if actions[0].project_id in self.journal.ended_projects:
            self.journal.progress.guard_reads_skipped += 1
            return False  # the state saw the project's latest job end
        return True

    async def _project_busy(self, actions: list[Action]) -> bool:
        """The in-flight guard: skip a project whose last job (not ours) is still running."""
        if not self._guard_reads(actions):
            return False
        first = actions[0]

        async def latest_jobs() -> Reply[JobPage]:
            if self.stop_reason:
                raise Withdrawn
            return await self.client.list_jobs(
                project_id=first.project_id, organisation=first.organisation, limit=1
            )

        try:
            reply = await self.gateway.read(RequestKind.TRIGGER, latest_jobs)
        except Withdrawn:
            return True  # the run is stopping; the project's actions are marked skipped
        except FATAL_ERRORS as exc:
            self.journal.stop(f"{type(exc).__name__}: {exc}")
            return True
        except (ApiError, TransportError):
            return False  # the guard cannot tell; the trigger itself will report any problem
        latest = reply.value.jobs[0] if reply.value.jobs else None
        if latest is not None:
            self.journal.seen(first.project_id, latest)
        if latest is None or latest.terminal:
            return False
        reason = (
            f"in-flight guard: the project's last job {latest.id} is still {latest.status} "
            f"(created {latest.created_at}); use --allow-stacking to trigger anyway"
        )
        for action in actions:
            self.journal.skipped(action, reason)
        self.journal.event("in_flight_guard", key=first.key, job=latest.id, status=latest.status)
        return True

    def _skip_remaining(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if self.journal.state(action) == ActionState.PENDING:
                self.journal.skipped(action, f"not attempted: {self.stop_reason}")

    # -- one action -----------------------------------------------------------------------------

    async def _trigger_action(self, action: Action) -> None:
        state = self.journal.state(action)
        if state in {ActionState.IN_FLIGHT, ActionState.AMBIGUOUS}:
            # A previous process sent (or may have sent) this trigger: look before resending.
            last = self.journal.last_attempt(action)
            if not await self._settle(action, last.attempt, last.intent_at):
                return
        elif state != ActionState.PENDING:
            return
        await self._send_until_settled(action)

    async def _settle(self, action: Action, attempt: int, since_wall: float) -> bool:
        return await self.settler.settle(
            action,
            attempt=attempt,
            since_wall=since_wall,
            sleep=lambda seconds: self._sleep_aside(action, seconds),
        )

    async def _send_until_settled(self, action: Action) -> None:
        key = idempotency_key(self.journal.run_id, action.key)
        tries = Tries(self.options, self.clock)
        while not self.stop_reason:
            kind = RequestKind.URGENT if tries.retrying else RequestKind.TRIGGER
            sent = _Sent()
            outcome = await self._attempt(action, sent, key, kind)
            if outcome in {Next.DONE, Next.WITHDRAWN}:
                return
            if outcome == Next.AMBIGUOUS:
                if not await self._settle(action, sent.number, sent.intent_wall):
                    return
                continue  # settled as "not created": resending is now known to be safe
            self.journal.progress.retries += 1
            if outcome == Next.THROTTLED:
                if not tries.throttle():
                    reason = f"still rate limited after {tries.throttled} tries"
                    self.journal.failed(action, sent.number, reason)
                    return
                continue  # the limiter holds the resend until Retry-After (or the reset) passes
            if not tries.fail():
                reason = f"gave up after {tries.failures} attempts"
                self.journal.failed(action, sent.number, reason)
                return
            if outcome == Next.BACKOFF:
                await self._sleep_aside(action, self.gateway.backoff(tries.failures))

    async def _attempt(self, action: Action, sent: _Sent, key: str, kind: RequestKind) -> Next:
        """Send once and record the outcome; what to do next."""
        progress = self.journal.progress

        async def record_intent() -> None:
            # The intent is committed once our turn has come, right before the wire.
            if self.stop_reason:
                raise Withdrawn
            sent.number, sent.intent_wall = self.journal.intent(action, key)

        async def send() -> Reply[Any]:
            if self.stop_reason:  # stopped while this one waited for the wire: not sent
                raise Withdrawn
            sent.on_the_wire = True
            progress.note(action.project, sent=1, in_flight=1)
            try:
                return await self._call_trigger(action, key)
            finally:
                progress.note(action.project, in_flight=-1)

        try:
            reply = await self.gateway.request(kind, send, before_wire=record_intent)
        except Withdrawn:
            if sent.number:  # its intent is on disk: say it never left, so it is skipped
                self.journal.withdrawn(action, sent.number)
            return Next.WITHDRAWN
        except anyio.get_cancelled_exc_class():
            self._record_cancelled(action, sent)
            raise
        except (ApiError, TransportError) as exc:
            return self._on_failure(action, sent.number, exc)
        self.journal.accepted(action, sent.number, reply)
        return Next.DONE

    def _record_cancelled(self, action: Action, sent: _Sent) -> None:
        if sent.on_the_wire:
            self.journal.interrupted(action, sent.number)
        elif sent.number:  # cancelled after its intent, before the wire: it never left
            self.journal.withdrawn_on_cancel(action, sent.number)

    def _on_failure(  # noqa: PLR0911 - one branch per class of failure reads best flat
        self, action: Action, attempt: int, exc: ApiError | TransportError
    ) -> Next:
        """Record a failed attempt by its class; what to do next."""
        journal = self.journal
        if isinstance(exc, RateLimited):
            journal.not_processed(action, attempt, AttemptOutcome.RATE_LIMITED, exc)
            return Next.THROTTLED
        if isinstance(exc, ServiceUnavailable | NotSent):
            journal.not_processed(action, attempt, AttemptOutcome.NOT_PROCESSED, exc)
            return Next.RETRY if self.gateway.breaker.is_open else Next.BACKOFF
        if isinstance(exc, NotTheApi | AnswerOutOfBounds):  # fatal; it may have reached the API
            journal.stop(f"{type(exc).__name__}: {exc}")
            journal.ambiguous(action, attempt, exc)
            return Next.AMBIGUOUS
        if isinstance(exc, AuthError | QuotaExhausted):
            journal.failed(
                action, attempt, str(exc), outcome=AttemptOutcome.FATAL, status=exc.status
            )
            journal.stop(f"{type(exc).__name__}: {exc}")
            return Next.DONE
        if isinstance(exc, NotFound | RequestRejected):
            rejected = AttemptOutcome.REJECTED
            journal.failed(action, attempt, str(exc), outcome=rejected, status=exc.status)
            return Next.DONE
        if isinstance(exc, AMBIGUOUS_ERRORS):
            journal.ambiguous(action, attempt, exc)
            return Next.AMBIGUOUS
        journal.failed(action, attempt, str(exc), outcome=AttemptOutcome.ERROR)
        return Next.DONE

    async def _call_trigger(self, action: Action, key: str) -> Reply[Any]:
        if action.endpoint == Endpoint.CACHED_JOBS:
            return await self.client.trigger_cached_jobs(
                project_id=action.project_id,
                organisation=action.organisation or "",
                provider_keys=action.models,
                execution_count=action.execution_count,
                idempotency_key=key,
            )
        return await self.client.trigger_job(
            project_id=action.project_id,
            organisation=action.organisation,
            models=action.models,
            execution_count=action.execution_count,
            idempotency_key=key,
        )
