"""Renderers of a plan: text for a terminal, JSON for machines, Markdown for a pull request.

Each shows the same facts: the actions (project, endpoint, models, executionCount, queries,
expected executions = queries × models × count), totals per project, per model and for the run,
what is skipped and why, the unreachable projects, and the budget verdict.

Expected executions are those of one-off jobs, as in the run's report, which reconciles them
with the jobs' counters. A cached-jobs trigger creates one cached job per query, each of
``aiModels × executionCount`` executions per round, and the rounds recur on the project's
schedule: they are shown apart, "per round", never added to the expected executions. The
budget counts both: the expected executions and one round of the cached jobs. The Markdown form puts
the summary first and stays under GitHub's comment limit however many projects, cutting every
table to the same number of rows (found by bisection) with a line saying where the full plan is.

A plan made with ``--changed-since`` also shows what changed, one terraform-like line per change
(``+ project acme``, ``~ acme jobs[0].executionCount: 3 → 4``): the first ``SHOWN_CHANGES`` in
text and Markdown, every one in JSON. The projects left out because nothing of theirs changed
are counted, not listed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.exitcodes import ExitCode
from runner.manifest.model import Endpoint
from runner.plan import Action, BudgetVerdict, Plan, Skip
from runner.plan.planfile import PlanFile, iso_utc
from runner.redact import redact
from runner.report._format import cached_jobs_phrase, number, shorten
from runner.report.markdown import DEFAULT_LIMIT, cell
from runner.report.words import plural

if TYPE_CHECKING:  # runner.plan.remote imports the HTTP client, which an offline plan never needs
    from runner.plan.changes import PlanChanges
    from runner.plan.remote import ProjectProblem

FORMATS = ("text", "json", "markdown")
PLAN_EXIT_MEANINGS = {
    ExitCode.OK: "the plan can be applied",
    ExitCode.ACTION_FAILED: "some projects are unreachable with this key; apply skips them",
    ExitCode.BUDGET_REFUSED: "refused by the budget; apply would send nothing",
}
OFFLINE_NOTE = "unknown: planned with --offline, the API was not asked"
SHOWN_CHANGES = 50  # change lines shown in text and Markdown; JSON has every one
_CHANGE_WIDTH = 200  # characters of a change line in Markdown
_ICONS = {ExitCode.OK: "✅", ExitCode.ACTION_FAILED: "⚠️", ExitCode.BUDGET_REFUSED: "⛔"}


def render_plan(plan_file: PlanFile, fmt: str, *, full_plan_hint: str | None = None) -> str:
    """``plan_file`` in ``fmt`` (text, json or markdown)."""
    if fmt == "json":
        return render_plan_json(plan_file)
    if fmt == "markdown":
        return render_plan_markdown(plan_file, full_plan_hint=full_plan_hint)
    return render_plan_text(plan_file)


# -- facts shared by every format ---------------------------------------------------------------


def budget_line(plan: Plan, *, offline: bool = False) -> str:
    """The budget verdict in one sentence."""
    verdict = plan.budget()
    if verdict.refused:
        return f"REFUSED: {verdict.message()}{budget_breakdown(plan)}"
    if verdict.limit is None:
        return "no budget set (settings.budget.maxExecutions)"
    if verdict.total is None:
        why = "planned with --offline" if offline else "some query counts are unknown"
        return (
            f"not checked: {why}; at least {verdict.at_least:,} executions, "
            f"budget {verdict.limit:,}"
        )
    share = 100 * verdict.total / verdict.limit if verdict.limit else 100.0
    return (
        f"within budget: {verdict.total:,} of {verdict.limit:,} executions ({share:.0f}%)"
        f"{budget_breakdown(plan)}"
    )


def budget_breakdown(plan: Plan) -> str:
    """``; counted: 88 expected executions and 28 for one round of cached jobs``, or ``""``.

    What the budget counts beside the expected executions, when the plan has cached jobs.
    """
    cost = PlanCost.of(plan)
    if not cost.cached_triggers or cost.expected is None or cost.cached_per_round is None:
        return ""
    return (
        f"; counted: {plural(cost.expected, 'expected execution')} and "
        f"{cost.cached_per_round:,} for one round of cached jobs"
    )


@dataclass(frozen=True)
class PlanCost:
    """The plan's expected executions (one-off jobs) and its cached jobs, apart.

    ``None`` where a query count is unknown.
    """

    expected: int | None
    per_project: dict[str, int | None]  # projects with a jobs trigger
    per_model: dict[str, int | None]  # model ids of jobs triggers
    cached_triggers: int
    cached_jobs: int | None  # one per query
    cached_per_round: int | None
    cached_per_project: dict[str, int | None]
    cached_per_key: dict[str, int | None]  # provider keys of cachedJobs triggers

    @classmethod
    def of(cls, plan: Plan) -> PlanCost:
        """The cost of ``plan``, computed once (a plan is a value, rendered several times)."""
        cached = _COSTS.get(id(plan))
        if cached is None or cached[0] is not plan:
            cached = (plan, cls._compute(plan))
            _COSTS.clear()  # one plan at a time is rendered
            _COSTS[id(plan)] = cached
        return cached[1]

    @classmethod
    def _compute(cls, plan: Plan) -> PlanCost:
        jobs = [a for a in plan.actions if a.endpoint == Endpoint.JOBS]
        cached = [a for a in plan.actions if a.endpoint != Endpoint.JOBS]
        return cls(
            expected=_total(a.expected_executions for a in jobs),
            per_project=_sum_by((a.project, a.expected_executions) for a in jobs),
            per_model=_per_model(jobs),
            cached_triggers=len(cached),
            cached_jobs=_total(a.queries for a in cached),
            cached_per_round=_total(a.expected_executions for a in cached),
            cached_per_project=_sum_by((a.project, a.expected_executions) for a in cached),
            cached_per_key=_per_model(cached),
        )

    def cached_phrase(self) -> str:
        """The cached jobs in words, or ``""`` when the plan has none."""
        if not self.cached_triggers:
            return ""
        return cached_jobs_phrase(self.cached_triggers, self.cached_jobs, self.cached_per_round)


_COSTS: dict[int, tuple[Plan, PlanCost]] = {}


def _total(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _sum_by(pairs: Iterable[tuple[str, int | None]]) -> dict[str, int | None]:
    sums: dict[str, int | None] = {}
    for name, value in pairs:
        before = sums.get(name, 0)
        sums[name] = None if before is None or value is None else before + value
    return sums


def _per_model(actions: Sequence[Action]) -> dict[str, int | None]:
    """Executions per model: each of an action's models runs queries × executionCount."""
    return _sum_by(
        (model, None if a.queries is None else a.queries * a.execution_count)
        for a in actions
        for model in a.models
    )


