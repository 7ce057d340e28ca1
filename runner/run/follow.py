"""Following triggered jobs to a terminal status, inside the run's one rate budget.

Per project, the follower chooses the cheaper way to look: a sweep of ``POST /api/jobs/list``
(newest first, one page covers up to 100 jobs) when several of the project's jobs are due, a
``GET /api/jobs/{id}`` for a lone job or a straggler the sweep did not see. Pages shift while
they are read, so results are deduplicated by id, and a job missing from a sweep is "not seen",
never "gone".

When to look again: :mod:`runner.run.forecast` picks the cheapest look from what the job's looks
revealed (``updatedAt`` dates the start and each progress point) and the run's cohort; with no
basis for it (no cohort yet, a job that stopped progressing) the interval backs off by full
jitter from its age. Looks are always between ``min_interval`` and ``max_interval`` apart, never
a tight loop. A terminal status is final: one that moves backwards is recorded as an anomaly, so
is a 404 for a job we created. Jobs still running at the deadline are reported TIMEOUT.
"""

from __future__ import annotations

import random as random_module
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from runner.api import Job, MentionLabClient, Reply
from runner.clock import Clock
from runner.errors import ApiError, NotFound, NotSent, OutcomeUnknown
from runner.isotime import epoch_seconds
from runner.plan import Action
from runner.ratelimit import RequestKind
from runner.run.forecast import COHORT_MIN, Cohort, Prior, Sighting, hypotheses, next_look
from runner.run.gateway import FATAL_ERRORS
from runner.run.known import remember_job
from runner.run.progress import RunProgress
from runner.store import Store

SWEEP_THRESHOLD = 2  # outstanding jobs of one project from which a due one is looked at by sweep
SCOUTS = 6  # jobs followed by backoff alone until the cohort is known; the others wait for it
REPLAN_GROWTH = 2  # the cohort grew this many times over: plan the open jobs again
PAGE_SIZE = 100


class Requester(Protocol):
    async def __call__(
        self, kind: RequestKind, call: Callable[[], Awaitable[Reply[Any]]]
    ) -> Reply[Any]: ...


@dataclass(frozen=True)
class FollowOptions:
    min_interval: float = 2.0
    max_interval: float = 120.0
    timeout: float = 3600.0  # from the start of following


@dataclass
class Tracked:
    """A job being followed: what its looks revealed (server times, epoch seconds)."""

    action: Action
    job_id: str
    first_seen: float  # monotonic
    next_due: float
    status: str = "pending"
    last_poll: float | None = None  # monotonic
    polls: int = 0
    terminal: bool = False
    gone: bool = False
    anomalies: list[str] = field(default_factory=list)
    total: int = 0
    created: float | None = None  # createdAt
    offset: float = 0.0  # our monotonic time minus the server's, for this job
    after: float = 0.0  # processing began after this (the latest pending look)
    seen_at: float = 0.0  # the latest look
    seen_done: int = 0
    started: bool = False
    points: list[tuple[int, float]] = field(default_factory=list)  # (done, updatedAt), processing
    learned: bool = False  # its start and pace are in the cohort
    order: int = 0  # how many jobs were followed before it


