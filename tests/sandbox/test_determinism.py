"""Same seed, same world, same faults: a pure function of the seed and the request sequence."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.sandbox import Faults, RateLimitPolicy, Sandbox, SandboxConfig
from runner.sandbox.faults import decide
from runner.sandbox.world import generate_queries

from sandbox.support import JOB_BODY, PROJECT, Connect

pytestmark = pytest.mark.anyio
NOISY = Faults(
    error_500=0.1,
    error_502=0.1,
    error_503=0.1,
    error_504=0.1,
    error_429=0.05,
    drop_before=0.05,
    lost_response=0.05,
    malformed=0.05,
    refuse=0.05,
    retry_after="mixed",
)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), project=st.uuids().map(str))
def test_same_seed_same_world(seed: int, project: str) -> None:
    first = generate_queries(seed, project)
    assert first == generate_queries(seed, project)
    assert 1 <= len(first) <= 12


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 300))
def test_same_seed_same_faults(seed: int, count: int) -> None:
    run = [decide(NOISY, seed, n, trigger=n % 2 == 0) for n in range(1, count + 1)]
    assert run == [decide(NOISY, seed, n, trigger=n % 2 == 0) for n in range(1, count + 1)]


def test_different_seeds_differ() -> None:
    one = [decide(NOISY, 1, n, trigger=True) for n in range(200)]
    two = [decide(NOISY, 2, n, trigger=True) for n in range(200)]
    assert one != two


class ShiftedClock:
    """Virtual time counted from this clock's creation, so two sessions see the same times."""

    def __init__(self) -> None:
        self.start = anyio.current_time()

    def monotonic(self) -> float:
        return anyio.current_time() - self.start

    def wall(self) -> float:
        return 1_790_000_000.0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


async def _session(connect: Connect, seed: int) -> list[Any]:
    config = SandboxConfig(seed=seed, faults=NOISY, rate_limits=RateLimitPolicy.named("off"))
    sandbox = Sandbox(config, clock=ShiftedClock())
    outcomes: list[Any] = []
    async with connect(sandbox, timeout=5.0) as client:
        for _ in range(60):
            try:
                response = await client.post("/api/jobs/trigger", json=JOB_BODY)
                outcomes.append((response.status_code, response.content))
            except httpx.TransportError as error:
                outcomes.append(type(error).__name__)
        queries = await client.post("/api/queries/list", json={}, headers={"x-project-id": PROJECT})
    truth = sandbox.truth()
    return [outcomes, truth["faults"], truth["triggers"], queries.status_code]


async def test_a_replayed_session_is_identical(connect: Connect) -> None:
    first = await _session(connect, 42)
    assert first == await _session(connect, 42)
    assert first != await _session(connect, 43)
