"""What the state already knows about the API, so a run does not ask it again.

The rate budget is a run's bottleneck, so every request must earn its place. A project's query
count read within ``settings.plan.maxCountAge`` by any run against the same API is taken from the
state instead of read again. Only counts that were read are recorded, with the time of the read:
a count taken from the state is never made younger by being used.

Likewise the in-flight guard does not read the job list of a project whose latest job the state
saw reach a terminal status (the trigger's answer, a poll, the guard's own read record it); a
project the state knows nothing about, or whose job it last saw running, is read.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.api import Job
from runner.isotime import epoch_seconds
from runner.plan import Plan
from runner.plan.remote import RemoteFacts
from runner.store import Store


def recorded_counts(ledger: Store, plan: Plan, base_url: str, *, since: float) -> dict[str, int]:
    """The query counts of ``plan``'s projects read at ``base_url`` since ``since``, by name."""
    by_id = ledger.query_counts(base_url, since=since)
    return {a.project: by_id[a.project_id] for a in plan.actions if a.project_id in by_id}


def record_read_counts(
    ledger: Store,
    plan: Plan,
    facts: RemoteFacts,
    base_url: str,
    *,
    now: float,
    known: Mapping[str, int],
) -> None:
    """Record the counts this planning read (not the ones it was given) for later runs."""
    ids = {a.project: a.project_id for a in plan.actions}
    read = {
        ids[name]: count
        for name, count in facts.query_counts.items()
        if name in ids and name not in known
    }
    if read:
        ledger.record_query_counts(base_url, read, now=now)


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
