"""The trigger phase against the sandbox: exactly once under every fault the contract allows."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest
from runner.api import MentionLabClient
from runner.ratelimit import RateLimiter
from runner.run.execute import RunOptions, execute
from runner.run.options import EngineOptions
from runner.sandbox import Faults, SandboxConfig
from runner.sandbox.config import Change
from runner.sandbox.faults import Latency
from runner.store import ActionState

from harness import API_KEY, Harness, cached_action, job_actions

pytestmark = pytest.mark.anyio


async def test_every_action_is_triggered_once_and_followed_to_the_end(
    tmp_path: Path, state: str
) -> None:
    harness = Harness(tmp_path, state=state)
    actions = job_actions(12)
    summary = await harness.run(actions)
    assert summary.status == "finished"
    harness.assert_exactly_once(actions)
    jobs = harness.ledger.jobs(summary.run_id)
    assert len(jobs) == 12
    assert all(job.terminal_at is not None for job in jobs)
    truth = {t["jobId"]: t for t in harness.truth()["triggers"]}
    for job in jobs:
        assert job.counters["total"] == truth[job.job_id]["totalExecutions"]


@pytest.mark.parametrize(
    "faults",
    [
        Faults(lost_response=0.3),
        Faults(drop_before=0.3),
        Faults(error_500=0.2, error_502=0.2, error_504=0.1),
        Faults(error_503=0.3),
        Faults(refuse=0.3),
        Faults(malformed=0.2),
        Faults(error_429=0.3),
    ],
    ids=["lost", "dropped", "5xx", "503", "refused", "malformed", "429"],
)
async def test_each_fault_kind_still_triggers_each_action_exactly_once(
    tmp_path: Path, state: str, faults: Faults
) -> None:
    harness = Harness(
        tmp_path, state=state, config=SandboxConfig(seed=3, faults=faults), wait=False
    )
    actions = job_actions(30)
    summary = await harness.run(actions)
    harness.assert_exactly_once(actions)
    # Every action is triggered, but one whose job list kept failing (the faults hit reads too,
    # and the scheduler's order varies): that one is UNKNOWN, with its reason, never resent.
    for record in harness.ledger.actions(summary.run_id):
        if record.state != ActionState.TRIGGERED:
            assert record.state == ActionState.UNKNOWN, (record.action.key, record.state)
            assert "could not read the job list" in (record.detail or ""), record.detail


async def test_a_late_appearing_job_is_adopted_not_resent(tmp_path: Path, state: str) -> None:
    # The job commits, the response is lost, and the list shows it only 40 s later.
    config = SandboxConfig(
        seed=1, faults=Faults(lost_response=1.0, list_lag=40.0, target="triggers")
    )
    harness = Harness(tmp_path, state=state, config=config, wait=False)
    actions = job_actions(3)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    records = harness.ledger.actions(harness.run_id or "")
    assert {r.settled_by for r in records} == {"adopted from the job list"}


async def test_a_project_waiting_to_settle_does_not_hold_up_the_others(tmp_path: Path) -> None:
    # One request at a time, and every trigger's outcome is unknown until the job shows in the
    # list 40 s later: each project sleeps between its looks, and the others go on meanwhile.
    faults = Faults(lost_response=1.0, lost_response_kind="reset", list_lag=40.0, target="triggers")
    config = SandboxConfig(seed=1, faults=faults)
    harness = Harness(tmp_path, config=config, wait=False, concurrency=1)
    actions = job_actions(10)
    started = anyio.current_time()
    await harness.run(actions)
    elapsed = anyio.current_time() - started
    harness.assert_exactly_once(actions)
    # Ten settles one after the other would take 10 x 40 s and more.
    assert elapsed < 120.0, elapsed


async def test_an_ambiguous_cached_trigger_is_reported_unknown_never_resent(tmp_path: Path) -> None:
    config = SandboxConfig(seed=1, faults=Faults(lost_response=1.0, target="triggers"))
    harness = Harness(tmp_path, config=config, wait=False)
    actions = [cached_action(1)]
    await harness.run(actions)
    assert harness.states() == {actions[0].key: ActionState.UNKNOWN}
    assert harness.triggers_by_project()[actions[0].project_id] == 1


async def test_cached_jobs_are_triggered_with_provider_keys(tmp_path: Path) -> None:
    harness = Harness(tmp_path, wait=False)
    actions = [cached_action(i) for i in range(3)]
    await harness.run(actions)
    harness.assert_exactly_once(actions)


async def test_a_bad_key_stops_the_run_at_once(tmp_path: Path) -> None:
    harness = Harness(tmp_path, wait=False)
    actions = job_actions(20)
    summary = await harness.run(actions, api_key="not-a-key")
    assert summary.stop_reason is not None
    assert "AuthError" in summary.stop_reason
    assert harness.truth()["triggers"] == []
    states = harness.states()
    assert ActionState.TRIGGERED not in states.values()
    # Only the triggers in flight when the first 401 came back were sent.
    assert harness.truth()["requests"] <= 8


async def test_running_out_of_credits_stops_sending(tmp_path: Path, state: str) -> None:
    harness = Harness(
        tmp_path, state=state, config=SandboxConfig(credits=40), wait=False, concurrency=1
    )
    actions = job_actions(30)
    summary = await harness.run(actions)
    assert summary.stop_reason is not None
    assert "QuotaExhausted" in summary.stop_reason
    states = list(harness.states().values())
    assert states.count(ActionState.FAILED) == 1
    assert states.count(ActionState.SKIPPED) >= 1
    assert len(harness.truth()["triggers"]) == states.count(ActionState.TRIGGERED)
    # A trigger admitted (its intent on disk) while the 402 came back is withdrawn, not sent,
    # and ends skipped: nothing is left in doubt.
    assert not {ActionState.IN_FLIGHT, ActionState.AMBIGUOUS, ActionState.UNKNOWN} & set(states)


async def test_fail_fast_stops_after_the_first_failure(tmp_path: Path) -> None:
    # One project: its actions run in order, so what comes after the failure is never sent.
    harness = Harness(tmp_path, wait=False, engine=EngineOptions(fail_fast=True))
    first = job_actions(1)[0]
    actions = [replace(first, key=f"{first.project}/jobs/{i}") for i in range(5)]
    actions[1] = replace(actions[1], models=("no-such-model",))
    summary = await harness.run(actions)
    assert summary.stop_reason is not None
    assert "--fail-fast" in summary.stop_reason
    states = [harness.states()[action.key] for action in actions]
    assert states == [ActionState.TRIGGERED, ActionState.FAILED] + [ActionState.SKIPPED] * 3
    assert len(harness.truth()["triggers"]) == 1


class _WireCounter(httpx.AsyncBaseTransport):
    """The sandbox's transport, counting the requests on the wire at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


