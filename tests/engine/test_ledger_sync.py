"""The ledger's background sync: intents on disk before the wire, one fsync for many, off the loop.

These run in real time on asyncio (``anyio.run``), not under the suite's mock clock: the point is
a worker thread, and a mock clock would jump while it runs.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from runner.api import MentionLabClient
from runner.clock import SystemClock
from runner.engine import EngineOptions
from runner.errors import LedgerError
from runner.ledger import ActionState, Ledger
from runner.limiter import RateLimiter
from runner.plan import Plan
from runner.run import RunOptions, execute, run_metadata, start_run
from runner.sandbox import Sandbox, SandboxConfig

from harness import API_KEY, job_actions

ACTIONS = job_actions(20)


def _ledger(path: Path) -> Ledger:
    ledger = Ledger.open(path, background_sync=True)
    ledger.create_run("r", Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
    return ledger


def _record_all(ledger: Ledger) -> list[int]:
    attempts: list[int] = []

    async def record(key: str) -> None:
        attempts.append(await ledger.record_intent_durably("r", key, idempotency_key="k", now=1.0))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for action in ACTIONS:
                group.start_soon(record, action.key)

    anyio.run(main, backend="asyncio")
    return attempts


def test_concurrent_intents_share_one_fsync_of_the_log_and_are_all_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    path = tmp_path / "ledger.sqlite"
    with _ledger(path) as ledger:
        monkeypatch.setattr(os, "fsync", spy)
        assert _record_all(ledger) == [1] * len(ACTIONS)
    # 20 intents queued in one turn of the loop: the first starts a sync run at once, the 19
    # others wait for it and share the next one (group commit).
    assert 1 <= len(synced) <= 2
    assert all(name.endswith("ledger.sqlite-wal") for name in synced)
    with Ledger.open(path) as reopened:
        states = {r.action.key: r.state for r in reopened.actions("r")}
        assert set(states.values()) == {ActionState.IN_FLIGHT}
        assert all(len(reopened.attempts("r", a.key)) == 1 for a in ACTIONS)


def test_a_failed_fsync_is_final_and_every_waiting_intent_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    def failing(fd: int) -> None:
        nonlocal calls
        calls += 1
        raise OSError(errno.EIO, "Input/output error")

    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(ExceptionGroup) as caught:
            _record_all(ledger)
        errors = caught.value.exceptions
        assert errors
        assert all(isinstance(e, LedgerError) for e in errors)
        assert "cannot be synced" in str(errors[0])
        monkeypatch.setattr(os, "fsync", lambda _fd: None)  # a later success proves nothing
        key = ACTIONS[0].key
        with pytest.raises(LedgerError, match="cannot be synced"):
            anyio.run(
                lambda: ledger.record_intent_durably("r", key, idempotency_key="k", now=2.0),
                backend="asyncio",
            )
    assert calls == 1


def test_without_a_write_ahead_log_intents_are_synced_inline() -> None:
    # SQLite keeps its journal in memory here (as it falls back from WAL on filesystems that
    # cannot share memory maps): there is no log file to sync apart, and intents still record.
    with Ledger.open(":memory:", background_sync=True) as ledger:
        ledger.create_run("r", Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
        assert _record_all(ledger) == [1] * len(ACTIONS)
        assert ledger.synchronous_full


def _outside_view(path: Path) -> dict[str, ActionState]:
    """What another process reading the file sees (``mlrun status`` during a run, or resume)."""
    with Ledger.open(path) as other:
        return {r.action.key: r.state for r in other.actions("r")}


def test_a_synced_intent_is_on_disk_before_it_returns_even_if_the_process_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = _ledger(path)
    key = ACTIONS[0].key
    assert anyio.run(
        lambda: ledger.record_intent_durably("r", key, idempotency_key="k", now=1.0),
        backend="asyncio",
    )
    # Not closed (a killed process closes nothing): the intent is already in the file.
    assert _outside_view(path)[key] == ActionState.IN_FLIGHT
    ledger.close()


def test_queued_writes_are_seen_by_reads_and_committed_when_old_or_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite"
    first, second, third = (a.key for a in ACTIONS[:3])
    with _ledger(path) as ledger:
        ledger.set_action_state("r", first, ActionState.FAILED, now=1.0, detail="x")
        # This process reads its own writes at once; another sees them once committed.
        assert ledger.action_state("r", first) == ActionState.FAILED
        assert _outside_view(path)[first] == ActionState.FAILED
        ledger.set_action_state("r", second, ActionState.SKIPPED, now=2.0)
        assert _outside_view(path)[second] == ActionState.PENDING  # still queued
        monkeypatch.setattr("runner.ledger.MAX_QUEUE_SECONDS", 0.0)
        ledger.set_action_state("r", third, ActionState.SKIPPED, now=3.0)  # the queue is old
        assert _outside_view(path)[second] == ActionState.SKIPPED
    assert _outside_view(path)[third] == ActionState.SKIPPED  # close committed the rest


def test_a_failed_transaction_queues_none_of_its_writes(tmp_path: Path) -> None:
    key = ACTIONS[0].key
    with _ledger(tmp_path / "ledger.sqlite") as ledger:

        def fail_midway() -> None:
            with ledger.transaction():
                ledger.set_action_state("r", key, ActionState.FAILED, now=1.0)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_midway()
        assert ledger.action_state("r", key) == ActionState.PENDING


def test_a_write_the_database_refuses_is_final(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = _ledger(path)
    # Another connection holds the write lock past the busy timeout: the queued commit fails.
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    ledger._db.execute("PRAGMA busy_timeout=10")  # fail fast instead of after 5 s
    ledger.set_action_state("r", ACTIONS[0].key, ActionState.FAILED, now=1.0)
    with pytest.raises(LedgerError, match="cannot be written"):
        ledger.actions("r")
    blocker.execute("ROLLBACK")
    blocker.close()
    with pytest.raises(LedgerError, match="cannot be written"):
        ledger.set_action_state("r", ACTIONS[1].key, ActionState.FAILED, now=2.0)
    ledger.close()  # closes without retrying what failed


@pytest.mark.parametrize("background", [True, False])
def test_job_anomalies_are_appended_once_each(tmp_path: Path, *, background: bool) -> None:
    with Ledger.open(tmp_path / "ledger.sqlite", background_sync=background) as ledger:
        ledger.create_run("r", Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
        key = ACTIONS[0].key

        def upsert(status: str, anomaly: str) -> None:
            ledger.upsert_job(
                "r", "j1", key=key, kind="job", status=status, counters={}, created_at=None,
                now=1.0, terminal=status == "completed", anomaly=anomaly,
            )  # fmt: skip

        upsert("pending", "late")
        ledger.add_job_anomaly("r", "j1", "late")
        ledger.add_job_anomaly("r", "j1", "lost")
        upsert("completed", "lost")
        (job,) = ledger.jobs("r")
        assert job.anomalies == ("late", "lost")
        assert job.status == "completed"


def test_queued_writes_are_committed_within_the_queue_age_without_another_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runner.ledger.MAX_QUEUE_SECONDS", 0.05)
    path = tmp_path / "ledger.sqlite"
    key = ACTIONS[0].key
    with _ledger(path) as ledger:

        async def write_then_idle() -> None:
            ledger.set_action_state("r", key, ActionState.FAILED, now=1.0)
            assert _outside_view(path)[key] == ActionState.PENDING  # queued
            await anyio.sleep(1.0)  # twenty times the queue's age: the loop's timer commits

        anyio.run(write_then_idle, backend="asyncio")
        assert _outside_view(path)[key] == ActionState.FAILED


def test_a_waiter_cancelled_during_a_sync_does_not_cancel_the_others(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    keys = [a.key for a in ACTIONS[:6]]
    with _ledger(path) as ledger:

        async def main() -> list[int]:
            attempts: list[int] = []

            async def record(key: str) -> None:
                attempt = await ledger.record_intent_durably("r", key, idempotency_key="k", now=1.0)
                attempts.append(attempt)

            async def cancelled(scope: anyio.CancelScope) -> None:
                with scope:  # the first waiter: it starts the sync run the others wait on
                    await ledger.record_intent_durably(
                        "r", ACTIONS[10].key, idempotency_key="k", now=1.0
                    )

            scope = anyio.CancelScope()
            async with anyio.create_task_group() as group:
                group.start_soon(cancelled, scope)
                for key in keys:
                    group.start_soon(record, key)
                await anyio.lowlevel.checkpoint()  # all seven queued, waiting on a sync run
                scope.cancel()
            return attempts

        assert anyio.run(main, backend="asyncio") == [1] * len(keys)
    view = _outside_view(path)
    assert all(view[key] == ActionState.IN_FLIGHT for key in keys)


def test_off_asyncio_intents_are_synced_on_the_callers_thread(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    key = ACTIONS[0].key
    ledger = _ledger(path)
    attempt = anyio.run(
        lambda: ledger.record_intent_durably("r", key, idempotency_key="k", now=1.0),
        backend="trio",
    )
    assert attempt == 1
    assert _outside_view(path)[key] == ActionState.IN_FLIGHT  # on disk before close
    ledger.close()


def test_a_write_after_close_is_refused_not_dropped(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.sqlite")
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.set_action_state("r", ACTIONS[0].key, ActionState.FAILED, now=1.0)


def test_a_trigger_cancelled_while_its_intent_syncs_is_withdrawn_not_left_in_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk takes 2 s per fsync; SIGINT (a cancel) comes 0.3 s into the run, while the
    # first trigger's intent is being synced. It never left: it must be recorded withdrawn
    # (pending again), not left in flight for resume to settle (UNKNOWN for cached jobs).
    path = tmp_path / "ledger.sqlite"
    sandbox = Sandbox(SandboxConfig(seed=1))
    clock = SystemClock()
    ledger = Ledger.open(path, background_sync=True)
    run_id = start_run(
        ledger, Plan(tuple(ACTIONS[:3]), "d"), clock=clock, base_url="x", meta=run_metadata({})
    )
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(2.0)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    async def main() -> None:
        limiter = RateLimiter([], clock=clock, concurrency=1, probe_first=True)
        client = MentionLabClient(
            api_key=API_KEY, base_url="https://api.mentionlab.io", transport=sandbox.transport()
        )
        options = RunOptions(engine=EngineOptions(allow_stacking=True), wait=False)
        async with client:
            with anyio.move_on_after(0.3):
                await execute(
                    run_id=run_id,
                    client=client,
                    limiter=limiter,
                    ledger=ledger,
                    clock=clock,
                    options=options,
                )

    anyio.run(main, backend="asyncio")
    ledger.close()
    assert sandbox.truth()["requests"] == 0
    with Ledger.open(path) as reopened:
        outcomes = [[a.outcome for a in reopened.attempts(run_id, x.key)] for x in ACTIONS[:3]]
        assert ["withdrawn"] in outcomes
        assert all(attempts in ([], ["withdrawn"]) for attempts in outcomes)
        assert {r.state for r in reopened.actions(run_id)} == {ActionState.PENDING}
