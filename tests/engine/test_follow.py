"""Following jobs: the forecast's arithmetic; the follower's cost and lateness in the sandbox."""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pytest
from runner.exitcodes import ExitCode
from runner.ratelimit import Window
from runner.report import build_report
from runner.run.forecast import Cohort, Sighting, expected_cost, hypotheses, next_look
from runner.sandbox import SandboxConfig
from runner.sandbox.ratelimit import RateLimitPolicy

from harness import Harness, job_actions

ENTERPRISE = (Window(100, 1.0), Window(3000, 60.0), Window(100_000, 3600.0))


def sighting(**fields: object) -> Sighting:
    values: dict[str, object] = {
        "created": 0.0,
        "total": 10,
        "seen_at": 0.0,
        "seen_done": 0,
        "started": False,
        "after": 0.0,
    }
    values.update(fields)
    return Sighting(**values)  # type: ignore[arg-type]


def known_cohort() -> Cohort:
    cohort = Cohort()
    for index in range(12):
        size = 2 + 4 * (index % 4)
        cohort.add(pending=2.0 + index, total=size, processing=10.0 + 2.0 * size)
    return cohort


def test_two_progress_points_give_the_start_the_pace_and_the_end() -> None:
    seen = sighting(seen_at=23.0, seen_done=6, started=True, points=((2, 14.0), (6, 22.0)))
    assert seen.line() == (10.0, 2.0)
    assert next_look(seen, hypotheses(seen, None), 25.0, 150.0) == 30.0  # 10 s + 10 x 2 s


def test_a_look_that_contradicts_the_line_drops_it() -> None:
    # the 7th execution was due at 24 s; at 40 s it still had not come (a stuck job)
    seen = sighting(seen_at=40.0, seen_done=6, started=True, points=((2, 14.0), (6, 22.0)))
    assert seen.line() is None
    assert hypotheses(seen, None) == []  # no prior, no line: the caller backs off by age


def test_the_cohort_is_trusted_from_three_jobs_and_fits_an_overhead_and_a_pace() -> None:
    cohort = Cohort()
    cohort.add(pending=5.0, total=4, processing=18.0)
    cohort.add(pending=6.0, total=8, processing=26.0)
    assert cohort.prior() is None
    prior = known_cohort().prior()
    assert prior is not None
    assert prior.processing(20) == pytest.approx(50.0)  # 10 s + 2 s per execution


def test_a_look_before_any_job_could_have_started_is_not_worth_its_cost() -> None:
    prior = known_cohort().prior()
    seen = sighting(total=10)
    hyps = hypotheses(seen, prior)
    assert expected_cost(seen, hyps, 0.5) > expected_cost(seen, hyps, 20.0)
    look = next_look(seen, hyps, 2.0, 120.0)
    assert look is not None
    assert 2.0 < look < 60.0  # in processing, before the longest plausible end


def test_a_job_pending_longer_than_the_whole_cohort_may_start_at_any_moment() -> None:
    prior = known_cohort().prior()
    assert prior is not None
    seen = sighting(seen_at=40.0, after=40.0)  # the cohort's jobs all started within 14 s
    hyps = hypotheses(seen, prior)
    assert hyps
    assert min(start for start, _, _ in hyps) >= 40.0
    look = next_look(seen, hyps, 42.0, 160.0)
    assert look is not None
    assert look < 100.0  # not a backoff of up to 120 s


def test_one_point_and_the_cohort_bound_the_end() -> None:
    prior = known_cohort().prior()
    # created at 0, processing since about 8 s, 5 of 10 done at 23 s: about 3 s each
    seen = sighting(seen_at=24.0, seen_done=5, started=True, points=((5, 23.0),))
    ends = [start + 10 * tau for start, tau, _ in hypotheses(seen, prior)]
    assert min(ends) > 30.0
    assert max(ends) < 60.0


@pytest.mark.anyio
async def test_following_costs_under_three_reads_a_job_and_notices_the_end_promptly(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(seed=3, rate_limits=RateLimitPolicy.named("enterprise"))
    harness = Harness(tmp_path, config=config, windows=ENTERPRISE)
    actions = job_actions(120)
    summary = await harness.run(actions)
    assert summary.status == "finished"
    paths = harness.truth()["paths"]
    reads = paths.get("GET /api/jobs/{id}", 0) + paths.get("POST /api/jobs/list", 0)
    status_reads = reads - len(actions)  # the in-flight guard reads one list per project
    assert status_reads == summary.status_requests
    assert status_reads / len(actions) <= 3.5  # the benchmark's 500 jobs: about 2.5
    ratios = []
    for job in harness.ledger.jobs(summary.run_id):
        true = harness.sandbox.job(job.job_id)
        assert job.terminal_at is not None
        done = datetime.fromisoformat(true["updatedAt"]).timestamp()
        created = datetime.fromisoformat(true["createdAt"]).timestamp()
        assert job.terminal_at >= done
        ratios.append((job.terminal_at - done) / (done - created))
    # A run's jobs share one prior, learned from its first 3 to 24 jobs, and which jobs those are
    # depends on trio's (unseeded) task order: the mean is a draw over a few cohorts, not over 120
    # jobs. Measured over 700 runs: median 0.03, p90 0.075, p99 0.11, max 0.13 (0.14 seen on CI);
    # the median job 0.003 to 0.036. Before the poll reserve the mean was 0.84.
    assert statistics.median(ratios) <= 0.05
    assert statistics.fmean(ratios) <= 0.20


class _RevokedAfterTriggers(httpx.AsyncBaseTransport):
    """The sandbox until ``triggers`` triggers were answered; then the key is refused (401)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, triggers: int) -> None:
        self.inner, self.left = inner, triggers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left <= 0:
            body = {"statusCode": 401, "message": "Invalid API key", "error": "Unauthorized"}
            return httpx.Response(401, json=body, request=request)
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/trigger"):
            self.left -= 1
        return response


@pytest.mark.anyio
async def test_a_key_refused_while_following_stops_the_run_at_once(tmp_path: Path) -> None:
    actions = job_actions(5)
    harness = Harness(tmp_path, wrap=lambda inner: _RevokedAfterTriggers(inner, len(actions)))
    started = anyio.current_time()
    summary = await harness.run(actions)
    assert summary.stop_reason is not None
    assert "AuthError" in summary.stop_reason
    assert anyio.current_time() - started < 600  # not an hour of polls backing off (virtual)
    assert harness.run_id is not None
    report = build_report(harness.ledger, harness.run_id, env={})
    assert report.exit_code() == ExitCode.FATAL_API


@pytest.mark.anyio
async def test_jobs_quicker_than_a_look_are_not_left_waiting_for_a_cohort(tmp_path: Path) -> None:
    # At a time scale of 1,000 a job ends between two looks: no look ever sees its pace, so the
    # cohort the followers wait for never forms. Once one ended unseen, the others are looked at.
    harness = Harness(tmp_path, config=SandboxConfig(seed=3, time_scale=1000.0))
    started = anyio.current_time()
    summary = await harness.run(job_actions(30))
    assert summary.timed_out == ()
    assert anyio.current_time() - started < 20  # virtual seconds; 30 and more without the rule