def problem_line(problem: ProjectProblem) -> str:
    """``project acme (id …) does not exist for this key``: the name and the id, precisely."""
    prefix = f"project {problem.project_id}"
    if problem.message.startswith(prefix):
        rest = problem.message.removeprefix(prefix)
        return f"project {problem.project} (id {problem.project_id}){rest}"
    return f"project {problem.project} (id {problem.project_id}): {problem.message}"


def headline(plan_file: PlanFile) -> str:
    """``12 actions in 5 projects, 1,234 expected executions``, or ``no changes since main…``."""
    plan = plan_file.plan
    if plan.changes is not None and no_changes(plan):
        return f"no changes since {plan.changes.ref}: nothing to apply"
    return cost_headline(plan)


def cost_headline(plan: Plan) -> str:
    """``4 actions in 3 projects, 88 expected executions`` (cached jobs apart: ``PlanCost``)."""
    cost = PlanCost.of(plan)
    projects = len({a.project for a in plan.actions})
    if cost.cached_triggers and cost.cached_triggers == len(plan.actions):
        executions = "no expected executions (cached jobs only)"
    elif cost.expected is None:
        executions = "expected executions unknown"
    else:
        executions = plural(cost.expected, "expected execution")
    return f"{plural(len(plan.actions), 'action')} in {plural(projects, 'project')}, {executions}"


def one_line(plan: Plan, *, offline: bool) -> str:
    """The plan's cost on one line: actions, projects, expected executions, cached jobs, budget."""
    cost = PlanCost.of(plan)
    cached = ""
    if cost.cached_triggers:
        rounds = number(cost.cached_per_round)
        cached = f" (and cached jobs of {rounds} executions per round, recurring)"
    return f"{cost_headline(plan)}{cached}; budget: {budget_line(plan, offline=offline)}"


