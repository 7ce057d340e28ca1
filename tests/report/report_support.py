"""Runs written into a real ledger through its public API, as the engine and follower write them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.manifest.model import Endpoint
from runner.plan import Action, Plan, Skip
from runner.report.build import asked_of
from runner.report.model import ActionResult, Counters, Done, Durations, JobInfo, Report, RunInfo
from runner.report.reconcile import compute_totals, reconcile
from runner.store import ActionState, AttemptOutcome, RunStatus, SettledBy, SqliteStore

T0 = 1_750_000_000.0
SECRET = "ml_live_" + "s3cr3tKEYabc_123-xyz"
BASE_URL = f"https://user:{SECRET}@api.mentionlab.io/?api_key={SECRET}#frag"
TWO_MODELS = ("gpt-4.1-mini", "claude-haiku-4-5")


def job_action(
    project: str,
    index: int,
    *,
    models: tuple[str, ...] = TWO_MODELS,
    count: int = 3,
    queries: int | None = 5,
) -> Action:
    return Action(
        key=f"{project}/jobs/{index}",
        project=project,
        project_id=f"id-{project}",
        organisation=None,
        endpoint=Endpoint.JOBS,
        models=models,
        execution_count=count,
        queries=queries,
    )


def cached_action(project: str, *, keys: tuple[str, ...] = ("openai",), queries: int = 2) -> Action:
    return Action(
        key=f"{project}/cachedJobs",
        project=project,
        project_id=f"id-{project}",
        organisation="org",
        endpoint=Endpoint.CACHED_JOBS,
        models=keys,
        execution_count=2,
        queries=queries,
    )


def counters(
    total: int, success: int, failed: int = 0, pending: int = 0, retrying: int = 0
) -> dict[str, int]:
    return {
        "total": total,
        "success": success,
        "failed": failed,
        "pending": pending,
        "retrying": retrying,
    }


@dataclass
class Scenario:
    """A run in a ledger, and verbs that write what the engine and the follower would."""

    ledger: SqliteStore
    run_id: str
    clock: float = T0
    actions: dict[str, Action] = field(default_factory=dict)

    def tick(self, seconds: float = 1.0) -> float:
        self.clock += seconds
        return self.clock

    def send(self, key: str) -> int:
        return self.ledger.record_intent(
            self.run_id, key, idempotency_key=f"idem-{key}", now=self.tick()
        )

    def trigger(
        self, key: str, job_id: str, *, status: str = "pending", total: int | None = None
    ) -> None:
        attempt = self.send(key)
        self.ledger.record_outcome(
            self.run_id,
            key,
            attempt=attempt,
            outcome=AttemptOutcome.ACCEPTED,
            now=self.tick(),
            http_status=201,
            state=ActionState.TRIGGERED,
            job_ids=(job_id,),
            settled_by=SettledBy.RESPONSE,
        )
        expected = self.actions[key].expected_executions or 0
        self.job(
            key, job_id, status, counters(expected if total is None else total, 0, pending=expected)
        )

    def job(
        self,
        key: str,
        job_id: str,
        status: str,
        values: dict[str, int],
        *,
        anomaly: str | None = None,
    ) -> None:
        self.ledger.upsert_job(
            self.run_id,
            job_id,
            key=key,
            kind="job",
            status=status,
            counters=values,
            created_at="2025-06-15T00:00:00Z",
            now=self.tick(30),
            terminal=status in {"completed", "failed", "partial_failed"},
            anomaly=anomaly,
        )

    def finish(self, key: str, job_id: str, status: str, values: dict[str, int]) -> None:
        self.job(key, job_id, status, values)

    def fail(self, key: str, *, status: int, error: str) -> None:
        attempt = self.send(key)
        self.ledger.record_outcome(
            self.run_id,
            key,
            attempt=attempt,
            outcome=AttemptOutcome.REJECTED,
            now=self.tick(),
            http_status=status,
            error=error,
            state=ActionState.FAILED,
            detail=error,
        )

    def ambiguous(self, key: str, error: str = "read timeout") -> int:
        attempt = self.send(key)
        self.ledger.record_outcome(
            self.run_id,
            key,
            attempt=attempt,
            outcome=AttemptOutcome.AMBIGUOUS,
            now=self.tick(),
            error=error,
            state=ActionState.AMBIGUOUS,
        )
        self.ledger.record_event(self.run_id, "ambiguous", now=self.clock, key=key)
        return attempt

    def rate_limited(self, key: str) -> None:
        attempt = self.send(key)
        self.ledger.record_outcome(
            self.run_id,
            key,
            attempt=attempt,
            outcome=AttemptOutcome.RATE_LIMITED,
            now=self.tick(),
            http_status=429,
            error="429 Too Many Requests",
            state=ActionState.PENDING,
        )

    def unknown(self, key: str, why: str) -> None:
        attempt = self.ambiguous(key)
        self.ledger.set_action_state(
            self.run_id,
            key,
            ActionState.UNKNOWN,
            now=self.tick(),
            detail=f"attempt {attempt}: {why}",
            settled_by=SettledBy.UNSETTLED,
        )

    def adopt(self, key: str, attempt: int, job_id: str) -> None:
        self.ledger.record_outcome(
            self.run_id,
            key,
            attempt=attempt,
            outcome=AttemptOutcome.ADOPTED,
            now=self.tick(),
            state=ActionState.TRIGGERED,
            job_ids=(job_id,),
            settled_by=SettledBy.JOB_LIST,
        )

    def skip(self, key: str, reason: str) -> None:
        self.ledger.set_action_state(
            self.run_id, key, ActionState.SKIPPED, now=self.tick(), detail=reason
        )

    def event(self, kind: str, key: str | None = None, **detail: Any) -> None:
        self.ledger.record_event(self.run_id, kind, now=self.tick(), key=key, **detail)

    def end(self, status: RunStatus = RunStatus.FINISHED) -> None:
        self.ledger.set_run_status(self.run_id, status, now=self.tick())


def open_scenario(
    path: Path,
    actions: Sequence[Action],
    *,
    run_id: str = "20250615T000000Z-abcdef",
    meta: dict[str, Any] | None = None,
    skipped: tuple[Skip, ...] = (),
) -> Scenario:
    ledger = SqliteStore.open(path / "ledger.sqlite")
    plan = Plan(actions=tuple(actions), manifest_digest="sha256:" + "ab" * 32, skipped=skipped)
    ledger.create_run(
        run_id, plan, base_url=BASE_URL, meta=meta or {"mlrunVersion": "9.9.9"}, now=T0
    )
    return Scenario(ledger, run_id, actions={a.key: a for a in actions})


STANDARD_OUTCOMES = {
    "acme/jobs/0": "OK",
    "acme/jobs/1": "PARTIAL",
    "acme/cachedJobs": "OK",
    "beta/jobs/0": "FAILED",
    "beta/jobs/1": "UNKNOWN",
    "beta/jobs/2": "SKIPPED",
    "gamma/jobs/0": "NOT_ATTEMPTED",
    "gamma/jobs/1": "TIMEOUT",
    "gamma/jobs/2": "PARTIAL",
    "delta/jobs/0": "OK",
    "delta/jobs/1": "UNKNOWN",
    "delta/jobs/2": "PARTIAL",
}


def standard_scenario(path: Path, *, meta: dict[str, Any] | None = None) -> Scenario:
    """One action per case the report must tell apart (see STANDARD_OUTCOMES)."""
    actions = [
        job_action("acme", 0),
        job_action("acme", 1),
        cached_action("acme"),
        *(job_action("beta", i) for i in range(3)),
        *(job_action("gamma", i) for i in range(3)),
        *(job_action("delta", i) for i in range(3)),
    ]
    s = open_scenario(path, actions, meta=meta, skipped=(Skip("omega", "not selected"),))
    s.trigger("acme/jobs/0", "job-a0")
    s.finish("acme/jobs/0", "job-a0", "completed", counters(30, 30))
    s.trigger("acme/jobs/1", "job-a1")
    s.finish("acme/jobs/1", "job-a1", "partial_failed", counters(30, 25, 5))
    attempt = s.send("acme/cachedJobs")
    s.ledger.record_outcome(
        s.run_id,
        "acme/cachedJobs",
        attempt=attempt,
        outcome=AttemptOutcome.ACCEPTED,
        now=s.tick(),
        http_status=201,
        state=ActionState.TRIGGERED,
        job_ids=("c-1", "c-2"),
        settled_by=SettledBy.RESPONSE,
    )
    s.fail("beta/jobs/0", status=404, error=f"404 project not found (key {SECRET})")
    s.unknown("beta/jobs/1", "several candidate jobs: x-1, x-2")
    s.skip("beta/jobs/2", "not attempted: --fail-fast after beta/jobs/0 failed")
    s.trigger("gamma/jobs/1", "job-g1", status="processing")
    s.ledger.add_job_anomaly(s.run_id, "job-g1", "TIMEOUT: not terminal when following stopped")
    s.trigger("gamma/jobs/2", "job-g2", total=20)
    s.finish("gamma/jobs/2", "job-g2", "completed", counters(20, 20))
    s.rate_limited("delta/jobs/0")
    attempt = s.ambiguous("delta/jobs/0")
    s.adopt("delta/jobs/0", attempt, "job-d0")
    s.finish("delta/jobs/0", "job-d0", "completed", counters(30, 30))
    s.trigger("delta/jobs/1", "job-d1")
    s.ledger.add_job_anomaly(s.run_id, "job-d1", "404 for a job this run created")
    s.trigger("delta/jobs/2", "job-d2")
    s.finish("delta/jobs/2", "job-d2", "completed", counters(30, 30))
    s.ledger.add_job_anomaly(s.run_id, "job-d2", "terminal status completed moved to processing")
    s.end()
    return s


def synthetic_report(size: int, *, seed: int = 0) -> Report:
    """A report of ``size`` actions over many projects and every outcome, built without a ledger."""
    results = [_synthetic_result(index, seed) for index in range(size)]
    run = RunInfo(
        run_id="20250615T000000Z-big",
        status="finished",
        manifest_digest="sha256:" + "cd" * 32,
        mlrun_version="9.9.9",
        started_at="2025-06-15T00:00:00.000Z",
        finished_at="2025-06-15T01:00:00.000Z",
        duration_seconds=3600.0,
        generated_at="2025-06-15T01:00:01.000Z",
        base_url="https://api.mentionlab.io",
    )
    ordered = sorted(results, key=lambda result: result.outcome.rank)
    return Report(run, tuple(ordered), compute_totals(results))


_STATES = ("triggered", "triggered", "triggered", "failed", "unknown", "skipped", "pending")
_JOB_STATUSES = ("completed", "completed", "partial_failed", "failed", "processing")


def _synthetic_result(index: int, seed: int) -> ActionResult:
    project = f"project-{(index * 7 + seed) % 997:04d}"
    asked = asked_of(job_action(project, index, models=TWO_MODELS[: 1 + index % 2]))
    state = _STATES[(index + seed) % len(_STATES)]
    if state != "triggered":
        done = Done(state=state, detail=f"{state} because of reason number {index} | with a pipe")
        return reconcile(asked, done, run_active=False)
    status = _JOB_STATUSES[(index // 7 + seed) % len(_JOB_STATUSES)]
    expected = asked.expected_executions or 0
    failed = index % 4 if status != "completed" else 0
    values = Counters(expected, expected - failed, failed)
    job = JobInfo(
        f"job-{index}", "job", status, values, ("TIMEOUT: x",) if status == "processing" else ()
    )
    done = Done(
        state=state, job_ids=(job.job_id,), job_status=status, counters=values, jobs=(job,),
        attempts=1, durations=Durations(0.5, 42.0),
    )  # fmt: skip
    return reconcile(asked, done, run_active=False)
