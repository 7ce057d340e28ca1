"""The Store contract, on each backend: what one writes, another process reads the same way."""

from __future__ import annotations

import pytest
from runner.errors import LedgerError
from runner.plan import Plan
from runner.store import (
    ActionState,
    AttemptOutcome,
    RunStatus,
    SettledBy,
    Store,
    open_store,
    run_lease_key,
)

from harness import job_actions

ACTIONS = job_actions(3)
KEY = ACTIONS[0].key


def _with_run(store: Store, run_id: str = "20250615T000000Z-aaaaaa", now: float = 1.0) -> str:
    store.create_run(run_id, Plan(tuple(ACTIONS), "d"), base_url="x", meta={"m": [1]}, now=now)
    store.lock(run_lease_key(run_id))
    return run_id


def test_a_run_and_its_plan_read_back_as_written(store: Store) -> None:
    run_id = _with_run(store)
    record = store.run(run_id)
    assert record.plan == Plan(tuple(ACTIONS), "d")
    assert (record.status, record.meta, record.started_at) == (RunStatus.RUNNING, {"m": [1]}, 1.0)
    assert [r.state for r in store.actions(run_id)] == [ActionState.PENDING] * 3
    store.set_run_status(run_id, RunStatus.FINISHED, now=9.5)
    store.set_created_by(run_id, "user-1")
    record = store.run(run_id)
    assert (record.status, record.finished_at, record.created_by) == (
        RunStatus.FINISHED,
        9.5,
        "user-1",
    )


def test_runs_resolve_by_prefix_newest_first(store: Store) -> None:
    assert store.latest_run() is None
    with pytest.raises(LedgerError, match="no runs yet"):
        store.resolve_run_id("last")
    store.create_run("20250615T000000Z-aaaaaa", Plan((), "d"), base_url="x", meta={}, now=1.0)
    store.create_run("20250615T010000Z-bbbbbb", Plan((), "d"), base_url="x", meta={}, now=2.0)
    assert [r.run_id for r in store.runs()] == [
        "20250615T010000Z-bbbbbb",
        "20250615T000000Z-aaaaaa",
    ]
    assert store.resolve_run_id("last") == "20250615T010000Z-bbbbbb"
    assert store.resolve_run_id("20250615T00") == "20250615T000000Z-aaaaaa"
    with pytest.raises(LedgerError, match="2 runs in the"):
        store.resolve_run_id("2025")
    with pytest.raises(LedgerError, match="no run in the"):
        store.resolve_run_id("1999")


def test_an_intent_is_committed_when_it_returns_and_another_process_sees_it(
    store: Store, state: str
) -> None:
    run_id = _with_run(store)
    assert store.record_intent(run_id, KEY, idempotency_key="k", now=2.0) == 1
    # Not closed (a killed process closes nothing): another connection already reads it.
    with open_store(state) as other:
        assert other.action_state(run_id, KEY) == ActionState.IN_FLIGHT
        assert [a.intent_at for a in other.attempts(run_id, KEY)] == [2.0]
    assert store.record_intent(run_id, KEY, idempotency_key="k", now=3.0) == 2


def test_an_outcome_sets_the_attempt_and_the_action_in_one_commit(store: Store) -> None:
    run_id = _with_run(store)
    attempt = store.record_intent(run_id, KEY, idempotency_key="k", now=2.0)
    store.record_outcome(run_id, KEY, attempt=attempt, outcome=AttemptOutcome.RATE_LIMITED, now=2.5)
    attempt = store.record_intent(run_id, KEY, idempotency_key="k", now=3.0)
    store.record_outcome(
        run_id, KEY, attempt=attempt, outcome=AttemptOutcome.ACCEPTED, now=4.0, http_status=201,
        state=ActionState.TRIGGERED, job_ids=("j1",), settled_by=SettledBy.RESPONSE,
    )  # fmt: skip
    (record, *_) = store.actions(run_id)
    assert (record.state, record.job_ids, record.attempts, record.rate_limited) == (
        ActionState.TRIGGERED,
        ("j1",),
        2,
        1,
    )
    assert (record.first_sent_at, record.triggered_at, record.settled_by) == (2.0, 4.0, "response")
    outcomes = [(a.attempt, a.outcome, a.http_status) for a in store.attempts(run_id, KEY)]
    assert outcomes == [(1, "rate_limited", None), (2, "accepted", 201)]
    assert store.known_job_ids() == {"j1"}


def test_a_failed_transaction_writes_none_of_its_writes(store: Store) -> None:
    run_id = _with_run(store)

    def fail_midway() -> None:
        with store.transaction():
            store.set_action_state(run_id, KEY, ActionState.FAILED, now=1.0)
            store.record_event(run_id, "stop", now=1.0)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_midway()
    assert store.action_state(run_id, KEY) == ActionState.PENDING
    assert store.events(run_id) == []


def test_jobs_are_upserted_and_their_anomalies_kept_once_each(store: Store) -> None:
    run_id = _with_run(store)

    def upsert(status: str, anomaly: str | None, now: float) -> None:
        store.upsert_job(
            run_id, "j1", key=KEY, kind="job", status=status, counters={"total": 2},
            created_at="2025-06-15T00:00:00Z", now=now, terminal=status == "completed",
            anomaly=anomaly,
        )  # fmt: skip

    upsert("pending", "late", 1.0)
    store.add_job_anomaly(run_id, "j1", "late")
    store.add_job_anomaly(run_id, "j1", "lost")
    upsert("completed", "lost", 2.0)
    upsert("completed", None, 3.0)
    (job,) = store.jobs(run_id)
    assert job.anomalies == ("late", "lost")
    assert (job.status, job.first_seen, job.last_seen, job.terminal_at) == ("completed", 1, 3, 2)
    assert job.counters == {"total": 2}


