"""The reliability scenarios of reliability-anchors §7 not already covered by tests/engine.

In process, in virtual time (trio's MockClock): hours of traffic in well under a second each.
Oracles, as in the anchors: (a) nothing lost, (b) nothing duplicated, (c) statuses true,
(d) no window exceeded, (e) every doubt reported. docs/reliability.md maps each scenario here.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from runner.api import MentionLabClient
from runner.errors import LedgerError
from runner.ratelimit import Window
from runner.run.follow import FollowOptions
from runner.run.options import EngineOptions
from runner.sandbox import Change, Faults, Latency, RateLimitPolicy, SandboxConfig
from runner.sandbox import Window as ServerWindow
from runner.store import ActionState, SqliteStore

from chaos.chaos_harness import ChaosHarness
from figures import record
from harness import API_KEY, job_actions

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

SERVER_DOCUMENTED = (ServerWindow(10, 1.0), ServerWindow(300, 60.0), ServerWindow(10_000, 3600.0))


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the sandbox transport: when each request left, and each answer with its headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Any) -> None:
        self.inner = inner
        self.clock = clock
        self.log: list[tuple[float, float, int, str | None]] = []  # sent, answered, status, RA

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = self.clock.monotonic()
        response = await self.inner.handle_async_request(request)
        retry_after = response.headers.get("retry-after")
        self.log.append((sent, self.clock.monotonic(), response.status_code, retry_after))
        return response


class RecordingHarness(ChaosHarness):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.recorder = RecordingTransport(self.sandbox.transport(), self.clock)

    def client(self, api_key: str = API_KEY) -> MentionLabClient:
        return MentionLabClient(
            api_key=api_key, base_url="https://api.mentionlab.io", transport=self.recorder
        )


def _rate_limited(harness: ChaosHarness) -> int:
    total: int = harness.truth()["rateLimitedTotal"]
    return total


# -- 1. multi-window pacing ------------------------------------------------------------------


async def test_multi_window_pacing_2000_triggers_zero_429_and_no_window_exceeded(
    tmp_path: Path,
) -> None:
    harness = ChaosHarness(tmp_path, config=SandboxConfig(seed=1), wait=False)
    actions = job_actions(2000)
    await harness.run(actions)
    truth = harness.truth()
    (arrivals,) = truth["arrivals"].values()  # keyed by a fingerprint of the key
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    harness.assert_exactly_once(actions)
    assert _rate_limited(harness) == 0
    assert harness.sandbox.window_violations(SERVER_DOCUMENTED) == []
    # 2,000 requests fit in an hour's 10,000: 300/min (5/s) is the binding window here.
    assert rate >= 0.95 * 5.0
    record("multi-window-pacing", triggers=2000, rate_per_s=round(rate, 3), http_429=0)


# -- 2. shared budget, headers, clock skew ------------------------------------------------


@pytest.mark.parametrize("skew", [-300.0, 0.0, 300.0])
async def test_a_neighbour_and_a_skewed_clock_give_at_most_one_429(
    tmp_path: Path, skew: float
) -> None:
    harness = ChaosHarness(
        tmp_path, config=SandboxConfig(seed=2), wait=False, client_epoch=1_790_000_000.0 + skew
    )
    harness.sandbox.occupy(API_KEY, 250)  # a neighbour took 250 of this minute's 300
    actions = job_actions(120)
    await harness.run(actions)
    record("neighbour-and-skew", skew_s=skew, http_429=_rate_limited(harness))
    harness.assert_exactly_once(actions)
    assert harness.sandbox.window_violations(SERVER_DOCUMENTED) == []
    assert _rate_limited(harness) <= 1


# -- 3. Retry-After variants -----------------------------------------------------------------


@pytest.mark.parametrize("style", ["seconds", "http-date", "missing", "garbage", "huge", "mixed"])
async def test_retry_after_variants_are_obeyed_and_a_huge_one_is_capped(
    tmp_path: Path, style: str
) -> None:
    faults = Faults(error_429=0.3, retry_after=style)  # type: ignore[arg-type]
    harness = RecordingHarness(tmp_path, config=SandboxConfig(seed=3, faults=faults), wait=False)
    actions = job_actions(40)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert harness.limiter is not None
    stats = harness.limiter.stats
    throttled = [entry for entry in harness.recorder.log if entry[2] == 429]
    assert throttled
    early = _sent_before_retry_after(harness.recorder.log)
    assert early == [], early
    if style == "huge":
        assert stats.capped_retry_afters, "a Retry-After of 86400 s must be capped and recorded"
    record(
        "retry-after",
        style=style,
        http_429=len(throttled),
        capped=list(stats.capped_retry_afters)[:3],
        virtual_seconds=round(harness.recorder.log[-1][1], 1),
    )


def _sent_before_retry_after(log: list[tuple[float, float, int, str | None]]) -> list[str]:
    """Requests sent after a 429 arrived but before the whole seconds its Retry-After asked."""
    early = []
    for _, answered, status, retry_after in log:
        if status != 429 or retry_after is None or not retry_after.isdigit():
            continue
        until = answered + min(float(retry_after), 300.0)
        early += [f"{s:.3f} < {until:.3f}" for s, _, _, _ in log if answered < s < until - 1e-6]
    return early


# -- rate storm: the limits drop mid-run ------------------------------------------------------


async def test_a_rate_storm_is_obeyed_and_the_run_finishes(tmp_path: Path) -> None:
    storm = Change(after_requests=60, rate_limits=RateLimitPolicy.parse("2/s,40/min"))
    config = SandboxConfig(seed=4, schedule=(storm,))
    harness = RecordingHarness(tmp_path, config=config, wait=False)
    actions = job_actions(150)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert _sent_before_retry_after(harness.recorder.log) == []
    statuses = Counter(entry[2] for entry in harness.recorder.log)
    share_429 = statuses[429] / len(harness.recorder.log)
    record(
        "rate-storm-untold",
        requests=len(harness.recorder.log),
        http_429=statuses[429],
        share_429=round(share_429, 4),
        virtual_seconds=round(harness.recorder.log[-1][1], 1),
    )
    # It slows down to what the headers and 429s say: a drop to a fifth of the limits costs
    # some 429s, not a 429 for every other request (69 % before the limiter learned untold
    # limits). Measured since: 4.6 % (14 of 304), up to 6.9 % with a0ce9b7's limiter, 5.1 % while
    # a learned minute could come out a second short; 0.7 % (2 of 302) since it cannot.
    assert share_429 <= 0.03, statuses


async def test_told_the_lower_limits_the_runner_never_exceeds_a_window(tmp_path: Path) -> None:
    storm = Change(after_requests=30, rate_limits=RateLimitPolicy.parse("2/s,40/min"))
    config = SandboxConfig(seed=4, schedule=(storm,))
    told = (Window(2, 1.0), Window(40, 60.0))
    harness = ChaosHarness(tmp_path, config=config, wait=False, windows=told)
    actions = job_actions(80)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert harness.sandbox.window_violations() == []
    assert _rate_limited(harness) == 0
    record("rate-storm-told", requests=harness.truth()["requests"], http_429=0, violations=0)


# -- 4. a 503 outage of 120 s ------------------------------------------------------------------


async def test_a_120_s_outage_pauses_the_run_as_a_whole(tmp_path: Path) -> None:
    outage = Change(after_requests=20, faults=Faults(error_503=1.0))
    harness = RecordingHarness(
        tmp_path, config=SandboxConfig(seed=5, schedule=(outage,)), wait=False
    )
    actions = job_actions(60)
    async with anyio.create_task_group() as group:

        async def heal() -> None:
            while harness.truth()["statuses"].get("503", 0) == 0:
                await anyio.sleep(0.01)
            await anyio.sleep(120.0)
            harness.sandbox.set_faults(Faults())

        group.start_soon(heal)
        await harness.run(actions)
    during = harness.truth()["statuses"].get("503", 0)
    record("outage-120s", requests_during_outage=during)
    harness.assert_exactly_once(actions)
    assert during <= 10, during


# -- 5. failures before sending ------------------------------------------------------------------


async def test_refused_connections_are_resent_and_never_ambiguous(tmp_path: Path) -> None:
    harness = ChaosHarness(
        tmp_path,
        config=SandboxConfig(seed=6, faults=Faults(refuse=0.4)),
        wait=False,
        # 40 % refused: 8 attempts would give up on ~3 % of runs; the point is never AMBIGUOUS.
        engine=EngineOptions(settle_grace=60.0, max_attempts=20),
    )
    actions = job_actions(40)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert harness.run_id is not None
    outcomes = Counter(
        attempt.outcome
        for action in actions
        for attempt in harness.ledger.attempts(harness.run_id, action.key)
    )
    assert outcomes["ambiguous"] == 0
    assert outcomes["not_processed"] > 0
    events = Counter(kind for _, kind, _, _ in harness.ledger.events(harness.run_id))
    assert events["ambiguous"] == 0


# -- 7. late-appearing jobs ----------------------------------------------------------------------


async def test_a_slow_commit_and_a_lagging_list_are_waited_for_not_resent(tmp_path: Path) -> None:
    faults = Faults(commit_delay=40.0, list_lag=20.0, target="triggers")
    harness = RecordingHarness(
        tmp_path,
        config=SandboxConfig(seed=7, faults=faults),
        wait=False,
        engine=EngineOptions(settle_grace=90.0),
    )
    actions = job_actions(5)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert max(harness.triggers_by_project().values()) == 1
    assert all(s == ActionState.TRIGGERED for s in harness.states().values())


# -- 8. gateway errors after processing -------------------------------------------------------


async def test_gateway_errors_after_processing_are_settled_not_resent(
    tmp_path: Path, state: str
) -> None:
    faults = Faults(error_502=0.25, error_504=0.25, processed_502=1.0, processed_504=1.0)
    harness = ChaosHarness(
        tmp_path, state=state, config=SandboxConfig(seed=8, faults=faults), wait=False
    )
    actions = job_actions(40)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    assert harness.run_id is not None
    adopted = sum(
        r.settled_by == "adopted from the job list" for r in harness.ledger.actions(harness.run_id)
    )
    assert adopted > 0


# -- 9. the crash matrix, in process -------------------------------------------------------------


@pytest.mark.parametrize("after_requests", [1, 4, 9, 17, 30])
async def test_a_run_abandoned_at_any_point_resumes_to_the_uncrashed_result(
    tmp_path: Path, state: str, after_requests: int
) -> None:
    config = SandboxConfig(seed=9, time_scale=30.0, faults=Faults(latency=Latency(200, 800)))
    harness = ChaosHarness(tmp_path, state=state, config=config)
    actions = job_actions(20)
    abandoned = await harness.run_until(
        lambda: harness.truth()["requests"] >= after_requests, actions
    )
    assert abandoned
    in_doubt = sum(
        s in {ActionState.IN_FLIGHT, ActionState.AMBIGUOUS} for s in harness.states().values()
    )
    await harness.run()  # a fresh engine over the same ledger, as `mlrun apply --resume`
    harness.assert_exactly_once(actions)
    outcomes = harness.assert_report_matches_truth()
    assert outcomes == {"OK": 20}
    harness.assert_statuses_true()
    record("crash-matrix", after_requests=after_requests, in_doubt_at_crash=in_doubt)


# -- 10. a torn ledger ------------------------------------------------------------------------


async def test_a_ledger_copied_without_its_wal_opens_and_reconciles(tmp_path: Path) -> None:
    harness = ChaosHarness(tmp_path, wait=False)
    actions = job_actions(10)
    await harness.run_until(lambda: harness.truth()["requests"] >= 6, actions)
    # Intents commit with synchronous=FULL (tests/engine/test_guards.py checks each commit).
    torn = tmp_path / "torn" / "ledger.sqlite"
    torn.parent.mkdir()
    assert isinstance(harness.ledger, SqliteStore)
    shutil.copy(harness.ledger.path, torn)  # the -wal and -shm are left behind
    ledger = SqliteStore.open(torn)  # must not crash
    runs = ledger.runs()
    if runs:  # the run survived the checkpoint: resuming it must not duplicate anything
        harness.ledger = ledger
        harness.run_id = runs[0].run_id
        await harness.run()
        assert harness.duplicates() == 0
    else:  # everything was in the WAL: the torn copy knows no run and says so
        with pytest.raises(LedgerError):
            ledger.resolve_run_id("last")
    record("torn-ledger", runs_in_torn_copy=len(runs), duplicates=harness.duplicates())


# -- 11. cancellation with requests in flight --------------------------------------------------


async def test_cancelled_with_ten_triggers_in_flight_every_one_is_recorded_then_once(
    tmp_path: Path,
    state: str,
) -> None:
    config = SandboxConfig(seed=11, faults=Faults(latency=Latency(5000, 5000)))
    # No in-flight guard reads: every worker's next request is a trigger, so ten go out together.
    engine = EngineOptions(settle_grace=60.0, allow_stacking=True)
    harness = ChaosHarness(
        tmp_path, state=state, config=config, wait=False, concurrency=10, engine=engine
    )
    actions = job_actions(30)
    await harness.run_until(lambda: _in_flight(harness) >= 10, actions)
    states = Counter(harness.states().values())
    assert states[ActionState.IN_FLIGHT] == 0, states  # each one recorded, in a shielded write
    assert states[ActionState.AMBIGUOUS] == 10, states
    await harness.run()
    harness.assert_exactly_once(actions)
    record("cancel-in-flight", in_flight=10, recorded_ambiguous=states[ActionState.AMBIGUOUS])


def _in_flight(harness: ChaosHarness) -> int:
    if harness.run_id is None:
        return 0
    return sum(s == ActionState.IN_FLIGHT for s in harness.states().values())


# -- 12. polling budget ----------------------------------------------------------------------


async def test_the_polling_budget_stays_bounded(tmp_path: Path, chaos_full: bool) -> None:
    count = 1000 if chaos_full else 200
    harness = ChaosHarness(
        tmp_path,
        config=SandboxConfig(seed=12),
        follow=FollowOptions(timeout=6 * 3600.0),
    )
    actions = job_actions(count)
    summary = await harness.run(actions)
    harness.assert_exactly_once(actions)
    harness.assert_statuses_true()
    paths = harness.truth()["paths"]
    status_requests = paths.get("GET /api/jobs/{id}", 0) + paths.get("POST /api/jobs/list", 0)
    ratio = status_requests / count
    assert summary.timed_out == ()
    assert harness.sandbox.window_violations(SERVER_DOCUMENTED) == []
    assert ratio <= 6.0, ratio
    record("polling-budget", jobs=count, status_requests=status_requests, per_job=round(ratio, 2))


# -- 13. pagination drift ----------------------------------------------------------------------


async def test_many_jobs_of_one_project_paged_while_they_change_are_each_reported_once(
    tmp_path: Path,
) -> None:
    first = job_actions(1)[0]
    actions = [replace(first, key=f"{first.project}/jobs/{i}") for i in range(150)]
    harness = ChaosHarness(
        tmp_path, config=SandboxConfig(seed=13), follow=FollowOptions(timeout=6 * 3600.0)
    )
    await harness.run(actions)
    assert harness.run_id is not None
    jobs = harness.ledger.jobs(harness.run_id)
    assert len({job.job_id for job in jobs}) == len(jobs) == 150
    assert harness.assert_statuses_true() == 150
    report = harness.report_json()
    assert len(report["actions"]) == 150
    assert Counter(a["outcome"] for a in report["actions"]) == {"OK": 150}


# -- 14. jobs that never finish, vanish, flap -------------------------------------------------


async def test_never_finishing_vanishing_and_flapping_jobs_each_get_an_explicit_row(
    tmp_path: Path,
) -> None:
    faults = Faults(never_finish=0.15, vanish=0.15, flap=0.15)
    harness = ChaosHarness(
        tmp_path,
        config=SandboxConfig(seed=14, faults=faults),
        follow=FollowOptions(timeout=3 * 3600.0),
    )
    actions = job_actions(60)
    await harness.run(actions)
    harness.assert_exactly_once(actions)
    report = harness.report_json()
    assert len(report["actions"]) == 60
    outcomes = Counter(a["outcome"] for a in report["actions"])
    for action in report["actions"]:
        if action["outcome"] != "OK":
            assert action["differences"], action["key"]
    assert outcomes["TIMEOUT"] > 0
    assert outcomes["UNKNOWN"] > 0  # the vanished ones: a 404 on a job we created
    truth_status = {
        t["jobId"]: harness.sandbox.job(t["jobId"])["status"] for t in harness.truth()["triggers"]
    }
    for action in report["actions"]:
        job_status = action["done"]["jobStatus"]
        if action["outcome"] == "OK":
            assert truth_status[action["done"]["jobIds"][0]] == job_status == "completed"
    record("never-vanish-flap", outcomes=dict(outcomes))


# -- disk: full, read-only -------------------------------------------------------------------


class BreakingTransport(RecordingTransport):
    """After ``after`` answers, makes the ledger's database unwritable (as the disk would)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Any, ledger: SqliteStore) -> None:
        super().__init__(inner, clock)
        self.ledger = ledger
        self.after = 10
        self.failure = "disk full"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if len(self.log) == self.after:
            _break(self.ledger, self.failure)
        return response


