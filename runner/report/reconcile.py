"""Pure reconciliation: asked vs done -> differences, an outcome per action, and the totals.

No ledger, no I/O: everything here takes report values and returns report values, so the rules
are tested directly (including a property test of the totals arithmetic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from runner.api.models import TERMINAL_JOB_STATUSES
from runner.report.model import (
    ActionResult,
    Asked,
    CachedSummary,
    Counters,
    Difference,
    DifferenceKind,
    Done,
    JobInfo,
    Outcome,
    Tally,
    Totals,
)
from runner.report.words import plural

CACHED_ENDPOINT = "cachedJobs"
_TIMEOUT_PREFIX = "TIMEOUT"
_NOT_FOUND_MARK = "404"
_BACKWARDS_MARK = "moved to"
_WAITING_STATES = frozenset({"pending", "in_flight", "ambiguous"})


def reconcile(asked: Asked, done: Done, *, run_active: bool) -> ActionResult:
    """The action's differences and outcome. ``run_active``: the run is still going."""
    differences = tuple(action_differences(asked, done, run_active=run_active))
    outcome = action_outcome(asked, done, differences, run_active=run_active)
    return ActionResult(asked=asked, done=done, outcome=outcome, differences=differences)


# -- outcomes ------------------------------------------------------------------------------------


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The worst of ``outcomes`` (OK when there are none)."""
    return min(outcomes, key=lambda outcome: outcome.rank, default=Outcome.OK)


def job_outcome(job: JobInfo) -> Outcome:
    """One job's verdict from its last status and anomalies."""
    if job.status is None:
        return Outcome.UNKNOWN
    if job.status not in TERMINAL_JOB_STATUSES:
        if _has_anomaly(job, _NOT_FOUND_MARK):
            return Outcome.UNKNOWN
        if any(a.startswith(_TIMEOUT_PREFIX) for a in job.anomalies):
            return Outcome.TIMEOUT
        return Outcome.RUNNING
    return {"failed": Outcome.FAILED, "partial_failed": Outcome.PARTIAL}.get(job.status, Outcome.OK)


def action_outcome(
    asked: Asked, done: Done, differences: Sequence[Difference], *, run_active: bool
) -> Outcome:
    """The action's verdict: from its ledger state, then its jobs, then its differences."""
    if done.state != "triggered":
        return _untriggered_outcome(done.state, run_active=run_active)
    if not done.job_ids:
        return Outcome.UNKNOWN
    base = Outcome.OK if asked.endpoint == CACHED_ENDPOINT else worst(map(job_outcome, done.jobs))
    # Ended "completed" yet not as asked (counts, anomalies): partial, never OK.
    return Outcome.PARTIAL if base == Outcome.OK and differences else base


def _untriggered_outcome(state: str, *, run_active: bool) -> Outcome:
    if state in _WAITING_STATES and run_active:
        return Outcome.RUNNING
    return {
        "failed": Outcome.FAILED,
        "skipped": Outcome.SKIPPED,
        "pending": Outcome.NOT_ATTEMPTED,
    }.get(state, Outcome.UNKNOWN)


# -- differences ---------------------------------------------------------------------------------


def action_differences(asked: Asked, done: Done, *, run_active: bool) -> Iterator[Difference]:
    """Every way the action differs from what was asked, each with its reason."""
    if done.state != "triggered":
        yield from _state_differences(done, run_active=run_active)
        return
    if not done.job_ids:
        yield Difference(DifferenceKind.NO_JOB, "triggered, but no job id was recorded")
        return
    if asked.endpoint == CACHED_ENDPOINT:
        if done.cached is not None:
            yield from cached_differences(done.cached)
        return
    for job in done.jobs:
        yield from job_differences(job)
    yield from _executions_difference(asked, done)


