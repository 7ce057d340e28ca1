"""The engine: fan out a plan's triggers concurrently, settle every doubt, follow the jobs.

Properties it keeps (see docs/architecture.md):

* **Never double-trigger.** A trigger is resent only when the previous attempt provably did not
  take effect: not sent (connect refused or timed out), 429, 503. A read timeout, a closed
  connection, a 500/502/504 or a malformed success are *ambiguous*: the action is marked so in the
  ledger and settled by reading the project's job list (newest first, created by this key after the
  intent, not attributed to another action, with the expected execution count). One candidate is
  adopted; none after the grace period means it was not created, and only then is it resent;
  several is UNKNOWN, left for a human (``--retry-ambiguous`` overrides).
* **Nothing lost.** The intent of every attempt is committed to the ledger before the request, the
  outcome after. A resumed run settles every intent without an outcome before anything else.
* **One budget.** Every request (triggers, retries, settle reads, polls) goes through the one
  :class:`~runner.ratelimit.RateLimiter`, and learns from every response's headers.
* **At most one trigger in flight per project**, concurrency across projects: this is what makes
  settling by the job list unambiguous.
* **Outages pause the run as a whole**: after consecutive 503s or refused connections the
  :class:`OutageBreaker` opens; one probe goes out per backoff period until the service answers.
"""

from __future__ import annotations

import hashlib
import random as random_module
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import anyio

from runner.api import CachedJob, Job, JobPage, MentionLabClient, Reply
from runner.backoff import backoff_ceiling, full_jitter
from runner.clock import Clock
from runner.errors import (
    AnswerOutOfBounds,
    ApiError,
    AuthError,
    MalformedResponse,
    NotFound,
    NotSent,
    NotTheApi,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unreachable,
)
from runner.manifest.model import Endpoint
from runner.plan import Action
from runner.ratelimit import Permit, RateLimiter, RateLimitInfo, RequestKind
from runner.store import ActionState, Ledger

T = TypeVar("T")

# Failures that stop the run: no later request can do better. The last two may hide a
# processed trigger (recorded ambiguous, settled on resume).
FATAL_ERRORS = (AuthError, QuotaExhausted, NotTheApi, AnswerOutOfBounds)
AMBIGUOUS_ERRORS = (OutcomeUnknown, ServerError, MalformedResponse)
_RETRYABLE_READ_ERRORS = (ServiceUnavailable, NotSent, *AMBIGUOUS_ERRORS)
UNREACHABLE_AFTER = 3  # refused connections, before any answer, that make the API unreachable


@dataclass(frozen=True)
class EngineOptions:
    """How hard to try, how long to wait. Seconds."""

    max_attempts: int = 8  # sends of one trigger that provably did not take effect
    max_retry_seconds: float = 900.0  # from the first failure that provably did not take effect
    max_throttled: int = 100  # 429s for one trigger before giving up on it
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    settle_grace: float = 60.0  # how long a created job may take to appear in the list
    settle_lookups: int = 4
    clock_skew: float = 120.0  # allowance when comparing our intent time with createdAt
    retry_ambiguous: bool = False
    allow_stacking: bool = False  # trigger even if the project's last job is still running
    fail_fast: bool = False
    max_failures: int | None = None
    outage_threshold: int = 3  # consecutive unavailable answers that open the breaker
    outage_pause: float = 30.0
    outage_pause_cap: float = 300.0


@dataclass
class ProjectProgress:
    """Counters of one project's actions."""

    actions: int = 0
    sent: int = 0
    in_flight: int = 0
    triggered: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0

    @property
    def settled(self) -> int:
        return self.triggered + self.failed + self.unknown + self.skipped


@dataclass(frozen=True)
class Outage:
    """Why and since when sending is paused for an outage; wall-clock times."""

    since: float  # when the breaker opened
    why: str  # the last sign of the outage: "HTTP 503", "no answer to the probe"...
    next_probe: float | None  # when the next probe may go; None while one is out


