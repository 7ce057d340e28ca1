"""Markdown for a pull-request comment or ``$GITHUB_STEP_SUMMARY``, always under a size limit.

GitHub refuses comments over 65,536 characters. The report is composed from tables whose rows are
formatted once; when the whole does not fit, every table is cut to the same number of rows (the
largest that fits, found by bisection) with a line pointing at the full artifact. Failures come
first, so what is cut is always the least interesting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.redact import redact
from runner.report._format import (
    ProblemRow,
    cached_jobs_line,
    duration,
    execution_cells,
    executions,
    exit_line,
    keep_fix,
    largest_fitting,
    left_out,
    not_followed_line,
    number,
    ok_count,
    outcome_counts,
    problem_rows,
    projects_by_problems,
    verdict,
)
from runner.report.model import Report, Tally

GITHUB_COMMENT_LIMIT = 65_536
DEFAULT_LIMIT = 65_000  # a margin under GitHub's limit for whatever wraps the comment
_CELL_WIDTH = 240
_ICONS = {0: "✅", 3: "⏸️", 4: "⛔", 5: "⛔"}


@dataclass(frozen=True)
class _Table:
    title: str
    head: str  # the header and delimiter rows
    rows: tuple[str, ...]
    note: str = ""

    def render(self, cap: int, more: str) -> str:
        shown = self.rows[:cap]
        parts = [f"#### {self.title}", "", self.head, *shown]
        if len(self.rows) > cap:
            parts += ["", f"_… and {len(self.rows) - cap:,} more, see {more}_"]
        if self.note:
            parts += ["", self.note]
        return "\n".join(parts)


def render_markdown(
    report: Report, *, limit: int = DEFAULT_LIMIT, full_report_hint: str | None = None
) -> str:
    """The report as Markdown of at most ``limit`` characters, however large the run.

    ``full_report_hint`` names the full artifact (a path or URL) that summarised tables point to.
    """
    more = redact(full_report_hint) if full_report_hint else "the full report artifact"
    header = _header(report)
    footer = f"Full report: {more}" if full_report_hint else ""
    tables = _tables(report)
    most = max((len(table.rows) for table in tables), default=0)

    def compose(cap: int) -> str:
        blocks = [header, *(table.render(cap, more) for table in tables), footer]
        return "\n\n".join(block for block in blocks if block) + "\n"

    return _truncate(compose(largest_fitting(compose, most, limit)), limit)


def _truncate(text: str, limit: int) -> str:
    """The last resort when even the header is too long: cut, and say so."""
    if len(text) <= limit:
        return text
    tail = "\n\n_… report truncated_\n"
    return text[: max(0, limit - len(tail))] + tail[:limit]


# -- the parts -----------------------------------------------------------------------------------


def _header(report: Report) -> str:
    run, tally = report.run, report.totals.run
    icon = _ICONS.get(int(report.exit_code()), "❌")
    rows = [
        ("Status", f"{run.status}, {exit_line(report)}"),
        ("Actions", outcome_counts(tally)),
        ("Executions", executions(tally)),
        *optional_row("Cached jobs", cached_jobs_line(report)),
        *optional_row("Running", not_followed_line(report)),
        (
            "Duration",
            f"{duration(run.duration_seconds)} ({run.started_at} → {run.finished_at or 'running'})",
        ),
        ("Manifest", f"`{run.manifest_digest.removeprefix('sha256:')[:12]}`"),
        ("API", run.base_url),
        *_provenance(report),
    ]
    if run.stop_reason:
        rows.append(("Stopped", run.stop_reason))
    if run.skipped_projects:
        rows.append(("Left out", left_out(run.skipped_projects)))
    if run.unreachable_projects:
        rows.append(("Unreachable, not triggered", left_out(run.unreachable_projects)))
    title = f"### {icon} mlrun run `{cell(run.run_id)}`: {verdict(report)}"
    lines = [title, "", "| | |", "|---|---|"]
    lines += [f"| {name} | {cell(value)} |" for name, value in rows]
    return redact("\n".join(lines))


def optional_row(name: str, value: str) -> list[tuple[str, str]]:
    """A header row, when there is something to say."""
    return [(name, value)] if value else []


def _provenance(report: Report) -> list[tuple[str, str]]:
    ci = report.run.ci
    rows = [("mlrun", report.run.mlrun_version)]
    if ci.commit:
        rows.append(("Commit", f"`{ci.commit[:12]}`"))
    if ci.run_url:
        rows.append(("CI run", f"[{ci.provider or 'CI'} {ci.run_id or ''}]({ci.run_url})".strip()))
    return rows


def _tables(report: Report) -> list[_Table]:
    tables = []
    if report.problems:
        tables.append(_problem_table(problem_rows(report)))
    tables.append(_project_table(report, report.totals.projects))
    tables.append(_model_table(report.totals.models, exact=report.totals.models_exact))
    return tables


def _problem_table(problems: Sequence[ProblemRow]) -> _Table:
    head = (
        "| Outcome | Action | Expected | Total | Success | Failed | Reason |\n"
        "|---|---|--:|--:|--:|--:|---|"
    )
    return _Table("Problems, worst first", head, tuple(_problem_row(row) for row in problems))


def _problem_row(row: ProblemRow) -> str:
    counters = None if row.action is None else row.action.done.counters
    label = f"`{cell(row.label)}`" if row.action is not None else cell(row.label)
    values = [
        f"**{row.outcome}**",
        label,
        number(row.expected),
        "-" if counters is None else f"{counters.total:,}",
        "-" if counters is None else f"{counters.success:,}",
        "-" if counters is None else f"{counters.failed:,}",
        cell(row.reason),
    ]
    return redact("| " + " | ".join(values) + " |")


def _project_table(report: Report, tallies: Sequence[Tally]) -> _Table:
    head = (
        "| Project | Actions | OK | Problems | Expected | Total | Success | Failed |\n"
        "|---|--:|--:|--:|--:|--:|--:|--:|"
    )
    rows = tuple(
        redact(
            f"| {cell(t.name)} | {t.actions:,} | {ok_count(t):,} | {report.problem_count(t):,} | "
            f"{' | '.join(execution_cells(t))} |"
        )
        for t in projects_by_problems(report, tallies)
    )
    return _Table("Per project", head, rows)


def _model_table(tallies: Sequence[Tally], *, exact: bool) -> _Table:
    head = "| Model | Actions | Expected | Total | Success | Failed |\n|---|--:|--:|--:|--:|--:|"
    rows = tuple(
        redact(
            f"| `{cell(t.name)}` | {t.actions:,} | {number(t.expected)} | {t.counters.total:,} | "
            f"{t.counters.success:,} | {t.counters.failed:,} |"
        )
        for t in tallies
    )
    note = (
        ""
        if exact
        else "_The API counts executions per job: jobs with several models share them out._"
    )
    return _Table("Per model", head, rows, note)


def cell(text: str) -> str:
    """``text`` safe inside a table cell: one line, pipes and HTML escaped, bounded width."""
    flat = keep_fix(text, _CELL_WIDTH)
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
