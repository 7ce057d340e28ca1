"""Shared parts of the loopback benchmarks: the served sandbox, plans, the engine run, metrics.

The sandbox is always a subprocess (``python -m runner sandbox serve``) on a free loopback port,
terminated by its own pid when the benchmark ends (never by name). Figures are read from its
ground truth (``GET /_sandbox/truth``: admitted arrivals per key fingerprint, 429s per key,
request counts per path) and from the clients.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from runner.api import ClientOptions, MentionLabClient
from runner.clock import Clock, SystemClock
from runner.manifest.model import Endpoint
from runner.plan import Action, Plan
from runner.ratelimit import LimiterStats, RateLimiter, Window
from runner.run.execute import RunOptions, RunSummary, execute, run_metadata, start_run
from runner.run.progress import RunProgress
from runner.run.target import Target
from runner.sandbox.ratelimit import RateLimitPolicy, SlidingLog
from runner.sandbox.truth import key_fingerprint
from runner.store import SqliteStore

ORG = "0190c5a2-0000-7000-8000-0000000000b1"
PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
MODELS = ("gpt-4.1-mini", "claude-haiku-4-5")
TRIGGER_BODY = {"aiModels": list(MODELS), "executionCount": 1}
STARTUP_SECONDS = 20.0


def api_key(name: str) -> str:
    """A sandbox key per runner, so each one starts with empty rate-limit windows."""
    return f"ml_live_bench_{name}_{os.getpid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A running sandbox subprocess."""

    url: str
    process: subprocess.Popen[bytes]

    def truth(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sandbox/truth", timeout=60.0)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


@contextlib.contextmanager
def served_sandbox(*, time_scale: float, rate_limits: str, seed: int = 0) -> Iterator[Served]:
    """Start ``python -m runner sandbox serve`` on loopback; always terminated on exit."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "runner",
        "sandbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--seed",
        str(seed),
        "--time-scale",
        f"{time_scale:g}",
        "--rate-limits",
        rate_limits,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(served)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(served: Served) -> None:
    stop = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < stop:
        if served.process.poll() is not None:
            raise SystemExit(f"the sandbox exited with status {served.process.returncode}")
        try:
            httpx.get(f"{served.url}/_sandbox/health", timeout=0.5)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise SystemExit("the sandbox did not start")


# -- plans ----------------------------------------------------------------------------------------


def project_id(index: int, salt: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{salt}-{index}"))


def trigger_actions(count: int, *, salt: str, jobs_per_project: int = 1) -> list[Action]:
    """``count`` job triggers, ``jobs_per_project`` per project (the engine runs projects in
    parallel and the actions of one project in order)."""
    return [
        Action(
            key=f"project-{i // jobs_per_project}/jobs/{i % jobs_per_project}",
            project=f"project-{i // jobs_per_project}",
            project_id=project_id(i // jobs_per_project, salt),
            organisation=ORG,
            endpoint=Endpoint.JOBS,
            models=MODELS,
            execution_count=1,
        )
        for i in range(count)
    ]


# -- the engine, as `mlrun apply` runs it ---------------------------------------------------------


@dataclass(frozen=True)
class EngineRun:
    summary: RunSummary
    seconds: float
    progress: RunProgress
    stats: LimiterStats
    ledger_path: Path


async def run_engine(
    *,
    url: str,
    key: str,
    actions: Sequence[Action],
    windows: Sequence[Window],
    concurrency: int,
    ledger_path: Path,
    options: RunOptions,
    clock: Clock | None = None,
    synchronous: str | None = None,
) -> EngineRun:
    """``runner.run.execute`` with a real client over loopback, a ledger at ``ledger_path``.

    ``synchronous``: None, the ledger as ``mlrun apply`` opens it (each intent committed with
    ``synchronous=FULL``, the other writes with ``NORMAL``); ``"FULL"``/``"OFF"``, that level
    held for every commit (``OFF``: no fsync at all).
    """
    clock = clock or SystemClock()
    ledger = SqliteStore.open(ledger_path)
    if synchronous is not None:
        # Measuring the ledger's cost only: hold one level for every commit.
        ledger._db.execute(f"PRAGMA synchronous={synchronous}")  # noqa: SLF001
        ledger._set_synchronous = _keep_synchronous  # type: ignore[method-assign]  # noqa: SLF001
    try:
        plan = Plan(actions=tuple(actions), manifest_digest="bench")
        meta = run_metadata({}, wait=options.wait)
        run_id = start_run(ledger, plan, clock=clock, target=Target(url, key), meta=meta)
        # as `mlrun apply` builds it (runner.run.apply.make_limiter): a slow start, one probe first
        limiter = RateLimiter(list(windows), clock=clock, concurrency=concurrency, probe_first=True)
        progress = RunProgress()
        client_options = ClientOptions(max_connections=concurrency)
        async with MentionLabClient(api_key=key, base_url=url, options=client_options) as client:
            started = time.perf_counter()
            summary = await execute(
                run_id=run_id,
                client=client,
                limiter=limiter,
                ledger=ledger,
                clock=clock,
                options=options,
                progress=progress,
            )
            seconds = time.perf_counter() - started
    finally:
        ledger.close()
    return EngineRun(summary, seconds, progress, limiter.stats, ledger_path)


def _keep_synchronous(*, full: bool) -> None:
    """Stands in for ``SqliteStore._set_synchronous`` while a benchmark holds one sync level."""
    del full


@contextlib.contextmanager
def ledger_dir(base: str | None = None) -> Iterator[Path]:
    """A fresh directory for ledgers, on disk (``/tmp`` here is ext4, not tmpfs)."""
    with tempfile.TemporaryDirectory(prefix="mlrun-bench-", dir=base) as name:
        yield Path(name)


# -- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyTraffic:
    """What the sandbox saw from one API key."""

    arrivals: list[float]  # admitted requests, sandbox monotonic clock
    rejected: int  # 429s

    @property
    def requests(self) -> int:
        return len(self.arrivals) + self.rejected

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0

    @property
    def span(self) -> float:
        return self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0


def key_traffic(truth: dict[str, Any], key: str) -> KeyTraffic:
    fingerprint = key_fingerprint(key)
    arrivals = sorted(truth["arrivals"].get(fingerprint, []))
    return KeyTraffic(arrivals, int(truth["rateLimited"].get(fingerprint, 0)))


def ideal_arrivals(windows: Sequence[Window], count: int) -> list[float]:
    """The earliest possible admission times of ``count`` requests, from empty windows: the
    greedy schedule against the sandbox's own exact sliding log (the minimum the policy allows)."""
    from runner.sandbox.ratelimit import Window as SandboxWindow  # noqa: PLC0415

    log = SlidingLog([SandboxWindow(w.limit, w.seconds) for w in windows])
    times: list[float] = []
    now = 0.0
    while len(times) < count:
        verdict = log.admit("ideal", now)
        if verdict is None or verdict.admitted:
            times.append(now)
        else:  # never stall on float rounding at the instant a slot frees
            now = max(now + verdict.retry_after, math.nextafter(now, math.inf))
    return times


def binding_window(windows: Sequence[Window], count: int) -> Window:
    """The window that sets the sustained rate of a ``count``-request run: the slowest
    (least limit per second) among those the run can fill."""
    fillable = [w for w in windows if w.limit < count] or list(windows)
    return min(fillable, key=lambda w: w.limit / w.seconds)


def sustained_rate(arrivals: Sequence[float], window: Window) -> tuple[float, int]:
    """Admissions per second over the whole ``window`` periods from the first arrival (so a
    perfect client scores exactly ``limit / seconds``), and how many periods were measured."""
    if len(arrivals) < 2:
        return 0.0, 0
    start = arrivals[0]
    periods = math.floor((arrivals[-1] - start) / window.seconds)
    if periods < 1:
        return (len(arrivals) - 1) / (arrivals[-1] - start), 0
    end = start + periods * window.seconds
    inside = sum(1 for t in arrivals if t < end)
    return inside / (periods * window.seconds), periods


def scaled_windows(policy: str, time_scale: float) -> list[Window]:
    """A named sandbox policy's windows in real seconds, as the runner's limiter takes them."""
    return [Window(w.limit, w.seconds) for w in RateLimitPolicy.parse(policy).scaled(time_scale)]


# -- printing -------------------------------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}, "
        f"load average {load:.2f}, {time.strftime('%Y-%m-%d')}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/performance.md)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join([line, rule, *body])
