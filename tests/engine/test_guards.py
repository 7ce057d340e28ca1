"""Run-level guards: deterministic idempotency keys, one run per ledger, no blind resend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from runner.errors import LedgerError
from runner.run.journal import idempotency_key
from runner.run.options import EngineOptions
from runner.sandbox import Faults, SandboxConfig
from runner.store import ActionState, AttemptOutcome, SqliteStore

from harness import Harness, job_actions


@pytest.mark.anyio
async def test_every_trigger_carries_its_deterministic_idempotency_key(tmp_path: Path) -> None:
    harness = Harness(tmp_path, wait=False)
    actions = job_actions(5)
    run_id = harness.start(actions)
    await harness.run()
    by_project = {t["projectId"]: t["idempotencyKey"] for t in harness.truth()["triggers"]}
    for action in actions:
        assert by_project[action.project_id] == idempotency_key(run_id, action.key)
    assert idempotency_key(run_id, actions[0].key) == idempotency_key(run_id, actions[0].key)
    assert idempotency_key(run_id, actions[0].key) != idempotency_key("other", actions[0].key)


@pytest.mark.anyio
async def test_a_service_that_honours_the_key_still_sees_one_job_per_action(
    tmp_path: Path,
) -> None:
    faults = Faults(lost_response=0.5, target="triggers")
    config = SandboxConfig(seed=5, faults=faults, honour_idempotency_key=True)
    harness = Harness(tmp_path, config=config, wait=False)
    actions = job_actions(20)
    await harness.run(actions)
    harness.assert_exactly_once(actions)


@pytest.mark.anyio
async def test_unsettled_cached_trigger_is_resent_only_with_retry_ambiguous(tmp_path: Path) -> None:
    from harness import cached_action  # noqa: PLC0415

    faults = Faults(lost_response=1.0, target="triggers")
    harness = Harness(
        tmp_path,
        config=SandboxConfig(seed=2, faults=faults),
        wait=False,
        engine=EngineOptions(retry_ambiguous=True, max_attempts=2),
    )
    action = cached_action(4)
    await harness.run([action])
    # Every response is lost, so each explicit retry pays again: that is what the flag means,
    # up to the attempt cap, after which the action stays UNKNOWN.
    assert harness.triggers_by_project()[action.project_id] == 2
    assert harness.states() == {action.key: ActionState.UNKNOWN}
    events = [kind for _, kind, _, _ in harness.ledger.events(harness.run_id or "")]
    assert "retry_ambiguous" in events


def test_a_second_run_on_the_same_ledger_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with SqliteStore.open(path) as first:
        first.lock("run:r")
        second = SqliteStore.open(path)
        with second, pytest.raises(LedgerError, match="another mlrun run"):
            second.lock("run:r")


HOLD_LOCK = """
import sys, time
from runner.store import SqliteStore
ledger = SqliteStore.open(sys.argv[1])
ledger.lock("run:r")
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with SqliteStore.open(path) as ledger, pytest.raises(LedgerError):
            ledger.lock("run:r")
        holder.kill()
        holder.wait()
        with SqliteStore.open(path) as ledger:
            ledger.lock("run:r")  # the kernel released the dead process's lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_action_states_are_the_documented_ones() -> None:
    assert {s.value for s in ActionState} == {
        "pending",
        "in_flight",
        "ambiguous",
        "triggered",
        "failed",
        "unknown",
        "skipped",
    }


@pytest.mark.anyio
async def test_a_project_whose_last_job_still_runs_is_not_triggered_again(tmp_path: Path) -> None:
    harness = Harness(tmp_path, wait=False)
    actions = job_actions(3)
    async with harness.client() as client:  # someone else's job, still processing
        await client.trigger_job(
            project_id=actions[0].project_id,
            organisation=actions[0].organisation,
            models=("gpt-5-mini",),
            execution_count=1,
        )
    await harness.run(actions)
    states = harness.states()
    assert states[actions[0].key] == ActionState.SKIPPED
    assert states[actions[1].key] == states[actions[2].key] == ActionState.TRIGGERED
    record = next(r for r in harness.ledger.actions(harness.run_id or "") if r.action == actions[0])
    assert record.detail is not None
    assert "in-flight guard" in record.detail
    assert harness.triggers_by_project()[actions[0].project_id] == 1  # only the other one's


@pytest.mark.anyio
async def test_allow_stacking_triggers_anyway(tmp_path: Path) -> None:
    harness = Harness(tmp_path, wait=False, engine=EngineOptions(allow_stacking=True))
    actions = job_actions(1)
    async with harness.client() as client:
        await client.trigger_job(
            project_id=actions[0].project_id,
            organisation=actions[0].organisation,
            models=("gpt-5-mini",),
            execution_count=1,
        )
    await harness.run(actions)
    assert harness.states()[actions[0].key] == ActionState.TRIGGERED
    assert harness.triggers_by_project()[actions[0].project_id] == 2


def test_intents_are_synced_and_other_writes_are_not(tmp_path: Path) -> None:
    """An intent must survive a power loss; an outcome lost to one is settled on resume."""
    import sqlite3  # noqa: PLC0415

    from runner.plan import Plan  # noqa: PLC0415

    seen: list[tuple[str, int]] = []
    with SqliteStore.open(tmp_path / "ledger.sqlite") as ledger:
        ledger.create_run("r", Plan(tuple(job_actions(1)), "d"), base_url="x", meta={}, now=0)
        connection: sqlite3.Connection = ledger._db

        def trace(statement: str) -> None:
            if statement in {"BEGIN IMMEDIATE", "COMMIT"}:
                sync = connection.execute("PRAGMA synchronous").fetchone()[0]
                seen.append((statement, sync))

        connection.set_trace_callback(trace)
        key = job_actions(1)[0].key
        attempt = ledger.record_intent("r", key, idempotency_key="k", now=1.0)
        intent_sync = [sync for statement, sync in seen if statement == "COMMIT"]
        seen.clear()
        ledger.record_outcome("r", key, attempt=attempt, outcome=AttemptOutcome.ACCEPTED, now=2.0)
        outcome_sync = [sync for statement, sync in seen if statement == "COMMIT"]
        connection.set_trace_callback(None)
    assert intent_sync == [2]  # FULL
    assert outcome_sync == [1]  # NORMAL
