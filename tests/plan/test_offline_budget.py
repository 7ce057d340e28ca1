"""Without the query counts, the budget is checked at its lower bound and never guessed past.

``--offline`` (or a saved plan made offline) knows every action's models and counts but not its
project's queries: each project has at least one, so the plan costs at least that much.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner.manifest.model import Endpoint
from runner.plan import Action, Plan

from chaos.chaos_support import write_manifest
from subprocesses import ServedSandbox, start_served_sandbox
from subprocesses import run_mlrun as mlrun

actions_strategy = st.lists(
    st.builds(
        Action,
        key=st.uuids().map(str),
        project=st.sampled_from(["a", "b", "c"]),
        project_id=st.just("p"),
        organisation=st.none(),
        endpoint=st.just(Endpoint.JOBS),
        models=st.lists(st.sampled_from(["m1", "m2", "m3"]), min_size=1, max_size=3).map(tuple),
        execution_count=st.integers(1, 5),
        queries=st.one_of(st.none(), st.integers(1, 50)),
    ),
    max_size=12,
)


@given(actions=actions_strategy, limit=st.integers(0, 400), extra=st.integers(0, 49))
def test_the_lower_bound_never_exceeds_what_the_counts_turn_out_to_be(
    actions: list[Action], limit: int, extra: int
) -> None:
    plan = Plan(tuple(actions), "d", max_executions=limit)
    verdict = plan.budget()
    # Any query counts the unknown projects turn out to have (at least one each).
    completed = tuple(
        a if a.queries is not None else replace(a, queries=1 + extra) for a in actions
    )
    known = Plan(completed, "d", max_executions=limit)
    total = known.budget().total
    assert total is not None
    assert verdict.at_least <= total
    if verdict.refused:
        assert known.budget().refused  # refused at the bound: refused whatever the counts are
    if verdict.total is not None:
        assert verdict.at_least == verdict.total
        assert not verdict.uncertain
    else:
        assert verdict.uncertain == (not verdict.refused)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSandbox]:
    with start_served_sandbox(tmp_path / "sandbox", seed=3) as sandbox:
        yield sandbox


def _manifest(path: Path, budget: int) -> None:
    write_manifest(path, projects=10, salt="offline-budget")
    budget_line = f"settings:\n  budget: {{maxExecutions: {budget}}}\n"
    path.write_text(path.read_text().replace("settings:\n", budget_line))


@pytest.mark.slow
def test_offline_over_the_budget_even_at_one_query_per_project_exits_4_sending_nothing(
    tmp_path: Path, served: ServedSandbox
) -> None:
    _manifest(tmp_path / "m.yaml", budget=5)
    result = mlrun("apply", "m.yaml", "--offline", "--no-wait", cwd=tmp_path, env=served.env())
    assert result.returncode == 4, result.stderr
    assert "even at one query per project, the plan needs at least" in result.stderr
    assert served.truth()["requests"] == 0


@pytest.mark.slow
def test_offline_with_a_budget_it_might_exceed_needs_the_counts_or_a_flag(
    tmp_path: Path, served: ServedSandbox
) -> None:
    _manifest(tmp_path / "m.yaml", budget=100)
    args = ("apply", "m.yaml", "--offline", "--no-wait")
    refused = mlrun(*args, cwd=tmp_path, env=served.env())
    assert refused.returncode == 4, refused.stderr
    assert "--allow-unknown-cost" in refused.stderr
    assert served.truth()["requests"] == 0
    allowed = mlrun(*args, "--allow-unknown-cost", cwd=tmp_path, env=served.env())
    assert allowed.returncode == 0, allowed.stderr
    assert len(served.truth()["triggers"]) == 13
