"""Renderers of a plan: text for a terminal, JSON for machines, Markdown for a pull request.

Each shows the same facts: the actions (project, endpoint, models, executionCount, queries,
expected executions = queries × models × count), totals per project, per model and for the run,
what is skipped and why, the unreachable projects, and the budget verdict. The Markdown form puts
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
from typing import TYPE_CHECKING, Any

from runner.exitcodes import ExitCode
from runner.plan import Action, BudgetVerdict, Plan, Skip, model_counts
from runner.plan.planfile import PlanFile, iso_utc
from runner.redact import redact
from runner.report._format import number, shorten
from runner.report.markdown import DEFAULT_LIMIT, cell

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
        return f"REFUSED: {verdict.message()}"
    if verdict.limit is None:
        return "no budget set (settings.budget.maxExecutions)"
    if verdict.total is None:
        why = "planned with --offline" if offline else "some query counts are unknown"
        return (
            f"not checked: {why}; at least {verdict.at_least:,} executions, "
            f"budget {verdict.limit:,}"
        )
    share = 100 * verdict.total / verdict.limit if verdict.limit else 100.0
    return f"within budget: {verdict.total:,} of {verdict.limit:,} executions ({share:.0f}%)"


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
    projects = len({a.project for a in plan.actions})
    total = plan.total_expected
    executions = (
        f"{total:,} expected executions" if total is not None else "expected executions unknown"
    )
    return f"{plural(len(plan.actions), 'action')} in {plural(projects, 'project')}, {executions}"


def plural(count: int, noun: str) -> str:
    """``1 project``, ``2,000 projects``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


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


def projects_by_weight(plan: Plan) -> list[tuple[str, int | None]]:
    """Per-project expected executions, heaviest first, unknown last."""
    totals = plan.per_project().items()
    return sorted(totals, key=lambda item: (item[1] is None, -(item[1] or 0)))


# -- JSON ---------------------------------------------------------------------------------------


def render_plan_json(plan_file: PlanFile) -> str:
    """The saved-plan document plus a ``summary``, on one line; ``mlrun apply`` can read it."""
    document = {**plan_file.to_json(), "summary": summary_json(plan_file)}
    # One line, by the C encoder: ``indent`` would fall back to pure Python (3x slower at scale).
    return redact(json.dumps(document, ensure_ascii=False)) + "\n"


def summary_json(plan_file: PlanFile) -> dict[str, Any]:
    """Totals per project, per model and for the run, the budget and the exit code."""
    plan = plan_file.plan
    return {
        "actions": len(plan.actions),
        "projects": len(plan.per_project()),
        "expectedExecutions": plan.total_expected,
        "queryCountsKnown": all(a.queries is not None for a in plan.actions),
        "perProject": plan.per_project(),
        "perModel": plan.per_model(),
        "budget": _budget_json(plan.budget(), plan, offline=plan_file.offline),
        "exitCode": int(plan_file.exit_code()),
    }


def _budget_json(verdict: BudgetVerdict, plan: Plan, *, offline: bool) -> dict[str, Any]:
    return {
        "maxExecutions": verdict.limit,
        "expectedExecutions": verdict.total,
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
    blocks = [
        _text_changes(plan.changes),
        _text_table("Actions", _ACTION_HEAD, [_action_cells(a) for a in plan.actions]),
        _text_table("Per project", ("PROJECT", "EXPECTED"), _project_cells(plan)),
        _text_table("Per model", ("MODEL", "ACTIONS", "EXPECTED"), _model_cells(plan)),
        _text_table("Skipped", ("PROJECT", "REASON"), _skip_cells(not_selected(plan_file))),
        _text_list("Unreachable, not planned", [problem_line(p) for p in plan_file.problems]),
        _text_summary(plan_file),
    ]
    return redact("\n\n".join(block for block in blocks if block)) + "\n"


_ACTION_HEAD = ("PROJECT", "ENDPOINT", "MODELS", "COUNT", "QUERIES", "EXPECTED")
_NUMERIC = frozenset({"COUNT", "QUERIES", "EXPECTED", "ACTIONS"})


def _action_cells(action: Action) -> tuple[str, ...]:
    return (
        action.project,
        str(action.endpoint),
        shorten(",".join(action.models), 60),
        f"{action.execution_count:,}",
        number(action.queries),
        number(action.expected_executions),
    )


def _project_cells(plan: Plan) -> list[tuple[str, ...]]:
    return [(name, number(count)) for name, count in projects_by_weight(plan)]


def _model_cells(plan: Plan) -> list[tuple[str, ...]]:
    actions = model_counts(plan.actions)
    return [(m, f"{actions[m]:,}", number(n)) for m, n in plan.per_model().items()]


def _skip_cells(skips: Sequence[Skip]) -> list[tuple[str, ...]]:
    return [(s.project, s.reason) for s in skips]


def _text_table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
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
    models = _model_cells(plan)
    skipped = not_selected(plan_file)
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
            "| Project | Expected executions |\n|---|--:|",
            (f"| {cell(n)} | {number(c)} |" for n, c in by_weight),
            len(by_weight),
            limit,
        ),
        _Table(
            "Per model",
            "| Model | Actions | Expected executions |\n|---|--:|--:|",
            (f"| `{cell(m)}` | {a} | {n} |" for m, a, n in models),
            len(models),
            limit,
        ),
        _Table(
            "Actions",
            "| Project | Endpoint | Models | Count | Queries | Expected |\n"
            "|---|---|---|--:|--:|--:|",
            (_markdown_action(a) for a in plan.actions),
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


def _markdown_action(action: Action) -> str:
    models = ", ".join(f"`{cell(m)}`" for m in action.models)
    return (
        f"| {cell(action.project)} | {action.endpoint} | {models} | "
        f"{action.execution_count:,} | {number(action.queries)} | "
        f"{number(action.expected_executions)} |"
    )
