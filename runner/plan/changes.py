"""``--changed-since REF``: only the triggers that changed against a git ref, and what changed.

What "the same" means
=====================
The manifest at ``REF`` and the manifest now are each loaded and resolved the same way (defaults
applied, ``${VAR}`` resolved from the same environment, model-set names expanded), then compared:

* **Projects are matched by id**, the project's UUID, which is what the API knows. A project
  whose name changed is the same project: the rename is shown as information and triggers
  nothing. A project whose id changed is a removal and an addition.
* **Triggers are matched within a project** by endpoint and position: ``jobs[i]`` at ``REF`` and
  ``jobs[i]`` now are the same trigger, and ``cachedJobs`` is its own. A trigger is what it asks
  for: a set of models and an execution count (the order of the models, and the name of the model
  set they came from, change no request's cost or result). A trigger equal to one at ``REF`` is
  unchanged even where the list moved it (deleting ``jobs[0]`` leaves ``jobs[1]`` unchanged, not
  "changed into" ``jobs[0]``); the triggers left over are paired by position.

What is planned
===============
Only the actions whose trigger is **added** or **changed** (another execution count, a model
added or removed), and every action of an **added** project or of a project whose
**organisation** changed (each of its triggers is sent in another organisation). A removed
project or trigger is shown and never triggered: there is nothing to trigger. Labels, comments,
renames, a model set renamed with the same models, moving an entry to another line or file, and
``settings`` change no trigger request, so none of them is worth paying for a run. When no
trigger changed, ``mlrun plan`` says "no changes" and ``mlrun apply`` sends nothing and records
no run.

The plan carries the differences (:class:`PlanChanges`), shown like terraform's::

    + project acme-eu
    - project old-one
    ~ acme-us jobs[0].executionCount: 3 → 4
    + acme-us jobs[0] model gemini-2.5-flash
    ~ acme-asia renamed from acme-apac (no trigger changed)

The manifest at ``REF`` is read by :mod:`runner.plan.gitref`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from runner.manifest.model import Manifest, Project, TriggerSpec
from runner.plan import Plan, Skip, actions_for
from runner.plan.gitref import manifest_at

_NAMED = 10  # removed projects named in the summary line
CACHED = "cachedJobs"


class Kind(StrEnum):
    """What a :class:`Change` is about."""

    PROJECT = "project"  # + or -: a project added or removed
    NAME = "name"  # ~: renamed; information, plans nothing
    ORGANISATION = "organisation"  # ~: every trigger of the project goes to another organisation
    TRIGGER = "trigger"  # + or -: a trigger added or removed
    EXECUTION_COUNT = "executionCount"  # ~: a trigger's execution count
    MODEL = "model"  # + or -: a model added to or removed from a trigger


@dataclass(frozen=True)
class Change:
    """One difference since the ref, shown as one line: ``~ acme jobs[0].executionCount: 3 → 4``.

    ``op`` is ``+``, ``-`` or ``~``; ``trigger`` names the trigger (``jobs[0]``, ``cachedJobs``)
    for the trigger-level kinds. ``before``/``after`` are the old and new value (a model's id
    for :attr:`Kind.MODEL`); ``models``/``execution_count`` are the whole trigger for
    :attr:`Kind.TRIGGER`.
    """

    op: str
    kind: Kind
    project: str  # the name now; at the ref for a removed project
    project_id: str
    trigger: str | None = None
    before: str | int | None = None
    after: str | int | None = None
    models: tuple[str, ...] = ()
    execution_count: int | None = None
    note: str | None = None  # said in parentheses at the end of the line

    @property
    def informational(self) -> bool:
        """A change that plans nothing by itself and is worth knowing: a rename."""
        return self.kind is Kind.NAME

    def line(self) -> str:
        """The change as a terraform-like line."""
        text = f"{self.op} {self._body()}"
        return f"{text} ({self.note})" if self.note else text

    def _body(self) -> str:
        where = f"{self.project} {self.trigger}"
        match self.kind:
            case Kind.PROJECT:
                return f"project {self.project}"
            case Kind.NAME:
                return f"{self.project} renamed from {self.before}"
            case Kind.ORGANISATION:
                return f"{self.project} organisation: {self.before} → {self.after}"
            case Kind.TRIGGER:
                return f"{where}: {', '.join(self.models)} ×{self.execution_count}"
            case Kind.EXECUTION_COUNT:
                return f"{where}.executionCount: {self.before} → {self.after}"
            case Kind.MODEL:
                return f"{where} model {self.after if self.op == '+' else self.before}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "op": self.op,
            "kind": str(self.kind),
            "project": self.project,
            "projectId": self.project_id,
        }
        optional = {
            "trigger": self.trigger,
            "before": self.before,
            "after": self.after,
            "models": list(self.models) if self.kind is Kind.TRIGGER else None,
            "executionCount": self.execution_count,
            "note": self.note,
        }
        data.update((key, value) for key, value in optional.items() if value is not None)
        data["line"] = self.line()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            op=str(data["op"]),
            kind=Kind(data["kind"]),
            project=str(data["project"]),
            project_id=str(data["projectId"]),
            trigger=data.get("trigger"),
            before=data.get("before"),
            after=data.get("after"),
            models=tuple(data.get("models", ())),
            execution_count=data.get("executionCount"),
            note=data.get("note"),
        )


@dataclass(frozen=True)
class ProjectCounts:
    """How many projects were added, changed, unchanged, removed and renamed since the ref."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    renamed: int = 0  # also counted as changed or unchanged

    def describe(self) -> str:
        """``1 added, 2 changed, 7 unchanged, 1 removed, 1 renamed`` (renamed only when some)."""
        text = (
            f"{self.added:,} added, {self.changed:,} changed, {self.unchanged:,} unchanged, "
            f"{self.removed:,} removed"
        )
        return text + (f", {self.renamed:,} renamed" if self.renamed else "")

    def to_json(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "renamed": self.renamed,
        }


