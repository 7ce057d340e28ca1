"""Settling an ambiguous trigger: did it create a job? Looked up in the project's job list.

The job list gives ``id``, ``createdAt``, ``createdBy``, counters and status, but not the models
or count asked. Two habits make a match unambiguous: at most one trigger in flight per project
(the engine's), and the key's own ``createdBy`` (learnt from the run's first accepted trigger).
A candidate is a job of the project this key created after the intent (corrected for the
server's clock, with a skew allowance), not attributed to any action, with the expected
``totalExecutions`` when it is known.

* one candidate: adopted, never resent;
* several: UNKNOWN, for a human (never guessed);
* none: looked again over the grace period, because a job may commit or be listed late. Only a
  *successful* look after the whole grace concludes "not created", and only then is the trigger
  resent. A look that fails is never taken for an empty list.

Cached-job triggers cannot be settled (no endpoint lists cached jobs): UNKNOWN.
``--retry-ambiguous`` resends what cannot be settled, on purpose (it may pay twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runner.api import Job, MentionLabClient
from runner.clock import Clock
from runner.errors import ApiError, TransportError
from runner.isotime import epoch_seconds
from runner.manifest.model import Endpoint
from runner.plan import Action
from runner.ratelimit import RequestKind
from runner.run.gateway import FATAL_ERRORS, Gateway
from runner.run.journal import Journal
from runner.run.options import EngineOptions

PAGE_SIZE = 100

Sleep = Callable[[float], Awaitable[None]]


class _LookupFailed(Exception):
    """The job list could not be read to settle an ambiguous trigger."""


class Settler:
    """Decides what an ambiguous attempt did, from the project's job list."""

    def __init__(
        self,
        *,
        client: MentionLabClient,
        gateway: Gateway,
        journal: Journal,
        clock: Clock,
        options: EngineOptions,
    ) -> None:
        self.client = client
        self.gateway = gateway
        self.journal = journal
        self.clock = clock
        self.options = options

    async def settle(
        self, action: Action, *, attempt: int, since_wall: float, sleep: Sleep
    ) -> bool:
        """Whether resending is now known to be safe (the attempt created nothing).

        False: adopted, or UNKNOWN (recorded either way). ``sleep`` waits between looks
        without holding up other projects.
        """
        if action.endpoint == Endpoint.CACHED_JOBS:
            return self._unsettled(action, attempt, "cached-jobs trigger outcome unknown")
        started = self.clock.monotonic()
        failures = [0]
        for at in self._schedule():
            await sleep(started + at - self.clock.monotonic())
            final = at >= self.options.settle_grace
            try:
                candidates = await self._look(action, since_wall, final, failures, sleep)
            except _LookupFailed as exc:
                return self._unsettled(action, attempt, str(exc))
            if candidates is None:
                continue  # an early look failed; the later ones will do
            if len(candidates) == 1:
                self.journal.adopted(action, attempt, candidates[0])
                return False
            if len(candidates) > 1:
                ids = ", ".join(job.id for job in candidates)
                return self._unsettled(action, attempt, f"several candidate jobs: {ids}")
            if final:
                return self._not_created(action, attempt)
        return self._unsettled(action, attempt, "the job list could not be read after the grace")

    def _schedule(self) -> list[float]:
        """When to look, from the ambiguous outcome: at once, then spread over the grace."""
        grace = self.options.settle_grace
        lookups = max(1, self.options.settle_lookups)
        if lookups == 1:
            return [grace]
        return [grace * i / (lookups - 1) for i in range(lookups)]

    async def _look(
        self, action: Action, since_wall: float, final: bool, failures: list[int], sleep: Sleep
    ) -> list[Job] | None:
        """One look at the job list; None if an early look failed. The final one insists."""
        while True:
            try:
                return await self._candidates(action, since_wall)
            except FATAL_ERRORS as exc:
                self.journal.stop(f"{type(exc).__name__}: {exc}")
                raise _LookupFailed(f"could not read the job list: {exc}") from exc
            except (ApiError, TransportError) as exc:
                failures[0] += 1
                if failures[0] >= self.options.max_attempts:
                    raise _LookupFailed(f"could not read the job list: {exc}") from exc
                if not final:
                    return None
                await sleep(self.gateway.backoff(failures[0]))

    async def _candidates(self, action: Action, since_wall: float) -> list[Job]:
        """Jobs of the project this key created since the intent, not attributed elsewhere."""
        expected = action.expected_executions
        known = self.journal.known_jobs
        candidates: list[Job] = []
        page = 1
        while True:
            reply = await self.gateway.request(
                RequestKind.URGENT,
                lambda p=page: self.client.list_jobs(  # type: ignore[misc]
                    project_id=action.project_id,
                    organisation=action.organisation,
                    page=p,
                    limit=PAGE_SIZE,
                    created_by=self.journal.created_by,
                ),
            )
            # After the reply: the server's Date has just told us how far our clock is off.
            since_server = since_wall + self.gateway.server_offset - self.options.clock_skew
            older_seen = False
            for job in reply.value.jobs:
                created = epoch_seconds(job.created_at)
                if created is not None and created < since_server:
                    older_seen = True
                    continue
                if job.id in known or (expected is not None and job.total != expected):
                    continue
                if all(c.id != job.id for c in candidates):
                    candidates.append(job)
            if older_seen or reply.value.page.is_last:
                return candidates
            page += 1

    def _not_created(self, action: Action, attempt: int) -> bool:
        if attempt >= self.options.max_attempts:
            reason = f"gave up after {attempt} attempts; none was created"
            self.journal.failed(action, attempt, reason)
            return False
        self.journal.not_created(action, attempt)
        return True

    def _unsettled(self, action: Action, attempt: int, why: str) -> bool:
        if self.options.retry_ambiguous and attempt < self.options.max_attempts:
            self.journal.event("retry_ambiguous", key=action.key, why=why)
            return True
        self.journal.unknown(action, attempt, why)
        return False