def _break(ledger: SqliteStore, failure: str) -> None:
    db: sqlite3.Connection = ledger._db
    if failure == "read-only":  # SQLITE_READONLY, as on a file system remounted read-only
        db.execute("PRAGMA query_only=ON")
        return
    # SQLITE_FULL, as on a full disk: cap the file at its size, then fill what is left.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + 4}")
    db.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        _fill(db)


def _fill(db: sqlite3.Connection) -> None:
    while True:
        db.execute("INSERT INTO filler VALUES (zeroblob(4096))")


class BreakingHarness(ChaosHarness):
    def __post_init__(self) -> None:
        super().__post_init__()
        assert isinstance(self.ledger, SqliteStore)
        self.recorder = BreakingTransport(self.sandbox.transport(), self.clock, self.ledger)

    def client(self, api_key: str = API_KEY) -> MentionLabClient:
        return MentionLabClient(
            api_key=api_key, base_url="https://api.mentionlab.io", transport=self.recorder
        )


@pytest.mark.parametrize("failure", ["disk full", "read-only"])
async def test_a_ledger_that_cannot_be_written_stops_sending_with_a_ledger_error(
    tmp_path: Path, failure: str
) -> None:
    harness = BreakingHarness(tmp_path, config=SandboxConfig(seed=15), wait=False)
    harness.recorder.failure = failure
    actions = job_actions(40)
    with pytest.raises(BaseException) as stopped:
        await harness.run(actions)
    assert harness.run_id is not None
    with_intent = {
        action.project_id
        for action in actions
        if harness.ledger.attempts(harness.run_id, action.key)
    }
    created = set(harness.triggers_by_project())
    record(
        "ledger-unwritable",
        failure=failure,
        requests=harness.truth()["requests"],
        triggers=len(created),
        raised=type(stopped.value).__name__,
    )
    assert created <= with_intent, "a trigger was sent without its intent recorded"
    assert len(created) < len(actions)  # it stopped sending
    # What reaches the CLI must be the typed error it renders (exit 2, no traceback), not an
    # exception group it would report as an internal error (exit 70).
    assert isinstance(stopped.value, LedgerError), repr(stopped.value)
