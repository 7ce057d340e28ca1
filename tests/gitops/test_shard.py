"""``--shard i/n``: a deterministic, stable partition by project, on 1/n of the rate budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.clock import SystemClock
from runner.errors import BudgetExceeded, UsageError
from runner.manifest.model import Endpoint, RateLimits, Settings
from runner.plan import Action, Plan
from runner.plan.shard import Shard, shard_of, shard_plan, shard_rate_limits, shard_settings
from runner.run.apply import ApplyRequest, load_plan
from runner.run.wiring import make_limiter

from .gitops_support import manifest, mlrun, project


def _actions(names: list[str], per_project: int = 2) -> tuple[Action, ...]:
    return tuple(
        Action(
            key=f"{name}/jobs/{i}",
            project=name,
            project_id=f"id-{name}",
            organisation=None,
            endpoint=Endpoint.JOBS,
            models=("gpt-5-mini",),
            execution_count=1,
        )
        for name in names
        for i in range(per_project)
    )


def _plan(names: list[str], *, budget: int | None = None, queries: int | None = None) -> Plan:
    actions = tuple(Action(**{**a.__dict__, "queries": queries}) for a in _actions(names))
    return Plan(actions=actions, manifest_digest="d", max_executions=budget)


NAMES = [f"project-{i:04d}" for i in range(500)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 16, 33, 64, 256])
def test_shards_are_disjoint_and_cover_every_action(count: int) -> None:
    plan = _plan(NAMES)
    parts = [shard_plan(plan, Shard(i, count)).actions for i in range(1, count + 1)]
    keys = [a.key for part in parts for a in part]
    assert len(keys) == len(set(keys))  # disjoint
    assert set(keys) == {a.key for a in plan.actions}  # covering
    for part in parts:  # all actions of a project stay in one shard
        for action in part:
            assert all(a in part for a in plan.actions if a.project == action.project)


@given(
    st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=60, unique=True),
    st.integers(min_value=1, max_value=40),
)
def test_partition_property(names: list[str], count: int) -> None:
    plan = _plan(names)
    parts = [shard_plan(plan, Shard(i, count)).actions for i in range(1, count + 1)]
    assert sorted(a.key for p in parts for a in p) == sorted(a.key for a in plan.actions)


def test_the_shards_are_roughly_even() -> None:
    sizes = [len(shard_plan(_plan(NAMES), Shard(i, 4)).actions) for i in range(1, 5)]
    assert min(sizes) > 0.7 * (len(NAMES) * 2 / 4)


@pytest.mark.parametrize("count", [2, 3, 8])
def test_adding_a_project_does_not_move_the_others(count: int) -> None:
    before = {name: shard_of(name, count) for name in NAMES}
    grown = [*NAMES[:200], "a-new-project", *NAMES[200:]]
    after = {name: shard_of(name, count) for name in grown}
    assert all(after[name] == shard for name, shard in before.items())


def test_the_partition_is_the_same_on_every_machine() -> None:
    # SHA-256 of the name, not Python's salted hash(): pinned values, so a change is noticed.
    names = ("acme-eu", "acme-us", "globex", "eu-retail", "eu-travel")
    assert [shard_of(name, 4) for name in names] == [1, 4, 4, 4, 3]


def test_every_window_is_floor_divided_and_at_least_one() -> None:
    limits = RateLimits(per_second=10, per_minute=300, per_hour=10_000)
    assert shard_rate_limits(limits, 4) == RateLimits(2, 75, 2_500)
    assert shard_rate_limits(limits, 3) == RateLimits(3, 100, 3_333)
    assert shard_rate_limits(limits, 20) == RateLimits(1, 15, 500)
    assert shard_rate_limits(RateLimits(10, None, None), 2) == RateLimits(5, None, None)


def test_n_shards_together_stay_within_every_window() -> None:
    limits = RateLimits(per_second=10, per_minute=300, per_hour=10_000)
    for count in range(1, 11):
        part = shard_rate_limits(limits, count)
        for (whole, _), (share, _) in zip(limits.windows(), part.windows(), strict=True):
            assert share * count <= whole


def test_the_limiter_of_a_shard_uses_the_divided_windows() -> None:
    settings = shard_settings(Settings(), Shard(1, 4))
    limiter = make_limiter(settings, SystemClock(), None)
    assert sorted((w.limit, w.seconds) for w in limiter.windows) == [
        (2, 1.0),
        (75, 60.0),
        (2_500, 3600.0),
    ]


def test_load_plan_splits_the_plan_and_divides_the_windows(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(manifest(*(project(f"p{i}", i) for i in range(12))))
    whole, _ = load_plan(ApplyRequest(paths=(str(path),)))
    parts = [load_plan(ApplyRequest(paths=(str(path),), shard=Shard(i, 3))) for i in range(1, 4)]
    assert sorted(a.key for plan, _ in parts for a in plan.actions) == sorted(
        a.key for a in whole.actions
    )
    assert all(settings.rate_limits == RateLimits(3, 100, 3_333) for _, settings in parts)
    assert all(any(n.startswith("shard ") for n in plan.notes) for plan, _ in parts)


def test_an_unknown_cost_shares_the_execution_budget() -> None:
    part = shard_plan(_plan(NAMES, budget=1_000), Shard(1, 3))
    assert part.max_executions == 333


def test_a_known_cost_is_checked_whole_before_the_split() -> None:
    within = _plan(NAMES, budget=1_000, queries=1)  # 1,000 actions × 1 execution
    assert shard_plan(within, Shard(2, 4)).max_executions == 1_000
    over = _plan(NAMES, budget=999, queries=1)
    with pytest.raises(BudgetExceeded):
        shard_plan(over, Shard(2, 4))


def test_more_shards_than_a_window_allows_is_noted() -> None:
    part = shard_plan(_plan(NAMES), Shard(1, 12), RateLimits(10, 300, 10_000))
    assert any("12 shards exceed a rate window of 10" in note for note in part.notes)


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "2", "1/257", "-1/4"])
def test_bad_shard_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Shard.parse(text)


@pytest.mark.slow
def test_the_cli_plans_one_shard(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest(*(project(f"p{i}", i) for i in range(10))))
    keys: list[str] = []
    for index in (1, 2):
        result = mlrun(
            "plan",
            "m.yaml",
            "--offline",
            "--shard",
            f"{index}/2",
            "--format",
            "json",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        keys += [a["key"] for a in json.loads(result.stdout)["plan"]["actions"]]
        assert f"note: shard {index}/2:" in result.stderr
    assert sorted(keys) == sorted(f"p{i}/jobs/0" for i in range(10))
    bad = mlrun("plan", "m.yaml", "--offline", "--shard", "3/2", cwd=tmp_path)
    assert bad.returncode == 2
    assert "the index must be 1 to 2" in bad.stderr


@pytest.mark.slow
def test_a_saved_plan_is_applied_shard_by_shard_on_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(manifest(*(project(f"p{i}", i) for i in range(6))))
    planned = mlrun("plan", "m.yaml", "--sandbox", "-o", "plan.json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    keys: list[str] = []
    for index in (1, 2):
        result = mlrun(
            "apply",
            "plan.json",
            "--sandbox",
            "--time-scale",
            "600",
            "--shard",
            f"{index}/2",
            "--report-dir",
            f"r{index}",
            "--no-progress",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        (report,) = (tmp_path / f"r{index}").glob("*/report.json")
        keys += [a["key"] for a in json.loads(report.read_text())["actions"]]
    assert sorted(keys) == sorted(f"p{i}/jobs/0" for i in range(6))
