"""The pure reconciliation rules, and a property test of the totals arithmetic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from runner.report.build import asked_of
from runner.report.model import (
    ActionResult,
    Counters,
    DifferenceKind,
    Done,
    JobInfo,
    Outcome,
)
from runner.report.reconcile import (
    compute_totals,
    job_outcome,
    reconcile,
    share_counters,
    worst,
)

from report.report_support import job_action

MODELS = ("m-a", "m-b", "m-c", "m-d")


def job(status: str | None, *anomalies: str, values: Counters | None = None) -> JobInfo:
    return JobInfo("j", "job", status, values or Counters(30, 30), anomalies)


def triggered(status: str, values: Counters, *anomalies: str) -> ActionResult:
    asked = asked_of(job_action("p", 0))  # 5 queries x 2 models x 3 = 30
    done = Done(
        state="triggered",
        job_ids=("j",),
        counters=values,
        jobs=(job(status, *anomalies, values=values),),
    )
    return reconcile(asked, done, run_active=False)


def test_job_outcomes_follow_status_then_anomalies() -> None:
    assert job_outcome(job("completed")) == Outcome.OK
    assert job_outcome(job("partial_failed")) == Outcome.PARTIAL
    assert job_outcome(job("failed")) == Outcome.FAILED
    assert job_outcome(job("processing")) == Outcome.RUNNING
    assert job_outcome(job("processing", "TIMEOUT: not terminal")) == Outcome.TIMEOUT
    assert job_outcome(job("pending", "404 for a job this run created")) == Outcome.UNKNOWN
    assert job_outcome(job(None)) == Outcome.UNKNOWN


def test_a_timeout_superseded_by_a_terminal_status_is_no_longer_a_difference() -> None:
    result = triggered("completed", Counters(30, 30), "TIMEOUT: not terminal")
    assert result.outcome == Outcome.OK
    assert result.differences == ()


def test_a_completed_job_with_other_counts_is_partial_not_ok() -> None:
    result = triggered("completed", Counters(24, 24))
    assert result.outcome == Outcome.PARTIAL
    assert [d.kind for d in result.differences] == [DifferenceKind.EXECUTIONS_MISMATCH]
    assert result.differences[0].message == (
        "expected 30 executions (5 queries x 2 models x 3), the API created 24"
    )


def test_counters_that_do_not_add_up_are_reported() -> None:
    result = triggered("completed", Counters(30, 20, 5))
    assert [d.kind for d in result.differences] == [DifferenceKind.COUNTERS_INCONSISTENT]


def test_worst_orders_failures_first() -> None:
    assert worst([Outcome.OK, Outcome.RUNNING, Outcome.PARTIAL]) == Outcome.PARTIAL
    assert worst([]) == Outcome.OK
    assert [o.rank for o in Outcome] == list(range(len(Outcome)))


def test_shares_are_dealt_round_robin() -> None:
    shares = [share_counters(Counters(7, 4, 2, 1, 0), i, 3) for i in range(3)]
    assert [s.total for s in shares] == [3, 2, 2]
    assert [(s.success, s.failed, s.pending) for s in shares] == [(2, 0, 1), (1, 1, 0), (1, 1, 0)]
    assert all(s.consistent for s in shares)


# -- properties ----------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=500)


@st.composite
def results(draw: st.DrawFn) -> ActionResult:
    project = draw(st.sampled_from(["a", "b", "c"]))
    models = tuple(draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4, unique=True)))
    queries = draw(st.none() | st.integers(min_value=0, max_value=50))
    asked = asked_of(job_action(project, draw(counts), models=models, queries=queries))
    success, failed, pending, retrying = (draw(counts) for _ in range(4))
    consistent = draw(st.booleans())
    total = success + failed + pending + retrying if consistent else draw(counts)
    values = Counters(total, success, failed, pending, retrying)
    status = draw(st.sampled_from(["completed", "partial_failed", "failed", "processing"]))
    done = Done(
        state="triggered", job_ids=("j",), counters=values, jobs=(job(status, values=values),)
    )
    return reconcile(asked, done, run_active=draw(st.booleans()))


def field_sums(counters: list[Counters]) -> Counters:
    return sum(counters, Counters())


@settings(max_examples=60, deadline=None)
@given(st.lists(results(), max_size=20))
def test_project_and_model_totals_always_add_up_to_the_run(actions: list[ActionResult]) -> None:
    totals = compute_totals(actions)
    run = totals.run
    assert field_sums([t.counters for t in totals.projects]) == run.counters
    assert field_sums([t.counters for t in totals.models]) == run.counters
    assert sum(t.actions for t in totals.projects) == run.actions == len(actions)
    expected = [t.expected for t in (*totals.projects, *totals.models)]
    if run.expected is None:
        assert actions
    else:
        assert sum(e or 0 for e in expected[: len(totals.projects)]) == run.expected
        assert sum(e or 0 for e in expected[len(totals.projects) :]) == run.expected
    assert sum(count for _, count in run.outcomes) == len(actions)


@settings(max_examples=60, deadline=None)
@given(st.lists(results(), max_size=20))
def test_counters_that_add_up_keep_adding_up_in_every_total(actions: list[ActionResult]) -> None:
    consistent = [a for a in actions if a.done.counters is None or a.done.counters.consistent]
    totals = compute_totals(consistent)
    for tally in (totals.run, *totals.projects, *totals.models):
        assert tally.counters.consistent


@given(
    st.builds(Counters, counts, counts, counts, counts, counts),
    st.integers(min_value=1, max_value=6),
)
def test_shares_of_any_counters_add_up_to_the_whole(counters: Counters, size: int) -> None:
    shares = [share_counters(counters, index, size) for index in range(size)]
    assert field_sums(shares) == counters
    assert max(s.total for s in shares) - min(s.total for s in shares) <= 1
