"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runner.exitcodes import ExitCode
from runner.report.model import ActionResult, Outcome, Report, Tally
from runner.report.words import plural

EXIT_MEANINGS = {
    ExitCode.OK: "everything completed as asked",
    ExitCode.ACTION_FAILED: "some actions failed, ended partial, or differ from what was asked",
    ExitCode.INVALID: "invalid manifest or usage",
    ExitCode.INTERRUPTED: "interrupted or timed out; `mlrun apply --resume` continues the run",
    ExitCode.BUDGET_REFUSED: "refused by the budget; nothing was sent",
    ExitCode.FATAL_API: "the API refused the run (key, access or credits)",
    ExitCode.INTERNAL: "internal error",
}


NOT_FOLLOWED_MEANING = "every trigger was accepted; the jobs were not followed (--no-wait)"
CACHED_NOT_COUNTED = "they recur on each project's schedule: not in the expected executions"


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
        return "none expected: only cached jobs were asked for (see Cached jobs)"
    counters = tally.counters
    return (
        f"expected {number(tally.expected)} · total {counters.total:,} · success "
        f"{counters.success:,} · failed {counters.failed:,} · pending {counters.pending:,} · "
        f"retrying {counters.retrying:,}"
    )


def exit_meaning(report: Report) -> str:
    """What the report's exit code means for this run (``--no-wait``: triggered, not followed)."""
    code = report.exit_code()
    if code == ExitCode.OK and report.not_followed:
        return NOT_FOLLOWED_MEANING
    return EXIT_MEANINGS[code]


def exit_line(report: Report) -> str:
    """``exit 1: some actions failed, ...``."""
    return f"exit {int(report.exit_code())}: {exit_meaning(report)}"


def verdict(report: Report) -> str:
    """The run in a few words: what needs attention, else what was done."""
    problems, actions = len(report.problems), report.totals.run.actions
    if problems:
        need = "needs" if problems == 1 else "need"
        return f"{problems:,} of {plural(actions, 'action')} {need} attention"
    if report.not_followed:
        return f"{plural(not_followed_jobs(report), 'job')} triggered, not followed"
    return "every action completed as asked"


def not_followed_jobs(report: Report) -> int:
    """The jobs of the RUNNING actions a ``--no-wait`` run left for ``mlrun status``."""
    return sum(max(1, len(action.done.job_ids)) for action in report.not_followed)


def not_followed_line(report: Report) -> str:
    """``60 jobs triggered, not followed: `mlrun status RUN --wait` follows them``; or ``""``."""
    if not report.not_followed:
        return ""
    jobs = not_followed_jobs(report)
    them = "it" if jobs == 1 else "them"
    return (
        f"{plural(jobs, 'job')} triggered, not followed: "
        f"`mlrun status {_run_ref(report)} --wait` follows {them}"
    )


def _run_ref(report: Report) -> str:
    """The run id a command can name; a merged report's id (``a+b``) names no single run."""
    run_id = report.run.run_id
    return "RUN" if "+" in run_id else run_id


# -- cached jobs ---------------------------------------------------------------------------------


def cached_jobs_phrase(triggers: int, cached_jobs: int | None, per_round: int | None) -> str:
    """``14 cached jobs from 2 triggers, 28 executions per round; they recur ...``."""
    if cached_jobs is None or per_round is None:
        made = f"{plural(triggers, 'trigger')}, one cached job per query (query counts unknown)"
    else:
        made = (
            f"{plural(cached_jobs, 'cached job')} from {plural(triggers, 'trigger')}, "
            f"{plural(per_round, 'execution')} per round"
        )
    return f"{made}; {CACHED_NOT_COUNTED}"


def cached_jobs_line(report: Report) -> str:
    """The cached-jobs triggers of the run on one line, or ``""`` when it asked for none."""
    cached = [a for a in report.actions if a.asked.endpoint == "cachedJobs"]
    if not cached:
        return ""
    returned = [a.done.cached.returned if a.done.cached else len(a.done.job_ids) for a in cached]
    rounds = [a.asked.expected_executions for a in cached]
    per_round = None if None in rounds else sum(r for r in rounds if r is not None)
    return cached_jobs_phrase(len(cached), sum(returned), per_round)