def _state_differences(done: Done, *, run_active: bool) -> Iterator[Difference]:
    detail = done.detail
    if done.state == "failed":
        yield Difference(DifferenceKind.ACTION_FAILED, f"trigger failed: {detail or 'refused'}")
    elif done.state == "unknown":
        why = detail or "the trigger's outcome could not be settled"
        yield Difference(DifferenceKind.ACTION_UNKNOWN, f"outcome unknown: {why}")
    elif done.state == "skipped":
        yield Difference(DifferenceKind.ACTION_SKIPPED, detail or "not triggered")
    elif run_active:
        return
    elif done.state == "pending":
        yield Difference(DifferenceKind.NOT_ATTEMPTED, _not_attempted_message(done))
    else:
        yield Difference(
            DifferenceKind.UNSETTLED,
            f"attempt {done.attempts} was sent but its outcome was never settled; "
            "`mlrun apply --resume` settles it from the job list",
        )


def _not_attempted_message(done: Done) -> str:
    if done.attempts == 0:
        return "not attempted: the run ended before this action was sent"
    sent = "once" if done.attempts == 1 else f"{done.attempts} times"
    return f"not triggered: sent {sent}, none took effect, the run ended"


def job_differences(job: JobInfo) -> Iterator[Difference]:
    """The differences one job shows: its final status, its anomalies, its counters."""
    if job.status is None:
        yield Difference(DifferenceKind.NO_JOB, f"job {job.job_id} was never seen")
        return
    counters = job.counters or Counters()
    if job.status == "failed":
        yield Difference(DifferenceKind.JOB_FAILED, f"job {job.job_id} failed{_tail(counters)}")
    elif job.status == "partial_failed":
        yield Difference(
            DifferenceKind.JOB_PARTIAL, f"job {job.job_id} ended partial_failed{_tail(counters)}"
        )
    yield from _anomaly_differences(job)
    if not counters.consistent:
        yield Difference(
            DifferenceKind.COUNTERS_INCONSISTENT,
            f"job {job.job_id}: success {counters.success} + failed {counters.failed} + pending "
            f"{counters.pending} + retrying {counters.retrying} != total {counters.total}",
        )


def _tail(counters: Counters) -> str:
    return f": {counters.success} succeeded, {counters.failed} failed of {counters.total}"


def _anomaly_differences(job: JobInfo) -> Iterator[Difference]:
    terminal = job.status in TERMINAL_JOB_STATUSES
    for anomaly in job.anomalies:
        if anomaly.startswith(_TIMEOUT_PREFIX):
            if not terminal:  # a later refresh that saw the end supersedes the timeout
                yield Difference(
                    DifferenceKind.TIMEOUT,
                    f"job {job.job_id} still {job.status} when following stopped",
                )
        elif _NOT_FOUND_MARK in anomaly:
            yield Difference(DifferenceKind.JOB_NOT_FOUND, f"job {job.job_id}: {anomaly}")
        elif _BACKWARDS_MARK in anomaly:
            yield Difference(DifferenceKind.STATUS_BACKWARDS, f"job {job.job_id}: {anomaly}")
        else:
            yield Difference(DifferenceKind.ANOMALY, f"job {job.job_id}: {anomaly}")


def _has_anomaly(job: JobInfo, mark: str) -> bool:
    return any(mark in anomaly for anomaly in job.anomalies)


def _executions_difference(asked: Asked, done: Done) -> Iterator[Difference]:
    expected, counters = asked.expected_executions, done.counters
    if expected is None or counters is None or counters.total == expected:
        return
    yield Difference(
        DifferenceKind.EXECUTIONS_MISMATCH,
        f"expected {plural(expected, 'execution')} "
        f"({plural(asked.queries or 0, 'query', 'queries')} x {plural(len(asked.models), 'model')}"
        f" x {asked.execution_count}), the API created {counters.total:,}",
    )