@dataclass
class RunProgress:
    """Live counters for the progress display; the ledger stays the source of truth."""

    total: int = 0
    sent: int = 0
    in_flight: int = 0
    triggered: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    requests: int = 0
    requests_in_flight: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    retries: int = 0
    jobs_followed: int = 0
    jobs_done: int = 0
    stop_reason: str | None = None
    outage: Outage | None = None  # the API is unavailable: nothing is sent but a probe
    projects: dict[str, ProjectProgress] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.triggered + self.failed + self.unknown + self.skipped

    def note(self, project: str, **deltas: int) -> None:
        """Add ``deltas`` to the run's counters and to ``project``'s."""
        counters = self.projects.setdefault(project, ProjectProgress())
        for name, delta in deltas.items():
            setattr(self, name, getattr(self, name) + delta)
            setattr(counters, name, getattr(counters, name) + delta)


class Withdrawn(Exception):
    """A request given up after its turn came but before it was sent (the run is stopping)."""


class _LookupFailed(Exception):
    """The job list could not be read to settle an ambiguous trigger."""


@dataclass
class _Sent:
    """The attempt number and intent time of a trigger, known once its intent is recorded."""

    number: int = 0
    intent_wall: float = 0.0
    on_the_wire: bool = False  # the request may have left: only then is a cancel ambiguous