def exit_line(plan_file: PlanFile) -> str:
    """``exit 0: the plan can be applied``."""
    code = plan_file.exit_code()
    if code == ExitCode.OK and no_changes(plan_file.plan):
        return f"exit {int(code)}: no changes; apply would send nothing"
    return f"exit {int(code)}: {PLAN_EXIT_MEANINGS[code]}"


def no_changes(plan: Plan) -> bool:
    """A ``--changed-since`` plan in which no project or trigger was added, changed or removed."""
    return plan.changes is not None and not plan.actions and plan.changes.nothing_changed


def not_selected(plan_file: PlanFile) -> list[Skip]:
    """Skipped projects, but for the unreachable ones (listed as problems) and those the changes
    account for (unchanged, or removed, since the ``--changed-since`` ref)."""
    unreachable = {p.project for p in plan_file.problems}
    changes = plan_file.plan.changes
    return [
        skip
        for skip in plan_file.plan.skipped
        if skip.project not in unreachable and not (changes and changes.explains(skip))
    ]


def changes_line(changes: PlanChanges) -> str:
    """``since main, projects: 1 added, 2 changed, 7 unchanged, 1 removed``."""
    return f"since {changes.ref}, projects: {changes.projects.describe()}"


def shown_changes(changes: PlanChanges) -> tuple[list[str], int]:
    """The change lines to show, and how many more there are."""
    lines = [change.line() for change in changes.changes[:SHOWN_CHANGES]]
    return lines, max(0, len(changes.changes) - SHOWN_CHANGES)


NOT_APPLICABLE = "—"  # an execution column that does not apply to the row


def projects_by_weight(plan: Plan) -> list[tuple[str, str, str]]:
    """Per project: its expected executions and its cached executions per round (``—`` where
    it has no such trigger), heaviest first, unknown last."""
    cost = PlanCost.of(plan)
    names = dict.fromkeys(a.project for a in plan.actions)

    def weight(name: str) -> tuple[bool, int, int]:
        jobs, cached = cost.per_project.get(name, 0), cost.cached_per_project.get(name, 0)
        return (jobs is None or cached is None, -(jobs or 0), -(cached or 0))

    return [
        (name, _cell(cost.per_project, name), _cell(cost.cached_per_project, name))
        for name in sorted(names, key=weight)
    ]


def models_of(plan: Plan) -> list[tuple[str, str, str, str]]:
    """Per model id, then per provider key: actions, expected executions, per round."""
    cost = PlanCost.of(plan)
    actions: dict[str, int] = {}
    for action in plan.actions:
        for model in action.models:
            actions[model] = actions.get(model, 0) + 1
    jobs = [(m, f"{actions[m]:,}", number(n), NOT_APPLICABLE) for m, n in cost.per_model.items()]
    keys = [
        (k, f"{actions[k]:,}", NOT_APPLICABLE, number(n)) for k, n in cost.cached_per_key.items()
    ]
    return jobs + keys


def _cell(values: dict[str, int | None], name: str) -> str:
    return number(values[name]) if name in values else NOT_APPLICABLE


def action_costs(action: Action) -> tuple[str, str]:
    """The action's expected executions and its cached executions per round."""
    if action.endpoint == Endpoint.JOBS:
        return number(action.expected_executions), NOT_APPLICABLE
    return NOT_APPLICABLE, number(action.expected_executions)


# -- JSON ---------------------------------------------------------------------------------------


def render_plan_json(plan_file: PlanFile) -> str:
    """The saved-plan document plus a ``summary``, on one line; ``mlrun apply`` can read it."""
    document = {**plan_file.to_json(), "summary": summary_json(plan_file)}
    # One line, by the C encoder: ``indent`` would fall back to pure Python (3x slower at scale).
    return redact(json.dumps(document, ensure_ascii=False)) + "\n"


