"""Crash points between the ledger and the wire: a resumed run never pays twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner.run.journal import idempotency_key
from runner.store import ActionState

from harness import Harness, job_actions

pytestmark = pytest.mark.anyio


async def test_intent_recorded_but_never_sent_is_sent_once_after_the_lookup(
    tmp_path: Path, state: str
) -> None:
    harness = Harness(tmp_path, state=state, wait=False)
    actions = job_actions(3)
    run_id = harness.start(actions)
    for action in actions:  # the process died right after committing the intents
        harness.ledger.record_intent(
            run_id,
            action.key,
            idempotency_key=idempotency_key(run_id, action.key),
            now=harness.clock.wall(),
        )
    await harness.run()
    harness.assert_exactly_once(actions)
    events = [kind for _, kind, _, _ in harness.ledger.events(run_id)]
    assert events.count("settled_not_created") == 3


async def test_sent_and_processed_but_not_recorded_is_adopted(tmp_path: Path, state: str) -> None:
    harness = Harness(tmp_path, state=state, wait=False)
    actions = job_actions(3)
    run_id = harness.start(actions)
    async with harness.client() as client:
        for action in actions:  # the process died after the send, before the outcome commit
            harness.ledger.record_intent(
                run_id, action.key, idempotency_key="k", now=harness.clock.wall()
            )
            await client.trigger_job(
                project_id=action.project_id,
                organisation=action.organisation,
                models=action.models,
                execution_count=action.execution_count,
            )
    await harness.run()
    harness.assert_exactly_once(actions)
    records = harness.ledger.actions(run_id)
    assert all(r.settled_by == "adopted from the job list" for r in records)


async def test_a_finished_run_resumed_sends_nothing(tmp_path: Path, state: str) -> None:
    harness = Harness(tmp_path, state=state, wait=False)
    actions = job_actions(4)
    await harness.run(actions)
    requests_before = harness.truth()["requests"]
    await harness.run()
    assert harness.truth()["requests"] == requests_before
    assert set(harness.states().values()) == {ActionState.TRIGGERED}


async def test_clock_skew_does_not_hide_a_created_job(tmp_path: Path, state: str) -> None:
    # Our wall clock runs 5 minutes ahead of the server's.
    harness = Harness(tmp_path, state=state, wait=False, client_epoch=1_790_000_300.0)
    actions = job_actions(2)
    run_id = harness.start(actions)
    async with harness.client() as client:
        for action in actions:
            harness.ledger.record_intent(
                run_id, action.key, idempotency_key="k", now=harness.clock.wall()
            )
            await client.trigger_job(
                project_id=action.project_id,
                organisation=action.organisation,
                models=action.models,
                execution_count=action.execution_count,
            )
    await harness.run()
    harness.assert_exactly_once(actions)