def test_events_keep_their_order_and_detail(store: Store) -> None:
    run_id = _with_run(store)
    store.record_event(run_id, "pause", now=2.0, seconds=1.5)
    store.record_event(run_id, "ambiguous", now=1.0, key=KEY)
    assert store.events(run_id) == [
        (2.0, "pause", None, {"seconds": 1.5}),
        (1.0, "ambiguous", KEY, {}),
    ]


def test_unknown_runs_and_actions_are_ledger_errors(store: Store) -> None:
    run_id = _with_run(store)
    with pytest.raises(LedgerError, match="no run 'nope'"):
        store.run("nope")
    with pytest.raises(LedgerError, match="no action 'nope'"):
        store.record_intent(run_id, "nope", idempotency_key="k", now=1.0)
    with pytest.raises(LedgerError, match="no action 'nope'"):
        store.action_state(run_id, "nope")


def test_a_write_after_close_is_refused_not_dropped(state: str) -> None:
    store = open_store(state)
    store.create_run("r", Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
    store.close()
    with pytest.raises(LedgerError, match="closed"):
        store.set_action_state("r", KEY, ActionState.FAILED, now=1.0)


def test_a_run_key_names_one_run_the_first_to_claim_it(store: Store) -> None:
    key = "github:acme/m:42:apply"
    assert store.run_by_key(key) is None
    first = store.create_run(
        "20250615T000000Z-aaaaaa", Plan((), "d"), base_url="x", meta={}, now=1.0, run_key=key
    )
    assert first == "20250615T000000Z-aaaaaa"
    # A second process with the same key joins the run instead of starting another.
    joined = store.create_run(
        "20250615T000001Z-bbbbbb", Plan((), "d"), base_url="x", meta={}, now=1.5, run_key=key
    )
    assert joined == first
    assert [r.run_id for r in store.runs()] == [first]
    named = store.run_by_key(key)
    assert named is not None
    assert (named.run_id, named.run_key) == (first, key)
    # --new-run names a new run over the old one, only if the old one still holds the key.
    stale = store.create_run(
        "20250615T000002Z-cccccc", Plan((), "d"), base_url="x", meta={}, now=2.0, run_key=key,
        replacing="20250615T000009Z-zzzzzz",
    )  # fmt: skip
    assert stale == first
    new = store.create_run(
        "20250615T000003Z-dddddd", Plan((), "d"), base_url="x", meta={}, now=3.0, run_key=key,
        replacing=first,
    )  # fmt: skip
    assert new == "20250615T000003Z-dddddd"
    renamed = store.run_by_key(key)
    assert renamed is not None
    assert renamed.run_id == new
    assert store.create_run("20250615T000004Z-eeeeee", Plan((), "d"), base_url="x", meta={},
                            now=4.0) == "20250615T000004Z-eeeeee"  # fmt: skip


def test_parts_of_a_run_keep_their_own_status(store: Store) -> None:
    run_id = _with_run(store)
    store.set_part_status(run_id, "1/2", RunStatus.RUNNING, now=2.0)
    store.set_part_status(run_id, "2/2", RunStatus.RUNNING, now=2.0)
    store.set_part_status(run_id, "1/2", RunStatus.FINISHED, now=3.0)
    assert store.parts(run_id) == {"1/2": RunStatus.FINISHED, "2/2": RunStatus.RUNNING}


def test_query_counts_are_kept_per_api_with_the_time_they_were_read(store: Store) -> None:
    store.record_query_counts("https://a", {"p1": 10, "p2": 3}, now=100.0)
    store.record_query_counts("https://b", {"p1": 99}, now=100.0)
    store.record_query_counts("https://a", {"p2": 4}, now=200.0)
    assert store.query_counts("https://a", since=0.0) == {"p1": 10, "p2": 4}
    assert store.query_counts("https://a", since=150.0) == {"p2": 4}
    assert store.query_counts("https://b", since=0.0) == {"p1": 99}


def test_a_projects_latest_job_is_never_replaced_by_an_older_one(store: Store) -> None:
    def seen(job: str, created: float, status: str, *, now: float) -> None:
        terminal = status in {"completed", "failed", "partial_failed"}
        store.record_project_job(
            "https://a", "p1", job_id=job, created=created, status=status, terminal=terminal,
            now=now,
        )  # fmt: skip

    seen("j1", 10.0, "processing", now=11.0)
    seen("j2", 20.0, "pending", now=21.0)
    seen("j1", 10.0, "completed", now=22.0)  # the older job's end: not the latest job
    latest = store.project_jobs("https://a")["p1"]
    assert (latest.job_id, latest.status, latest.terminal) == ("j2", "pending", False)
    seen("j2", 20.0, "completed", now=30.0)
    latest = store.project_jobs("https://a")["p1"]
    assert (latest.job_id, latest.terminal, latest.seen_at) == ("j2", True, 30.0)
    assert store.project_jobs("https://b") == {}