class Follower:
    """Polls jobs until they are terminal or the deadline passes."""

    def __init__(  # noqa: PLR0913 - collaborators are injected
        self,
        *,
        client: MentionLabClient,
        request: Requester,
        ledger: Store,
        run_id: str,
        clock: Clock,
        rng: random_module.Random | None = None,
        options: FollowOptions | None = None,
        progress: RunProgress | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.on_fatal = on_fatal  # told when a poll says no later one can succeed (a bad key)
        self.stopped: str | None = None
        self.progress = progress or RunProgress()
        self.request = request
        self.ledger = ledger
        self.run_id = run_id
        self.base_url = ledger.run(run_id).base_url
        self.clock = clock
        self.rng = rng or random_module.Random()
        self.options = options or FollowOptions()
        self.jobs: dict[str, Tracked] = {}
        self.status_requests = 0
        self.timed_out: list[str] = []
        self._wake = anyio.Event()
        self.cohort = Cohort()
        self._prior: Prior | None = None
        self._planned_for = 0  # the cohort size the open jobs were last planned with

    def add(self, action: Action, job: Job) -> None:
        """Start following a job (from a trigger's reply, an adoption or the ledger)."""
        if job.id in self.jobs:
            return
        now = self.clock.monotonic()
        tracked = Tracked(
            action=action, job_id=job.id, first_seen=now, next_due=now, order=len(self.jobs)
        )
        self.jobs[job.id] = tracked
        self.progress.jobs_followed += 1
        self._apply(tracked, job, now)
        self._wake.set()

    @property
    def outstanding(self) -> int:
        return sum(1 for t in self.jobs.values() if not (t.terminal or t.gone))

    async def run(self, triggers_done: anyio.Event) -> None:
        """Follow until every job is terminal (and no more can come) or the timeout passes."""
        deadline = self.clock.monotonic() + self.options.timeout
        while True:
            if triggers_done.is_set() and self.outstanding == 0:
                return
            if self.stopped is not None:
                self._leave_unfollowed(f"following stopped: {self.stopped}")
                return
            now = self.clock.monotonic()
            if now >= deadline:
                self._time_out()
                return
            due = [t for t in self.jobs.values() if self._is_due(t, now)]
            if due:
                await self._poll(due)
                continue
            await self._sleep_until_due(deadline, triggers_done)

    def _is_due(self, tracked: Tracked, now: float) -> bool:
        return not (tracked.terminal or tracked.gone) and tracked.next_due <= now

    async def _sleep_until_due(self, deadline: float, triggers_done: anyio.Event) -> None:
        pending = [t.next_due for t in self.jobs.values() if not (t.terminal or t.gone)]
        wake_at = min([*pending, deadline])
        self._wake = anyio.Event()
        with anyio.move_on_after(max(0.0, wake_at - self.clock.monotonic())):
            async with anyio.create_task_group() as group:
                group.start_soon(_cancel_when_set, self._wake, group.cancel_scope)
                if not triggers_done.is_set():
                    group.start_soon(_cancel_when_set, triggers_done, group.cancel_scope)

    async def _poll(self, due: list[Tracked]) -> None:
        by_project: dict[str, list[Tracked]] = defaultdict(list)
        for tracked in due:
            by_project[tracked.action.project_id].append(tracked)
        async with anyio.create_task_group() as group:
            for project_jobs in by_project.values():
                group.start_soon(self._poll_project, project_jobs)

    async def _poll_project(self, due: list[Tracked]) -> None:
        project_jobs = [
            t
            for t in self.jobs.values()
            if t.action.project_id == due[0].action.project_id and not (t.terminal or t.gone)
        ]
        stragglers = due
        if len(project_jobs) >= SWEEP_THRESHOLD:
            seen = await self._sweep(due[0].action, {t.job_id for t in project_jobs})
            stragglers = [t for t in due if t.job_id not in seen]
        for tracked in stragglers:
            await self._get(tracked)

    async def _sweep(self, action: Action, wanted: set[str]) -> set[str]:
        """Page the project's job list newest first until every wanted job was seen."""
        seen: set[str] = set()
        page = 1
        while wanted - seen:
            try:
                reply = await self.request(
                    RequestKind.POLL,
                    lambda p=page: self.client.list_jobs(  # type: ignore[misc]
                        project_id=action.project_id,
                        organisation=action.organisation,
                        page=p,
                        limit=PAGE_SIZE,
                    ),
                )
            except FATAL_ERRORS as exc:
                self._stop(exc)
                return seen
            except (ApiError, OutcomeUnknown, NotSent):
                return seen  # the stragglers get a GET each
            self.status_requests += 1
            now = self.clock.monotonic()
            for job in reply.value.jobs:
                if job.id in wanted and job.id not in seen:
                    seen.add(job.id)
                    self._apply(self.jobs[job.id], job, now)
            if reply.value.page.is_last:
                return seen
            page += 1
        return seen

    async def _get(self, tracked: Tracked) -> None:
        action = tracked.action
        try:
            reply = await self.request(
                RequestKind.POLL,
                lambda: self.client.get_job(
                    project_id=action.project_id,
                    organisation=action.organisation,
                    job_id=tracked.job_id,
                ),
            )
        except FATAL_ERRORS as exc:
            self.status_requests += 1
            self._stop(exc)
            return
        except NotFound:
            self.status_requests += 1
            self._anomaly(tracked, "404 for a job this run created")
            tracked.gone = True
            self.progress.jobs_done += 1
            return
        except (ApiError, OutcomeUnknown, NotSent):
            self.status_requests += 1
            tracked.next_due = self.clock.monotonic() + self._backoff(tracked)
            return
        self.status_requests += 1
        self._apply(tracked, reply.value, self.clock.monotonic())

    def _apply(self, tracked: Tracked, job: Job, now: float) -> None:
        """Record what a poll saw, and when to look next."""
        tracked.polls += 1
        if tracked.terminal:
            if not job.terminal or job.status != tracked.status:
                self._anomaly(tracked, f"terminal status {tracked.status} moved to {job.status}")
            return
        self._observe(tracked, job, now)
        tracked.last_poll, tracked.status = now, job.status
        tracked.terminal = job.terminal
        if job.terminal:
            self.progress.jobs_done += 1
        with self.ledger.transaction():
            if job.terminal:
                remember_job(
                    self.ledger,
                    self.base_url,
                    tracked.action.project_id,
                    job,
                    now=self.clock.wall(),
                )
            self.ledger.upsert_job(
                self.run_id,
                job.id,
                key=tracked.action.key,
                kind="job",
                status=job.status,
                counters=job.counters(),
                created_at=job.created_at,
                now=self.clock.wall(),
                terminal=job.terminal,
            )
        if not job.terminal:
            self._plan(tracked, now)
        self._learn(tracked)
        if job.terminal and not tracked.learned and self._prior is None:
            self._look_at_waiting_jobs_soon(now)

    def _look_at_waiting_jobs_soon(self, now: float) -> None:
        """A job ended before a look could see its pace: jobs here are quicker than the looks.

        The jobs waiting for the cohort (which such jobs never give) are looked at within the
        shortest interval instead of after the wait.
        """
        soon = now + self.options.min_interval
        for other in self.jobs.values():
            waiting = not (other.terminal or other.gone or other.started)
            if waiting and other.order >= SCOUTS and other.next_due > soon:
                other.next_due = soon
                self._wake.set()

    def _observe(self, tracked: Tracked, job: Job, now: float) -> None:
        """What the look says about the job's start and pace (see :mod:`runner.run.forecast`)."""
        tracked.total = job.total
        if tracked.created is None and (created := epoch_seconds(job.created_at)) is not None:
            tracked.created = tracked.after = created
            # the trigger's reply dates the creation on both clocks; a resumed job has only ours
            fresh = now == tracked.first_seen
            tracked.offset = now - created if fresh else self.clock.monotonic() - self.clock.wall()
        tracked.seen_at = now - tracked.offset
        done = job.success + job.failed
        updated = epoch_seconds(job.updated_at)
        if job.status == "pending":
            tracked.after = max(tracked.after, tracked.seen_at)
        elif job.status == "processing" and updated is not None:
            tracked.started = True
            if not tracked.points or tracked.points[-1][0] != done:
                tracked.points.append((done, updated))
        tracked.seen_done = done

    def _sighting(self, tracked: Tracked) -> Sighting | None:
        if tracked.created is None or tracked.total <= 0:
            return None
        return Sighting(
            created=tracked.created,
            total=tracked.total,
            seen_at=tracked.seen_at,
            seen_done=tracked.seen_done,
            started=tracked.started,
            after=tracked.after,
            points=tuple(tracked.points),
        )

    def _learn(self, tracked: Tracked) -> None:
        """A job whose start and pace are known joins the cohort; when the cohort has grown
        enough, every open job is planned again with the better prior."""
        seen = self._sighting(tracked)
        line = seen.line() if seen is not None and not tracked.learned else None
        if seen is None or line is None:
            return
        tracked.learned = True
        start, tau = line
        self.cohort.add(start - seen.created, seen.total, seen.total * tau)
        if len(self.cohort) >= max(COHORT_MIN, REPLAN_GROWTH * self._planned_for):
            self._prior = self.cohort.prior()
            self._planned_for = len(self.cohort)
            now = self.clock.monotonic()
            for other in self.jobs.values():
                if not (other.terminal or other.gone or other.learned):
                    self._plan(other, now)

    def _plan(self, tracked: Tracked, now: float) -> None:
        """When to look next: the forecast's cheapest look, else a backoff from the job's age."""
        low, high = self.options.min_interval, self.options.max_interval
        last = tracked.last_poll if tracked.last_poll is not None else now
        earliest, latest = max(now, last + low), last + high
        seen = self._sighting(tracked)
        hyps = hypotheses(seen, self._prior) if seen is not None else []
        look = None
        if seen is not None:
            offset = tracked.offset
            look = next_look(seen, hyps, earliest - offset, latest - offset)
        if look is None or seen is None:
            planned = tracked.next_due
            tracked.next_due = now + self._backoff(tracked)
            if self._prior is None and tracked.order >= SCOUTS and not tracked.started:
                # no basis yet: the scouts' looks will give one soon; wait for it, not forever
                tracked.next_due = max(tracked.next_due, tracked.first_seen + high / 4)
            if planned > now:  # a replan without a basis never puts off a look already planned
                tracked.next_due = min(tracked.next_due, planned)
            return
        margin = 0.05 * low * (1.0 + self.rng.random())
        tracked.next_due = min(latest, look + tracked.offset + margin)

    def _backoff(self, tracked: Tracked) -> float:
        """Full jitter, growing with the looks so far: 2 s, up to 4 s, 8 s, ... 120 s; a scout
        looks every few seconds while the cohort is unknown (a few jobs, for a short while)."""
        low, high = self.options.min_interval, self.options.max_interval
        scouting = self._prior is None and tracked.order < SCOUTS
        if scouting and self.clock.monotonic() - tracked.first_seen < 2 * high:
            return low * (1.0 + self.rng.random())
        ceiling = min(high, low * 2.0 ** min(tracked.polls, 16))
        return low + (ceiling - low) * self.rng.random()

    def _anomaly(self, tracked: Tracked, text: str) -> None:
        if text not in tracked.anomalies:
            tracked.anomalies.append(text)
            self.ledger.add_job_anomaly(self.run_id, tracked.job_id, text)

    def _time_out(self) -> None:
        for tracked in self.jobs.values():
            if not (tracked.terminal or tracked.gone):
                self.timed_out.append(tracked.job_id)
                self._anomaly(tracked, "TIMEOUT: not terminal when following stopped")

    def _stop(self, exc: Exception) -> None:
        """A poll was refused for the whole run (a bad key, not the API): stop following."""
        if self.stopped is None:
            self.stopped = f"{type(exc).__name__}: {exc}"
            if self.on_fatal is not None:
                self.on_fatal(self.stopped)

    def _leave_unfollowed(self, why: str) -> None:
        for tracked in self.jobs.values():
            if not (tracked.terminal or tracked.gone):
                self._anomaly(tracked, why)


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
