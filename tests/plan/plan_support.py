"""A strict world and its manifest, remote planning in virtual time, a sandbox on loopback."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.api import MentionLabClient
from runner.clock import LoopClock
from runner.manifest import load_manifest
from runner.plan import Action, Plan, Selection, Skip, build_plan
from runner.plan.planfile import PlanFile
from runner.plan.remote import ProjectProblem
from runner.ratelimit import RateLimiter, Window
from runner.run import preflight
from runner.run.execute import RunOptions, execute, run_metadata, start_run
from runner.run.follow import FollowOptions
from runner.run.options import EngineOptions
from runner.run.target import Target
from runner.sandbox import RateLimitPolicy, Sandbox, SandboxConfig, World
from runner.store import SqliteStore

KEY = "ml_live_" + "planner0123456789"
OTHER_KEY = "ml_live_" + "stranger0123456789"
ORG = "0190c5a2-0000-7000-8000-00000000000a"
OTHER_ORG = "0190c5a2-0000-7000-8000-00000000000b"
ACME = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
GLOBEX = "7d2e9b10-4c3a-4f5e-9a8b-1c2d3e4f5a6b"
INITECH = "c0ffee00-1234-4abc-8def-0123456789ab"  # exists, in the other organisation
GHOST = "0a6f3c1e-9d2b-4e8a-b7c5-3f1e2d4c6b8a"  # exists nowhere
API = "https://api.mentionlab.io"
DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))

WORLD = World.from_mapping(
    {
        "organisations": [
            {
                "id": ORG,
                "name": "Acme Corp",
                "apiKeys": [KEY],
                "projects": [
                    {"id": ACME, "name": "Acme", "queries": 5},
                    {"id": GLOBEX, "name": "Globex", "queries": 3},
                ],
            },
            {
                "id": OTHER_ORG,
                "name": "Initech",
                "apiKeys": [OTHER_KEY],
                "projects": [{"id": INITECH, "name": "Initech", "queries": 4}],
            },
        ]
    }
)

REACHABLE = f"""\
version: 1
defaults:
  organisation: {ORG}
projects:
  - name: acme
    id: {ACME}
    labels: {{team: growth}}
    jobs:
      - models: [gpt-5-mini, claude-haiku-4-5]
        executionCount: 2
    cachedJobs:
      models: [openai, anthropic]
  - name: globex
    id: {GLOBEX}
    labels: {{team: brand}}
    jobs:
      - models: [sonar]
        executionCount: 3
"""
# acme: 5 queries x (2 models x 2 + 2 providers x 1) = 30; globex: 3 x 1 x 3 = 9.
REACHABLE_TOTAL = 39

UNREACHABLE = f"""\
  - name: initech
    id: {INITECH}
    organisation: {OTHER_ORG}
    jobs:
      - models: [gpt-5-mini]
  - name: ghost
    id: {GHOST}
    jobs:
      - models: [gpt-5-mini]
"""


def write_manifest(
    directory: Path, *, unreachable: bool = False, budget: int | None = None
) -> Path:
    text = REACHABLE + (UNREACHABLE if unreachable else "")
    if budget is not None:
        text += f"settings:\n  budget: {{maxExecutions: {budget}}}\n"
    path = directory / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def strict_sandbox(**config: Any) -> Sandbox:
    return Sandbox(SandboxConfig(world=WORLD, **config), clock=LoopClock())


def client(sandbox: Sandbox, api_key: str = KEY) -> MentionLabClient:
    return MentionLabClient(api_key=api_key, base_url=API, transport=sandbox.transport())


async def remote_plan(
    sandbox: Sandbox, manifest: Path, *, api_key: str = KEY, selection: Selection | None = None
) -> PlanFile:
    """What ``plan_only`` computes, against an in-process sandbox in virtual time."""
    loaded = load_manifest([manifest], env={})
    plan = build_plan(loaded.manifest, selection)
    clock = LoopClock()
    limiter = RateLimiter(list(DOCUMENTED), clock=clock, concurrency=8)
    async with client(sandbox, api_key) as api:
        planned, facts = await preflight.remote_plan(
            plan, offline=False, client=api, limiter=limiter, clock=clock
        )
    return PlanFile(
        plan=planned,
        created_at=datetime.now(UTC),
        manifest_files=(str(manifest),),
        base_url=API,
        problems=facts.problems,
    )


async def run_plan(sandbox: Sandbox, plan: Plan, ledger_path: Path) -> None:
    """Apply ``plan`` to ``sandbox`` (no following: totals are fixed when a job is created)."""
    clock = LoopClock()
    limiter = RateLimiter(list(DOCUMENTED), clock=clock, concurrency=8)
    with SqliteStore.open(ledger_path) as ledger:
        run_id = start_run(
            ledger, plan, clock=clock, target=Target(API, KEY), meta=run_metadata({})
        )
        async with client(sandbox) as api:
            await execute(
                run_id=run_id,
                client=api,
                limiter=limiter,
                ledger=ledger,
                clock=clock,
                rng=random.Random(3),
                options=RunOptions(
                    engine=EngineOptions(settle_grace=60.0),
                    follow=FollowOptions(timeout=600.0),
                    wait=False,
                ),
            )


def trigger_requests(truth: dict[str, Any]) -> int:
    paths = truth["paths"]
    return int(
        paths.get("POST /api/jobs/trigger", 0) + paths.get("POST /api/cached-jobs/trigger", 0)
    )


def synthetic_plan_file(projects: int, *, problems: int = 0, offline: bool = False) -> PlanFile:
    """A large plan, built directly: ``projects`` projects with two actions each."""
    actions = []
    for index in range(projects):
        name = f"project-{index:05d}"
        for endpoint, models in (
            ("jobs", ("gpt-5-mini", "claude-haiku-4-5", "gemini-2.5-flash")),
            ("cachedJobs", ("openai", "anthropic")),
        ):
            actions.append(
                Action.from_json(
                    {
                        "key": f"{name}/{endpoint}",
                        "project": name,
                        "projectId": f"00000000-0000-4000-8000-{index:012d}",
                        "organisation": ORG,
                        "endpoint": endpoint,
                        "models": list(models),
                        "executionCount": 1 + index % 3,
                        "queries": None if offline else 1 + index % 12,
                    }
                )
            )
    lost = ((f"lost-{i}", f"00000000-0000-4000-9000-{i:012d}") for i in range(problems))
    bad = tuple(
        ProjectProblem(name, pid, "not_found", f"project {pid} does not exist for this key")
        for name, pid in lost
    )
    plan = Plan(
        actions=tuple(actions),
        manifest_digest="ab" * 32,
        skipped=tuple(Skip(p.project, p.message) for p in bad),
    )
    return PlanFile(
        plan=plan,
        created_at=datetime.now(UTC),
        manifest_files=("manifests/",),
        base_url=API,
        offline=offline,
        problems=bad,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(sandbox_config: SandboxConfig) -> Iterator[tuple[str, Sandbox]]:
    """``sandbox_config`` served by uvicorn on loopback in a thread: (base URL, its sandbox)."""
    import uvicorn  # noqa: PLC0415 - only the served tests need it

    sandbox = Sandbox(sandbox_config)
    port = free_port()
    config = uvicorn.Config(
        sandbox.app, host="127.0.0.1", port=port, log_level="error", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", sandbox
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def strict_served_config() -> SandboxConfig:
    return SandboxConfig(world=WORLD, rate_limits=RateLimitPolicy.parse("off"), time_scale=600.0)
