"""The decisions a shared run takes once for all its shards, on each backend."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from runner.errors import BudgetExceeded
from runner.plan import Plan
from runner.run.shared import BUDGET_CHECKED, BUDGET_REFUSED, decide_budget
from runner.store import Store, open_store

from harness import job_actions

RUN = "20250615T000000Z-shared"
ACTIONS = tuple(job_actions(6))


def _counted(queries: int, budget: int | None = None) -> Plan:
    """The whole plan as a shard counted it: every project with ``queries`` queries."""
    actions = tuple(replace(action, queries=queries) for action in ACTIONS)
    return Plan(actions, "d", max_executions=budget)


def _decisions(store: Store) -> list[str]:
    return [kind for _at, kind, _key, _detail in store.events(RUN) if kind.startswith("budget")]


def _with_run(store: Store) -> None:
    store.create_run(RUN, Plan(ACTIONS, "d"), base_url="x", meta={}, now=1.0, run_key="k")


def test_the_first_decision_stands_and_a_later_shard_records_nothing(store: Store) -> None:
    _with_run(store)
    decide_budget(store, RUN, _counted(3), allow_unknown_cost=False, now=2.0)
    decide_budget(store, RUN, _counted(5), allow_unknown_cost=False, now=3.0)  # counted later
    assert _decisions(store) == [BUDGET_CHECKED]
    assert store.run(RUN).plan == _counted(3)


def test_a_refusal_stands_for_the_shards_that_decide_after_it(store: Store) -> None:
    _with_run(store)
    over = _counted(3, budget=10)
    with pytest.raises(BudgetExceeded, match="over the budget"):
        decide_budget(store, RUN, over, allow_unknown_cost=False, now=2.0)
    with pytest.raises(BudgetExceeded, match="another shard found the whole plan over"):
        decide_budget(store, RUN, _counted(1, budget=10), allow_unknown_cost=False, now=3.0)
    assert _decisions(store) == [BUDGET_REFUSED]
    assert store.run(RUN).plan == Plan(ACTIONS, "d")  # a refused plan is not recorded


def test_shards_deciding_at_the_same_moment_decide_once(store: Store, state: str) -> None:
    _with_run(store)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def shard(queries: int) -> None:
        with open_store(state) as own:
            barrier.wait()
            try:
                decide_budget(own, RUN, _counted(queries), allow_unknown_cost=False, now=2.0)
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)

    threads = [threading.Thread(target=shard, args=(q,)) for q in (2, 3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert _decisions(store) == [BUDGET_CHECKED]
    assert store.run(RUN).plan in {_counted(q) for q in (2, 3, 4, 5)}