class OutageBreaker:
    """A run-wide circuit breaker for outages: one probe per backoff period while open.

    After ``outage_threshold`` consecutive unavailable answers (503s, refused connections) it
    opens for a period (``outage_pause``, doubling up to ``outage_pause_cap``, jittered). When
    the period ends, one request goes as the probe and the others wait for it. Whatever becomes
    of the probe moves the breaker: an answer closes it; anything else (a 503, a refused,
    dropped or timed-out connection, a withdrawal, a cancellation, an exception) opens it for
    the next period. The probe's turn ends when its block does, whatever the exit, and a waiter
    never waits past ``outage_pause_cap`` for a probe: one out for that long is presumed lost
    and the waiter probes in its place. The state is published as ``progress.outage``.
    """

    def __init__(
        self,
        clock: Clock,
        rng: random_module.Random,
        options: EngineOptions,
        *,
        progress: RunProgress,
        on_open: Callable[[float, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._options = options
        self._progress = progress
        self._on_open = on_open
        self._consecutive = 0
        self._openings = 0
        self._open_until: float | None = None
        self._probe: object | None = None  # the token of the probe out, if one is
        self._probe_deadline = 0.0
        self._since = 0.0
        self._why = ""
        self._sleepers: set[anyio.CancelScope] = set()

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        """Wait until this caller may send; yields whether it goes as the probe.

        Closed: at once, not a probe. Open: after the period, one caller as the probe, the
        others once the probe has moved the breaker. If the probe's block ends and nothing has
        closed or re-opened the breaker meanwhile (no answer came), it opens for the next period.
        """
        probe = await self._wait_turn()
        try:
            yield probe is not None
        finally:
            if probe is not None and probe is self._probe:
                self._open("no answer to the probe")

    def on_answer(self) -> None:
        """The service answered (any status but 503): not an outage, the breaker closes."""
        self._consecutive = 0
        self._openings = 0
        if self._open_until is not None:
            self._open_until = None
            self._probe = None
            self._changed()

    def on_unavailable(self, why: str) -> None:
        """Count an unavailable answer (a 503, a refused connection); opens at the threshold."""
        self._consecutive += 1
        if self._open_until is not None or self._consecutive >= self._options.outage_threshold:
            self._open(why)

    def status(self) -> Outage | None:
        """The outage as the progress display shows it; None while the breaker is closed."""
        if self._open_until is None:
            return None
        next_probe = None
        if self._probe is None:
            left = max(0.0, self._open_until - self._clock.monotonic())
            next_probe = self._clock.wall() + left
        return Outage(since=self._since, why=self._why, next_probe=next_probe)

    async def _wait_turn(self) -> object | None:
        while self._open_until is not None:
            now = self._clock.monotonic()
            if now < self._open_until:
                await self._sleep_until(self._open_until)
            elif self._probe is None or now >= self._probe_deadline:
                return self._start_probe(now)
            else:
                await self._sleep_until(self._probe_deadline)
        return None

    def _start_probe(self, now: float) -> object:
        self._probe = probe = object()
        self._probe_deadline = now + self._options.outage_pause_cap
        self._changed()
        return probe

    def _open(self, why: str) -> None:
        self._openings += 1
        ceiling = backoff_ceiling(
            self._openings, base=self._options.outage_pause, cap=self._options.outage_pause_cap
        )
        pause = ceiling * (0.75 + 0.25 * self._rng.random())
        if self._open_until is None:
            self._since = self._clock.wall()
        self._open_until = self._clock.monotonic() + pause
        self._probe = None
        self._why = why
        self._changed()
        if self._on_open is not None:
            self._on_open(pause, why)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` or until the breaker changes, whichever comes first."""
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                await self._clock.sleep(deadline - self._clock.monotonic())
            finally:
                self._sleepers.discard(scope)

    def _changed(self) -> None:
        for scope in self._sleepers:
            scope.cancel()
        self._sleepers.clear()
        self._progress.outage = self.status()


class Gateway:
    """Every request of a run goes through here: outage breaker, rate limiter, header learning."""

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        clock: Clock,
        rng: random_module.Random,
        options: EngineOptions,
        progress: RunProgress,
        on_event: Callable[..., None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.clock = clock
        self.progress = progress
        self.breaker = OutageBreaker(
            clock, rng, options, progress=progress, on_open=self._outage_opened
        )
        self._options = options
        self._rng = rng
        self.answered = False  # has anything answered this run (a reply or an HTTP error)?
        self.server_offset = 0.0  # server Date minus our wall clock, from the last response
        self._on_event = on_event

    async def request(
        self,
        kind: RequestKind,
        call: Callable[[], Awaitable[Reply[T]]],
        *,
        before_wire: Callable[[], Awaitable[None]] | None = None,
    ) -> Reply[T]:
        """One request: breaker, limiter, header learning, outage accounting.

        ``before_wire`` runs once, after the limiter has admitted the request and before it is
        sent (a trigger's intent is made durable there). If a pause began meanwhile (a 429's
        Retry-After), the request goes back through the limiter before it is sent: the pause
        holds it too, and the windows space it again.
        """
        while True:
            async with self.breaker.turn() as probe, self.limiter.acquire(kind) as permit:
                if self.breaker.is_open and not probe:
                    permit.refund()  # the breaker opened while this request queued: it waits
                    continue
                if before_wire is not None:
                    await self._prepare(permit, before_wire)
                    before_wire = None
                if self.limiter.current_pause() is not None:
                    permit.refund()  # paused since its admission: through the limiter again
                    continue
                return await self._send(permit, call)

    async def read(self, kind: RequestKind, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        """An idempotent read, resent while its failure may pass; the last error otherwise.

        Reads change nothing, so an ambiguous failure (5xx, a connection lost mid-way, a garbled
        body) is as safe to resend as one that provably never arrived. 429s wait for the
        limiter and count apart (``max_throttled``); other failures back off with full jitter,
        ``max_attempts`` sends and ``max_retry_seconds`` at most. A 4xx, a bad key or exhausted
        credits are answers, never retried. While nothing has answered yet, connections refused
        ``UNREACHABLE_AFTER`` times raise :class:`Unreachable`: a wrong URL is not an outage.
        """
        failures = throttled = 0
        started = self.clock.monotonic()
        while True:
            try:
                return await self.request(kind, call)
            except FATAL_ERRORS:
                raise
            except RateLimited:
                throttled += 1
                if throttled >= self._options.max_throttled:
                    raise
            except _RETRYABLE_READ_ERRORS as exc:
                failures += 1
                if isinstance(exc, NotSent) and not self.answered and failures >= UNREACHABLE_AFTER:
                    raise Unreachable(f"{exc} ({failures} attempts)") from exc
                if self._should_give_up(failures, started):
                    raise
                if not self.breaker.is_open:  # an open breaker already spaces the sends
                    await self.clock.sleep(self.backoff(failures))

    def _should_give_up(self, failures: int, started: float) -> bool:
        elapsed = self.clock.monotonic() - started
        return failures >= self._options.max_attempts or elapsed >= self._options.max_retry_seconds

    def backoff(self, failures: int) -> float:
        """Seconds before the next send after ``failures`` failures: full jitter."""
        return full_jitter(
            failures,
            base=self._options.backoff_base,
            cap=self._options.backoff_cap,
            random=self._rng.random,
        )

    async def _prepare(self, permit: Permit, before_wire: Callable[[], Awaitable[None]]) -> None:
        try:
            await before_wire()
        except Withdrawn:
            permit.refund()
            raise

    async def _send(self, permit: Permit, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        try:
            reply = await self._on_the_wire(call)
        except Withdrawn:
            permit.refund()
            raise
        except NotSent:
            permit.refund()
            self.breaker.on_unavailable("connection refused")
            raise
        except ApiError as exc:
            self.answered = True
            self._learn_from_error(exc, permit)
            raise
        self.answered = True
        permit.observe(reply.rate)
        self.breaker.on_answer()
        self._track_server_clock(reply.rate.date_epoch)
        return reply

    async def _on_the_wire(self, call: Callable[[], Awaitable[Reply[T]]]) -> Reply[T]:
        self.progress.requests += 1
        self.progress.requests_in_flight += 1
        try:
            return await call()
        finally:
            self.progress.requests_in_flight -= 1

    def _learn_from_error(self, exc: ApiError, permit: Permit) -> None:
        rate = exc.rate
        if isinstance(rate, RateLimitInfo):
            permit.observe(rate)
            self._track_server_clock(rate.date_epoch)
        if isinstance(exc, ServiceUnavailable):
            self.breaker.on_unavailable("HTTP 503")
        else:
            self.breaker.on_answer()  # the service answered: not an outage

    def _outage_opened(self, pause: float, why: str) -> None:
        if self._on_event is not None:
            self._on_event("outage_pause", seconds=pause, why=why)

    def _track_server_clock(self, date_epoch: float | None) -> None:
        if date_epoch is not None:
            self.server_offset = date_epoch - self.clock.wall()


def idempotency_key(run_id: str, action_key: str) -> str:
    """A deterministic key per (run, action): the same on every resend and on resume."""
    digest = hashlib.sha256(f"{run_id}\x00{action_key}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def parse_timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class Engine:
    """Runs the trigger phase of a plan against the API, journaled in the ledger."""

    def __init__(  # noqa: PLR0913 - the engine's collaborators are injected, on purpose
        self,
        *,
        client: MentionLabClient,
        limiter: RateLimiter,
        ledger: Ledger,
        run_id: str,
        clock: Clock,
        rng: random_module.Random | None = None,
        options: EngineOptions | None = None,
        progress: RunProgress | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock
        self.rng = rng or random_module.Random()
        self.options = options or EngineOptions()
        self.progress = progress or RunProgress()
        self.gateway = Gateway(
            limiter=limiter,
            clock=clock,
            rng=self.rng,
            options=self.options,
            progress=self.progress,
            on_event=self._event,
        )
        self.request = self.gateway.request
        self.created_by: str | None = ledger.run(run_id).created_by
        self.stop_reason: str | None = None
        self._known_jobs = ledger.known_job_ids()
        self._failures = 0
        self.on_job: Callable[[Action, Job], None] | None = None  # e.g. the follower's add
        self._slots: anyio.CapacityLimiter  # per trigger(): concurrency projects at a time
        self._slot_holders: set[str] = set()  # projects holding one of the slots

    # -- the trigger phase ----------------------------------------------------------------------

    async def trigger(self, actions: Sequence[Action]) -> None:
        """Trigger every action not yet settled; projects in parallel, actions of one in order."""
        by_project: dict[str, list[Action]] = defaultdict(list)
        for action in actions:
            by_project[action.project_id].append(action)
        self._count_known_progress(actions)
        self._slots = anyio.CapacityLimiter(max(1, self.limiter.concurrency))
        async with anyio.create_task_group() as group:
            for project_actions in by_project.values():
                group.start_soon(self._trigger_project_in_a_slot, project_actions)
        if self.stop_reason:
            self._skip_remaining(actions)

    def _count_known_progress(self, actions: Sequence[Action]) -> None:
        """Start the progress counters from the ledger (a resumed run has history)."""
        states = {r.action.key: r.state for r in self.ledger.actions(self.run_id)}
        self.progress.total = len(actions)
        settled = {
            ActionState.TRIGGERED: "triggered",
            ActionState.FAILED: "failed",
            ActionState.UNKNOWN: "unknown",
            ActionState.SKIPPED: "skipped",
        }
        for action in actions:
            self.progress.projects.setdefault(action.project, ProjectProgress()).actions += 1
            counter = settled.get(states.get(action.key, ActionState.PENDING))
            if counter is not None:
                self.progress.note(action.project, **{counter: 1})

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

    async def _trigger_project(self, actions: list[Action]) -> None:
        if not self.options.allow_stacking and await self._project_busy(actions):
            return
        for action in actions:
            if self.stop_reason:
                return
            await self._trigger_action(action)

    async def _project_busy(self, actions: list[Action]) -> bool:
        """The in-flight guard: skip a project whose last job (not ours) is still running."""
        states = {self.ledger.action_state(self.run_id, action.key) for action in actions}
        if states != {ActionState.PENDING}:
            return False  # this run already started the project: its jobs are ours
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
            self.stop(f"{type(exc).__name__}: {exc}")
            return True
        except (ApiError, TransportError):
            return False  # the guard cannot tell; the trigger itself will report any problem
        latest = reply.value.jobs[0] if reply.value.jobs else None
        if latest is None or latest.terminal:
            return False
        reason = (
            f"in-flight guard: the project's last job {latest.id} is still {latest.status} "
            f"(created {latest.created_at}); use --allow-stacking to trigger anyway"
        )
        for action in actions:
            self.ledger.set_action_state(
                self.run_id, action.key, ActionState.SKIPPED, now=self.clock.wall(), detail=reason
            )
            self.progress.note(action.project, skipped=1)
        self._event("in_flight_guard", key=first.key, job=latest.id, status=latest.status)
        return True

    def _skip_remaining(self, actions: Sequence[Action]) -> None:
        states = {r.action.key: r.state for r in self.ledger.actions(self.run_id)}
        for action in actions:
            if states.get(action.key) == ActionState.PENDING:
                self.ledger.set_action_state(
                    self.run_id,
                    action.key,
                    ActionState.SKIPPED,
                    now=self.clock.wall(),
                    detail=f"not attempted: {self.stop_reason}",
                )
                self.progress.note(action.project, skipped=1)

    async def _trigger_action(self, action: Action) -> None:
        state = self.ledger.action_state(self.run_id, action.key)
        if state in {ActionState.IN_FLIGHT, ActionState.AMBIGUOUS}:
            # A previous process sent (or may have sent) this trigger: look before resending.
            last = self.ledger.attempts(self.run_id, action.key)[-1]
            if not await self._settle(action, attempt=last.attempt, since_wall=last.intent_at):
                return
        elif state != ActionState.PENDING:
            return
        await self._send_until_settled(action)

    async def _send_until_settled(self, action: Action) -> None:
        first_failure: float | None = None
        key = idempotency_key(self.run_id, action.key)
        safe_failures = throttled = 0
        while not self.stop_reason:
            kind = RequestKind.URGENT if safe_failures or throttled else RequestKind.TRIGGER
            sent = _Sent()
            outcome = await self._attempt(action, sent, key, kind)
            if outcome in {"done", "withdrawn"}:
                return
            if outcome == "ambiguous":
                settled = await self._settle(
                    action, attempt=sent.number, since_wall=sent.intent_wall
                )
                if not settled:
                    return
                continue  # settled as "not created": resending is now known to be safe
            self.progress.retries += 1
            if outcome == "throttled":
                throttled += 1
                if throttled >= self.options.max_throttled:
                    self._fail(action, sent.number, f"still rate limited after {throttled} tries")
                    return
                continue  # the limiter holds the resend until Retry-After (or the reset) passes
            safe_failures += 1
            first_failure = first_failure or self.clock.monotonic()
            if self._retries_exhausted(safe_failures, first_failure):
                self._fail(action, sent.number, f"gave up after {safe_failures} attempts")
                return
            if outcome == "backoff":
                await self._sleep_aside(action, self.gateway.backoff(safe_failures))

    async def _sleep_aside(self, action: Action, seconds: float) -> None:
        """Sleep without holding up other projects: the project leaves its slot for good.

        Another project starts in it. Awake, this one goes on without a slot rather than queue
        behind every project not yet started (its retries would wait for most of the run, past
        ``max_retry_seconds``); the limiter still bounds the requests in flight.
        """
        self._leave_slot(action.project_id)
        await self.clock.sleep(seconds)

    def _retries_exhausted(self, failures: int, started: float) -> bool:
        elapsed = self.clock.monotonic() - started
        return failures >= self.options.max_attempts or elapsed >= self.options.max_retry_seconds

    async def _attempt(self, action: Action, sent: _Sent, key: str, kind: RequestKind) -> str:
        """Send once; record the outcome. Returns done|withdrawn|ambiguous|retry|backoff."""

        async def record_intent() -> None:
            # The intent is committed once our turn has come, right before the wire.
            if self.stop_reason:
                raise Withdrawn
            sent.intent_wall = self.clock.wall()
            sent.number = self.ledger.record_intent(
                self.run_id, action.key, idempotency_key=key, now=sent.intent_wall
            )

        async def send() -> Reply[Any]:
            if self.stop_reason:  # stopped while this one waited for the wire: not sent
                raise Withdrawn
            sent.on_the_wire = True
            self.progress.note(action.project, sent=1, in_flight=1)
            try:
                return await self._call_trigger(action, key)
            finally:
                self.progress.note(action.project, in_flight=-1)

        try:
            reply = await self.request(kind, send, before_wire=record_intent)
        except Withdrawn:
            if sent.number:  # its intent is on disk: say it never left, so it is skipped
                self._record_withdrawn(action, sent.number)
            return "withdrawn"
        except anyio.get_cancelled_exc_class():
            self._record_cancelled(action, sent)
            raise
        except (ApiError, TransportError) as exc:
            return self._on_failure(action, sent.number, exc)
        self._accept(action, sent.number, reply)
        return "done"

    def _record_cancelled(self, action: Action, sent: _Sent) -> None:
        if sent.on_the_wire:
            self._record_interrupted(action, sent.number)
        elif sent.number:  # cancelled after its intent (synced or not), before the wire
            with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write on purpose
                self._record_withdrawn(action, sent.number, reason="interrupted before it was sent")

    def _record_withdrawn(self, action: Action, attempt: int, *, reason: str = "") -> None:
        """An attempt whose intent is on disk but which provably never left: pending again."""
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome="withdrawn",
            now=self.clock.wall(),
            state=ActionState.PENDING,
            detail=f"not sent: {reason or self.stop_reason}",
        )

    def _record_interrupted(self, action: Action, attempt: int) -> None:
        # Interrupted with the request in flight: it may have been processed. The shield keeps
        # this write from being cancelled in turn.
        with anyio.CancelScope(shield=True):  # noqa: ASYNC100 - shields a sync write on purpose
            self.ledger.record_outcome(
                self.run_id,
                action.key,
                attempt=attempt,
                outcome="interrupted",
                now=self.clock.wall(),
                state=ActionState.AMBIGUOUS,
                detail="interrupted while the trigger was in flight; settled on resume",
            )

    def _on_failure(  # noqa: PLR0911 - one branch per class of failure reads best flat
        self, action: Action, attempt: int, exc: ApiError | TransportError
    ) -> str:
        """Record a failed attempt by its class; say what to do next."""
        if isinstance(exc, RateLimited):
            self._outcome(action, attempt, "rate_limited", exc)
            self.progress.rate_limited += 1
            return "throttled"
        if isinstance(exc, ServiceUnavailable | NotSent):
            self._outcome(action, attempt, "not_processed", exc)
            return "retry" if self.gateway.breaker.is_open else "backoff"
        if isinstance(exc, NotTheApi | AnswerOutOfBounds):  # fatal; it may have reached the API
            self.stop(f"{type(exc).__name__}: {exc}")
            self._record_ambiguous(action, attempt, exc)
            return "ambiguous"
        if isinstance(exc, AuthError | QuotaExhausted):
            self._fail(action, attempt, str(exc), outcome="fatal", status=exc.status)
            self.stop(f"{type(exc).__name__}: {exc}")
            return "done"
        if isinstance(exc, NotFound | RequestRejected):
            self._fail(action, attempt, str(exc), outcome="rejected", status=exc.status)
            return "done"
        if isinstance(exc, AMBIGUOUS_ERRORS):
            self._record_ambiguous(action, attempt, exc)
            return "ambiguous"
        self._fail(action, attempt, str(exc), outcome="error")
        return "done"

    def _record_ambiguous(self, action: Action, attempt: int, exc: Exception) -> None:
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome="ambiguous",
            now=self.clock.wall(),
            http_status=exc.status if isinstance(exc, ApiError) else None,
            error=str(exc),
            state=ActionState.AMBIGUOUS,
        )
        self.ledger.record_event(self.run_id, "ambiguous", now=self.clock.wall(), key=action.key)
        self.progress.ambiguous += 1

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

    def _accept(self, action: Action, attempt: int, reply: Reply[Any]) -> None:
        with self.ledger.transaction():  # the outcome and what it created: one commit
            self._record_accepted(action, attempt, reply)
        self.progress.note(action.project, triggered=1)

    def _record_accepted(self, action: Action, attempt: int, reply: Reply[Any]) -> None:
        value = reply.value
        jobs: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
        job_ids = tuple(job.id for job in jobs)
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome="accepted",
            now=self.clock.wall(),
            http_status=reply.status,
            state=ActionState.TRIGGERED,
            job_ids=job_ids,
            settled_by="response",
        )
        self._known_jobs.update(job_ids)
        if isinstance(value, tuple):
            self._record_cached_jobs(action, value)
        if isinstance(value, Job):
            self._learn_created_by(value)
            self._record_job(action, value)

    def _record_cached_jobs(self, action: Action, cached: tuple[CachedJob, ...]) -> None:
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
        self.ledger.record_event(
            self.run_id, "cached_jobs", now=self.clock.wall(), key=action.key, jobs=jobs
        )

    def _learn_created_by(self, job: Job) -> None:
        if self.created_by is None and job.created_by:
            self.created_by = job.created_by
            self.ledger.set_created_by(self.run_id, job.created_by)

    def _record_job(self, action: Action, job: Job) -> None:
        if self.on_job is not None:
            self.on_job(action, job)
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

    def _outcome(self, action: Action, attempt: int, outcome: str, exc: Exception) -> None:
        status = exc.status if isinstance(exc, ApiError) else None
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome=outcome,
            now=self.clock.wall(),
            http_status=status,
            error=str(exc),
            state=ActionState.PENDING,
        )

    def _fail(
        self,
        action: Action,
        attempt: int,
        reason: str,
        *,
        outcome: str = "gave_up",
        status: int | None = None,
    ) -> None:
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome=outcome,
            now=self.clock.wall(),
            http_status=status,
            error=reason,
            state=ActionState.FAILED,
            detail=reason,
        )
        self.progress.note(action.project, failed=1)
        self._failures += 1
        if self.options.fail_fast:
            self.stop(f"--fail-fast after {action.key} failed")
        elif self.options.max_failures is not None and self._failures >= self.options.max_failures:
            self.stop(f"--max-failures {self.options.max_failures} reached")

    def stop(self, reason: str) -> None:
        """Stop sending: nothing new goes out; recorded once, with the first reason."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.progress.stop_reason = reason
            self.ledger.record_event(self.run_id, "stop", now=self.clock.wall(), reason=reason)

    def _event(self, kind: str, **detail: Any) -> None:
        self.ledger.record_event(self.run_id, kind, now=self.clock.wall(), **detail)

    # -- settling an ambiguous trigger ------------------------------------------------------------

    async def _settle(self, action: Action, *, attempt: int, since_wall: float) -> bool:
        """Decide what an ambiguous attempt did. True: not created, resending is safe.

        "Not created" needs a successful look at the job list made after the whole grace
        period; a lookup that fails is never taken for an empty list.
        """
        if action.endpoint == Endpoint.CACHED_JOBS:
            # No endpoint lists cached jobs: an ambiguous cached trigger cannot be settled.
            return self._unsettled(action, attempt, "cached-jobs trigger outcome unknown")
        started = self.clock.monotonic()
        failures = [0]
        for at in self._settle_schedule():
            await self._sleep_aside(action, started + at - self.clock.monotonic())
            final = at >= self.options.settle_grace
            try:
                candidates = await self._look(action, since_wall, final=final, failures=failures)
            except _LookupFailed as exc:
                return self._unsettled(action, attempt, str(exc))
            if candidates is None:
                continue  # an early look failed; the later ones will do
            if len(candidates) == 1:
                self._adopt(action, attempt, candidates[0])
                return False
            if len(candidates) > 1:
                ids = ", ".join(job.id for job in candidates)
                return self._unsettled(action, attempt, f"several candidate jobs: {ids}")
            if final:
                return self._not_created(action, attempt)
        return self._unsettled(action, attempt, "the job list could not be read after the grace")

    async def _look(
        self, action: Action, since_wall: float, *, final: bool, failures: list[int]
    ) -> list[Job] | None:
        """One look at the job list; None if an early look failed. The final one insists."""
        while True:
            try:
                return await self._candidates(action, since_wall)
            except FATAL_ERRORS as exc:
                self.stop(f"{type(exc).__name__}: {exc}")
                raise _LookupFailed(f"could not read the job list: {exc}") from exc
            except (ApiError, TransportError) as exc:
                failures[0] += 1
                if failures[0] >= self.options.max_attempts:
                    raise _LookupFailed(f"could not read the job list: {exc}") from exc
                if not final:
                    return None
                await self._sleep_aside(action, self.gateway.backoff(failures[0]))

    def _not_created(self, action: Action, attempt: int) -> bool:
        if attempt >= self.options.max_attempts:
            self._fail(action, attempt, f"gave up after {attempt} attempts; none was created")
            return False
        self.ledger.record_event(
            self.run_id, "settled_not_created", now=self.clock.wall(), key=action.key
        )
        self.ledger.set_action_state(
            self.run_id,
            action.key,
            ActionState.PENDING,
            now=self.clock.wall(),
            detail=f"attempt {attempt} was not created (the job list showed nothing for "
            f"{self.options.settle_grace:.0f}s); resent",
        )
        return True

    def _settle_schedule(self) -> list[float]:
        """When to look, from the ambiguous outcome: at once, then spread over the grace."""
        grace = self.options.settle_grace
        lookups = max(1, self.options.settle_lookups)
        if lookups == 1:
            return [grace]
        return [grace * i / (lookups - 1) for i in range(lookups)]

    def _unsettled(self, action: Action, attempt: int, why: str) -> bool:
        if self.options.retry_ambiguous and attempt < self.options.max_attempts:
            self.ledger.record_event(
                self.run_id, "retry_ambiguous", now=self.clock.wall(), key=action.key, why=why
            )
            return True
        self.ledger.set_action_state(
            self.run_id,
            action.key,
            ActionState.UNKNOWN,
            now=self.clock.wall(),
            detail=f"attempt {attempt}: {why}",
            settled_by="unsettled",
        )
        self.progress.note(action.project, unknown=1)
        return False

    def _adopt(self, action: Action, attempt: int, job: Job) -> None:
        self.ledger.record_outcome(
            self.run_id,
            action.key,
            attempt=attempt,
            outcome="adopted",
            now=self.clock.wall(),
            state=ActionState.TRIGGERED,
            job_ids=(job.id,),
            settled_by="adopted from the job list",
        )
        self._known_jobs.add(job.id)
        self._learn_created_by(job)
        self._record_job(action, job)
        self.progress.note(action.project, triggered=1)

    async def _candidates(self, action: Action, since_wall: float) -> list[Job]:
        """Jobs of the project this key created since the intent, not attributed elsewhere."""
        expected = action.expected_executions
        candidates: list[Job] = []
        page = 1
        while True:
            reply = await self.request(
                RequestKind.URGENT,
                lambda p=page: self.client.list_jobs(  # type: ignore[misc]
                    project_id=action.project_id,
                    organisation=action.organisation,
                    page=p,
                    limit=100,
                    created_by=self.created_by,
                ),
            )
            # After the reply: the server's Date has just told us how far our clock is off.
            since_server = since_wall + self.gateway.server_offset - self.options.clock_skew
            older_seen = False
            for job in reply.value.jobs:
                created = parse_timestamp(job.created_at)
                if created is not None and created < since_server:
                    older_seen = True
                    continue
                if job.id in self._known_jobs or (expected is not None and job.total != expected):
                    continue
                if all(c.id != job.id for c in candidates):
                    candidates.append(job)
            if older_seen or reply.value.page.is_last:
                return candidates
            page += 1