@dataclass(frozen=True)
class PlanChanges:
    """What changed since ``ref``, as a plan carries and shows it: the counts and every change."""

    ref: str
    projects: ProjectCounts
    changes: tuple[Change, ...] = ()

    @property
    def nothing_changed(self) -> bool:
        """No trigger added, changed or removed, and no project added or removed."""
        return all(change.informational for change in self.changes)

    def summary(self) -> str:
        """``--changed-since main: 1 added, 2 changed, 7 unchanged, 1 removed (…)``."""
        removed = [c.project for c in self.changes if c.kind is Kind.PROJECT and c.op == "-"]
        named = ""
        if removed:
            more = f" and {len(removed) - _NAMED:,} more" if len(removed) > _NAMED else ""
            named = f" (not triggered: {', '.join(removed[:_NAMED])}{more})"
        counts = self.projects
        text = (
            f"--changed-since {self.ref}: {counts.added:,} added, {counts.changed:,} changed, "
            f"{counts.unchanged:,} unchanged, {counts.removed:,} removed{named}"
        )
        return text + (f", {counts.renamed:,} renamed" if counts.renamed else "")

    def explains(self, skip: Skip) -> bool:
        """Whether ``skip`` is one this comparison made (shown by the changes, not as a skip)."""
        return skip.reason in {
            unchanged_reason(self.ref),
            removed_reason(self.ref),
            only_removed_reason(self.ref),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "projects": self.projects.to_json(),
            "changes": [change.to_json() for change in self.changes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanChanges:
        return cls(
            ref=str(data["ref"]),
            projects=ProjectCounts(**{k: int(v) for k, v in data["projects"].items()}),
            changes=tuple(Change.from_json(c) for c in data.get("changes", ())),
        )


def unchanged_reason(ref: str) -> str:
    return f"unchanged since {ref}"


def removed_reason(ref: str) -> str:
    return f"removed since {ref}; not triggered"


def only_removed_reason(ref: str) -> str:
    return f"only triggers removed since {ref}; nothing to trigger"


def nothing_to_apply(plan: Plan) -> str | None:
    """What ``mlrun apply --changed-since`` says when the plan sends nothing; None otherwise."""
    changes = plan.changes
    if changes is None or plan.actions:
        return None
    if changes.nothing_changed:
        return f"no changes since {changes.ref}: nothing to apply"
    return f"no trigger to send since {changes.ref}: nothing to apply"


@dataclass(frozen=True)
class ChangeSet:
    """The comparison of the manifest with the one at ``ref``: what changed, what to trigger."""

    ref: str
    changes: tuple[Change, ...] = ()
    planned: frozenset[str] = frozenset()  # the keys of the actions to trigger
    added: tuple[str, ...] = ()  # project names: now, or at the ref for ``removed``
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[str, ...] = ()
    skips: tuple[Skip, ...] = ()  # the present projects with nothing to trigger

    def plan_changes(self) -> PlanChanges:
        """The part a plan carries."""
        counts = ProjectCounts(
            added=len(self.added),
            changed=len(self.changed),
            unchanged=len(self.unchanged),
            removed=len(self.removed),
            renamed=len(self.renamed),
        )
        return PlanChanges(self.ref, counts, self.changes)

    def narrow(self, plan: Plan) -> Plan:
        """``plan`` with only the added and changed actions, the others listed as skipped."""
        changes = self.plan_changes()
        skipped = {skip.project for skip in plan.skipped}  # not selected: said once
        unchanged = (skip for skip in self.skips if skip.project not in skipped)
        removed = (Skip(name, removed_reason(self.ref)) for name in self.removed)
        return replace(
            plan,
            actions=tuple(a for a in plan.actions if a.key in self.planned),
            skipped=(*plan.skipped, *unchanged, *removed),
            notes=(*plan.notes, changes.summary()),
            changes=changes,
        )


def compare(ref: str, before: Sequence[Project], after: Sequence[Project]) -> ChangeSet:
    """The change set from ``before`` (the projects at ``ref``) to ``after``, in manifest order."""
    old = {project.id: project for project in before}
    now = {project.id for project in after}
    gone = tuple(project for project in before if project.id not in now)
    new_names = {project.name for project in after if project.id not in old}
    reused = new_names & {project.name for project in gone}  # one name, two ids: say the ids
    diffs = tuple(ProjectDiff(old.get(p.id), p, name_reused=p.name in reused) for p in after)
    removals = (_project_line("-", project, name_reused=project.name in reused) for project in gone)
    return ChangeSet(
        ref,
        changes=(*(change for diff in diffs for change in diff.changes), *removals),
        planned=frozenset(key for diff in diffs for key in diff.planned_keys),
        added=_names(diffs, Status.ADDED),
        changed=_names(diffs, Status.CHANGED),
        unchanged=_names(diffs, Status.UNCHANGED),
        removed=tuple(project.name for project in gone),
        renamed=tuple(diff.new.name for diff in diffs if diff.renamed),
        skips=tuple(skip for diff in diffs if (skip := diff.skip(ref)) is not None),
    )


def _names(diffs: Sequence[ProjectDiff], status: Status) -> tuple[str, ...]:
    return tuple(diff.new.name for diff in diffs if diff.status is status)


def _project_line(op: str, project: Project, *, name_reused: bool) -> Change:
    """``+ project acme``, with the id when the name went with another id the other way."""
    note = f"id {project.id}" if name_reused else None
    return Change(op, Kind.PROJECT, project.name, project.id, note=note)


def _content(spec: TriggerSpec) -> tuple[frozenset[str], int]:
    """What a trigger asks for: its models (in any order) and its execution count."""
    return frozenset(spec.models), spec.execution_count


@dataclass(frozen=True)
class Pairing:
    """How a list of triggers at the ref (old) and now (new) correspond, by index.

    ``same``: new index → old index of an equal trigger; ``changed``: new index → old index (the
    same position) of a different one; ``added``: new indexes without a counterpart;
    ``removed``: old indexes without one.
    """

    same: Mapping[int, int]
    changed: Mapping[int, int]
    added: tuple[int, ...]
    removed: tuple[int, ...]


def pair_triggers(old: Sequence[TriggerSpec], new: Sequence[TriggerSpec]) -> Pairing:
    """Equal triggers first (at the same position, then anywhere), the rest by position."""
    free = set(range(len(old)))
    same: dict[int, int] = {}
    for index in range(min(len(old), len(new))):
        if _content(old[index]) == _content(new[index]):
            same[index] = index
            free.discard(index)
    for index, spec in enumerate(new):
        if index not in same:
            match = next((j for j in sorted(free) if _content(old[j]) == _content(spec)), None)
            if match is not None:
                same[index] = match
                free.discard(match)
    changed = {i: i for i in range(len(new)) if i not in same and i in free}
    free.difference_update(changed)
    added = tuple(i for i in range(len(new)) if i not in same and i not in changed)
    return Pairing(same, changed, added, tuple(sorted(free)))


class Status(StrEnum):
    """A present project's state since the ref."""

    ADDED = "added"
    CHANGED = "changed"  # some trigger added, changed or removed, or the organisation changed
    UNCHANGED = "unchanged"  # renamed, perhaps, and nothing else


class ProjectDiff:
    """One project now against the project of the same id at the ref (None: it is added).

    A project's triggers are its ``jobs`` list and its ``cachedJobs`` (a list of zero or one),
    each paired with :func:`pair_triggers`; an action's position in :func:`actions_for` is the
    trigger's: ``jobs[i]`` is the i-th, ``cachedJobs`` the last.
    """

    def __init__(self, old: Project | None, new: Project, *, name_reused: bool = False) -> None:
        self.old = old
        self.new = new
        keys = [action.key for action in actions_for(new)]
        if old is None:
            self.status = Status.ADDED
            self.changes: tuple[Change, ...] = (_project_line("+", new, name_reused=name_reused),)
            self.planned_keys: tuple[str, ...] = tuple(keys)
            return
        jobs = pair_triggers(old.jobs, new.jobs)
        cached = pair_triggers(_listed(old.cached_jobs), _listed(new.cached_jobs))
        moved = old.organisation != new.organisation  # every trigger goes elsewhere
        triggers = (
            *self._organisation(old, new),
            *self._triggers("jobs[{}]", old.jobs, new.jobs, jobs),
            *self._triggers(CACHED, _listed(old.cached_jobs), _listed(new.cached_jobs), cached),
        )
        offset = len(new.jobs)  # the cachedJobs action comes after the jobs
        sent = (*jobs.changed, *jobs.added, *(offset + i for i in (*cached.changed, *cached.added)))
        self.status = Status.CHANGED if triggers else Status.UNCHANGED
        self.changes = (*self._rename(old, new, alone=not triggers), *triggers)
        self.planned_keys = tuple(keys) if moved else tuple(keys[i] for i in sorted(sent))

    @property
    def renamed(self) -> bool:
        return self.old is not None and self.old.name != self.new.name

    def skip(self, ref: str) -> Skip | None:
        """Why a present project is not planned at all; None when some of it is."""
        if self.planned_keys or self.status is Status.ADDED:
            return None
        reason = only_removed_reason if self.status is Status.CHANGED else unchanged_reason
        return Skip(self.new.name, reason(ref))

    def _rename(self, old: Project, new: Project, *, alone: bool) -> tuple[Change, ...]:
        if old.name == new.name:
            return ()
        note = "no trigger changed" if alone else None
        return (self._change("~", Kind.NAME, before=old.name, after=new.name, note=note),)

    def _organisation(self, old: Project, new: Project) -> tuple[Change, ...]:
        if old.organisation == new.organisation:
            return ()
        change = self._change(
            "~", Kind.ORGANISATION, before=old.organisation, after=new.organisation
        )
        return (change,)

    def _triggers(
        self, label: str, old: Sequence[TriggerSpec], new: Sequence[TriggerSpec], pairs: Pairing
    ) -> Iterator[Change]:
        """The changed and added triggers in the list's order, then the removed ones."""
        for index in sorted((*pairs.changed, *pairs.added)):
            name = label.format(index)
            if index in pairs.changed:
                yield from self._trigger_diff(name, old[index], new[index])
            else:
                yield self._trigger_line("+", name, new[index])
        for index in pairs.removed:
            yield self._trigger_line("-", label.format(index), old[index])

    def _trigger_diff(self, name: str, old: TriggerSpec, new: TriggerSpec) -> Iterator[Change]:
        """``~ executionCount``, then ``+ model`` and ``- model`` lines, in the manifest's order."""
        if old.execution_count != new.execution_count:
            yield self._change(
                "~",
                Kind.EXECUTION_COUNT,
                trigger=name,
                before=old.execution_count,
                after=new.execution_count,
            )
        for model in new.models:
            if model not in old.models:
                yield self._change("+", Kind.MODEL, trigger=name, after=model)
        for model in old.models:
            if model not in new.models:
                yield self._change("-", Kind.MODEL, trigger=name, before=model)

    def _trigger_line(self, op: str, name: str, spec: TriggerSpec) -> Change:
        return self._change(
            op, Kind.TRIGGER, trigger=name, models=spec.models, execution_count=spec.execution_count
        )

    def _change(self, op: str, kind: Kind, **values: Any) -> Change:
        return Change(op, kind, self.new.name, self.new.id, **values)


def _listed(spec: TriggerSpec | None) -> tuple[TriggerSpec, ...]:
    return () if spec is None else (spec,)


def changes_since(
    ref: str,
    manifest: Manifest,
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
) -> ChangeSet:
    """How ``manifest`` (loaded from ``paths`` now) differs from the same paths at ``ref``."""
    before = manifest_at(ref, paths, env=env)
    return compare(ref, () if before is None else before.projects, manifest.projects)
