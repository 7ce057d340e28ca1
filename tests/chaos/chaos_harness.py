"""The in-process harness (tests/harness.py) with what the chaos scenarios also need to see.

:class:`ChaosHarness` keeps the run's limiter (its stats: pauses, capped Retry-Afters) and can
run the engine under a cancel scope, so a test can abandon a run at a chosen point and resume
it with a fresh engine over the same ledger, as a killed process would be.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from runner.plan import Action
from runner.ratelimit import RateLimiter
from runner.report import build_report
from runner.store import ActionState

from harness import Harness

TERMINAL_REPORT = {"OK", "FAILED", "PARTIAL", "UNKNOWN", "TIMEOUT"}


@dataclass
class ChaosHarness(Harness):
    """A harness whose last limiter is kept, and whose runs can be cut short."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.limiter: RateLimiter | None = None

    def new_limiter(self) -> RateLimiter:
        self.limiter = RateLimiter(
            list(self.windows),
            clock=self.clock,
            concurrency=self.concurrency,
            random=random.Random(self.seed).random,
            probe_first=True,  # as `mlrun apply` does
        )
        return self.limiter

    async def run_until(
        self, stop: Callable[[], bool], actions: list[Action] | None = None
    ) -> bool:
        """Run, abandoning the run (cancelled like a dying process) once ``stop()`` holds.

        Returns whether it was abandoned before finishing."""
        abandoned = False

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal abandoned
            while not stop():
                await anyio.sleep(0.001)
            abandoned = True
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(watch, group.cancel_scope)
            await self.run(actions)
            group.cancel_scope.cancel()
        return abandoned

    # -- oracles ------------------------------------------------------------------------------

    def report_json(self) -> dict[str, Any]:
        assert self.run_id is not None
        data: dict[str, Any] = build_report(self.ledger, self.run_id, env={}).to_json()
        return data

    def duplicates(self) -> int:
        per_project = Counter(t["projectId"] for t in self.truth()["triggers"])
        return sum(n - 1 for n in per_project.values() if n > 1)

    def lost(self, actions: list[Action]) -> int:
        """Actions reported triggered (or OK) that the sandbox never created, plus actions the
        sandbox never created and that are not reported as failed, unknown or skipped."""
        created = Counter(t["projectId"] for t in self.truth()["triggers"])
        states = self.states()
        settled_without_job = {ActionState.FAILED, ActionState.UNKNOWN, ActionState.SKIPPED}
        return sum(
            1
            for action in actions
            if created[action.project_id] == 0 and states[action.key] not in settled_without_job
        )

    def assert_report_matches_truth(self) -> dict[str, int]:
        """Action by action, the report's job ids and totals are the sandbox's; returns the
        outcome counts."""
        truth = self.truth()["triggers"]
        by_project = {t["projectId"]: t for t in truth}
        report = self.report_json()
        for action in report["actions"]:
            project_id = action["asked"]["projectId"]
            done = action["done"]
            created = by_project.get(project_id)
            if done["state"] == "triggered":
                assert created is not None, f"{action['key']}: reported triggered, never created"
                assert done["jobIds"] == [created["jobId"]], action["key"]
                assert done["counters"]["total"] == created["totalExecutions"], action["key"]
            else:
                assert done["state"] in {"unknown", "failed"}, (action["key"], done["state"])
                assert action["outcome"] in {"UNKNOWN", "FAILED"}, action["key"]
        return dict(Counter(a["outcome"] for a in report["actions"]))

    def assert_statuses_true(self) -> int:
        """Every followed job's final status (and counters) equals the sandbox's; returns how
        many were compared."""
        assert self.run_id is not None
        compared = 0
        for job in self.ledger.jobs(self.run_id):
            true = self.sandbox.job(job.job_id)
            assert job.status == true["status"], (job.job_id, job.status, true["status"])
            assert job.counters["success"] == true["successExecutions"], job.job_id
            compared += 1
        return compared
