"""Benchmark: `mlrun plan`, remote (requests per project) and offline (wall time).

Run from the repository root:  python benchmarks/bench_plan.py [--remote 1000] [--offline 5000]

1. Remote: the plan of a ``--remote``-project manifest against the in-process sandbox, through
   the production path (``runner.run.apply._prepare``: the run's limiter, the documented limits), in
   virtual time (trio's MockClock). The sandbox's ground truth counts the requests: at most one
   per project (the queries list with ``limit=1`` gives the count; no pages are needed).
2. Offline: the whole ``mlrun plan --offline -o plan.json --format markdown`` of a
   ``--offline``-project manifest, in fresh processes as a user or CI runs it (start-up, loading
   and validating the manifest, the plan, its Markdown and the saved file). Target:
   the median of ``--runs`` runs under a second. The steps after loading are also timed in
   process, for information.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
from runner.api import MentionLabClient
from runner.clock import LoopClock
from runner.manifest import Manifest, load_manifest
from runner.plan import build_plan
from runner.plan.planfile import PlanFile, write_plan_file
from runner.ratelimit import RateLimiter, Window
from runner.report.plan import render_plan_markdown, render_plan_text
from runner.run import preflight
from runner.sandbox import Sandbox, SandboxConfig
from trio.testing import MockClock

from bench_validate import generate, mlrun_command
from served import machine

OFFLINE_SECONDS = 1.0
DOCUMENTED = [Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0)]


async def remote_plan(manifest: Path) -> tuple[int, int, int, float]:
    """(projects, requests the sandbox received, trigger requests, virtual seconds)."""
    plan = build_plan(load_manifest([manifest]).manifest)
    sandbox = Sandbox(SandboxConfig(), clock=LoopClock())
    clock = LoopClock()
    limiter = RateLimiter(DOCUMENTED, clock=clock, concurrency=8, probe_first=True)  # as apply
    started = anyio.current_time()
    async with MentionLabClient(
        api_key="ml_live_bench", base_url="https://api.mentionlab.io", transport=sandbox.transport()
    ) as client:
        planned, facts = await preflight.remote_plan(
            plan, offline=False, client=client, limiter=limiter, clock=clock
        )
    assert not facts.problems, facts.problems[:3]
    assert all(a.queries is not None for a in planned.actions)
    truth = sandbox.truth()
    triggers = sum(n for path, n in truth["paths"].items() if path.endswith("/trigger"))
    projects = len({a.project for a in plan.actions})
    return projects, truth["requests"], triggers, anyio.current_time() - started


def bench_remote(directory: Path, projects: int) -> bool:
    manifest = directory / f"remote-{projects}.yaml"
    manifest.write_text(generate(projects))
    wall = time.perf_counter()
    planned, requests, triggers, virtual = anyio.run(
        remote_plan,
        manifest,
        backend="trio",
        backend_options={"clock": MockClock(autojump_threshold=0)},
    )
    wall = time.perf_counter() - wall
    print(
        f"remote plan, {planned:,} projects: {requests:,} requests "
        f"({requests / planned:.2f} per project), {triggers} triggers; "
        f"{virtual:,.1f} s of (virtual) API time under the documented limits, "
        f"{wall:.2f} s wall"
    )
    return requests <= planned and triggers == 0


def bench_offline(directory: Path, projects: int, runs: int) -> bool:
    """The plan proper (manifest loaded -> plan -> Markdown -> saved file), then the whole CLI;
    the target is the whole CLI's median."""
    manifest = directory / f"offline-{projects}.yaml"
    manifest.write_text(generate(projects))
    loaded = load_manifest([manifest]).manifest
    steps = [plan_steps(loaded, directory) for _ in range(runs)]
    median = statistics.median(sum(step.values()) for step in steps)
    detail = ", ".join(
        f"{name} {statistics.median(s[name] for s in steps):.3f} s" for name in steps[0]
    )
    print(
        f"offline plan, {projects:,} projects, the steps after loading, in process: median "
        f"{median:.3f} s over {runs} runs ({detail})"
    )
    command = [*mlrun_command(), "plan", str(manifest), "--offline", "--format", "markdown"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [*command, "-o", str(directory / "plan.json")],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return False
    whole = statistics.median(times)
    print(
        f"  the whole command, fresh process (start-up + load and validate the manifest + the "
        f"above): median {whole:.2f} s over {runs} runs (min {min(times):.2f}, max "
        f"{max(times):.2f}); Markdown {len(result.stdout):,} chars; target < {OFFLINE_SECONDS} s"
    )
    return whole < OFFLINE_SECONDS


def plan_steps(manifest: Manifest, directory: Path) -> dict[str, float]:
    """Seconds per step of an offline plan once the manifest is loaded."""
    marks = [time.perf_counter()]
    plan = build_plan(manifest)
    marks.append(time.perf_counter())
    saved = PlanFile(plan, datetime.now(UTC), ("manifest.yaml",), None, offline=True)
    render_plan_markdown(saved, full_plan_hint="plan.json")
    marks.append(time.perf_counter())
    render_plan_text(saved)
    marks.append(time.perf_counter())
    write_plan_file(directory / "plan-in-process.json", saved)
    marks.append(time.perf_counter())
    names = ("build_plan", "markdown", "text", "save")
    return {name: b - a for name, a, b in zip(names, marks, marks[1:], strict=False)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--remote", type=int, default=1_000, help="projects planned remotely")
    parser.add_argument("--offline", type=int, default=5_000, help="projects planned offline")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes for the offline plan")
    args = parser.parse_args()
    print(f"# bench_plan: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        remote_ok = bench_remote(directory, args.remote)
        offline_ok = bench_offline(directory, args.offline, args.runs)
    if not remote_ok:
        print("FAIL: more than one request per project, or a trigger was sent", file=sys.stderr)
    if not offline_ok:
        print(
            f"FAIL: the whole offline plan command took {OFFLINE_SECONDS} s or more (median)",
            file=sys.stderr,
        )
    return 0 if remote_ok and offline_ok else 1


if __name__ == "__main__":
    sys.exit(main())
