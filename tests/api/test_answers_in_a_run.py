"""How a run treats the client's verdicts on answers that are not the API's.

The sandbox sits behind a proxy that replaces answers with an HTML page of its own, after the
sandbox has processed the request: the worst case for a paid trigger. The run must stop sending
at once (exit 5), settle every trigger so answered as maybe processed (never failed, never
resent), and not retry reads that can only get the same page.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from runner.api import MentionLabClient
from runner.exitcodes import ExitCode
from runner.report import build_report
from runner.run.execute import RunOptions, RunSummary, execute
from runner.store import ActionState

from harness import Harness, job_actions

pytestmark = pytest.mark.anyio

PAGE = "<html><body>Proxy error: upstream closed</body></html>"


class Portal(httpx.AsyncBaseTransport):
    """The sandbox's transport, with the answers ``rewritten`` replaced by an HTML page."""

    def __init__(self, inner: httpx.AsyncBaseTransport, rewritten: Callable[[str], bool]) -> None:
        self.inner = inner
        self.rewritten = rewritten
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.rewritten(request.url.path):
            return response
        await response.aread()
        self.pages += 1
        return httpx.Response(200, headers={"content-type": "text/html"}, text=PAGE)


async def run_behind(harness: Harness, portal: Portal, count: int) -> RunSummary:
    harness.start(job_actions(count))
    assert harness.run_id is not None
    client = MentionLabClient(
        api_key="ml_live_portal0123", base_url="https://api.mentionlab.io", transport=portal
    )
    async with client:
        return await execute(
            run_id=harness.run_id,
            client=client,
            limiter=harness.new_limiter(),
            ledger=harness.ledger,
            clock=harness.clock,
            rng=random.Random(harness.seed),
            options=RunOptions(engine=harness.engine, follow=harness.follow, wait=False),
        )


def exit_code(harness: Harness) -> ExitCode:
    assert harness.run_id is not None
    return build_report(harness.ledger, harness.run_id, env={}).exit_code()


async def test_a_trigger_answered_by_a_page_stops_the_run_and_stays_maybe_processed(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    portal = Portal(harness.sandbox.transport(), lambda path: path.endswith("/trigger"))
    summary = await run_behind(harness, portal, count=12)

    assert summary.stop_reason is not None
    assert summary.stop_reason.startswith("NotTheApi: POST /api/jobs/trigger: HTTP 200 with")
    processed = harness.triggers_by_project()
    states = harness.states()
    # Settled by the job list (which the proxy lets through): found, adopted, never resent.
    adopted = [key for key, state in states.items() if state == ActionState.TRIGGERED]
    assert portal.pages == len(adopted) == sum(processed.values()) >= 1
    assert max(processed.values()) == 1
    assert set(states.values()) == {ActionState.TRIGGERED, ActionState.SKIPPED}
    assert exit_code(harness) == ExitCode.FATAL_API


async def test_reads_answered_by_a_page_are_not_retried(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    portal = Portal(harness.sandbox.transport(), lambda _path: True)
    summary = await run_behind(harness, portal, count=12)

    assert summary.stop_reason is not None
    assert summary.stop_reason.startswith("NotTheApi: POST /api/jobs/list")
    assert harness.triggers_by_project() == {}
    assert portal.pages <= harness.concurrency  # at most one look per place on the wire
    assert harness.clock.monotonic() < 10  # virtual seconds: no backoff, no retry
    assert exit_code(harness) == ExitCode.FATAL_API
