"""One writer per run across machines: PostgreSQL leases, their expiry, and fencing.

Leases expire by the database's clock. Tests use leases of a fraction of a second (or none at
all: a lease of 0 s has ended by the next transaction) instead of waiting a minute.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from runner.errors import LeaseLost, LedgerError, collapse
from runner.plan import Plan
from runner.plan.shard import Shard
from runner.run.lease import under_lease
from runner.run.shared import lock_part, lock_run
from runner.store import ActionState, LeaseTimings, RunStatus, Store, open_store, run_lease_key

from harness import Harness, job_actions
from postgres_support import track

RUN = "20250615T000000Z-aaaaaa"
LEASE = run_lease_key(RUN)
ACTIONS = job_actions(2)
KEY = ACTIONS[0].key
ENDED = LeaseTimings(duration=0.0, heartbeat=15.0, poll=0.05)  # over by the next transaction
MINUTE = LeaseTimings(duration=60.0, heartbeat=15.0, poll=0.05)


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    """Opened stores, closed at the end; the first one has recorded the run."""
    opened: list[Store] = []
    yield opened
    for store in opened:
        store.close()


def _writer(url: str, opened: list[Store], timings: LeaseTimings = MINUTE) -> Store:
    store = open_store(url, timings=timings)
    opened.append(store)
    if not store.runs():
        store.create_run(RUN, Plan(tuple(ACTIONS), "d"), base_url="x", meta={}, now=0.0)
    return store


def test_a_second_writer_is_refused_with_the_holder_named(
    postgres_url: str, stores: list[Store]
) -> None:
    first = _writer(postgres_url, stores)
    first.lock(LEASE)
    second = _writer(postgres_url, stores)
    with pytest.raises(LedgerError, match="another mlrun run holds run:") as refused:
        second.lock(LEASE)
    message = str(refused.value)
    assert f"host {socket.gethostname()!r} (pid {os.getpid()}) since " in message
    assert "--lock-timeout" in message
    second.lock(run_lease_key("another run"))  # a lease names one run, not the whole state


def test_a_waiting_writer_gets_the_lease_when_it_ends(
    postgres_url: str, stores: list[Store]
) -> None:
    _writer(postgres_url, stores, LeaseTimings(duration=0.3, poll=0.05)).lock(LEASE)
    second = _writer(postgres_url, stores)
    started = time.monotonic()
    second.lock(LEASE, wait=30.0)  # polls until the first lease ends, unrenewed
    assert time.monotonic() - started < 20.0
    assert second.record_intent(RUN, KEY, idempotency_key="k", now=1.0) == 1


def test_a_closed_writer_lets_the_next_one_in_at_once(
    postgres_url: str, stores: list[Store]
) -> None:
    first = _writer(postgres_url, stores)
    first.lock(LEASE)
    first.close()
    _writer(postgres_url, stores).lock(LEASE)


def test_an_expired_lease_is_taken_over(postgres_url: str, stores: list[Store]) -> None:
    _writer(postgres_url, stores, ENDED).lock(LEASE)  # a holder that died: never renewed
    _writer(postgres_url, stores).lock(LEASE)


def test_a_writer_whose_lease_was_taken_over_cannot_record_an_intent(
    postgres_url: str, stores: list[Store]
) -> None:
    stalled = _writer(postgres_url, stores, ENDED)
    stalled.lock(LEASE)
    _writer(postgres_url, stores).lock(LEASE)
    with pytest.raises(LeaseLost, match=r"was taken over by host .* nothing more"):
        stalled.record_intent(RUN, KEY, idempotency_key="k", now=1.0)
    with pytest.raises(LeaseLost, match="was taken over"):
        stalled.renew_lease()
    assert stalled.action_state(RUN, KEY) == ActionState.PENDING
    assert stalled.attempts(RUN, KEY) == []


def test_a_writer_past_its_lease_has_lost_it_even_if_nobody_took_it_over(
    postgres_url: str, stores: list[Store]
) -> None:
    stalled = _writer(postgres_url, stores, ENDED)
    stalled.lock(LEASE)
    with pytest.raises(LeaseLost, match=r"ended at .* unrenewed \(this process stalled\)"):
        stalled.record_intent(RUN, KEY, idempotency_key="k", now=1.0)
    with pytest.raises(LeaseLost, match="ended at"):
        stalled.renew_lease()
    assert stalled.attempts(RUN, KEY) == []


def test_an_intent_needs_a_lease(postgres_url: str, stores: list[Store]) -> None:
    store = _writer(postgres_url, stores)
    with pytest.raises(LedgerError, match="under the run's lease"):
        store.record_intent(RUN, KEY, idempotency_key="k", now=1.0)


@pytest.mark.anyio
async def test_the_heartbeat_renews_the_lease_and_stops_the_work_once_it_is_lost(
    postgres_url: str, stores: list[Store]
) -> None:
    holder = _writer(postgres_url, stores, LeaseTimings(duration=60.0, heartbeat=15.0))
    holder.lock(LEASE)
    expiries: list[object] = []

    def expiry() -> object:
        return _rows(postgres_url, "SELECT expires_at FROM leases")[0][0]

    async def work() -> None:
        expiries.append(expiry())
        await anyio.sleep(20)  # one heartbeat, at 15 s: the lease is extended
        expiries.append(expiry())
        _stall_past_the_lease(postgres_url)
        _writer(postgres_url, stores).lock(LEASE)  # another machine takes it over
        await anyio.sleep(3600)

    with pytest.raises(LeaseLost, match="was taken over"):
        await under_lease(holder, work)
    assert expiries[1] > expiries[0]  # type: ignore[operator]
    assert anyio.current_time() == 30.0  # stopped at the next heartbeat, not an hour later


class _TakenOverAfter(httpx.AsyncBaseTransport):
    """The sandbox's transport; after ``triggers`` triggers, another machine takes the lease
    over (as when this one stalls past its lease: its expiry is moved to the past)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, url: str, triggers: int) -> None:
        self.inner, self.url, self.triggers = inner, url, triggers
        self.sent = 0
        self.other: Store | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/api/jobs/trigger":
            self.sent += 1
            if self.sent == self.triggers:
                _stall_past_the_lease(self.url)
                self.other = track(open_store(self.url, timings=MINUTE))
                self.other.lock("harness")
        return response


