"""Acquire/release overhead of the limiter, beside anyio's bare CapacityLimiter.

Run: ``python benchmarks/bench_limiter.py [asyncio|trio]``. Prints acquisitions per second for
``tasks`` workers looping over acquire/release with a checkpoint inside (no network), with no
windows (the engine's "limits off" path) and with windows far above the achieved rate.
"""

from __future__ import annotations

import sys
import time

import anyio
from runner.clock import SystemClock
from runner.ratelimit import RateLimiter, RequestKind, Window

from served import machine

TOTAL = 100_000
TASKS = 50


async def bare() -> None:
    slots = anyio.CapacityLimiter(TASKS)

    async def worker(count: int) -> None:
        for _ in range(count):
            async with slots:
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(TASKS):
            tg.start_soon(worker, TOTAL // TASKS)


def limited(windows: list[Window], concurrency: int):
    async def run() -> None:
        limiter = RateLimiter(windows, clock=SystemClock(), concurrency=concurrency)

        async def worker(count: int) -> None:
            for _ in range(count):
                async with limiter.acquire(RequestKind.TRIGGER):
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for _ in range(TASKS):
                tg.start_soon(worker, TOTAL // TASKS)

    return run


def measure(backend: str, name: str, main) -> float:
    started = time.perf_counter()
    anyio.run(main, backend=backend)
    rate = TOTAL / (time.perf_counter() - started)
    print(f"{backend:8} {name:48} {rate:>12,.0f} acquisitions/s")
    return rate


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    print(f"# bench_limiter ({backend}): {machine()}")
    base = measure(backend, "anyio.CapacityLimiter (baseline)", bare)
    cases = {
        "RateLimiter, no windows, slots free": limited([], TASKS),
        "RateLimiter, no windows, contended (10 slots)": limited([], 10),
        "RateLimiter, 3 roomy windows, slots free": limited(
            [Window(10**9, 1.0), Window(10**9, 60.0), Window(10**9, 3600.0)], TASKS
        ),
    }
    for name, case in cases.items():
        rate = measure(backend, name, case)
        print(f"{'':8} {'':48} {rate / base:>12.2f} x baseline")


if __name__ == "__main__":
    main()