async def _run_over(harness: Harness, transport: httpx.AsyncBaseTransport) -> RateLimiter:
    """The harness's started run, its client over ``transport``; returns the limiter used."""
    limiter = harness.new_limiter()  # as `mlrun apply` builds it
    client = MentionLabClient(
        api_key=API_KEY, base_url="https://api.mentionlab.io", transport=transport
    )
    async with client:
        await execute(
            run_id=harness.run_id or "",
            client=client,
            limiter=limiter,
            ledger=harness.ledger,
            clock=harness.clock,
            options=RunOptions(engine=harness.engine, wait=False),
        )
    return limiter


async def test_never_more_than_concurrency_requests_are_on_the_wire(tmp_path: Path) -> None:
    # Every answer takes 50-400 ms.
    config = SandboxConfig(seed=4, faults=Faults(latency=Latency(median_ms=100, p99_ms=400)))
    harness = Harness(tmp_path, config=config, wait=False, windows=(), concurrency=4)
    wire = _WireCounter(harness.sandbox.transport())
    actions = job_actions(40)
    harness.start(actions)
    await _run_over(harness, wire)
    harness.assert_exactly_once(actions)
    assert wire.most == 4  # the wire is full, and never fuller


async def test_a_trigger_admitted_when_the_run_stops_is_never_sent_after_it(
    tmp_path: Path,
    state: str,
) -> None:
    # Two places on the wire, answers taking 200 ms. After the first trigger the credits are
    # gone: the next two go on the wire together and both get the 402 that stops the run. The
    # last one is admitted after the stop: it must not be sent, and nothing is left in doubt.
    # (The intent is written inline, right before the send: no stop can come in between.)
    exhausted = Change(after_requests=1, credits=0)
    latency = Faults(latency=Latency(median_ms=200))
    config = SandboxConfig(seed=2, credits=10_000, faults=latency, schedule=(exhausted,))
    engine = EngineOptions(allow_stacking=True)
    harness = Harness(
        tmp_path, state=state, config=config, wait=False, windows=(), concurrency=2, engine=engine
    )
    actions = job_actions(4)
    summary = await harness.run(actions)
    assert summary.stop_reason is not None
    assert "QuotaExhausted" in summary.stop_reason
    assert harness.truth()["requests"] == 3
    assert len(harness.truth()["triggers"]) == 1
    states = Counter(harness.states().values())
    assert states == {ActionState.TRIGGERED: 1, ActionState.FAILED: 2, ActionState.SKIPPED: 1}
    outcomes = [
        [a.outcome for a in harness.ledger.attempts(harness.run_id or "", action.key)]
        for action in actions
    ]
    assert outcomes.count([]) == 1  # never attempted: no intent, no request


async def test_a_trigger_cancelled_on_the_wire_is_ambiguous_and_nothing_is_left_in_flight(
    tmp_path: Path,
    state: str,
) -> None:
    # Two places on the wire, answers taking 200 ms; SIGINT (a cancel) at 0.45 s: one trigger
    # is on the wire (maybe processed: ambiguous, settled on resume); every other attempt has
    # its outcome. With the intent written right before the send, none can be caught between.
    config = SandboxConfig(seed=2, faults=Faults(latency=Latency(median_ms=200)))
    engine = EngineOptions(allow_stacking=True)
    harness = Harness(
        tmp_path, state=state, config=config, wait=False, windows=(), concurrency=2, engine=engine
    )
    actions = [cached_action(i) for i in range(4)]
    harness.start(actions)
    with anyio.move_on_after(0.45):
        await _run_over(harness, harness.sandbox.transport())
    run_id = harness.run_id or ""
    last = {a.key: harness.ledger.attempts(run_id, a.key) for a in actions}
    outcomes = Counter(attempts[-1].outcome for attempts in last.values() if attempts)
    assert outcomes == {"accepted": 3, "interrupted": 1}
    assert ActionState.IN_FLIGHT not in harness.states().values()