def summary_json(plan_file: PlanFile) -> dict[str, Any]:
    """Totals per project, per model and for the run, the budget and the exit code."""
    plan = plan_file.plan
    cost = PlanCost.of(plan)
    return {
        "actions": len(plan.actions),
        "projects": len({a.project for a in plan.actions}),
        "expectedExecutions": cost.expected,
        "queryCountsKnown": all(a.queries is not None for a in plan.actions),
        "perProject": cost.per_project,
        "perModel": cost.per_model,
        "cachedJobs": {
            "triggers": cost.cached_triggers,
            "cachedJobs": cost.cached_jobs,
            "executionsPerRound": cost.cached_per_round,
            "perProject": cost.cached_per_project,
            "perProviderKey": cost.cached_per_key,
        },
        "budget": _budget_json(plan.budget(), plan, offline=plan_file.offline),
        "exitCode": int(plan_file.exit_code()),
    }


def _budget_json(verdict: BudgetVerdict, plan: Plan, *, offline: bool) -> dict[str, Any]:
    return {
        "maxExecutions": verdict.limit,
        "executions": verdict.total,  # expected executions and one round of the cached jobs
        "atLeast": verdict.at_least,
        "refused": verdict.refused,
        "overBy": verdict.over_by,
        "heaviest": [{"project": name, "expected": count} for name, count in verdict.heaviest],
        "message": budget_line(plan, offline=offline),
    }


# -- text ---------------------------------------------------------------------------------------


def render_plan_text(plan_file: PlanFile) -> str:
    """Tables for a terminal, the summary last (where the eye lands)."""
    plan = plan_file.plan
    per_round = bool(PlanCost.of(plan).cached_triggers)  # a column only when it applies
    blocks = [
        _text_changes(plan.changes),
        _text_table("Actions", _ACTION_HEAD, [_action_cells(a) for a in plan.actions], per_round),
        _text_table(
            "Per project", ("PROJECT", "EXPECTED", "PER ROUND"), projects_by_weight(plan), per_round
        ),
        _text_table(
            "Per model", ("MODEL", "ACTIONS", "EXPECTED", "PER ROUND"), models_of(plan), per_round
        ),
        _text_table("Skipped", ("PROJECT", "REASON"), _skip_cells(not_selected(plan_file))),
        _text_list("Unreachable, not planned", [problem_line(p) for p in plan_file.problems]),
        _text_summary(plan_file),
    ]
    return redact("\n\n".join(block for block in blocks if block)) + "\n"


_ACTION_HEAD = ("PROJECT", "ENDPOINT", "MODELS", "COUNT", "QUERIES", "EXPECTED", "PER ROUND")
_NUMERIC = frozenset({"COUNT", "QUERIES", "EXPECTED", "ACTIONS", "PER ROUND"})


def _action_cells(action: Action) -> tuple[str, ...]:
    return (
        action.project,
        str(action.endpoint),
        shorten(",".join(action.models), 60),
        f"{action.execution_count:,}",
        number(action.queries),
        *action_costs(action),
    )


def _skip_cells(skips: Sequence[Skip]) -> list[tuple[str, ...]]:
    return [(s.project, s.reason) for s in skips]


def _text_table(
    title: str, head: Sequence[str], rows: Sequence[Sequence[str]], per_round: bool = True
) -> str:
    """``title`` and the table; without ``per_round`` the last column (PER ROUND) is left out."""
    if not rows:
        return ""
    if head[-1] == "PER ROUND" and not per_round:
        head, rows = head[:-1], [row[:-1] for row in rows]
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        cells = (
            v.rjust(w) if h in _NUMERIC else v.ljust(w)
            for v, w, h in zip(row, widths, head, strict=True)
        )
        return "  " + "  ".join(cells).rstrip()

    return "\n".join([title, line(head), *(line(row) for row in rows)])


def _text_list(title: str, items: Sequence[str]) -> str:
    return "\n".join([title, *(f"  {item}" for item in items)]) if items else ""


def _text_changes(changes: PlanChanges | None) -> str:
    if changes is None or not changes.changes:
        return ""
    lines, more = shown_changes(changes)
    if more:
        lines.append(f"… and {more:,} more (`mlrun plan --format json` lists them all)")
    return _text_list(f"Changes since {changes.ref}", lines)


