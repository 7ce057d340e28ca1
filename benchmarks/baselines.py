"""The clients mlrun is compared with: written the way a user would write them, no cleverer.

* :func:`naive` — ``asyncio.gather`` over every trigger, an ``asyncio.Semaphore`` for the
  concurrency, no rate limit; a 429 is retried after its ``Retry-After`` (holding its slot).
* :func:`leaky_bucket` — the same, plus one ``aiolimiter.AsyncLimiter`` per documented window
  (each ``N`` per ``W``), acquired in turn before every send.
* :func:`bare_loop` — ``httpx`` + ``anyio``: ``concurrency`` workers sending the same trigger
  requests back to back, nothing else (what the HTTP stack alone does with the limits off).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import httpx
from aiolimiter import AsyncLimiter
from runner import __version__
from runner.plan import Action
from runner.ratelimit import Window

MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class ClientResult:
    """What a baseline client saw."""

    seconds: float
    requests: int
    created: int
    rate_limited: int
    gave_up: int


def _headers(key: str) -> dict[str, str]:
    return {"x-api-key": key, "user-agent": f"mentionlab-runner/{__version__}"}


def _request(action: Action) -> tuple[dict[str, str], dict[str, object]]:
    headers = {
        "x-project-id": action.project_id,
        "idempotency-key": str(uuid.uuid4()),
    }
    if action.organisation:
        headers["x-organisation-id"] = action.organisation
    body = {"aiModels": list(action.models), "executionCount": action.execution_count}
    return headers, body


def _client(url: str, key: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, headers=_headers(key), limits=limits, timeout=60.0)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


async def _gather(
    url: str,
    key: str,
    actions: Sequence[Action],
    concurrency: int,
    limiters: Sequence[AsyncLimiter],
) -> ClientResult:
    semaphore = asyncio.Semaphore(concurrency)
    counts = {"requests": 0, "created": 0, "rate_limited": 0, "gave_up": 0}

    async def trigger(client: httpx.AsyncClient, action: Action) -> None:
        headers, body = _request(action)
        async with semaphore:
            for _ in range(MAX_ATTEMPTS):
                for limiter in limiters:
                    await limiter.acquire()
                response = await client.post("/api/jobs/trigger", headers=headers, json=body)
                counts["requests"] += 1
                if response.status_code != 429:
                    counts["created"] += response.status_code == 201
                    return
                counts["rate_limited"] += 1
                await asyncio.sleep(_retry_after(response))
            counts["gave_up"] += 1

    async with _client(url, key, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(trigger(client, action) for action in actions))
        seconds = time.perf_counter() - started
    return ClientResult(seconds, **counts)


def naive(url: str, key: str, actions: Sequence[Action], concurrency: int) -> ClientResult:
    """``asyncio.gather`` + semaphore, no rate limit; 429s retried after ``Retry-After``."""
    return asyncio.run(_gather(url, key, actions, concurrency, ()))


def leaky_bucket(
    url: str, key: str, actions: Sequence[Action], concurrency: int, windows: Sequence[Window]
) -> ClientResult:
    """The naive client behind one ``AsyncLimiter(N, W)`` per window."""

    async def main() -> ClientResult:
        limiters = [AsyncLimiter(w.limit, w.seconds) for w in windows]
        return await _gather(url, key, actions, concurrency, limiters)

    return asyncio.run(main())


def bare_loop(url: str, key: str, actions: Sequence[Action], concurrency: int) -> ClientResult:
    """``concurrency`` anyio workers sending the triggers back to back over one httpx client."""

    async def main() -> ClientResult:
        queue = iter(actions)
        counts = itertools.count()
        created = 0

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal created
            for action in queue:
                headers, body = _request(action)
                response = await client.post("/api/jobs/trigger", headers=headers, json=body)
                next(counts)
                created += response.status_code == 201

        async with _client(url, key, concurrency) as client:
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker, client)
            seconds = time.perf_counter() - started
        return ClientResult(seconds, next(counts), created, 0, 0)

    return anyio.run(main)
