"""The terminal summary: counts, problems first with their reasons, totals, where the files are."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.redact import redact
from runner.report._format import (
    duration,
    execution_cells,
    executions,
    exit_line,
    left_out,
    ok_count,
    outcome_counts,
    projects_by_problems,
    shorten,
)
from runner.report.model import ActionResult, Outcome, Report, Tally

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
_REASON_WIDTH = 100


def render_text(
    report: Report,
    *,
    color: bool,
    files: Sequence[Path | str] = (),
    max_rows: int = 50,
) -> str:
    """The summary printed at the end of a run (plain when ``color`` is False).

    Lists at most ``max_rows`` problem actions and projects; ``files`` are the written reports.
    """
    paint = _painter(color)
    lines = [*_header(report, paint), "", *_problems(report, paint, max_rows)]
    lines += ["", *_projects(report.totals.projects, max_rows)]
    if files:
        lines += ["", "Reports: " + ", ".join(str(path) for path in files)]
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
        f"Actions     {outcome_counts(tally)}",
        f"Executions  {executions(tally)}",
    ]
    if run.stop_reason:
        lines.append(f"Stopped     {run.stop_reason}")
    if run.skipped_projects:
        lines.append(f"Left out    {shorten(left_out(run.skipped_projects), _REASON_WIDTH)}")
    if run.unreachable_projects:
        unreachable = shorten(left_out(run.unreachable_projects), _REASON_WIDTH)
        lines.append(f"{paint[str(Outcome.FAILED)]}Unreachable{paint['reset']} {unreachable}")
    return lines


def _problems(report: Report, paint: dict[str, str], max_rows: int) -> list[str]:
    problems = report.problems
    if not problems:
        return [f"{paint[str(Outcome.OK)]}Every action completed as asked.{paint['reset']}"]
    width = max(len(a.key) for a in problems[:max_rows])
    lines = [f"Problems ({len(problems):,}), worst first:"]
    lines += [_problem_line(action, paint, width) for action in problems[:max_rows]]
    if len(problems) > max_rows:
        lines.append(f"  … and {len(problems) - max_rows:,} more: see the full report")
    return lines


def _problem_line(action: ActionResult, paint: dict[str, str], width: int) -> str:
    outcome = str(action.outcome)
    label = f"{paint[outcome]}{outcome:<13}{paint['reset']}"
    return f"  {label} {action.key:<{width}}  {shorten(action.reason, _REASON_WIDTH)}"


def _projects(tallies: tuple[Tally, ...], max_rows: int) -> list[str]:
    rows = [("project", "actions", "ok", "problems", "expected", "total", "success", "failed")]
    shown = projects_by_problems(tallies)[:max_rows]
    rows += [
        (
            t.name,
            f"{t.actions:,}",
            f"{ok_count(t):,}",
            f"{t.problems:,}",
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
        lines.append(f"… and {len(tallies) - max_rows:,} more projects")
    return ["Per project:", *lines]


def _cell(value: str, width: int, index: int) -> str:
    return value.ljust(width) if index == 0 else value.rjust(width)
