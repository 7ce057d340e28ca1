"""A run against the in-process sandbox, in virtual time, and the oracles that judge it."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from runner.api import MentionLabClient
from runner.clock import LoopClock
from runner.manifest.model import Endpoint
from runner.plan import Action, Plan
from runner.ratelimit import RateLimiter, Window
from runner.run.execute import RunOptions, RunSummary, execute, run_metadata, start_run
from runner.run.follow import FollowOptions
from runner.run.options import EngineOptions
from runner.run.target import Target
from runner.sandbox import Sandbox, SandboxConfig
from runner.store import ActionState, LeaseTimings, Store, is_postgres_url, open_store

from postgres_support import track

API_KEY = "ml_live_" + "test0123456789abcdef"
ORG = "0190c5a2-0000-7000-8000-000000000001"
DOCUMENTED = (Window(10, 1.0), Window(300, 60.0), Window(10_000, 3600.0))


def project_id(index: int, salt: str = "p") -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}-{index}"))


def job_actions(
    count: int, *, models: tuple[str, ...] = ("gpt-5-mini", "claude-haiku-4-5")
) -> list[Action]:
    return [
        Action(
            key=f"project-{i}/jobs/0",
            project=f"project-{i}",
            project_id=project_id(i),
            organisation=ORG,
            endpoint=Endpoint.JOBS,
            models=models,
            execution_count=1 + i % 3,
        )
        for i in range(count)
    ]


def cached_action(index: int) -> Action:
    return Action(
        key=f"project-{index}/cachedJobs",
        project=f"project-{index}",
        project_id=project_id(index),
        organisation=ORG,
        endpoint=Endpoint.CACHED_JOBS,
        models=("openai", "anthropic"),
        execution_count=2,
    )


@dataclass
class Harness:
    """One sandbox, one ledger, and runs against them."""

    tmp_path: Path
    config: SandboxConfig = field(default_factory=SandboxConfig)
    windows: tuple[Window, ...] = DOCUMENTED
    concurrency: int = 8
    engine: EngineOptions = field(default_factory=lambda: EngineOptions(settle_grace=60.0))
    follow: FollowOptions = field(default_factory=lambda: FollowOptions(timeout=4 * 3600.0))
    wait: bool = True
    server_epoch: float = 1_790_000_000.0
    client_epoch: float = 1_790_000_000.0
    seed: int = 7
    # Around the sandbox's transport, for the few cases the sandbox cannot express.
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None
    # Where the runs are recorded (the ``state`` fixture): None, a SQLite ledger in tmp_path.
    state: str | None = None
    lease: LeaseTimings = field(default_factory=LeaseTimings)

    def __post_init__(self) -> None:
        self.sandbox = Sandbox(self.config, clock=LoopClock(self.server_epoch))
        self.ledger = self.open_store()
        self.clock = LoopClock(self.client_epoch)
        self.run_id: str | None = None

    def open_store(self) -> Store:
        """The harness's state, opened as a writer: on PostgreSQL, holding a lease, as `mlrun
        apply` does (an intent is recorded only under one)."""
        if not is_postgres_url(self.state):
            return open_store(self.state or self.tmp_path / "ledger.sqlite")
        store = track(open_store(self.state, timings=self.lease))
        store.lock("harness")
        return store

    def client(self, api_key: str = API_KEY) -> MentionLabClient:
        transport = self.sandbox.transport()
        return MentionLabClient(
            api_key=api_key,
            base_url="https://api.mentionlab.io",
            transport=transport if self.wrap is None else self.wrap(transport),
        )

    def start(self, actions: list[Action]) -> str:
        plan = Plan(actions=tuple(actions), manifest_digest="test")
        self.run_id = start_run(
            self.ledger,
            plan,
            clock=self.clock,
            target=Target("https://api.mentionlab.io", API_KEY),
            meta=run_metadata({}),
        )
        return self.run_id

    def new_limiter(self) -> RateLimiter:
        """The run's limiter, built as `mlrun apply` builds it (a probe first, the slow start)."""
        return RateLimiter(
            list(self.windows), clock=self.clock, concurrency=self.concurrency, probe_first=True
        )

    async def run(
        self, actions: list[Action] | None = None, *, api_key: str = API_KEY
    ) -> RunSummary:
        if actions is not None:
            self.start(actions)
        assert self.run_id is not None
        limiter = self.new_limiter()
        async with self.client(api_key) as client:
            return await execute(
                run_id=self.run_id,
                client=client,
                limiter=limiter,
                ledger=self.ledger,
                clock=self.clock,
                rng=random.Random(self.seed),
                options=RunOptions(engine=self.engine, follow=self.follow, wait=self.wait),
            )

    # -- oracles ------------------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        return self.sandbox.truth()

    def triggers_by_project(self) -> Counter[str]:
        return Counter(t["projectId"] for t in self.truth()["triggers"])

    def states(self) -> dict[str, ActionState]:
        assert self.run_id is not None
        return {r.action.key: r.state for r in self.ledger.actions(self.run_id)}

    def assert_exactly_once(self, actions: list[Action]) -> None:
        """(a) nothing lost, (b) nothing duplicated, and the ledger's job ids are the server's."""
        assert self.run_id is not None
        truth = self.truth()["triggers"]
        per_project = Counter(t["projectId"] for t in truth)
        records = {r.action.key: r for r in self.ledger.actions(self.run_id)}
        for action in actions:
            record = records[action.key]
            created = per_project[action.project_id]
            if record.state == ActionState.UNKNOWN:
                assert created <= 1, f"{action.key}: {created} jobs created"
                continue
            assert record.state == ActionState.TRIGGERED, (
                f"{action.key}: {record.state} {record.detail}"
            )
            assert created == 1, f"{action.key}: {created} jobs created, want exactly 1"
            server_ids = next(t for t in truth if t["projectId"] == action.project_id)
            ids = (server_ids["jobId"] and [server_ids["jobId"]]) or server_ids["cachedJobIds"]
            assert list(record.job_ids) == ids, f"{action.key}: ledger {record.job_ids} vs {ids}"
