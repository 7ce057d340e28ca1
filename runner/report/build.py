"""The report as a view of the ledger: read a run through the Store's public methods, reconcile.

Every string that came from the outside (error messages, details, anomalies, the base URL) is
redacted on the way in, so the report value itself holds no secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import runner
from runner.catalog import Catalog, default_catalog
from runner.plan import Action
from runner.redact import redact, redact_optional, safe_url
from runner.report.environment import CI_VARIABLES, CiInfo, ci_info
from runner.report.model import (
    Ambiguity,
    Asked,
    AttemptInfo,
    CachedSummary,
    Counters,
    Done,
    Durations,
    JobInfo,
    Report,
    RunInfo,
)
from runner.report.reconcile import CACHED_ENDPOINT, compute_totals, reconcile
from runner.store import (
    ActionRecord,
    ActionState,
    AttemptRecord,
    JobRecord,
    RunRecord,
    RunStatus,
    Store,
)

Event = tuple[float, str, str | None, dict[str, Any]]
T = TypeVar("T")

# Run events the report reads (written by the engine with Store.record_event).
STOP_EVENT = "stop"  # detail: reason
BUDGET_EVENT = "budget_refused"  # detail: message
CACHED_JOBS_EVENT = "cached_jobs"  # key: the action; detail: jobs=[{id, queryId, aiModels, ...}]
_SETTLE_EVENTS = {"settled_not_created": "not created; resent", "retry_ambiguous": "resent"}
# Run metadata the report reads (Store.create_run(meta=...)).
META_CI = "ci"  # CiInfo.to_json() of the environment the run started in
META_VERSION = "mlrunVersion"


def build_report(
    ledger: Store,
    run_id: str,
    *,
    env: Mapping[str, str],
    now: float | None = None,
    catalog: Catalog | None = None,
    keys: Collection[str] | None = None,
    part: str | None = None,
) -> Report:
    """The reconciled report of ``run_id``, failures first.

    ``env`` supplies the CI variables when the run's metadata did not record them; ``now``
    (epoch seconds) dates the report and measures a run still going; ``catalog`` maps the
    provider keys of cached jobs to models (the shipped catalog by default); ``keys``, the
    actions of one part of the run (a shard's), when the report is of that part only, and
    ``part`` its name: the part's status is the report's, as the shard's exit code is its own.
    """
    now = time.time() if now is None else now
    run = ledger.run(run_id)
    if part is not None and (status := ledger.parts(run_id).get(part)) is not None:
        run = replace(run, status=status)
    events = ledger.events(run_id)
    jobs = _group(ledger.jobs(run_id), lambda job: job.key)
    run_active = run.status == RunStatus.RUNNING
    catalog = catalog or default_catalog()
    events_by_key = _group(events, lambda event: event[2] or "")
    results = []
    for record in ledger.actions(run_id):
        key = record.action.key
        if keys is not None and key not in keys:
            continue
        facts = _ActionFacts(
            record, ledger.attempts(run_id, key), jobs.get(key, []), events_by_key.get(key, [])
        )
        done = _done(facts, catalog, run_active=run_active)
        results.append(reconcile(asked_of(record.action), done, run_active=run_active))
    ordered = sorted(results, key=lambda result: result.outcome.rank)  # stable: plan order kept
    return Report(_run_info(run, events, env, now), tuple(ordered), compute_totals(results))


def iso(timestamp: float) -> str:
    """Epoch seconds as ISO 8601 UTC, to the millisecond (``2025-01-31T12:00:00.000Z``)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the run -------------------------------------------------------------------------------------


def _run_info(
    run: RunRecord, events: Sequence[Event], env: Mapping[str, str], now: float
) -> RunInfo:
    end = run.finished_at if run.finished_at is not None else now
    stop = next((e[3] for e in events if e[1] == STOP_EVENT), None)
    stop_reason = redact_optional(str(stop.get("reason", "stopped"))) if stop is not None else None
    return RunInfo(
        run_id=run.run_id,
        status=str(run.status),
        manifest_digest=run.manifest_digest,
        mlrun_version=str(run.meta.get(META_VERSION) or runner.__version__),
        started_at=iso(run.started_at),
        finished_at=None if run.finished_at is None else iso(run.finished_at),
        duration_seconds=round(max(0.0, end - run.started_at), 3),
        generated_at=iso(now),
        base_url=safe_url(run.base_url),
        ci=_ci(run.meta, env),
        stop_reason=stop_reason,
        budget_refused=any(e[1] == BUDGET_EVENT for e in events)
        or "BudgetExceeded" in (stop_reason or ""),
        skipped_projects=tuple(
            (s.project, redact(s.reason)) for s in run.plan.skipped if not s.error
        ),
        unreachable_projects=tuple(
            (s.project, redact(s.reason)) for s in run.plan.skipped if s.error
        ),
        followed=run.meta.get("wait", True) is not False,
        rate_limits=tuple(
            (int(limit), float(seconds)) for limit, seconds in run.meta.get("rateLimits", [])
        ),
    )


def _ci(meta: Mapping[str, Any], env: Mapping[str, str]) -> CiInfo:
    """The CI the run started in, as its metadata recorded it; else the CI of ``env``.

    The metadata holds either ``ci`` (a :meth:`CiInfo.to_json`) or the raw CI variables.
    """
    recorded = meta.get(META_CI)
    if isinstance(recorded, dict):
        return CiInfo.from_json(recorded)
    variables = {k: v for k, v in meta.items() if k in CI_VARIABLES and isinstance(v, str)}
    return ci_info(variables or env)


# -- one action ----------------------------------------------------------------------------------


def asked_of(action: Action) -> Asked:
    """What the plan asked of ``action``."""
    return Asked(
        key=action.key,
        project=action.project,
        project_id=action.project_id,
        endpoint=str(action.endpoint),
        models=action.models,
        execution_count=action.execution_count,
        queries=action.queries,
        expected_executions=action.expected_executions,
    )


def _group(items: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return grouped


@dataclass(frozen=True)
class _ActionFacts:
    """Everything the ledger holds about one action."""

    record: ActionRecord
    attempts: Sequence[AttemptRecord]
    jobs: Sequence[JobRecord]
    events: Sequence[Event]


def _done(facts: _ActionFacts, catalog: Catalog, *, run_active: bool) -> Done:
    record, attempts, events = facts.record, facts.attempts, facts.events
    jobs = _job_infos(record, facts.jobs)
    seen = [job.counters for job in jobs if job.counters is not None]
    return Done(
        state=str(record.state),
        job_ids=record.job_ids,
        job_status=_job_status(jobs),
        counters=sum(seen, Counters()) if seen else None,
        attempts=record.attempts,
        rate_limited=record.rate_limited,
        settled_by=redact_optional(record.settled_by),
        detail=redact_optional(record.detail),
        jobs=jobs,
        attempt_log=tuple(_attempt_info(a) for a in attempts),
        ambiguous=_ambiguities(record, attempts, events, run_active=run_active),
        durations=_durations(record, facts.jobs),
        cached=_cached(record, events, catalog),
    )


def _job_infos(record: ActionRecord, job_records: Sequence[JobRecord]) -> tuple[JobInfo, ...]:
    """The action's jobs: every recorded id (seen or not), then any other job filed under it."""
    by_id = {job.job_id: job for job in job_records}
    kind = "cached" if record.action.endpoint == CACHED_ENDPOINT else "job"
    ids = list(record.job_ids) + [j for j in by_id if j not in record.job_ids]
    return tuple(_job_info(job_id, by_id.get(job_id), kind) for job_id in ids)


def _job_info(job_id: str, job: JobRecord | None, kind: str) -> JobInfo:
    if job is None:
        return JobInfo(job_id=job_id, kind=kind, status=None, counters=None)
    counters = Counters(**{name: int(job.counters.get(name, 0)) for name in _COUNTER_NAMES})
    anomalies = tuple(redact(a) for a in job.anomalies)
    return JobInfo(job_id, job.kind, job.status, counters, anomalies)


_COUNTER_NAMES = ("total", "success", "failed", "pending", "retrying")


def _job_status(jobs: Sequence[JobInfo]) -> str | None:
    statuses = {job.status for job in jobs if job.status is not None}
    if not statuses:
        return None
    return statuses.pop() if len(statuses) == 1 else "mixed"


def _attempt_info(attempt: AttemptRecord) -> AttemptInfo:
    seconds = None
    if attempt.finished_at is not None:
        seconds = round(max(0.0, attempt.finished_at - attempt.intent_at), 3)
    return AttemptInfo(
        attempt=attempt.attempt,
        sent_at=iso(attempt.intent_at),
        outcome=attempt.outcome,
        http_status=attempt.http_status,
        error=redact_optional(attempt.error),
        seconds=seconds,
    )


def _durations(record: ActionRecord, jobs: Sequence[JobRecord]) -> Durations:
    sent, triggered = record.first_sent_at, record.triggered_at
    to_triggered = None if sent is None or triggered is None else max(0.0, triggered - sent)
    ends = [job.terminal_at for job in jobs]
    to_terminal = None
    if triggered is not None and jobs and all(end is not None for end in ends):
        to_terminal = max(0.0, max(end for end in ends if end is not None) - triggered)
    return Durations(_round(to_triggered), _round(to_terminal))


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


# -- ambiguous attempts --------------------------------------------------------------------------


def _ambiguities(
    record: ActionRecord,
    attempts: Sequence[AttemptRecord],
    events: Sequence[Event],
    *,
    run_active: bool,
) -> tuple[Ambiguity, ...]:
    """Each attempt whose outcome was not known when it ended, and how it was settled."""
    last = attempts[-1].attempt if attempts else None
    found: list[Ambiguity] = []
    for attempt in attempts:
        in_flight_now = attempt.outcome is None and attempt.attempt == last and run_active
        if attempt.outcome not in {"ambiguous", "adopted", None} or in_flight_now:
            continue
        settled_by, detail = _settlement(record, attempt, events, is_last=attempt.attempt == last)
        found.append(Ambiguity(attempt.attempt, redact_optional(attempt.error), settled_by, detail))
    return tuple(found)


def _settlement(
    record: ActionRecord, attempt: AttemptRecord, events: Sequence[Event], *, is_last: bool
) -> tuple[str, str | None]:
    if attempt.outcome == "adopted":
        adopted = ", ".join(record.job_ids) or "?"
        return record.settled_by or "adopted from the job list", f"adopted job {adopted}"
    if not is_last:  # a later attempt exists: this one was found not created, or resent anyway
        event = next(
            (e for e in events if e[1] in _SETTLE_EVENTS and e[0] >= attempt.intent_at), None
        )
        if event is None:
            return "resent", None
        return _SETTLE_EVENTS[event[1]], redact_optional(_optional_text(event[3].get("why")))
    if record.state in {ActionState.AMBIGUOUS, ActionState.IN_FLIGHT}:
        return "not settled yet", "`mlrun apply --resume` settles it from the job list"
    if record.state == ActionState.PENDING:
        return "not created", redact_optional(record.detail)
    return redact(record.settled_by or str(record.state)), redact_optional(record.detail)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- cached jobs ---------------------------------------------------------------------------------


def _cached(
    record: ActionRecord, events: Sequence[Event], catalog: Catalog
) -> CachedSummary | None:
    action = record.action
    if action.endpoint != CACHED_ENDPOINT or record.state != ActionState.TRIGGERED:
        return None
    details = [e[3] for e in events if e[1] == CACHED_JOBS_EVENT]
    jobs = details[-1].get("jobs") if details else None
    return cached_summary(action, record.job_ids, jobs if isinstance(jobs, list) else None, catalog)


def cached_summary(
    action: Action,
    job_ids: Sequence[str],
    jobs: Sequence[Any] | None,
    catalog: Catalog,
) -> CachedSummary:
    """The cached jobs returned for ``action`` against its ask.

    ``jobs``: the returned cached jobs as JSON objects (``id``, ``queryId``, ``aiModels``,
    ``executionCount``); None when only their ids are known, which checks the count alone.
    """
    expected_models = catalog.models_for_keys(action.models)
    checked = [job for job in jobs or () if isinstance(job, dict)]
    queries = [job.get("queryId") for job in checked if job.get("queryId") is not None]
    return CachedSummary(
        returned=len(job_ids),
        expected=action.queries,
        models_expected=expected_models,
        execution_count_expected=action.execution_count,
        checked=len(checked),
        models_differ=sum(set(j.get("aiModels") or ()) != set(expected_models) for j in checked),
        execution_count_differs=sum(
            j.get("executionCount") != action.execution_count for j in checked
        ),
        duplicate_queries=len(queries) - len(set(queries)),
    )
