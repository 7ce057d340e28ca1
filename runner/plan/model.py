"""Manifest -> plan: the pure list of actions a run will perform.

A plan is a value: frozen dataclasses, no I/O. ``mlrun plan`` prints it, ``mlrun apply`` consumes
it, the ledger stores it, and a saved plan file is its JSON form. Query counts come from outside
(the remote-aware planner asks the API); without them expected executions are unknown, and the plan
says so instead of guessing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from runner.errors import UsageError
from runner.manifest.model import Endpoint, Manifest, Project

if TYPE_CHECKING:  # runner.plan.changes builds on this module
    from runner.plan.changes import PlanChanges


@dataclass(frozen=True)
class Action:
    """One trigger call: a project, an endpoint, its models and execution count."""

    key: str  # stable across runs and manifest edits elsewhere: "<project>/jobs/<i>"
    project: str
    project_id: str
    organisation: str | None
    endpoint: Endpoint
    models: tuple[str, ...]
    execution_count: int
    queries: int | None = None  # the project's query count, when known

    @property
    def expected_executions(self) -> int | None:
        """queries × models × executionCount, or None while the query count is unknown."""
        if self.queries is None:
            return None
        return self.queries * len(self.models) * self.execution_count

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "project": self.project,
            "projectId": self.project_id,
            "organisation": self.organisation,
            "endpoint": str(self.endpoint),
            "models": list(self.models),
            "executionCount": self.execution_count,
            "queries": self.queries,
            "expectedExecutions": self.expected_executions,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            key=str(data["key"]),
            project=str(data["project"]),
            project_id=str(data["projectId"]),
            organisation=data.get("organisation"),
            endpoint=Endpoint(data["endpoint"]),
            models=tuple(data["models"]),
            execution_count=int(data["executionCount"]),
            queries=data.get("queries"),
        )


@dataclass(frozen=True)
class Skip:
    """A project the plan will not trigger, and why.

    ``error``: the manifest asked for it but it could not be planned (unknown to the key, the
    API unreachable): the run then did not do what was asked.
    """

    project: str
    reason: str
    error: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"project": self.project, "reason": self.reason}
        if self.error:
            data["error"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Skip:
        return cls(str(data["project"]), str(data["reason"]), bool(data.get("error", False)))


@dataclass(frozen=True)
class BudgetVerdict:
    """How the plan compares with ``settings.budget.maxExecutions``.

    ``total`` is None while some query counts are unknown; ``at_least`` then counts each of
    those projects as one query (a project has at least one, or its trigger runs nothing), so a
    plan over the budget even at that lower bound is refused without its counts.
    """

    limit: int | None
    total: int | None  # None: some query counts are unknown
    heaviest: tuple[tuple[str, int], ...] = ()
    at_least: int = 0  # the lower bound: unknown query counts taken as one

    @property
    def refused(self) -> bool:
        return self.limit is not None and self._floor > self.limit

    @property
    def uncertain(self) -> bool:
        """A budget is set, the cost is unknown, and it could be over the budget."""
        return self.limit is not None and self.total is None and not self.refused

    @property
    def over_by(self) -> int:
        if self.limit is None:
            return 0
        return max(0, self._floor - self.limit)

    @property
    def _floor(self) -> int:
        return self.at_least if self.total is None else self.total

    def message(self) -> str:
        if self.refused:
            return self._refusal()
        if self.uncertain:
            return (
                f"the plan needs at least {self.at_least:,} executions (one query per project "
                f"whose query count is unknown), and could need more than the budget of "
                f"{self.limit:,} (settings.budget.maxExecutions)"
            )
        return "within budget"

    def _refusal(self) -> str:
        weights = ", ".join(f"{name} ({count:,})" for name, count in self.heaviest)
        heaviest = f"; heaviest projects: {weights}" if weights else ""
        needs = (
            f"the plan needs {self.total:,} executions"
            if self.total is not None
            else f"even at one query per project, the plan needs at least {self.at_least:,} "
            "executions"
        )
        return (
            f"{needs}, {self.over_by:,} over the budget of {self.limit:,} "
            f"(settings.budget.maxExecutions){heaviest}"
        )


@dataclass(frozen=True)
class Plan:
    """Everything a run will trigger, in order."""

    actions: tuple[Action, ...]
    manifest_digest: str
    skipped: tuple[Skip, ...] = ()
    max_executions: int | None = None
    notes: tuple[str, ...] = field(default=())
    changes: PlanChanges | None = None  # with --changed-since: what changed since the ref

    # The totals are computed once per plan (a value: its actions never change); every renderer
    # and the exit code ask for them, several times, and a plan may hold 20,000 actions.
    @cached_property
    def total_expected(self) -> int | None:
        counts = [a.expected_executions for a in self.actions]
        if None in counts:
            return None
        return sum(c for c in counts if c is not None)

    def per_project(self) -> dict[str, int | None]:
        return dict(self._per_project)

    @cached_property
    def _per_project(self) -> dict[str, int | None]:
        return _sum_by((a.project, a.expected_executions) for a in self.actions)

    def per_model(self) -> dict[str, int | None]:
        return _sum_by(
            (model, None if action.queries is None else action.queries * action.execution_count)
            for action in self.actions
            for model in action.models
        )

    def budget(self) -> BudgetVerdict:
        return self._budget

    @cached_property
    def _budget(self) -> BudgetVerdict:
        per_project = self._per_project
        known = [(name, count) for name, count in per_project.items() if count is not None]
        heaviest = tuple(sorted(known, key=lambda item: (-item[1], item[0]))[:3])
        at_least = sum(
            (1 if a.queries is None else a.queries) * len(a.models) * a.execution_count
            for a in self.actions
        )
        return BudgetVerdict(self.max_executions, self.total_expected, heaviest, at_least)

    def with_query_counts(self, counts: Mapping[str, int]) -> Plan:
        """The same plan with each action's query count filled in from ``counts`` (by project)."""
        actions = tuple(replace(a, queries=counts.get(a.project, a.queries)) for a in self.actions)
        return replace(self, actions=actions)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "manifestDigest": self.manifest_digest,
            "maxExecutions": self.max_executions,
            "actions": [a.to_json() for a in self.actions],
            "skipped": [s.to_json() for s in self.skipped],
            "notes": list(self.notes),
        }
        if self.changes is not None:
            data["changedSince"] = self.changes.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        from runner.plan.changes import PlanChanges  # noqa: PLC0415 - it imports this module

        changed_since = data.get("changedSince")
        return cls(
            actions=tuple(Action.from_json(a) for a in data["actions"]),
            manifest_digest=str(data["manifestDigest"]),
            skipped=tuple(Skip.from_json(s) for s in data.get("skipped", [])),
            max_executions=data.get("maxExecutions"),
            notes=tuple(data.get("notes", [])),
            changes=None if changed_since is None else PlanChanges.from_json(changed_since),
        )


