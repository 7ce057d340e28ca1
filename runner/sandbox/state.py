"""The sandbox's store: jobs, cached jobs, credits and idempotency keys.

All mutation happens synchronously inside one request step, so concurrent requests on one event
loop never interleave a check with its commit (credits, idempotency, rate slots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.sandbox._rng import derived_uuid, unit
from runner.sandbox.errors import HttpError
from runner.sandbox.faults import Faults
from runner.sandbox.jobs import (
    CachedJob,
    Job,
    JobState,
    counters_at,
    job_fate,
    job_state,
)
from runner.sandbox.truth import TriggerRecord, Truth
from runner.sandbox.world import Principal, Project


@dataclass(frozen=True)
class TriggerRequest:
    """A validated trigger: who, where, what, and when it commits."""

    kind: str
    who: Principal
    project: Project
    ai_models: tuple[str, ...]
    execution_count: int
    idempotency_key: str | None
    sequence: int
    commit_at: float
    commit_wall: float
    fingerprint: str


@dataclass
class _Replay:
    fingerprint: str
    record: TriggerRecord
    commit_at: float


@dataclass
class Store:
    """Everything the API has created, plus the credit balance."""

    seed: int
    time_scale: float
    credits: int | None
    truth: Truth
    jobs: dict[str, Job] = field(default_factory=dict)
    project_jobs: dict[str, list[Job]] = field(default_factory=dict)
    cached: dict[str, CachedJob] = field(default_factory=dict)
    credits_used: int = 0
    _replays: dict[tuple[str, str], _Replay] = field(default_factory=dict)

    def replay(self, req: TriggerRequest, now: float) -> TriggerRecord | None:
        """The earlier trigger with the same Idempotency-Key (409/422 when it cannot be reused)."""
        if req.idempotency_key is None:
            return None
        entry = self._replays.get((req.who.api_key, req.idempotency_key))
        if entry is None:
            return None
        if entry.fingerprint != req.fingerprint:
            raise HttpError(422, "Idempotency-Key reused with a different request")
        if now < entry.commit_at:
            raise HttpError(409, "A request with this Idempotency-Key is in progress")
        entry.record.replays += 1
        return entry.record

    def charge(self, executions: int) -> None:
        """Take ``executions`` credits, or refuse with 402 and change nothing."""
        if self.credits is not None and self.credits_used + executions > self.credits:
            left = self.credits - self.credits_used
            raise HttpError(
                402, f"Insufficient credits: {executions} executions requested, {left} left"
            )
        self.credits_used += executions

    def create_job(self, req: TriggerRequest, faults: Faults, list_lag: float) -> Job:
        """Commit a job (visible from ``req.commit_at``) and record it in the truth."""
        job_id = derived_uuid(self.seed, "job", req.sequence)
        total = len(req.project.queries) * len(req.ai_models) * req.execution_count
        fate = job_fate(self.seed, job_id, total, faults, self.time_scale)
        job = Job(
            id=job_id,
            seq=req.sequence,
            project_id=req.project.id,
            organisation_id=req.project.organisation_id,
            creator=req.who.user,
            ai_models=req.ai_models,
            execution_count=req.execution_count,
            total=total,
            commit_at=req.commit_at,
            commit_wall=req.commit_wall,
            listed_at=req.commit_at + list_lag,
            pending_for=fate.pending_for,
            processing_for=fate.processing_for,
            failures=fate.failures,
            stuck_at=fate.stuck_at,
            vanished=fate.vanished,
            flaps=fate.flaps,
            idempotency_key=req.idempotency_key,
        )
        self.jobs[job.id] = job
        self.project_jobs.setdefault(job.project_id, []).append(job)
        self._record(req, (job.id,), total)
        return job

    def create_cached(self, req: TriggerRequest, models: tuple[str, ...]) -> list[CachedJob]:
        """Commit one cached job per query of the project, with mapped model names."""
        created = []
        for index, query in enumerate(req.project.queries):
            job_id = derived_uuid(self.seed, "cached-job", req.sequence, index)
            pending = (1.0 + 9.0 * unit(self.seed, job_id, "pending")) / self.time_scale
            active = (5.0 + 5.0 * len(models) * req.execution_count) / self.time_scale
            job = CachedJob(
                id=job_id,
                seq=req.sequence,
                project_id=req.project.id,
                query=query,
                ai_models=models,
                execution_count=req.execution_count,
                commit_at=req.commit_at,
                commit_wall=req.commit_wall,
                pending_for=pending,
                active_for=active,
            )
            self.cached[job.id] = job
            created.append(job)
        total = sum(job.executions for job in created)
        self._record(req, tuple(job.id for job in created), total)
        return created

    def _record(self, req: TriggerRequest, ids: tuple[str, ...], total: int) -> None:
        record = TriggerRecord(
            kind=req.kind,
            sequence=req.sequence,
            ids=ids,
            project_id=req.project.id,
            organisation_id=req.project.organisation_id,
            api_key=req.who.api_key,
            ai_models=req.ai_models,
            execution_count=req.execution_count,
            total_executions=total,
            idempotency_key=req.idempotency_key,
            created_wall=req.commit_wall,
            created_monotonic=req.commit_at,
        )
        self.truth.triggers.append(record)
        if req.idempotency_key is not None:
            key = (req.who.api_key, req.idempotency_key)
            self._replays[key] = _Replay(req.fingerprint, record, req.commit_at)

    def observe(self, job: Job, now: float) -> JobState:
        """The state a reader sees, applying the flap fault (one step backwards, once)."""
        state = job_state(job, now)
        if not (job.flaps and state.terminal and job.total > 0) or job.flap_state == 2:
            return state
        if job.flap_state == 0:
            job.flap_state = 1
            return state
        job.flap_state = 2
        self.truth.fault("flap")
        return counters_at(job, job.total - 1, job.commit_at + job.pending_for)

    def visible_job(self, job_id: str, project_id: str, now: float) -> Job | None:
        """A job a GET can see: committed, not vanished, in the caller's project."""
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id or now < job.commit_at:
            return None
        if job.vanished:
            self.truth.fault("vanish")
            return None
        return job

    def listed_jobs(self, project_id: str, now: float) -> list[Job]:
        """The project's jobs the list endpoint shows (after the list lag, not vanished)."""
        jobs = self.project_jobs.get(project_id, [])
        return [job for job in jobs if now >= job.listed_at and not job.vanished]

    def summary(self) -> dict[str, Any]:
        return {"initial": self.credits, "used": self.credits_used}
