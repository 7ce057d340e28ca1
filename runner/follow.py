"""Following triggered jobs to a terminal status, inside the run's one rate budget.

Per project, the follower chooses the cheaper way to look: a sweep of ``POST /api/jobs/list``
(newest first, one page covers up to 100 jobs) when several of the project's jobs are due, a
``GET /api/jobs/{id}`` for a lone job or a straggler the sweep did not see. Pages shift while
they are read, so results are deduplicated by id, and a job missing from a sweep is "not seen",
never "gone".

When to look again: from the job's own progress when it reports some (the counters give a rate,
hence an expected completion time), else an interval that grows with the job's age; always
between ``min_interval`` and ``max_interval``, with jitter, never a tight loop. A terminal status
is final: one that moves backwards is recorded as an anomaly, so is a 404 for a job we created.
Jobs still running at the deadline are reported TIMEOUT.
"""

from __future__ import annotations

import random as random_module
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import anyio

from runner.api import Job, MentionLabClient, Reply
from runner.clock import Clock
from runner.engine import RunProgress
from runner.errors import ApiError, NotFound, NotSent, OutcomeUnknown
from runner.ledger import Ledger
from runner.limiter import RequestKind
from runner.plan import Action

SWEEP_THRESHOLD = 2  # outstanding jobs of one project from which a due one is looked at by sweep
COHORT_MIN = 3  # jobs whose start and speed are known before the cohort's estimates are used
FIRST_LOOK_FRACTION = 0.35  # first look: predicted start + this share of predicted processing
FIRST_LOOK_NO_COHORT = 8.0  # seconds after creation, before the cohort knows better
SECOND_LOOK_FRACTION = 0.5  # of the predicted remaining time, for a second progress point
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
    """A job being followed."""

    action: Action
    job_id: str
    first_seen: float  # monotonic
    next_due: float
    status: str = "pending"
    done_fraction: float = 0.0
    last_poll: float | None = None
    rate: float | None = None  # fraction of executions finished per second
    polls: int = 0
    terminal: bool = False
    gone: bool = False
    anomalies: list[str] = field(default_factory=list)
    total: int = 0
    created: float | None = None  # server time (epoch) of createdAt
    started: float | None = None  # server time processing began, when a look showed it
    points: list[tuple[int, float]] = field(default_factory=list)  # (done, updatedAt) in processing
    per_execution: float | None = None  # seconds per execution, from updatedAt
    learned: bool = False  # its start and speed are in the cohort