def _sum_by(pairs: Iterable[tuple[str, int | None]]) -> dict[str, int | None]:
    totals: dict[str, int | None] = {}
    for name, count in pairs:
        current = totals.get(name, 0)
        totals[name] = None if current is None or count is None else current + count
    return totals


def actions_for(project: Project) -> list[Action]:
    """The actions one project asks for, with stable keys."""
    actions = [
        Action(
            key=f"{project.name}/jobs/{index}",
            project=project.name,
            project_id=project.id,
            organisation=project.organisation,
            endpoint=Endpoint.JOBS,
            models=spec.models,
            execution_count=spec.execution_count,
        )
        for index, spec in enumerate(project.jobs)
    ]
    if project.cached_jobs is not None:
        actions.append(
            Action(
                key=f"{project.name}/cachedJobs",
                project=project.name,
                project_id=project.id,
                organisation=project.organisation,
                endpoint=Endpoint.CACHED_JOBS,
                models=project.cached_jobs.models,
                execution_count=project.cached_jobs.execution_count,
            )
        )
    return actions


@dataclass(frozen=True)
class Selection:
    """``--select`` / ``--exclude`` terms: a project name or ``label=value``."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def matches(self, project: Project) -> bool:
        if self.include and not any(_term_matches(t, project) for t in self.include):
            return False
        return not any(_term_matches(t, project) for t in self.exclude)

    def check_terms(self, manifest: Manifest) -> None:
        """A name that matches no project is a usage error, not an empty run."""
        for term in (*self.include, *self.exclude):
            if not any(_term_matches(term, p) for p in manifest.projects):
                names = ", ".join(p.name for p in manifest.projects[:10])
                raise UsageError(f"--select/--exclude {term!r} matches no project (have: {names})")


def _term_matches(term: str, project: Project) -> bool:
    if "=" in term:
        label, _, value = term.partition("=")
        return project.labels.get(label.strip()) == value.strip()
    return project.name == term


def build_plan(manifest: Manifest, selection: Selection | None = None) -> Plan:
    """The plan of a manifest: every selected project's actions, in manifest order."""
    selection = selection or Selection()
    selection.check_terms(manifest)
    actions: list[Action] = []
    skipped: list[Skip] = []
    for project in manifest.projects:
        if selection.matches(project):
            actions.extend(actions_for(project))
        else:
            skipped.append(Skip(project.name, "not selected"))
    return Plan(
        actions=tuple(actions),
        manifest_digest=manifest.digest,
        skipped=tuple(skipped),
        max_executions=manifest.settings.max_executions,
    )


def model_counts(actions: Sequence[Action]) -> Counter[str]:
    """How many actions use each model."""
    return Counter(model for action in actions for model in action.models)
