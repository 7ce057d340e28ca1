"""The report as one self-contained HTML page: a timeline, outcome charts, the reconciliation.

Everything is inline (CSS in a ``<style>``, charts as inline SVG); there is no script and no
external resource, so the file opens anywhere, offline, and is safe to upload as a CI artifact.
Meaning never rests on colour alone: every outcome has a symbol and its name in text, chart bars
carry patterns and text labels, and each chart has a data table or caption beside it.

The timeline is drawn from the report's attempt log (the trigger requests, journaled by the
ledger): requests per second against the rate limit when it is known, the 429 answers and the
retries on their own labelled lanes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runner.isotime import parse_instant
from runner.redact import redact
from runner.report._format import (
    cached_jobs_line,
    duration,
    execution_cells,
    exit_line,
    left_out,
    not_followed_line,
    number,
    ok_count,
)
from runner.report.model import ActionResult, Outcome, Report, Tally
from runner.report.words import plural

MAX_TABLE_ROWS = 5_000  # beyond this the page gets slow; report.json has every action
MAX_CHART_ROWS = 40
MAX_BINS = 120
_BIN_SIZES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)

SYMBOLS = {
    Outcome.FAILED: "✗",
    Outcome.UNKNOWN: "?",
    Outcome.TIMEOUT: "◷",
    Outcome.PARTIAL: "◐",
    Outcome.NOT_ATTEMPTED: "–",
    Outcome.SKIPPED: "↷",
    Outcome.RUNNING: "…",
    Outcome.OK: "✓",
}
# (fill colour, pattern): the pattern tells the outcomes apart in greyscale and print too.
_STYLES = {
    Outcome.FAILED: ("#b3261e", "cross"),
    Outcome.UNKNOWN: ("#6e3aa6", "dots"),
    Outcome.TIMEOUT: ("#b35c00", "diagonal"),
    Outcome.PARTIAL: ("#c99a00", "back-diagonal"),
    Outcome.NOT_ATTEMPTED: ("#7a7a7a", "horizontal"),
    Outcome.SKIPPED: ("#9e9e9e", "vertical"),
    Outcome.RUNNING: ("#1f6fb2", "grid"),
    Outcome.OK: ("#2e7d32", "solid"),
}

_CSS = """
:root { color-scheme: light; --ink: #1b1b1b; --muted: #555; --line: #d0d0d0; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 1.25em; margin: 32px 0 8px; border-bottom: 2px solid var(--ink); }
.verdict { font-size: 1.15em; font-weight: 600; padding: 8px 12px; border: 2px solid var(--ink);
  display: inline-block; margin: 8px 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; word-break: break-all; }
ul.counts { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 8px; }
ul.counts li { border: 1px solid var(--line); padding: 4px 10px; border-radius: 4px; }
figure { margin: 8px 0 16px; } figcaption { color: var(--muted); margin-top: 4px; }
svg { max-width: 100%; height: auto; font: 13px system-ui, sans-serif; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.problem td:first-child { border-left: 6px double var(--ink); font-weight: 600; }
td ul { margin: 0; padding-left: 16px; }
#reconciliation-table td:nth-child(4) { min-width: 14em; }
#reconciliation-table td:last-child { min-width: 22em; }
.note { color: var(--muted); font-style: italic; }
"""


def render_html(report: Report, *, rate_limit: float | None = None) -> str:
    """The whole page; ``rate_limit`` (requests per second) draws the limit on the timeline."""
    parts = [
        _head(report),
        _header(report),
        _timeline_section(report, rate_limit),
        _tally_section(report, "projects", "Outcomes per project", report.totals.projects),
        _tally_section(report, "models", "Outcomes per model", report.totals.models),
        _reconciliation(report.actions),
        _footer(report),
    ]
    return redact("\n".join(parts)) + "</main>\n</body>\n</html>\n"


def esc(value: object) -> str:
    """HTML-escaped text of ``value`` (quotes too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


# -- head and header -----------------------------------------------------------------------------


def _head(report: Report) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>mlrun report {esc(report.run.run_id)}</title>\n<style>{_CSS}</style>\n"
        "</head>\n<body>\n<main>"
    )


def _header(report: Report) -> str:
    run, verdict = report.run, exit_line(report)
    return (
        f"<header>\n<h1>mlrun run {esc(run.run_id)}</h1>\n"
        f'<p class="verdict" id="verdict">{SYMBOLS[_verdict_outcome(report)]} {esc(verdict)}</p>\n'
        f"{_meta_list(report)}\n{_counts(report.totals.run)}\n</header>"
    )


def _verdict_outcome(report: Report) -> Outcome:
    return Outcome.OK if report.exit_code() == 0 else Outcome.FAILED


def _meta_list(report: Report) -> str:
    run = report.run
    rows = [
        ("Status", run.status),
        ("Started", run.started_at),
        ("Finished", run.finished_at or "not finished"),
        ("Duration", duration(run.duration_seconds)),
        ("Base URL", run.base_url),
        ("Manifest", run.manifest_digest),
        ("mlrun", run.mlrun_version),
    ]
    if run.ci.provider:
        rows.append(
            ("CI", " · ".join(v for v in (run.ci.provider, run.ci.commit, run.ci.run_id) if v))
        )
    rows += [(name, value) for name, value in _notes(report) if value]
    items = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in rows)
    return f'<dl class="meta">{items}</dl>'


def _notes(report: Report) -> list[tuple[str, str]]:
    run = report.run
    return [
        ("Cached jobs", cached_jobs_line(report)),
        ("Running", not_followed_line(report)),
        ("Stopped", run.stop_reason or ""),
        ("Left out", left_out(run.skipped_projects)),
        ("Unreachable, not triggered", left_out(run.unreachable_projects)),
    ]


def _counts(tally: Tally) -> str:
    items = [f"<li><strong>{tally.actions:,}</strong> actions</li>"]
    items += [
        f"<li>{SYMBOLS[outcome]} <strong>{count:,}</strong> {esc(outcome)}</li>"
        for outcome, count in tally.outcomes
    ]
    label = "Actions by outcome"
    return f'<ul class="counts" aria-label="{label}">{"".join(items)}</ul>'


def _footer(report: Report) -> str:
    return (
        f'<footer><p class="note">Generated by mlrun {esc(report.run.mlrun_version)} at '
        f"{esc(report.run.generated_at)}. The JSON report (report.json) holds every detail: "
        "attempt logs, jobs and counters.</p></footer>"
    )


# -- the timeline ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One trigger request on the timeline, in seconds from the run's start."""

    at: float
    rate_limited: bool
    retry: bool


@dataclass(frozen=True)
class Bin:
    """Requests in one slice of the timeline."""

    start: float
    requests: int
    rate_limited: int
    retries: int


def timeline_requests(report: Report) -> list[Request]:
    """Every trigger attempt of the report, sorted by time from the run's start."""
    start = _epoch(report.run.started_at)
    found = [
        Request(
            max(0.0, _epoch(attempt.sent_at) - start),
            rate_limited=attempt.outcome == "rate_limited" or attempt.http_status == 429,
            retry=attempt.attempt > 1,
        )
        for action in report.actions
        for attempt in action.done.attempt_log
    ]
    return sorted(found, key=lambda request: request.at)


def bin_size(span: float) -> int:
    """The smallest bin width (seconds) that keeps ``span`` within :data:`MAX_BINS` bins."""
    return next((size for size in _BIN_SIZES if span / size <= MAX_BINS), _BIN_SIZES[-1])


def bins(requests: Sequence[Request], span: float) -> tuple[int, list[Bin]]:
    """The bin width and the requests, 429s and retries counted per bin over ``span`` seconds."""
    size = bin_size(span)
    count = max(1, int(span // size) + 1)
    totals = [[0, 0, 0] for _ in range(count)]
    for request in requests:
        row = totals[min(count - 1, int(request.at // size))]
        row[0] += 1
        row[1] += request.rate_limited
        row[2] += request.retry
    return size, [Bin(i * size, *row) for i, row in enumerate(totals)]


def _epoch(timestamp: str) -> float:
    return parse_instant(timestamp).timestamp()


def _timeline_section(report: Report, rate_limit: float | None) -> str:
    requests = timeline_requests(report)
    body = (
        _timeline_svg(requests, report.run.duration_seconds, rate_limit)
        if requests
        else '<p class="note">No trigger request was sent in this run.</p>'
    )
    return (
        '<section id="timeline" aria-labelledby="timeline-title">\n'
        '<h2 id="timeline-title">Timeline: trigger requests per second</h2>\n'
        f"<figure>{body}<figcaption>{esc(_timeline_caption(requests, rate_limit))}"
        "</figcaption></figure>\n</section>"
    )


def _timeline_caption(requests: Sequence[Request], rate_limit: float | None) -> str:
    if not requests:
        return "Polls of job status are not journaled, so they are not drawn."
    limited = sum(r.rate_limited for r in requests)
    retries = sum(r.retry for r in requests)
    limit = f"limit {rate_limit:g}/s" if rate_limit else "the rate limit is not recorded"
    sent, retried = plural(len(requests), "trigger request"), plural(retries, "retry", "retries")
    return (
        f"{sent} ({limit}); {limited:,} answered 429 (triangles); {retried} (circles). "
        "Job-status polls are not journaled, so they are not drawn."
    )


_W, _H = 1150, 330
_LEFT, _RIGHT, _TOP = 70, 20, 20
_PLOT_BOTTOM = 220
_LANE_429, _LANE_RETRY = 262, 292


def _timeline_svg(requests: Sequence[Request], span: float, rate_limit: float | None) -> str:
    span = max(span, requests[-1].at, 1.0)
    size, slices = bins(requests, span)
    peak = max(b.requests for b in slices) / size
    top = max(peak, rate_limit or 0.0) * 1.15 or 1.0
    width = (_W - _LEFT - _RIGHT) / len(slices)
    parts = [
        _y_axis(top),
        *(_column(b, i, width, size, top) for i, b in enumerate(slices)),
        _limit_line(rate_limit, top),
        _lanes(slices, width),
        _x_axis(span, len(slices), size),
    ]
    desc = f"Requests per second in {size}-second bins; peak {peak:.1f}/s" + (
        f"; limit {rate_limit:g}/s." if rate_limit else "."
    )
    return _svg("timeline", "Trigger requests per second over the run", desc, _H, "".join(parts))


def _svg(name: str, title: str, desc: str, height: int, content: str) -> str:
    return (
        f'<svg id="{name}-chart" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        f'role="img" aria-labelledby="{name}-svg-title {name}-svg-desc">'
        f'<title id="{name}-svg-title">{esc(title)}</title>'
        f'<desc id="{name}-svg-desc">{esc(desc)}</desc>{_PATTERNS}{content}</svg>'
    )


def _y(value: float, top: float) -> float:
    return _PLOT_BOTTOM - (value / top) * (_PLOT_BOTTOM - _TOP)


def _y_axis(top: float) -> str:
    ticks = []
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = top / 1.15 * fraction
        y = _y(value, top)
        ticks.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>'
        )
    label = (
        f'<text x="14" y="{(_TOP + _PLOT_BOTTOM) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(_TOP + _PLOT_BOTTOM) / 2:.0f})">requests / s</text>'
    )
    return "".join(ticks) + label


def _column(slice_: Bin, index: int, width: float, size: int, top: float) -> str:
    if not slice_.requests:
        return ""
    rate = slice_.requests / size
    x, y = _LEFT + index * width, _y(rate, top)
    return (
        f'<rect class="rate" x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(width - 1, 1):.1f}" '
        f'height="{_PLOT_BOTTOM - y:.1f}" fill="#4a4a4a">'
        f"<title>{_clock(slice_.start)}: {plural(slice_.requests, 'request')} "
        f"({rate:.2f}/s)</title></rect>"
    )


def _limit_line(rate_limit: float | None, top: float) -> str:
    if not rate_limit:
        return ""
    y = _y(rate_limit, top)
    return (
        f'<line id="limit-line" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
        'stroke="#b3261e" stroke-width="2" stroke-dasharray="8 5"/>'
        f'<text x="{_W - _RIGHT}" y="{y - 5:.1f}" text-anchor="end" font-weight="600">'
        f"limit {rate_limit:g}/s (dashed)</text>"
    )


def _lanes(slices: Sequence[Bin], width: float) -> str:
    parts = [
        f'<text x="{_LEFT - 6}" y="{_LANE_429 + 4}" text-anchor="end">429s ▲</text>',
        f'<text x="{_LEFT - 6}" y="{_LANE_RETRY + 4}" text-anchor="end">retries ●</text>',
    ]
    for index, slice_ in enumerate(slices):
        x = _LEFT + (index + 0.5) * width
        if slice_.rate_limited:
            parts.append(_triangle(x, slice_))
        if slice_.retries:
            parts.append(
                f'<circle class="retry" cx="{x:.1f}" cy="{_LANE_RETRY}" r="5" fill="#1f6fb2">'
                f"<title>{_clock(slice_.start)}: {slice_.retries} retries</title></circle>"
            )
    return "".join(parts)


def _triangle(x: float, slice_: Bin) -> str:
    y = _LANE_429
    return (
        f'<polygon class="rate-limited" points="{x - 6:.1f},{y + 5} {x + 6:.1f},{y + 5} '
        f'{x:.1f},{y - 6}" fill="#b3261e"><title>{_clock(slice_.start)}: '
        f"{slice_.rate_limited} answered 429</title></polygon>"
    )


def _x_axis(span: float, count: int, size: int) -> str:
    plot = _W - _LEFT - _RIGHT
    axis = f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_PLOT_BOTTOM}" y2="{_PLOT_BOTTOM}"'
    parts = [f'{axis} stroke="#1b1b1b"/>']
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _LEFT + fraction * plot
        parts.append(
            f'<text x="{x:.1f}" y="{_PLOT_BOTTOM + 16}" text-anchor="middle">'
            f"{_clock(fraction * count * size)}</text>"
        )
    parts.append(
        f'<text x="{_W - _RIGHT}" y="{_H - 4}" text-anchor="end">time since the run started '
        f"(run lasted {esc(duration(span))})</text>"
    )
    return "".join(parts)


def _clock(seconds: float) -> str:
    """``12.5s`` under two minutes, else ``m:ss`` or ``h:mm:ss``."""
    if seconds < 120:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# -- outcome charts --------------------------------------------------------------------------------


def _pattern(outcome: Outcome) -> str:
    colour, kind = _STYLES[outcome]
    strokes = {
        "solid": "",
        "cross": "M0,0 L8,8 M8,0 L0,8",
        "diagonal": "M0,8 L8,0",
        "back-diagonal": "M0,0 L8,8",
        "horizontal": "M0,4 L8,4",
        "vertical": "M4,0 L4,8",
        "grid": "M0,4 L8,4 M4,0 L4,8",
    }
    if kind == "dots":
        marks = '<circle cx="4" cy="4" r="1.6" fill="#fff"/>'
    else:
        path = strokes[kind]
        marks = f'<path d="{path}" stroke="#fff" stroke-width="1.6"/>' if path else ""
    return (
        f'<pattern id="p-{outcome}" width="8" height="8" patternUnits="userSpaceOnUse">'
        f'<rect width="8" height="8" fill="{colour}"/>{marks}</pattern>'
    )


_PATTERNS = "<defs>" + "".join(_pattern(outcome) for outcome in Outcome) + "</defs>"
_LABEL_W, _BAR_X, _BAR_W, _ROW = 200, 210, 240, 28


def _tally_section(report: Report, name: str, title: str, tallies: Sequence[Tally]) -> str:
    shown = sorted(tallies, key=lambda t: -report.problem_count(t))[:MAX_CHART_ROWS]
    more = len(tallies) - len(shown)
    note = f'<p class="note">… and {more:,} more (see the table below).</p>' if more > 0 else ""
    chart = _bars_svg(name, title, shown) if shown else '<p class="note">No actions.</p>'
    return (
        f'<section id="{name}" aria-labelledby="{name}-title">\n'
        f'<h2 id="{name}-title">{esc(title)}</h2>\n<figure>{chart}{note}'
        f"<figcaption>Bars are split by outcome, worst first; each outcome has its own pattern "
        f"and the counts are written beside the bar.</figcaption></figure>\n"
        f"{_tally_table(report, name, tallies)}\n</section>"
    )


def _bars_svg(name: str, title: str, tallies: Sequence[Tally]) -> str:
    most = max(t.actions for t in tallies) or 1
    rows = "".join(_bar_row(t, i, most) for i, t in enumerate(tallies))
    legend_y = len(tallies) * _ROW + 16
    height = legend_y + 30
    desc = "; ".join(f"{t.name}: {_outcome_words(t)}" for t in tallies)
    return _svg(name, title, desc, height, rows + _legend(legend_y))


def _bar_row(tally: Tally, index: int, most: int) -> str:
    y = index * _ROW + 6
    label = esc(_cut(tally.name, 30))
    parts = [
        f'<g class="bar" data-name="{esc(tally.name)}">',
        f'<text x="{_LABEL_W}" y="{y + 15}" text-anchor="end">{label}</text>',
    ]
    x = float(_BAR_X)
    for outcome, count in tally.outcomes:
        width = _BAR_W * count / most
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="20" fill="url(#p-{outcome})" '
            f'stroke="#1b1b1b" stroke-width="0.5"><title>{esc(tally.name)}: {count:,} '
            f"{outcome}</title></rect>"
        )
        x += width
    parts.append(f'<text x="{x + 8:.1f}" y="{y + 15}">{esc(_outcome_words(tally))}</text></g>')
    return "".join(parts)


def _outcome_words(tally: Tally) -> str:
    return ", ".join(f"{SYMBOLS[o]} {count:,} {o}" for o, count in tally.outcomes) or "none"


def _legend(y: int) -> str:
    parts, x = [], 10
    for outcome in Outcome:
        parts.append(
            f'<rect x="{x}" y="{y}" width="16" height="16" fill="url(#p-{outcome})" '
            f'stroke="#1b1b1b" stroke-width="0.5"/><text x="{x + 20}" y="{y + 13}">'
            f"{SYMBOLS[outcome]} {outcome}</text>"
        )
        x += 44 + 9 * len(str(outcome))
    return f'<g class="legend">{"".join(parts)}</g>'


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _tally_table(report: Report, name: str, tallies: Sequence[Tally]) -> str:
    head = ("Name", "Actions", "OK", "Problems", "Expected", "Total", "Success", "Failed")
    rows = [
        (
            t.name,
            f"{t.actions:,}",
            f"{ok_count(t):,}",
            f"{report.problem_count(t):,}",
            *execution_cells(t),
        )
        for t in tallies[:MAX_TABLE_ROWS]
    ]
    caption = f"Executions per {name[:-1]}: expected against what the API created"
    return _table(f"{name}-table", caption, head, rows, numeric_from=1)


def _table(
    table_id: str,
    caption: str,
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric_from: int,
) -> str:
    def cell(index: int, value: str) -> str:
        css = ' class="num"' if index >= numeric_from else ""
        return f"<td{css}>{esc(value)}</td>"

    def head_cell(index: int, value: str) -> str:
        css = ' class="num"' if index >= numeric_from else ""
        return f'<th scope="col"{css}>{esc(value)}</th>'

    header = "".join(head_cell(i, h) for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<table id="{table_id}"><caption>{esc(caption)}</caption>'
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
    )


# -- the reconciliation table ------------------------------------------------------------------


_RECONCILIATION_HEAD = (
    "Outcome",
    "Action",
    "Endpoint",
    "Models",
    "Expected",
    "Created",
    "Success",
    "Failed",
    "Job status",
    "Attempts",
    "429s",
    "Differences",
)


def _reconciliation(actions: Sequence[ActionResult]) -> str:
    shown = actions[:MAX_TABLE_ROWS]
    header = "".join(f'<th scope="col">{esc(h)}</th>' for h in _RECONCILIATION_HEAD)
    body = "".join(_action_row(action) for action in shown)
    more = len(actions) - len(shown)
    listed = plural(more, "more action")
    note = f'<p class="note">… and {listed}, all in report.json.</p>' if more > 0 else ""
    return (
        '<section id="reconciliation" aria-labelledby="reconciliation-title">\n'
        '<h2 id="reconciliation-title">Reconciliation: asked against done, failures first</h2>\n'
        '<table id="reconciliation-table"><caption>One row per action; problems are marked by '
        "a double rule and their outcome's name.</caption>"
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{note}\n</section>"
    )


def _action_row(action: ActionResult) -> str:
    asked, done = action.asked, action.done
    counters = done.counters
    cells = [
        f"<td>{SYMBOLS[action.outcome]} {esc(action.outcome)}</td>",
        f'<th scope="row">{esc(action.key)}</th>',
        f"<td>{esc(asked.endpoint)}</td>",
        f"<td>{esc(', '.join(asked.models))} × {asked.execution_count}</td>",
        _num(number(asked.expected_executions)),
        _num("-" if counters is None else f"{counters.total:,}"),
        _num("-" if counters is None else f"{counters.success:,}"),
        _num("-" if counters is None else f"{counters.failed:,}"),
        f"<td>{esc(done.job_status or done.state)}</td>",
        _num(f"{done.attempts:,}"),
        _num(f"{done.rate_limited:,}"),
        f"<td>{_differences(action)}</td>",
    ]
    css = "ok" if action.outcome == Outcome.OK else "problem"
    return f'<tr class="{css} outcome-{action.outcome}">{"".join(cells)}</tr>'


def _num(text: str) -> str:
    return f'<td class="num">{esc(text)}</td>'


def _differences(action: ActionResult) -> str:
    if not action.differences:
        return "as asked" if action.outcome == Outcome.OK else esc(action.reason)
    items = "".join(f"<li>{esc(d.message)}</li>" for d in action.differences)
    return f"<ul>{items}</ul>"
