"""The outage breaker: every outcome of a probe closes it or opens it again; nothing waits forever.

After three 503s the breaker opens; when the period ends, one request goes as the probe. Each
test here scripts what becomes of that probe (an answer of any status, a 503, a refused, dropped
or timed-out connection, a withdrawal, a cancellation, an exception) and checks that the breaker
moved and that the next request goes out. In virtual time, through the gateway with a real client
over a scripted transport, and end to end against the sandbox, in process and served.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from runner.api import JobPage, MentionLabClient, Reply
from runner.clock import LoopClock, SystemClock
from runner.errors import (
    MalformedResponse,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    ServerError,
    ServiceUnavailable,
)
from runner.plan import Plan
from runner.ratelimit import RateLimiter, RequestKind
from runner.run.execute import RunOptions, execute, run_metadata, start_run
from runner.run.gateway import Gateway, Withdrawn
from runner.run.options import EngineOptions
from runner.run.preflight import remote_plan
from runner.run.progress import Outage, ProgressView, RunProgress, ViewOptions
from runner.run.target import Target
from runner.sandbox import Change, Faults, Sandbox, SandboxConfig
from runner.store import SqliteStore

from figures import record
from harness import API_KEY, ORG, Harness, job_actions, project_id
from subprocesses import free_port

pytestmark = pytest.mark.anyio

OPTIONS = EngineOptions()  # opens after 3; periods of 30 s, 60 s, ... (x 0.75-1), at most 300 s
NEXT_PERIOD = 0.75 * 2 * OPTIONS.outage_pause  # the shortest second period

Step = Callable[[httpx.Request], Awaitable[httpx.Response]]


class ScriptedAPI(httpx.AsyncBaseTransport):
    """The sandbox behind a script: each request takes the next step, then the sandbox answers.

    A step of None lets the sandbox answer that request. ``sent_at`` is when each arrived.
    """

    def __init__(self, steps: list[Step | None]) -> None:
        self.sandbox = Sandbox(SandboxConfig(seed=1), clock=LoopClock()).transport()
        self.steps: deque[Step | None] = deque(steps)
        self.sent_at: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent_at.append(anyio.current_time())
        step = self.steps.popleft() if self.steps else None
        if step is None:
            return await self.sandbox.handle_async_request(request)
        return await step(request)


def answer(status: int, **headers: str) -> Step:
    async def step(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": f"status {status}"}, headers=headers)

    return step


async def misshapen(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"unexpected": "shape"})


async def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without a response.", request=request)


async def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


async def broken(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("a failure nobody planned for")


async def hangs(request: httpx.Request) -> httpx.Response:
    await anyio.sleep_forever()
    raise AssertionError


def after(seconds: float, step: Step) -> Step:
    async def delayed(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(seconds)
        return await step(request)

    return delayed


OPENING: list[Step | None] = [answer(503)] * OPTIONS.outage_threshold


class Run:
    """A gateway as the engine builds it, and a read through it over a scripted API."""

    def __init__(self, api: ScriptedAPI) -> None:
        clock = LoopClock()
        self.api = api
        self.progress = RunProgress()
        self.limiter = RateLimiter([], clock=clock, concurrency=8)
        self.gateway = Gateway(
            limiter=self.limiter,
            clock=clock,
            rng=random.Random(1),
            options=OPTIONS,
            progress=self.progress,
        )
        self.client = MentionLabClient(
            api_key=API_KEY, base_url="https://api.mentionlab.io", transport=api
        )

    def read(self) -> Callable[[], Awaitable[Reply[JobPage]]]:
        return lambda: self.client.list_jobs(project_id=project_id(1), organisation=ORG, limit=1)

    async def request(
        self, *, before_wire: Callable[[], Awaitable[None]] | None = None
    ) -> Reply[JobPage]:
        return await self.gateway.request(RequestKind.TRIGGER, self.read(), before_wire=before_wire)

    async def open_breaker(self) -> None:
        for _ in range(OPTIONS.outage_threshold):
            with pytest.raises(ServiceUnavailable):
                await self.request()
        assert self.gateway.breaker.is_open

    async def answered_within(self, seconds: float) -> Reply[JobPage]:
        """The next request, answered by the sandbox: it must not wait forever."""
        with anyio.fail_after(seconds):
            return await self.request()


# -- a unit test per probe outcome ------------------------------------------------------------

ANSWERS: list[tuple[Step | None, type[Exception] | None]] = [
    (None, None),
    (answer(400), RequestRejected),
    (answer(429, **{"retry-after": "5"}), RateLimited),
    (answer(500), ServerError),
    (misshapen, MalformedResponse),
]
NO_ANSWERS: list[tuple[Step, type[Exception]]] = [
    (answer(503), ServiceUnavailable),
    (refused, NotSent),
    (dropped, OutcomeUnknown),
    (timed_out, OutcomeUnknown),
    (broken, RuntimeError),
]


async def _probe(run: Run, error: type[Exception] | None) -> None:
    if error is None:
        await run.request()
        return
    with pytest.raises(error):
        await run.request()


@pytest.mark.parametrize(
    ("step", "error"), ANSWERS, ids=["200", "400", "429", "500", "200 misshapen"]
)
async def test_a_probe_answered_with_any_status_but_503_closes_the_breaker(
    step: Step | None, error: type[Exception] | None
) -> None:
    run = Run(ScriptedAPI([*OPENING, step]))
    async with run.client:
        await run.open_breaker()
        await _probe(run, error)
        assert not run.gateway.breaker.is_open
        assert run.progress.outage is None
        await run.answered_within(10.0)  # a 429's Retry-After (5 s) holds it, nothing else


@pytest.mark.parametrize(
    ("step", "error"), NO_ANSWERS, ids=["503", "refused", "dropped", "timed out", "exception"]
)
async def test_a_probe_without_an_answer_opens_the_breaker_for_the_next_period(
    step: Step, error: type[Exception]
) -> None:
    run = Run(ScriptedAPI([*OPENING, step]))
    async with run.client:
        await run.open_breaker()
        await _probe(run, error)
        assert run.gateway.breaker.is_open
        outage = run.progress.outage
        assert outage is not None
        assert outage.next_probe is not None
        await run.answered_within(OPTIONS.outage_pause_cap)
        assert run.progress.outage is None  # closed
    probe, next_probe = run.api.sent_at[-2:]
    assert next_probe - probe >= NEXT_PERIOD


async def test_a_probe_withdrawn_before_the_wire_opens_the_breaker_for_the_next_period() -> None:
    run = Run(ScriptedAPI(OPENING))

    async def stopping() -> None:
        raise Withdrawn

    async with run.client:
        await run.open_breaker()
        with pytest.raises(Withdrawn):
            await run.request(before_wire=stopping)
        assert run.gateway.breaker.is_open
        await run.answered_within(OPTIONS.outage_pause_cap)
    assert len(run.api.sent_at) == OPTIONS.outage_threshold + 1  # the withdrawn one never left


async def test_a_cancelled_probe_opens_the_breaker_for_the_next_period() -> None:
    run = Run(ScriptedAPI([*OPENING, hangs]))
    async with run.client:
        await run.open_breaker()
        with anyio.move_on_after(OPTIONS.outage_pause + 5.0) as scope:
            await run.request()
        assert scope.cancelled_caught
        assert run.gateway.breaker.is_open
        await run.answered_within(OPTIONS.outage_pause_cap)
    probe, next_probe = run.api.sent_at[-2:]
    assert next_probe - probe >= NEXT_PERIOD


async def test_a_probe_held_by_a_pause_that_began_before_the_wire_does_not_stall_the_run() -> None:
    # A Retry-After pause begins while the probe's intent is written: the probe goes back
    # through the limiter, and the breaker still moves.
    run = Run(ScriptedAPI(OPENING))

    async def intent_while_a_pause_begins() -> None:
        run.limiter.pause(10.0, reason="HTTP 429: Retry-After")

    async with run.client:
        await run.open_breaker()
        paused_at = anyio.current_time()
        with anyio.fail_after(OPTIONS.outage_pause_cap + OPTIONS.outage_pause):
            await run.request(before_wire=intent_while_a_pause_begins)
    assert run.api.sent_at[-1] >= paused_at + 10.0
    assert not run.gateway.breaker.is_open


async def test_requests_waiting_for_a_dropped_probe_go_on_after_the_next_one() -> None:
    run = Run(ScriptedAPI([*OPENING, after(5.0, dropped)]))
    results: list[str] = []

    async def one() -> None:
        try:
            await run.request()
            results.append("answered")
        except OutcomeUnknown:
            results.append("dropped")

    async with run.client:
        await run.open_breaker()
        with anyio.fail_after(OPTIONS.outage_pause_cap * 2):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(one)
    assert sorted(results) == ["answered"] * 4 + ["dropped"]
    dropped_probe, second_probe = run.api.sent_at[3:5]
    assert second_probe - dropped_probe >= NEXT_PERIOD
    assert min(run.api.sent_at[5:]) >= second_probe  # the others waited for its answer


async def test_a_probe_that_never_ends_cannot_keep_the_others_waiting() -> None:
    # The probe's call never returns and nothing cancels it: the others wait at most the
    # longest period for it, then one of them probes in its place.
    run = Run(ScriptedAPI(OPENING))

    async def lost() -> Reply[JobPage]:
        await anyio.sleep_forever()
        raise AssertionError

    async with run.client:
        await run.open_breaker()
        async with anyio.create_task_group() as group:
            group.start_soon(run.gateway.request, RequestKind.TRIGGER, lost)  # the probe
            await anyio.sleep(OPTIONS.outage_pause + 1.0)
            assert run.progress.outage is not None
            assert run.progress.outage.next_probe is None  # shown as probing
            await run.answered_within(OPTIONS.outage_pause_cap + 1.0)
            group.cancel_scope.cancel()
    assert not run.gateway.breaker.is_open


async def test_a_request_admitted_before_a_pause_goes_back_through_the_limiter() -> None:
    # While the first request's intent is written (1 s), a second gets a 429 with Retry-After:
    # 10: the first must not go on the wire before the pause ends, and its intent is written once.
    run = Run(ScriptedAPI([answer(429, **{"retry-after": "10"})]))  # the second arrives first
    intents = 0

    async def slow_intent() -> None:
        nonlocal intents
        intents += 1
        await anyio.sleep(1.0)

    async with run.client, anyio.create_task_group() as group:
        group.start_soon(lambda: run.request(before_wire=slow_intent))
        await anyio.sleep(0.5)
        with pytest.raises(RateLimited):
            await run.request()
    throttled, first_sent = run.api.sent_at
    assert first_sent >= throttled + 10.0
    assert intents == 1


# -- end to end: three 503s, a probe without an answer, then the API answers ----------------------


def _outage_then(lost: Faults) -> SandboxConfig:
    """503 to the first three requests, ``lost`` for the fourth (the probe), then healthy."""
    schedule = (Change(after_requests=3, faults=lost), Change(after_requests=4, faults=Faults()))
    return SandboxConfig(seed=1, faults=Faults(error_503=1.0), schedule=schedule)


LOST = [Faults(drop_before=1.0), Faults(lost_response=1.0, lost_response_kind="timeout")]


@pytest.mark.parametrize("lost", LOST, ids=["dropped", "timed out"])
@pytest.mark.parametrize("stacking", [False, True], ids=["a read probes", "a trigger probes"])
async def test_a_run_ends_when_the_probe_after_three_503s_gets_no_answer(
    tmp_path: Path, lost: Faults, stacking: bool
) -> None:
    engine = EngineOptions(settle_grace=60.0, allow_stacking=stacking)
    harness = Harness(tmp_path, config=_outage_then(lost), wait=False, concurrency=1, engine=engine)
    actions = job_actions(3)
    harness.start(actions)
    progress = RunProgress()
    view = ProgressView(progress, io.StringIO(), ViewOptions(live=False), wall=harness.clock.wall)
    shown: list[Outage] = []
    lines: list[str] = []

    async def watch() -> None:
        while True:
            if progress.outage is not None and progress.outage not in shown:
                shown.append(progress.outage)
                lines.append(view.summary_line())
            await anyio.sleep(1.0)

    async with harness.client() as client, anyio.create_task_group() as group:
        group.start_soon(watch)
        with anyio.fail_after(3600.0):
            summary = await execute(
                run_id=harness.run_id or "",
                client=client,
                limiter=harness.new_limiter(),
                ledger=harness.ledger,
                clock=harness.clock,
                options=RunOptions(engine=engine, wait=False),
                progress=progress,
            )
        group.cancel_scope.cancel()
    assert summary.status == "finished"
    harness.assert_exactly_once(actions)
    assert harness.truth()["statuses"]["503"] == 3
    assert progress.outage is None
    opened = shown[0]
    assert opened.why == "HTTP 503"
    assert opened.next_probe is not None
    assert any(o.why == "no answer to the probe" and o.since == opened.since for o in shown)
    since = time.strftime("%H:%M:%S", time.localtime(opened.since))
    assert f"API unavailable since {since} (HTTP 503); next probe in" in lines[0]
    assert any(f"since {since} (no answer to the probe); next probe in" in line for line in lines)


async def test_planning_reads_end_and_say_why_they_wait_when_the_probe_gets_no_answer() -> None:
    actions = job_actions(3)
    clock = LoopClock()
    limiter = RateLimiter([], clock=clock, concurrency=1, probe_first=True)
    sandbox = Sandbox(_outage_then(Faults(drop_before=1.0)), clock=LoopClock())
    lines: list[str] = []
    client = MentionLabClient(
        api_key=API_KEY, base_url="https://api.mentionlab.io", transport=sandbox.transport()
    )
    async with client:
        with anyio.fail_after(3600.0):
            plan, facts = await remote_plan(
                Plan(tuple(actions), "d"),
                offline=False,
                client=client,
                limiter=limiter,
                clock=clock,
                say=lines.append,
            )
    assert facts.problems == ()
    assert len(plan.actions) == 3
    assert lines[0].startswith("planning: API unavailable since ")
    assert re.search(r"\(HTTP 503\); next probe in (2[2-9]|30)s$", lines[0]), lines
    assert "(no answer to the probe); next probe in " in lines[1]
    assert lines[-1].startswith("planning: 3 of 3 projects read in "), lines


_SERVE = """
import sys
from runner.sandbox import Change, Faults, SandboxConfig
from runner.sandbox.serve import serve
schedule = (Change(after_requests=3, faults=Faults(drop_before=1.0)),
            Change(after_requests=4, faults=Faults()))
