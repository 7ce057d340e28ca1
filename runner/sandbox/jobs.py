"""Jobs and cached jobs, whose life cycle is computed lazily from the clock on each read.

Nothing runs in the background: a job stores when it was committed, how long it stays pending
and processing (from the seed, its id and its size, divided by the time scale) and how many of
its executions fail; its counters at any time are a pure function of those and the clock.
They always add up (total = pending + retrying + success + failed), and success and failed
never decrease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runner.sandbox._rng import chance, rng, unit
from runner.sandbox.faults import Faults
from runner.sandbox.timefmt import iso
from runner.sandbox.world import Query, User

TERMINAL = frozenset({"completed", "failed", "partial_failed"})
_MAX_PROCESSING = 3 * 3600.0
_EXACT_BINOMIAL = 2000


@dataclass
class Job:
    """A job as the sandbox stores it (mutable only for the flap fault's memory)."""

    id: str
    seq: int
    project_id: str
    organisation_id: str
    creator: User
    ai_models: tuple[str, ...]
    execution_count: int
    total: int
    commit_at: float
    commit_wall: float
    listed_at: float
    pending_for: float
    processing_for: float
    failures: int
    stuck_at: int | None = None
    vanished: bool = False
    flaps: bool = False
    flap_state: int = 0
    idempotency_key: str | None = None

    def wall(self, moment: float) -> float:
        """The wall time of a sandbox-clock moment, anchored at the commit."""
        return self.commit_wall + (moment - self.commit_at)


@dataclass(frozen=True)
class JobState:
    """A job's counters and status at one moment."""

    status: str
    pending: int
    retrying: int
    success: int
    failed: int
    updated_at: float

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class JobFate:
    """What will happen to a job, decided when it is committed."""

    pending_for: float
    processing_for: float
    failures: int
    stuck_at: int | None
    vanished: bool
    flaps: bool


def job_fate(seed: int, job_id: str, total: int, faults: Faults, time_scale: float) -> JobFate:
    """Durations and outcome of a job: a pure function of seed, id, size and fault rates."""
    pending = (2.0 + 18.0 * unit(seed, job_id, "pending")) / time_scale
    processing = min(_MAX_PROCESSING, (10.0 + 2.0 * total) * (0.5 + unit(seed, job_id, "run")))
    if chance(faults.job_failure, seed, job_id, "job-failure"):
        failures = total
    else:
        failures = _binomial(total, faults.execution_failure, seed, job_id)
    stuck = None
    if total > 0 and chance(faults.never_finish, seed, job_id, "never-finish"):
        stuck = min(total - 1, int(total * (0.3 + 0.6 * unit(seed, job_id, "stuck"))))
    return JobFate(
        pending_for=pending,
        processing_for=processing / time_scale,
        failures=failures,
        stuck_at=stuck,
        vanished=chance(faults.vanish, seed, job_id, "vanish"),
        flaps=chance(faults.flap, seed, job_id, "flap"),
    )


def _binomial(total: int, rate: float, seed: int, job_id: str) -> int:
    if rate <= 0.0 or total == 0:
        return 0
    if rate >= 1.0:
        return total
    draw = rng(seed, "failures", job_id)
    if total <= _EXACT_BINOMIAL:
        return sum(draw.random() < rate for _ in range(total))
    spread = math.sqrt(total * rate * (1 - rate))
    return min(total, max(0, round(draw.gauss(total * rate, spread))))


def job_state(job: Job, now: float) -> JobState:
    """The job's counters at ``now`` (a sandbox-clock time at or after its commit)."""
    started = job.commit_at + job.pending_for
    if job.total == 0:
        return JobState("completed", 0, 0, 0, 0, job.commit_at)
    if now < started:
        return JobState("pending", job.total, 0, 0, 0, job.commit_at)
    progress = (now - started) / job.processing_for if job.processing_for > 0 else 1.0
    done = min(job.total, math.floor(progress * job.total))
    if job.stuck_at is not None:
        done = min(done, job.stuck_at)
    return counters_at(job, done, started)


def counters_at(job: Job, done: int, started: float) -> JobState:
    """The counters once ``done`` executions have finished."""
    failed = done * job.failures // job.total
    success = done - failed
    updated = started + job.processing_for * done / job.total
    if done == job.total:
        return JobState(_terminal_status(success, failed), 0, 0, success, failed, updated)
    retrying = min(job.total - done, job.failures - failed, 1 + job.failures // 10)
    pending = job.total - done - retrying
    return JobState("processing", pending, retrying, success, failed, updated)


def _terminal_status(success: int, failed: int) -> str:
    if failed == 0:
        return "completed"
    return "failed" if success == 0 else "partial_failed"


def job_json(job: Job, state: JobState) -> dict[str, Any]:
    """A Job object as the API returns it."""
    return {
        "id": job.id,
        "project": job.project_id,
        "totalExecutions": job.total,
        "pendingExecutions": state.pending,
        "retryingExecutions": state.retrying,
        "successExecutions": state.success,
        "failedExecutions": state.failed,
        "status": state.status,
        "createdAt": iso(job.commit_wall),
        "updatedAt": iso(job.wall(state.updated_at)),
        "createdBy": job.creator.to_json(),
    }


@dataclass
class CachedJob:
    """One cached job (one query of a project) with mapped model names."""

    id: str
    seq: int
    project_id: str
    query: Query
    ai_models: tuple[str, ...]
    execution_count: int
    commit_at: float
    commit_wall: float
    pending_for: float
    active_for: float

    @property
    def executions(self) -> int:
        return len(self.ai_models) * self.execution_count


def cached_status(job: CachedJob, now: float) -> tuple[str, float]:
    """``pending`` then ``active`` then ``ended``, with the time of the last change."""
    started = job.commit_at + job.pending_for
    if now < started:
        return "pending", job.commit_at
    if now < started + job.active_for:
        return "active", started
    return "ended", started + job.active_for


def cached_job_json(job: CachedJob, now: float) -> dict[str, Any]:
    """A CachedJob object as the API returns it (``query_id`` in snake case, as documented)."""
    status, updated = cached_status(job, now)
    return {
        "id": job.id,
        "project": job.project_id,
        "query_id": job.query.id,
        "query": job.query.text,
        "aiModels": list(job.ai_models),
        "executionCount": job.execution_count,
        "language": job.query.language,
        "country": job.query.country,
        "status": status,
        "updatedAt": iso(job.commit_wall + (updated - job.commit_at)),
        "createdAt": iso(job.commit_wall),
        "restricted": False,
    }