class Follower:
    """Polls jobs until they are terminal or the deadline passes."""

    def __init__(  # noqa: PLR0913 - collaborators are injected
        self,
        *,
        client: MentionLabClient,
        request: Requester,
        ledger: Ledger,
        run_id: str,
        clock: Clock,
        rng: random_module.Random | None = None,
        options: FollowOptions | None = None,
        progress: RunProgress | None = None,
    ) -> None:
        self.client = client
        self.progress = progress or RunProgress()
        self.request = request
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock
        self.rng = rng or random_module.Random()
        self.options = options or FollowOptions()
        self.jobs: dict[str, Tracked] = {}
        self.status_requests = 0
        self.timed_out: list[str] = []
        self._wake = anyio.Event()
        self._cohort_pending: list[float] = []  # seconds from creation to processing
        self._cohort_per_execution: list[float] = []

    def add(self, action: Action, job: Job) -> None:
        """Start following a job (from a trigger's reply, an adoption or the ledger)."""
        if job.id in self.jobs:
            return
        now = self.clock.monotonic()
        tracked = Tracked(action=action, job_id=job.id, first_seen=now, next_due=now)
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
        except NotFound:
            self.status_requests += 1
            self._anomaly(tracked, "404 for a job this run created")
            tracked.gone = True
            self.progress.jobs_done += 1
            return
        except (ApiError, OutcomeUnknown, NotSent):
            self.status_requests += 1
            tracked.next_due = self.clock.monotonic() + self._interval(tracked)
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
        fraction = (job.success + job.failed) / job.total if job.total else 1.0
        self._observe(tracked, job)
        if tracked.last_poll is not None and now > tracked.last_poll:
            tracked.rate = _progress_rate(tracked, fraction, now) or tracked.rate
        tracked.done_fraction, tracked.last_poll, tracked.status = fraction, now, job.status
        tracked.terminal = job.terminal
        if job.terminal:
            self.progress.jobs_done += 1
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
        tracked.next_due = now + self._interval(tracked)

    def _observe(self, tracked: Tracked, job: Job) -> None:
        """Learn the job's start and seconds per execution from its server timestamps.

        ``updatedAt`` is when the counters last changed, so a processing look with nothing
        done dates the start, and two progress points (or the start and one) give the job's
        own speed; jobs whose start and speed are known feed the run's cohort estimates.
        """
        tracked.total = job.total
        if tracked.created is None:
            tracked.created = _epoch(job.created_at)
        updated = _epoch(job.updated_at)
        created = tracked.created
        if created is None or updated is None or job.total <= 0:
            return
        _note_point(tracked, job, created, updated)
        _estimate_speed(tracked, created)
        done = job.success + job.failed
        if job.terminal and done == job.total and not tracked.learned:
            started = tracked.started
            if started is not None and updated > started:
                tracked.per_execution = (updated - started) / job.total
        if tracked.started is not None and tracked.per_execution and not tracked.learned:
            tracked.learned = True
            self._cohort_pending.append(tracked.started - created)
            self._cohort_per_execution.append(tracked.per_execution)

    def _local(self, tracked: Tracked, server_time: float) -> float:
        """A server time as our monotonic time (anchored at the job's creation = first seen)."""
        assert tracked.created is not None
        return tracked.first_seen + (server_time - tracked.created)

    def _predicted_look(self, tracked: Tracked) -> float | None:
        """When to look next from the job's timestamps and the cohort, or None (no basis)."""
        if tracked.created is None or tracked.total <= 0:
            return None
        if tracked.per_execution and tracked.started is not None:
            return self._look_at_end(tracked, tracked.started, tracked.per_execution)
        if len(self._cohort_per_execution) < COHORT_MIN:
            if tracked.status == "pending":  # the API is pending for seconds: look later
                age = self.clock.monotonic() - tracked.first_seen
                return tracked.first_seen + max(FIRST_LOOK_NO_COHORT, 1.5 * age)
            return None
        return self._look_from_cohort(tracked, tracked.created)

    def _look_at_end(self, tracked: Tracked, started: float, per_execution: float) -> float:
        """The job's own speed is known: look right after its predicted end."""
        end = started + per_execution * tracked.total
        margin = 0.1 * self.options.min_interval + 0.01 * per_execution * tracked.total
        return self._local(tracked, end) + margin * (1.0 + self.rng.random())

    def _look_from_cohort(self, tracked: Tracked, created: float) -> float:
        """Like jobs of this run: look early in its processing, for a second progress point."""
        typical = statistics.median(self._cohort_per_execution)
        if tracked.points:
            done, updated = tracked.points[-1]
            remaining = typical * (tracked.total - done)
            return self._local(tracked, updated + SECOND_LOOK_FRACTION * remaining)
        if tracked.started is not None:
            halfway = tracked.started + SECOND_LOOK_FRACTION * typical * tracked.total
            return self._local(tracked, halfway)
        pending = _quantile(self._cohort_pending, 0.8)
        processing = FIRST_LOOK_FRACTION * typical * tracked.total
        first = self._local(tracked, created + pending + processing)
        if tracked.last_poll is not None and tracked.status == "pending":
            # still pending at the last look: processing starts later than that
            first = max(first, tracked.last_poll + max(self.options.min_interval, processing))
        return first

    def _interval(self, tracked: Tracked) -> float:
        """From the job's progress rate if known, else from its age; jittered, bounded."""
        low, high = self.options.min_interval, self.options.max_interval
        now = self.clock.monotonic()
        look = self._predicted_look(tracked)
        if look is not None:
            wanted = (look - now) * (1.0 + 0.02 * self.rng.random())
        elif tracked.rate:
            eta = (1.0 - tracked.done_fraction) / tracked.rate
            wanted = eta * (1.0 + 0.05 * self.rng.random()) + low * 0.25
        else:
            age = self.clock.monotonic() - tracked.first_seen
            wanted = max(low, age * 0.5) * (0.5 + 0.5 * self.rng.random())
        return min(high, max(low, wanted))

    def _anomaly(self, tracked: Tracked, text: str) -> None:
        if text not in tracked.anomalies:
            tracked.anomalies.append(text)
            self.ledger.add_job_anomaly(self.run_id, tracked.job_id, text)

    def _time_out(self) -> None:
        for tracked in self.jobs.values():
            if not (tracked.terminal or tracked.gone):
                self.timed_out.append(tracked.job_id)
                self._anomaly(tracked, "TIMEOUT: not terminal when following stopped")


def _progress_rate(tracked: Tracked, fraction: float, now: float) -> float | None:
    """Fraction finished per second between the last look and this one, or None.

    Only a span inside the processing phase measures the rate: from a look that saw no progress
    (the job was pending, or had just started), processing began somewhere in between, so half
    the span is assumed rather than all of it; counting the pending time made the estimate
    several times too slow and the next look (at the predicted end) far too late.
    """
    progress = fraction - tracked.done_fraction
    if progress <= 0 or tracked.last_poll is None:
        return None
    span = now - tracked.last_poll
    return progress / (span if tracked.done_fraction > 0 else span / 2)


def _note_point(tracked: Tracked, job: Job, created: float, updated: float) -> None:
    """A processing look: its start (nothing done yet) or a progress point."""
    if job.status != "processing":
        return
    done = job.success + job.failed
    if done == 0 and updated > created:
        tracked.started = updated
    elif 0 < done < job.total and (not tracked.points or tracked.points[-1][0] != done):
        tracked.points.append((done, updated))


def _estimate_speed(tracked: Tracked, created: float) -> None:
    """Seconds per execution from two progress points, or from the start and one."""
    if len(tracked.points) >= 2:
        (d1, u1), (d2, u2) = tracked.points[0], tracked.points[-1]
        if d2 > d1 and u2 > u1:
            tracked.per_execution = (u2 - u1) / (d2 - d1)
    elif tracked.points and tracked.started is not None:
        d1, u1 = tracked.points[0]
        if u1 > tracked.started:
            tracked.per_execution = (u1 - tracked.started) / d1
    if tracked.per_execution and tracked.started is None and tracked.points:
        d1, u1 = tracked.points[0]
        tracked.started = max(created, u1 - d1 * tracked.per_execution)


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _cancel_when_set(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