# -- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemRow:
    """A line of the problem list: one action, or the actions of a run that never sent them."""

    outcome: Outcome
    label: str  # the action's key, or "37 actions"
    reason: str
    expected: int | None
    action: ActionResult | None = None  # None: a group


def problem_rows(report: Report) -> list[ProblemRow]:
    """:attr:`Report.problems` as rows, worst first.

    The actions a stopped run never sent are one row, and so are its jobs left running: their
    reasons are the same, and so is the fix.
    """
    groups: dict[str, list[ActionResult]] = {}
    for action in report.problems:
        if (kind := _group_of(action)) is not None:
            groups.setdefault(kind, []).append(action)
    rows: list[ProblemRow] = []
    for action in report.problems:
        kind = _group_of(action)
        if kind is None:
            expected = action.asked.expected_executions
            rows.append(ProblemRow(action.outcome, action.key, action.reason, expected, action))
        elif action is groups[kind][0]:
            rows.append(_group_row(report, kind, groups[kind]))
    return rows


def _group_of(action: ActionResult) -> str | None:
    """``unsent`` or ``running`` for an action whose reason is its group's, else None."""
    if action.outcome == Outcome.NOT_ATTEMPTED and action.done.attempts == 0:
        return "unsent"
    if action.outcome == Outcome.RUNNING and not action.differences:
        return "running"
    return None


def _group_row(report: Report, kind: str, actions: Sequence[ActionResult]) -> ProblemRow:
    count = len(actions)
    keys = f" ({', '.join(a.key for a in actions)})" if 1 < count <= SHOWN_GROUP_KEYS else ""
    them = "it" if count == 1 else "them"
    resume = f"`mlrun apply --resume {_run_ref(report)}`"
    if kind == "unsent":
        outcome, what = Outcome.NOT_ATTEMPTED, "not attempted"
        if report.run.status == "interrupted":
            why = f"the run was interrupted; {resume} continues"
        else:
            why = f"the run ended before {'it was' if count == 1 else 'they were'} sent; {resume} "
            why += f"sends {them}"
    else:
        outcome, what = Outcome.RUNNING, "jobs not followed to the end"
        if report.run.status == "running":
            why = f"the run is following {them}; `mlrun status {_run_ref(report)}` shows where"
        else:
            stopped = "was interrupted" if report.run.status == "interrupted" else "stopped"
            why = f"the run {stopped}; {resume} follows {them}"
    expected = [a.asked.expected_executions for a in actions]
    total = None if None in expected else sum(e for e in expected if e is not None)
    label = actions[0].key if count == 1 else plural(count, "action")
    return ProblemRow(outcome, label, f"{what}{keys}: {why}", total)


SHOWN_GROUP_KEYS = 3  # a group of at most this many actions names them (of one: its label)


# -- long lines ----------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"`[^`]*`")
_NBSP = "\u00a0"


def keep_fix(text: str, width: int) -> str:
    """``text`` on one line in at most ``width`` characters, its last clause (the fix) kept.

    A reason ends with what to do (``…; `mlrun apply --resume` continues``): when it is too
    long, the middle is cut, never the end.
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    head, separator, fix = flat.rpartition("; ")
    if not separator or len(fix) > width // 2:
        return shorten(flat, width)
    room = width - len(fix) - len("…; ")
    return f"{head[: max(0, room)].rstrip()}…; {fix}"


def wrap(text: str, width: int, *, max_lines: int = 4) -> list[str]:
    """``text`` wrapped to ``width`` (code spans never broken), at most ``max_lines`` lines,
    its fix kept (:func:`keep_fix`)."""
    flat = keep_fix(text, width * max_lines)
    protected = _CODE_SPAN.sub(lambda match: match.group().replace(" ", _NBSP), flat)
    lines = textwrap.wrap(protected, width, break_on_hyphens=False, break_long_words=False)
    return [line.replace(_NBSP, " ") for line in lines] or [""]


def ok_count(tally: Tally) -> int:
    """Actions of ``tally`` that ended OK."""
    return tally.count(Outcome.OK)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def projects_by_problems(report: Report, tallies: Sequence[Tally]) -> list[Tally]:
    """Projects with the most problems first, plan order otherwise."""
    return sorted(tallies, key=lambda tally: -report.problem_count(tally))


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