config = SandboxConfig(seed=1, time_scale=50.0, faults=Faults(error_503=1.0), schedule=schedule)
serve(config, "127.0.0.1", int(sys.argv[1]))
"""


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        assert process.poll() is None, "the served sandbox exited"
        try:
            httpx.get(f"{url}/_sandbox/truth", timeout=1.0).raise_for_status()
        except httpx.HTTPError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError("the served sandbox did not come up within 15 s")


@pytest.mark.slow
def test_served_three_503s_then_a_dropped_probe_end_in_real_time(tmp_path: Path) -> None:
    # Over loopback, in real time; the periods are shortened (1 s, doubling to 4 s) so that the
    # test takes seconds, not the minute or two of the defaults.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    actions = job_actions(3)
    engine = EngineOptions(outage_pause=1.0, outage_pause_cap=4.0)
    try:
        _wait_until_up(url, process)
        with SqliteStore.open(tmp_path / "ledger.sqlite") as ledger:
            clock = SystemClock()
            run_id = start_run(
                ledger,
                Plan(tuple(actions), "d"),
                clock=clock,
                target=Target(url, API_KEY),
                meta=run_metadata({}),
            )

            async def main() -> Any:
                client = MentionLabClient(api_key=API_KEY, base_url=url)
                async with client:
                    with anyio.fail_after(60.0):
                        return await execute(
                            run_id=run_id,
                            client=client,
                            limiter=RateLimiter([], clock=clock, concurrency=1),
                            ledger=ledger,
                            clock=clock,
                            options=RunOptions(engine=engine, wait=False),
                        )

            started = time.monotonic()
            summary = anyio.run(main, backend="asyncio")
            took = time.monotonic() - started
        truth = httpx.get(f"{url}/_sandbox/truth", timeout=5.0).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert summary.status == "finished"
    assert took < 30.0, took
    record("three 503s, then a probe dropped (served, periods 1-4 s)", seconds=round(took, 1))
    assert truth["statuses"]["503"] == 3
    assert sorted(t["projectId"] for t in truth["triggers"]) == sorted(
        a.project_id for a in actions
    )