def _stall_past_the_lease(url: str) -> None:
    _rows(url, "UPDATE leases SET expires_at = now() - interval '1 second' RETURNING 1")


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg  # noqa: PLC0415 - the postgres extra

    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql.encode()).fetchall()


@pytest.mark.anyio
async def test_a_run_whose_lease_is_taken_over_stops_sending_at_its_next_intent(
    tmp_path: Path, postgres_url: str
) -> None:
    taken_over: list[_TakenOverAfter] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        taken_over.append(_TakenOverAfter(inner, postgres_url, triggers=3))
        return taken_over[0]

    harness = Harness(tmp_path, state=postgres_url, wait=False, concurrency=1, wrap=wrap)
    actions = job_actions(10)
    with pytest.raises(BaseExceptionGroup) as stopped:  # `mlrun apply` renders the one error
        await harness.run(actions)
    error = collapse(stopped.value)
    assert isinstance(error, LeaseLost), repr(error)
    assert "was taken over by host" in str(error)
    assert len(harness.truth()["triggers"]) == 3  # nothing after the takeover
    states = harness.states().values()
    assert list(states).count(ActionState.TRIGGERED) == 3
    assert ActionState.IN_FLIGHT not in states


def _keyed_writer(url: str, opened: list[Store]) -> Store:
    store = open_store(url, timings=MINUTE)
    opened.append(store)
    if not store.runs():
        plan = Plan(tuple(ACTIONS), "d")
        store.create_run(RUN, plan, base_url="x", meta={}, now=0.0, run_key="nightly")
        store.set_part_status(RUN, "1/2", RunStatus.RUNNING, now=0.0)
    return store


def test_a_keyed_run_is_resumed_or_refreshed_never_beside_its_keyed_apply(
    postgres_url: str, stores: list[Store]
) -> None:
    applying = _keyed_writer(postgres_url, stores)
    lock_part(applying, "nightly", None, wait=0.0)  # a re-run of the CI job, by its key
    resuming = _keyed_writer(postgres_url, stores)
    with pytest.raises(LedgerError, match="another mlrun run holds run:nightly:all"):
        lock_run(resuming, resuming.run(RUN), wait=0.0)  # `mlrun apply --resume RUN`


def test_a_shard_and_the_whole_run_never_write_side_by_side(
    postgres_url: str, stores: list[Store]
) -> None:
    shard = _keyed_writer(postgres_url, stores)
    lock_part(shard, "nightly", Shard(1, 2), wait=0.0)
    other_shard = _keyed_writer(postgres_url, stores)
    lock_part(other_shard, "nightly", Shard(2, 2), wait=0.0)  # parts go side by side
    whole = _keyed_writer(postgres_url, stores)
    with pytest.raises(LedgerError, match="another process is applying its part 1/2"):
        lock_run(whole, whole.run(RUN), wait=0.0)
    for store in (whole, shard, other_shard):  # the commands end, and their leases with them
        store.close()
    resuming = _keyed_writer(postgres_url, stores)
    lock_run(resuming, resuming.run(RUN), wait=0.0)  # no part at work: the whole run is free
    with pytest.raises(LedgerError, match="another process is applying the whole run"):
        lock_part(_keyed_writer(postgres_url, stores), "nightly", Shard(1, 2), wait=0.0)
