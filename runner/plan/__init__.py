"""What a run will do, before anything is sent: the plan, and everything that shapes it.

``model`` is the plan itself (a pure value: actions, skips, the budget verdict); ``local`` makes
it from a manifest (selection, ``--changed-since``, ``--shard``); ``remote`` completes it with
what only the API knows (query counts); ``planfile`` saves and checks it; ``shard`` and
``changes`` narrow it. Only ``remote`` talks to the API.
"""

from __future__ import annotations

from runner.plan.model import (
    Action,
    BudgetVerdict,
    Plan,
    Selection,
    Skip,
    actions_for,
    build_plan,
    model_counts,
)

__all__ = [
    "Action",
    "BudgetVerdict",
    "Plan",
    "Selection",
    "Skip",
    "actions_for",
    "build_plan",
    "model_counts",
]
