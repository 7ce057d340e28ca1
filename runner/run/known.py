"""What the state already knows about the API, so a run does not ask it again.

The rate budget is a run's bottleneck, so every request must earn its place. A project's query
count read within ``settings.plan.maxCountAge`` by any run against the same API is taken from the
state instead of read again. Each count is recorded as it is read, with the time of the read: a
count taken from the state is never made younger by being used.

Likewise the in-flight guard does not read the job list of a project whose latest job the state
saw reach a terminal status (the trigger's answer, a poll, the guard's own read record it); a
project the state knows nothing about, or whose job it last saw running, is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import anyio

from runner.api import Job
from runner.clock import Clock
from runner.isotime import epoch_seconds
from runner.plan import Action, Plan
from runner.plan.remote import ProjectProblem, RemoteFacts
from runner.run.preflight import without_unreachable
from runner.store import Store


@dataclass(frozen=True)
class Counting:
    """Where a planning finds the query counts an earlier read recorded, and records its own."""

    ledger: Store
    base_url: str
    since: float  # counts read before this (wall clock) are read again
    each: bool = False  # record each count as it is read (shards side by side), not at the end


Count = Callable[[Plan], Awaitable[tuple[Plan, RemoteFacts]]]  # counts a plan: state, then API


@dataclass(frozen=True)
class Others:
    """The other shards of a run, as one shard counting the whole plan sees them."""

    working: Callable[[str], bool]  # whether the project's own shard is at work elsewhere
    decided: Callable[[], bool]  # whether a shard decided the run's budget already
    clock: Clock
    wait: float = 600.0  # seconds to wait for working shards' counts, then read them here


async def count_the_rest(
    whole: Plan, counting: Counting, count: Count, *, own: Plan, others: Others, batch: int
) -> Plan | None:
    """``whole`` with every project's count, or None once another shard decided the budget.

    The shards of one run call this side by side. Each reads its ``own`` projects' counts, in
    batches of ``batch``, the state read again before each; then it waits for the counts of
    projects whose shard is at work elsewhere, and reads those of shards that are not (not
    started, or gone), so a shard alone still counts the whole plan, and side by side each
    project is read about once.
    """
    mine = {a.project for a in own.actions}
    order = sorted(dict.fromkeys(a.project for a in whole.actions), key=lambda p: p not in mine)
    tried: set[str] = set()
    problems: list[ProjectProblem] = []
    deadline = others.clock.monotonic() + others.wait
    while True:
        known = recorded_counts(counting.ledger, whole, counting.base_url, since=counting.since)
        missing = [p for p in order if p not in known and p not in tried]
        if not missing:
            return without_unreachable(whole.with_query_counts(known), problems)
        if others.decided():
            return None
        patient = others.clock.monotonic() < deadline
        chosen = [p for p in missing if p in mine or not (patient and others.working(p))]
        if not chosen:
            await anyio.sleep(1.0)
            continue
        batched = set(chosen[: max(1, batch)])
        tried.update(batched)
        _counted, facts = await count(
            replace(whole, actions=tuple(a for a in whole.actions if a.project in batched))
        )
        problems.extend(facts.problems)


def recorded_counts(ledger: Store, plan: Plan, base_url: str, *, since: float) -> dict[str, int]:
    """The query counts of ``plan``'s projects read at ``base_url`` since ``since``, by name."""
    by_id = ledger.query_counts(base_url, since=since)
    return {a.project: by_id[a.project_id] for a in plan.actions if a.project_id in by_id}


class CountRecorder:
    """Records the counts a planning reads: each as it comes (``Counting.each``), else all at
    once at :meth:`flush` (one transaction, not one per project)."""

    def __init__(self, counting: Counting, now: Callable[[], float]) -> None:
        self._counting = counting
        self._now = now
        self._pending: dict[str, int] = {}

    def add(self, action: Action, queries: int) -> None:
        """One count read, by project id."""
        self._pending[action.project_id] = queries
        if self._counting.each:
            self.flush()

    def flush(self) -> None:
        """Record what was read since the last flush."""
        if self._pending:
            counting = self._counting
            counting.ledger.record_query_counts(counting.base_url, self._pending, now=self._now())
            self._pending = {}


def skipped_reads_line(facts: RemoteFacts, max_age: float) -> str | None:
    """``--verbose``: how many count reads the state saved, and why; None when none."""
    if not facts.known:
        return None
    hours = max_age / 3600
    age = f"{hours:g} h" if hours >= 1 else f"{max_age:g} s"
    return (
        f"planning: {facts.known:,} query counts from the state (read within {age}, "
        f"settings.plan.maxCountAge), {facts.requests:,} read"
    )


def remember_job(ledger: Store, base_url: str, project_id: str, job: Job, *, now: float) -> None:
    """Record ``job`` as its project's latest as far as the state knows (any run may read it)."""
    ledger.record_project_job(
        base_url,
        project_id,
        job_id=job.id,
        created=epoch_seconds(job.created_at) or now,
        status=job.status,
        terminal=job.terminal,
        now=now,
    )


def ended_projects(ledger: Store, base_url: str) -> frozenset[str]:
    """The projects whose latest job the state saw reach a terminal status: no guard read."""
    return frozenset(pid for pid, job in ledger.project_jobs(base_url).items() if job.terminal)


def skipped_guard_reads_line(skipped: int) -> str | None:
    """``--verbose``: how many in-flight guard reads the state saved, and why; None when none."""
    if not skipped:
        return None
    return (
        f"in-flight guard: {skipped:,} reads skipped, the state saw each project's last job end "
        "(--allow-stacking skips them all)"
    )