def _text_summary(plan_file: PlanFile) -> str:
    lines = [f"Plan: {headline(plan_file)}"]
    if cached := PlanCost.of(plan_file.plan).cached_phrase():
        lines.append(f"Cached jobs: {cached}")
    if plan_file.plan.changes is not None:
        lines.append(f"Changes: {changes_line(plan_file.plan.changes)}")
    if plan_file.offline:
        lines.append(f"Query counts: {OFFLINE_NOTE}")
    lines.append(f"Budget: {budget_line(plan_file.plan, offline=plan_file.offline)}")
    if plan_file.problems:
        lines.append(f"Unreachable: {plural(len(plan_file.problems), 'project')}, not planned")
    skipped = not_selected(plan_file)
    if skipped:
        lines.append(f"Skipped: {plural(len(skipped), 'project')}")
    lines.append(exit_line(plan_file))
    return "\n".join(lines)


# -- Markdown -----------------------------------------------------------------------------------


# No table row is shorter than this, so no more rows than limit / this can ever be shown.
_SHORTEST_ROW = 8


class _Table:
    """A Markdown table whose rows are rendered (and redacted) only as far as a size asks.

    Rendering 15,000 rows to show 500 is waste: the row cap is searched on sizes, and a size
    that passes the limit stops rendering. Each piece is redacted on its own, which is the same
    as redacting the joined text: a key never spans a line break.
    """

    def __init__(self, title: str, head: str, rows: Iterable[str], total: int, limit: int) -> None:
        self.title = f"#### {title}"
        self.head = head  # the header and delimiter rows
        self.total = total  # rows the table has in all
        self.available = min(total, limit // _SHORTEST_ROW + 1)  # rows it could ever show
        self._pending = iter(rows)
        self._rows: list[str] = []
        self._sums = [0]  # _sums[n]: the length of the first n rows

    def size(self, cap: int, more: str, room: int) -> int:
        """The length of :meth:`render` with ``cap`` rows; past ``room``, some length > room."""
        shown = min(cap, self.available)
        fixed = len(self.title) + len(self.head) + 2  # title, blank line, head
        if self.total > shown:
            fixed += 2 + len(self._more(shown, more))
        while len(self._rows) < shown:
            if fixed + self._sums[-1] + len(self._rows) > room:
                return room + 1
            row = redact(next(self._pending))
            self._rows.append(row)
            self._sums.append(self._sums[-1] + len(row))
        return fixed + self._sums[shown] + shown  # each row after a line break

    def render(self, cap: int, more: str) -> str:
        shown = min(cap, self.available)
        self.size(cap, more, room=sys.maxsize)
        parts = [self.title, "", self.head, *self._rows[:shown]]
        if self.total > shown:
            parts += ["", self._more(shown, more)]
        return "\n".join(parts)

    def _more(self, shown: int, more: str) -> str:
        return redact(f"_… and {self.total - shown:,} more; the full plan is in {more}_")


def render_plan_markdown(
    plan_file: PlanFile, *, limit: int = DEFAULT_LIMIT, full_plan_hint: str | None = None
) -> str:
    """The plan as Markdown of at most ``limit`` characters: summary first, then tables.

    ``full_plan_hint`` names the full plan (the ``-o`` file) that cut tables point to.
    """
    more = f"`{cell(full_plan_hint)}`" if full_plan_hint else "`mlrun plan --format json`"
    header = redact(_markdown_header(plan_file) + _markdown_changes(plan_file.plan.changes, more))
    tables = [table for table in _markdown_tables(plan_file, limit) if table.available]

    def size(cap: int) -> int:
        total = len(header) + 1  # and the final line break
        for table in tables:
            total += 2 + table.size(cap, more, limit - total - 2)
            if total > limit:
                break
        return total

    cap = _largest_fitting(size, max((table.available for table in tables), default=0), limit)
    blocks = [header, *(table.render(cap, more) for table in tables)]
    text = redact("\n\n".join(blocks)) + "\n"
    return text if len(text) <= limit else text[: max(0, limit - 2)] + "…\n"


def _largest_fitting(size: Callable[[int], int], most: int, limit: int) -> int:
    """The row cap :func:`runner.report._format.largest_fitting` finds, searched on sizes."""
    if size(most) <= limit:
        return most
    low, high = 0, most  # invariant: size(high) > limit
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= limit:
            low = middle
        else:
            high = middle
    return low


def _markdown_header(plan_file: PlanFile) -> str:
    plan, code = plan_file.plan, plan_file.exit_code()
    rows = [("Budget", budget_line(plan, offline=plan_file.offline))]
    if cached := PlanCost.of(plan).cached_phrase():
        rows.append(("Cached jobs", cached))
    if plan.changes is not None:
        rows.append(("Changes", changes_line(plan.changes)))
    if plan_file.offline:
        rows.append(("Query counts", OFFLINE_NOTE))
    if plan_file.problems:
        rows.append(
            ("Unreachable", f"{plural(len(plan_file.problems), 'project')}, not planned (below)")
        )
    if skipped := not_selected(plan_file):
        rows.append(("Skipped", f"{plural(len(skipped), 'project')} (below)"))
    rows += [
        ("Manifest", f"`{plan_file.manifest_digest[:12]}` ({', '.join(plan_file.manifest_files)})"),
        ("API", "not asked (offline)" if plan_file.offline else plan_file.base_url or "-"),
        ("Planned at", iso_utc(plan_file.created_at)),
        ("Exit", exit_line(plan_file)),
    ]
    title = f"### {_ICONS[code]} mlrun plan: {cell(headline(plan_file))}"
    lines = [title, "", "| | |", "|---|---|"]
    return "\n".join(lines + [f"| {name} | {cell(value)} |" for name, value in rows])


def _markdown_changes(changes: PlanChanges | None, more: str) -> str:
    """The change lines as a ``diff`` block, where GitHub colours the ``+`` and ``-`` lines."""
    if changes is None or not changes.changes:
        return ""
    lines, hidden = shown_changes(changes)
    block = "\n".join(shorten(line, _CHANGE_WIDTH).replace("`", "'") for line in lines)
    text = f"\n\n#### Changes since `{cell(changes.ref)}`\n\n```diff\n{block}\n```"
    if hidden:
        text += f"\n\n_… and {hidden:,} more changes; the full plan is in {more}_"
    return text


def _markdown_tables(plan_file: PlanFile, limit: int) -> list[_Table]:
    plan = plan_file.plan
    by_weight = projects_by_weight(plan)
    models = models_of(plan)
    skipped = not_selected(plan_file)
    per_round = bool(PlanCost.of(plan).cached_triggers)
    extra = (" | Cached, per round |", "--:|") if per_round else (" |", "")
    return [
        _Table(
            "Unreachable projects (not planned)",
            "| Project | Id | Reason |\n|---|---|---|",
            (
                f"| {cell(p.project)} | `{cell(p.project_id)}` | {cell(problem_line(p))} |"
                for p in plan_file.problems
            ),
            len(plan_file.problems),
            limit,
        ),
        _Table(
            "Per project, heaviest first",
            f"| Project | Expected executions{extra[0]}\n|---|--:|{extra[1]}",
            (_markdown_row((cell(n), e, r), per_round) for n, e, r in by_weight),
            len(by_weight),
            limit,
        ),
        _Table(
            "Per model",
            f"| Model | Actions | Expected executions{extra[0]}\n|---|--:|--:|{extra[1]}",
            (_markdown_row((f"`{cell(m)}`", a, e, r), per_round) for m, a, e, r in models),
            len(models),
            limit,
        ),
        _Table(
            "Actions",
            f"| Project | Endpoint | Models | Count | Queries | Expected{extra[0]}\n"
            f"|---|---|---|--:|--:|--:|{extra[1]}",
            (_markdown_action(a, per_round) for a in plan.actions),
            len(plan.actions),
            limit,
        ),
        _Table(
            "Skipped",
            "| Project | Reason |\n|---|---|",
            (f"| {cell(s.project)} | {cell(s.reason)} |" for s in skipped),
            len(skipped),
            limit,
        ),
    ]


def _markdown_action(action: Action, per_round: bool) -> str:
    models = ", ".join(f"`{cell(m)}`" for m in action.models)
    cells = (
        cell(action.project),
        str(action.endpoint),
        models,
        f"{action.execution_count:,}",
        number(action.queries),
        *action_costs(action),
    )
    return _markdown_row(cells, per_round)


def _markdown_row(cells: Sequence[str], per_round: bool) -> str:
    """A table row; without ``per_round`` the last cell (the per-round column) is left out."""
    shown = cells if per_round else cells[:-1]
    return "| " + " | ".join(shown) + " |"
