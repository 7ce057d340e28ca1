"""build_report: a real ledger, written as the engine writes it, reconciled action by action."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner.exitcodes import ExitCode
from runner.report import DifferenceKind, Outcome, Report, build_report
from runner.report.model import ActionResult, Ambiguity, Durations
from runner.store import ActionState, AttemptOutcome, RunStatus

from report.report_support import (
    SECRET,
    STANDARD_OUTCOMES,
    Scenario,
    cached_action,
    counters,
    job_action,
    open_scenario,
    standard_scenario,
)

NOW = 1_750_000_900.0


def report_of(scenario: Scenario, env: dict[str, str] | None = None) -> Report:
    return build_report(scenario.ledger, scenario.run_id, env=env or {}, now=NOW)


def by_key(report: Report) -> dict[str, ActionResult]:
    return {action.key: action for action in report.actions}


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return report_of(standard_scenario(tmp_path_factory.mktemp("standard")))


def test_every_case_gets_its_outcome(standard: Report) -> None:
    assert {key: str(a.outcome) for key, a in by_key(standard).items()} == STANDARD_OUTCOMES


def test_failures_come_first_in_plan_order_within_an_outcome(standard: Report) -> None:
    ranks = [action.outcome.rank for action in standard.actions]
    assert ranks == sorted(ranks)
    assert standard.actions[0].key == "beta/jobs/0"
    assert [a.key for a in standard.actions if a.outcome == Outcome.UNKNOWN] == [
        "beta/jobs/1",
        "delta/jobs/1",
    ]


@pytest.mark.parametrize(
    ("key", "kind", "words"),
    [
        ("acme/jobs/1", DifferenceKind.JOB_PARTIAL, "25 succeeded, 5 failed of 30"),
        ("beta/jobs/0", DifferenceKind.ACTION_FAILED, "404 project not found"),
        ("beta/jobs/1", DifferenceKind.ACTION_UNKNOWN, "several candidate jobs"),
        ("beta/jobs/2", DifferenceKind.ACTION_SKIPPED, "--fail-fast"),
        ("gamma/jobs/0", DifferenceKind.NOT_ATTEMPTED, "before this action was sent"),
        ("gamma/jobs/1", DifferenceKind.TIMEOUT, "still processing"),
        ("gamma/jobs/2", DifferenceKind.EXECUTIONS_MISMATCH, "expected 30 executions"),
        ("delta/jobs/1", DifferenceKind.JOB_NOT_FOUND, "404 for a job"),
        ("delta/jobs/2", DifferenceKind.STATUS_BACKWARDS, "moved to processing"),
    ],
)
def test_each_difference_has_its_kind_and_reason(
    standard: Report, key: str, kind: DifferenceKind, words: str
) -> None:
    differences = by_key(standard)[key].differences
    assert [d.kind for d in differences] == [kind]
    assert words in differences[0].message


def test_ok_actions_have_no_difference(standard: Report) -> None:
    assert all(not a.differences for a in standard.actions if a.outcome == Outcome.OK)


def test_done_records_attempts_429s_and_how_an_ambiguity_was_settled(standard: Report) -> None:
    done = by_key(standard)["delta/jobs/0"].done
    assert (done.attempts, done.rate_limited, done.job_ids) == (2, 1, ("job-d0",))
    assert [a.outcome for a in done.attempt_log] == ["rate_limited", "adopted"]
    assert done.attempt_log[0].http_status == 429
    # Adoption rewrites the attempt's outcome but keeps the error that made it ambiguous.
    assert done.ambiguous == (
        Ambiguity(2, "read timeout", "adopted from the job list", "adopted job job-d0"),
    )
    assert done.settled_by == "adopted from the job list"


def test_durations_run_from_first_send_to_trigger_to_terminal(standard: Report) -> None:
    done = by_key(standard)["acme/jobs/0"].done
    # send at +1, accepted at +2, seen pending at +32, completed at +62 (Scenario's clock)
    assert done.durations == Durations(sent_to_triggered=1.0, triggered_to_terminal=60.0)
    assert by_key(standard)["gamma/jobs/1"].done.durations.triggered_to_terminal is None


def test_counters_and_final_status_come_from_the_jobs(standard: Report) -> None:
    done = by_key(standard)["acme/jobs/1"].done
    assert done.job_status == "partial_failed"
    assert done.counters is not None
    assert (done.counters.total, done.counters.success, done.counters.failed) == (30, 25, 5)
    assert by_key(standard)["beta/jobs/0"].done.counters is None


def test_cached_jobs_reconcile_their_count_against_the_queries(standard: Report) -> None:
    cached = by_key(standard)["acme/cachedJobs"].done.cached
    assert cached is not None
    assert (cached.returned, cached.expected, cached.checked) == (2, 2, 0)
    assert cached.models_expected == ("gpt-4.1-mini",)


def test_cached_job_details_are_checked_when_the_engine_recorded_them(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [cached_action("acme", queries=3)])
    attempt = s.send("acme/cachedJobs")
    s.ledger.record_outcome(
        s.run_id, "acme/cachedJobs", attempt=attempt, outcome=AttemptOutcome.ACCEPTED, now=s.tick(),
        state=ActionState.TRIGGERED, job_ids=("c-1", "c-2"),
    )  # fmt: skip
    jobs = [
        {"id": "c-1", "queryId": "q-1", "aiModels": ["gpt-4.1-mini"], "executionCount": 2},
        {"id": "c-2", "queryId": "q-1", "aiModels": ["gpt-4"], "executionCount": 5},
    ]
    s.event("cached_jobs", key="acme/cachedJobs", jobs=jobs)
    s.end()
    action = report_of(s).actions[0]
    assert action.outcome == Outcome.PARTIAL
    assert [d.kind for d in action.differences] == [
        DifferenceKind.CACHED_COUNT,
        DifferenceKind.CACHED_MODELS,
        DifferenceKind.CACHED_EXECUTION_COUNT,
        DifferenceKind.CACHED_DUPLICATE_QUERY,
    ]
    assert "2 cached jobs for 3 queries" in action.differences[0].message


def test_totals_per_project_and_for_the_run(standard: Report) -> None:
    totals = standard.totals
    assert [t.name for t in totals.projects] == ["acme", "beta", "gamma", "delta"]
    assert totals.run.expected == 11 * 30  # a cached-jobs action adds no job executions
    assert totals.run.counters.total == 30 * 6 + 20
    acme = totals.projects[0]
    assert (acme.actions, acme.expected, acme.counters.success, acme.problems) == (3, 60, 55, 1)
    assert totals.run.count(Outcome.UNKNOWN) == 2
    assert sum(t.counters.total for t in totals.models) == totals.run.counters.total
    assert not totals.models_exact


def test_run_metadata_is_read_from_the_ledger_without_secrets(standard: Report) -> None:
    run = standard.run
    assert run.base_url == "https://api.mentionlab.io/"
    assert (run.status, run.mlrun_version) == ("finished", "9.9.9")
    assert run.started_at == "2025-06-15T15:06:40.000Z"
    assert run.finished_at is not None
    assert run.skipped_projects == (("omega", "not selected"),)
    assert run.ci.provider is None


def test_errors_from_the_api_are_redacted_in_the_model(standard: Report) -> None:
    failed = by_key(standard)["beta/jobs/0"]
    assert SECRET not in failed.reason
    assert "ml_live_***" in failed.reason
    assert failed.done.attempt_log[0].error is not None
    assert SECRET not in failed.done.attempt_log[0].error


def test_ci_is_taken_from_the_variables_the_run_recorded(tmp_path: Path) -> None:
    meta = {"GITHUB_SHA": "abc123", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SERVER_URL": "https://github.com"}  # fmt: skip
    s = standard_scenario(tmp_path, meta=meta)
    ci = report_of(s, env={"CI_COMMIT_SHA": "other"}).run.ci
    assert (ci.provider, ci.commit, ci.run_url) == (
        "github",
        "abc123",
        "https://github.com/o/r/actions/runs/42",
    )


def test_ci_falls_back_to_the_environment(tmp_path: Path) -> None:
    s = standard_scenario(tmp_path)
    ci = report_of(s, env={"CI_COMMIT_SHA": "def456", "CI_PIPELINE_URL": "https://gl/p/1"}).run.ci
    assert (ci.provider, ci.commit, ci.run_url) == ("gitlab", "def456", "https://gl/p/1")


# -- exit codes ----------------------------------------------------------------------------------


def completed_run(tmp_path: Path, *, failing: bool = False) -> Scenario:
    s = open_scenario(tmp_path, [job_action("acme", 0), job_action("acme", 1)])
    s.trigger("acme/jobs/0", "j0")
    s.finish("acme/jobs/0", "j0", "completed", counters(30, 30))
    if failing:
        s.fail("acme/jobs/1", status=422, error="422 invalid model")
    else:
        s.trigger("acme/jobs/1", "j1")
        s.finish("acme/jobs/1", "j1", "completed", counters(30, 30))
    return s


def test_exit_0_when_everything_completed_as_asked(tmp_path: Path) -> None:
    s = completed_run(tmp_path)
    s.end()
    report = report_of(s)
    assert [a.outcome for a in report.actions] == [Outcome.OK, Outcome.OK]
    assert report.exit_code() == ExitCode.OK


def test_a_shards_report_has_its_parts_status_and_exit_code(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0), job_action("beta", 0)])
    s.trigger("acme/jobs/0", "j0")
    s.finish("acme/jobs/0", "j0", "completed", counters(30, 30))
    s.ledger.set_part_status(s.run_id, "1/2", RunStatus.FINISHED, now=s.tick())
    s.ledger.set_part_status(s.run_id, "2/2", RunStatus.INTERRUPTED, now=s.tick())
    s.end(RunStatus.INTERRUPTED)  # the parts' combined status
    first = build_report(s.ledger, s.run_id, env={}, now=NOW, keys={"acme/jobs/0"}, part="1/2")
    assert (first.run.status, first.exit_code()) == ("finished", ExitCode.OK)
    second = build_report(s.ledger, s.run_id, env={}, now=NOW, keys={"beta/jobs/0"}, part="2/2")
    assert (second.run.status, second.exit_code()) == ("interrupted", ExitCode.INTERRUPTED)
    assert report_of(s).exit_code() == ExitCode.INTERRUPTED


def test_exit_1_when_an_action_failed(tmp_path: Path) -> None:
    s = completed_run(tmp_path, failing=True)
    s.end()
    assert report_of(s).exit_code() == ExitCode.ACTION_FAILED


def test_exit_3_when_a_job_timed_out(standard: Report) -> None:
    assert standard.exit_code() == ExitCode.INTERRUPTED


def test_exit_3_when_interrupted_even_with_failures(tmp_path: Path) -> None:
    s = completed_run(tmp_path, failing=True)
    s.end(RunStatus.INTERRUPTED)
    assert report_of(s).exit_code() == ExitCode.INTERRUPTED


def test_exit_5_on_a_fatal_api_stop_before_anything_else(tmp_path: Path) -> None:
    s = completed_run(tmp_path, failing=True)
    s.event("stop", reason="AuthError: 401 invalid API key")
    s.end(RunStatus.INTERRUPTED)
    report = report_of(s)
    assert report.run.stop_reason == "AuthError: 401 invalid API key"
    assert report.exit_code() == ExitCode.FATAL_API


def test_exit_4_when_the_budget_refused_the_plan(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0)])
    s.event("budget_refused", message="the plan needs 30 executions, 10 over the budget")
    s.skip("acme/jobs/0", "refused by the budget")
    s.end(RunStatus.FAILED)
    assert report_of(s).exit_code() == ExitCode.BUDGET_REFUSED


def test_a_live_run_shows_pending_work_as_running(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0), job_action("acme", 1)])
    s.send("acme/jobs/0")  # in flight right now
    report = report_of(s)
    assert [a.outcome for a in report.actions] == [Outcome.RUNNING, Outcome.RUNNING]
    assert all(not a.differences and not a.done.ambiguous for a in report.actions)
    assert report.run.finished_at is None
    assert report.run.duration_seconds == NOW - s.ledger.run(s.run_id).started_at
    assert report.exit_code() == ExitCode.INTERRUPTED


def test_an_interrupted_send_is_unsettled_not_ok(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0)])
    s.send("acme/jobs/0")
    s.end(RunStatus.INTERRUPTED)
    action = report_of(s).actions[0]
    assert action.outcome == Outcome.UNKNOWN
    assert [d.kind for d in action.differences] == [DifferenceKind.UNSETTLED]
    assert action.done.ambiguous[0].settled_by == "not settled yet"


def test_an_ambiguous_attempt_found_not_created_and_resent(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0)])
    s.ambiguous("acme/jobs/0")
    s.event("settled_not_created", key="acme/jobs/0")
    s.ledger.set_action_state(s.run_id, "acme/jobs/0", ActionState.PENDING, now=s.tick())
    s.trigger("acme/jobs/0", "j0")
    s.finish("acme/jobs/0", "j0", "completed", counters(30, 30))
    s.end()
    action = report_of(s).actions[0]
    assert action.outcome == Outcome.OK
    assert action.done.ambiguous == (Ambiguity(1, "read timeout", "not created; resent", None),)


def test_a_triggered_job_never_seen_is_unknown(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0)])
    attempt = s.send("acme/jobs/0")
    s.ledger.record_outcome(
        s.run_id, "acme/jobs/0", attempt=attempt, outcome=AttemptOutcome.ACCEPTED, now=s.tick(),
        state=ActionState.TRIGGERED, job_ids=("ghost",),
    )  # fmt: skip
    s.end()
    action = report_of(s).actions[0]
    assert action.outcome == Outcome.UNKNOWN
    assert [d.kind for d in action.differences] == [DifferenceKind.NO_JOB]


def test_unknown_query_counts_leave_expected_unknown(tmp_path: Path) -> None:
    s = open_scenario(tmp_path, [job_action("acme", 0, queries=None)])
    s.trigger("acme/jobs/0", "j0", total=12)
    s.finish("acme/jobs/0", "j0", "completed", counters(12, 12))
    s.end()
    report = report_of(s)
    assert report.actions[0].outcome == Outcome.OK
    assert report.totals.run.expected is None
    assert report.exit_code() == ExitCode.OK