def cached_differences(cached: CachedSummary) -> Iterator[Difference]:
    """What the returned cached jobs show against the project's queries and the ask."""
    if cached.expected is not None and cached.returned != cached.expected:
        yield Difference(
            DifferenceKind.CACHED_COUNT,
            f"the API returned {plural(cached.returned, 'cached job')} for "
            f"{plural(cached.expected, 'query', 'queries')} (one per query expected)",
        )
    if cached.models_differ:
        yield Difference(
            DifferenceKind.CACHED_MODELS,
            f"{cached.models_differ} of {plural(cached.checked, 'cached job')} "
            f"{'runs' if cached.models_differ == 1 else 'run'} other models than "
            f"{', '.join(cached.models_expected)}",
        )
    if cached.execution_count_differs:
        yield Difference(
            DifferenceKind.CACHED_EXECUTION_COUNT,
            f"{cached.execution_count_differs} of {plural(cached.checked, 'cached job')} "
            f"{'has' if cached.execution_count_differs == 1 else 'have'} an executionCount "
            f"other than {cached.execution_count_expected}",
        )
    if cached.duplicate_queries:
        yield Difference(
            DifferenceKind.CACHED_DUPLICATE_QUERY,
            f"{plural(cached.duplicate_queries, 'cached job')} "
            f"{'repeats' if cached.duplicate_queries == 1 else 'repeat'} a query already covered",
        )


# -- totals --------------------------------------------------------------------------------------


def compute_totals(actions: Sequence[ActionResult]) -> Totals:
    """Totals per project (plan order), per model (by name) and for the run.

    Executions are those of one-off jobs: a cached-jobs trigger sets up recurring cached jobs
    (one per query) whose runs no job counter reports, so its action counts in the outcomes but
    adds nothing to the execution columns; it is reconciled per query on its own row.
    """
    by_project: dict[str, list[ActionResult]] = {}
    for action in actions:
        by_project.setdefault(action.project, []).append(action)
    return Totals(
        run=tally("run", [(a, _job_executions(a), _counters(a)) for a in actions]),
        projects=tuple(
            tally(name, [(a, _job_executions(a), _counters(a)) for a in group])
            for name, group in by_project.items()
        ),
        models=_model_tallies([a for a in actions if _is_job(a)]),
        models_exact=all(len(a.asked.models) == 1 for a in actions),
    )


def tally(name: str, rows: Sequence[tuple[ActionResult, int | None, Counters]]) -> Tally:
    """Sum ``(action, expected, counters)`` rows into one :class:`Tally`."""
    expected: int | None = 0
    counters = Counters()
    for _, share, action_counters in rows:
        expected = None if expected is None or share is None else expected + share
        counters += action_counters
    outcomes = Counter(action.outcome for action, _, _ in rows)
    ordered = tuple(sorted(outcomes.items(), key=lambda item: item[0].rank))
    jobs = sum(_is_job(action) for action, _, _ in rows)
    return Tally(name, len(rows), expected, counters, ordered, job_actions=jobs)


def _is_job(action: ActionResult) -> bool:
    return action.asked.endpoint == "jobs"


def _job_executions(action: ActionResult) -> int | None:
    return action.asked.expected_executions if _is_job(action) else 0


def _counters(action: ActionResult) -> Counters:
    return action.done.counters or Counters()


def _model_tallies(actions: Sequence[ActionResult]) -> tuple[Tally, ...]:
    rows: dict[str, list[tuple[ActionResult, int | None, Counters]]] = {}
    for action in actions:
        asked, counters = action.asked, _counters(action)
        size = len(asked.models)
        share = None if asked.queries is None else asked.queries * asked.execution_count
        for index, model in enumerate(asked.models):
            rows.setdefault(model, []).append(
                (action, share, share_counters(counters, index, size))
            )
    return tuple(tally(model, rows[model]) for model in sorted(rows))


def share_counters(counters: Counters, index: int, size: int) -> Counters:
    """Model ``index``'s share of a job's counters among ``size`` models.

    The executions are dealt round-robin (success first, then failed, pending, retrying), so
    the shares of every field add up to the whole, and a model's fields add up to its total
    whenever the job's do.
    """
    bounds = [0]
    for value in (counters.success, counters.failed, counters.pending, counters.retrying):
        bounds.append(bounds[-1] + value)
    success, failed, pending, retrying = (
        _dealt(bounds[i + 1], index, size) - _dealt(bounds[i], index, size) for i in range(4)
    )
    return Counters(_dealt(counters.total, index, size), success, failed, pending, retrying)


def _dealt(units: int, index: int, size: int) -> int:
    """How many of ``units`` dealt round-robin to ``size`` hands reach hand ``index``."""
    return max(0, (units - index + size - 1) // size)
