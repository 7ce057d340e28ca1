"""The terminal summary: counts, problems first with their reasons, totals, where the files are."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.redact import redact
from runner.report._format import (
    ProblemRow,
    cached_jobs_line,
    duration,
    execution_cells,
    executions,
    exit_line,
    left_out,
    not_followed_line,
    ok_count,
    outcome_counts,
    problem_rows,
    projects_by_problems,
    wrap,
)
from runner.report.model import Outcome, Report
from runner.report.words import plural

_RED, _YELLOW, _GREEN, _BOLD, _RESET = "\033[31m", "\033[33m", "\033[32m", "\033[1m", "\033[0m"
_COLORS = {
    Outcome.FAILED: _RED,
    Outcome.UNKNOWN: _RED,
    Outcome.TIMEOUT: _YELLOW,
    Outcome.PARTIAL: _YELLOW,
    Outcome.NOT_ATTEMPTED: _YELLOW,
    Outcome.SKIPPED: _YELLOW,
    Outcome.RUNNING: _YELLOW,
    Outcome.OK: _GREEN,
}
WIDTH = 100  # characters of a line, wrapped beyond
_LABEL_WIDTH = 12  # "Executions  " and the other header labels
_OUTCOME_WIDTH = 13  # NOT_ATTEMPTED


def render_text(
    report: Report,
    *,
    color: bool,
    files: Sequence[Path | str] = (),
    max_rows: int = 50,
    summary_only: bool = False,
) -> str:
    """The summary printed at the end of a run (plain when ``color`` is False).

    Lists at most ``max_rows`` problems and projects; ``files`` are the written reports.
    ``summary_only`` (``-q``): the header and the files, without the lists.
    """
    paint = _painter(color)
    lines = _header(report, paint)
    if not summary_only:
        lines += ["", *_problems(report, paint, max_rows)]
        lines += ["", *_projects(report, max_rows)]
    if files:
        lines += ["", "Reports: " + ", ".join(str(path) for path in files)]  # never wrapped
    return redact("\n".join(lines) + "\n")


def _painter(color: bool) -> dict[str, str]:
    if not color:
        return {"bold": "", "reset": "", **{str(o): "" for o in Outcome}}
    return {"bold": _BOLD, "reset": _RESET, **{str(o): code for o, code in _COLORS.items()}}


def _header(report: Report, paint: dict[str, str]) -> list[str]:
    run, tally = report.run, report.totals.run
    code = str(Outcome.OK if report.exit_code() == 0 else Outcome.FAILED)
    lines = [
        (
            f"{paint['bold']}mlrun run {run.run_id}{paint['reset']} · {run.status} · "
            f"{duration(run.duration_seconds)} · {paint[code]}{exit_line(report)}{paint['reset']}"
        ),
        *_labelled("Actions", outcome_counts(tally)),
        *_labelled("Executions", executions(tally)),
    ]
    if cached := cached_jobs_line(report):
        lines += _labelled("Cached jobs", cached)
    if not_followed := not_followed_line(report):
        lines += _labelled("Running", not_followed)
    if run.stop_reason:
        lines += _labelled("Stopped", run.stop_reason)
    if run.skipped_projects:
        lines += _labelled("Left out", left_out(run.skipped_projects))
    if run.unreachable_projects:
        unreachable = _labelled("Unreachable", left_out(run.unreachable_projects))
        lines += [f"{paint[str(Outcome.FAILED)]}{unreachable[0]}{paint['reset']}", *unreachable[1:]]
    return lines


def _labelled(label: str, text: str) -> list[str]:
    """``Label       text``, wrapped under the text's first column."""
    width = max(_LABEL_WIDTH, len(label) + 1)
    body = wrap(text, WIDTH - width, max_lines=8)
    return [f"{label:<{width}}{body[0]}", *(" " * width + line for line in body[1:])]


def _problems(report: Report, paint: dict[str, str], max_rows: int) -> list[str]:
    problems, rows = report.problems, problem_rows(report)
    if not problems:
        done = "Every trigger was accepted." if report.not_followed else None
        return [
            f"{paint[str(Outcome.OK)]}{done or 'Every action completed as asked.'}{paint['reset']}"
        ]
    width = max(len(row.label) for row in rows[:max_rows])
    lines = [f"Problems ({len(problems):,}), worst first:"]
    for row in rows[:max_rows]:
        lines += _problem_lines(row, paint, width)
    if len(rows) > max_rows:
        lines.append(f"  … and {len(rows) - max_rows:,} more: see the full report")
    return lines


def _problem_lines(row: ProblemRow, paint: dict[str, str], width: int) -> list[str]:
    """The row's outcome, label and reason; a long reason wraps under itself, fix kept."""
    outcome = str(row.outcome)
    label = f"{paint[outcome]}{outcome:<{_OUTCOME_WIDTH}}{paint['reset']}"
    indent = 2 + _OUTCOME_WIDTH + 1 + width + 2
    reason = wrap(row.reason, max(40, WIDTH - indent))
    first = f"  {label} {row.label:<{width}}  {reason[0]}"
    return [first, *(" " * indent + line for line in reason[1:])]


def _projects(report: Report, max_rows: int) -> list[str]:
    tallies = report.totals.projects
    rows = [("project", "actions", "ok", "problems", "expected", "total", "success", "failed")]
    shown = projects_by_problems(report, tallies)[:max_rows]
    rows += [
        (
            t.name,
            f"{t.actions:,}",
            f"{ok_count(t):,}",
            f"{report.problem_count(t):,}",
            *execution_cells(t),
        )
        for t in shown
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(_cell(v, w, i) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    if len(tallies) > max_rows:
        lines.append(f"… and {plural(len(tallies) - max_rows, 'more project')}")
    return ["Per project:", *lines]


def _cell(value: str, width: int, index: int) -> str:
    return value.ljust(width) if index == 0 else value.rjust(width)
