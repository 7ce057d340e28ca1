"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

from collections.abc import Callable

from runner.exitcodes import ExitCode
from runner.report.model import Outcome, Report, Tally

EXIT_MEANINGS = {
    ExitCode.OK: "everything completed as asked",
    ExitCode.ACTION_FAILED: "some actions failed, ended partial, or differ from what was asked",
    ExitCode.INVALID: "invalid manifest or usage",
    ExitCode.INTERRUPTED: "interrupted or timed out; `mlrun apply --resume` continues the run",
    ExitCode.BUDGET_REFUSED: "refused by the budget; nothing was sent",
    ExitCode.FATAL_API: "the API refused the run (key, access or credits)",
    ExitCode.INTERNAL: "internal error",
}


def number(value: int | None) -> str:
    """``1,234``, or ``?`` when unknown."""
    return "?" if value is None else f"{value:,}"


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 04s``, ``5.2s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def outcome_counts(tally: Tally) -> str:
    """``10: 6 OK, 2 FAILED, ...`` (worst first)."""
    parts = ", ".join(f"{count:,} {outcome}" for outcome, count in tally.outcomes)
    return f"{tally.actions:,}" + (f": {parts}" if parts else "")


NOT_COUNTED = "—"  # execution columns of a group of cached-jobs triggers only


def execution_cells(tally: Tally) -> tuple[str, str, str, str]:
    """Expected, total, success, failed of ``tally`` (``—`` where no execution is counted)."""
    if not tally.counts_executions:
        return (NOT_COUNTED,) * 4
    counters = tally.counters
    return (
        number(tally.expected),
        f"{counters.total:,}",
        f"{counters.success:,}",
        f"{counters.failed:,}",
    )


def executions(tally: Tally) -> str:
    """The execution counters of ``tally`` on one line."""
    if not tally.counts_executions:
        return "none counted: cached jobs recur, and no job counter reports their runs"
    counters = tally.counters
    return (
        f"expected {number(tally.expected)} · total {counters.total:,} · success "
        f"{counters.success:,} · failed {counters.failed:,} · pending {counters.pending:,} · "
        f"retrying {counters.retrying:,}"
    )


def exit_line(report: Report) -> str:
    """``exit 1: some actions failed, ...``."""
    code = report.exit_code()
    return f"exit {int(code)}: {EXIT_MEANINGS[code]}"


def ok_count(tally: Tally) -> int:
    """Actions of ``tally`` that ended OK."""
    return tally.count(Outcome.OK)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def projects_by_problems(tallies: tuple[Tally, ...]) -> list[Tally]:
    """Projects with the most problems first, plan order otherwise."""
    return sorted(tallies, key=lambda tally: -tally.problems)


def left_out(projects: tuple[tuple[str, str], ...]) -> str:
    """``omega (not selected), ...``: the manifest's projects the plan left out."""
    return ", ".join(f"{project} ({reason})" for project, reason in projects)


def largest_fitting(compose: Callable[[int], str], most: int, limit: int) -> int:
    """The largest row cap in [0, most] whose composition fits ``limit`` (0 if none does)."""
    if len(compose(most)) <= limit:
        return most
    low, high = 0, most  # invariant: compose(high) does not fit
    while high - low > 1:
        middle = (low + high) // 2
        if len(compose(middle)) <= limit:
            low = middle
        else:
            high = middle
    return low
