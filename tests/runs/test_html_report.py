"""The HTML report: self-contained, accessible, failures first, charts drawn from the report."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from runner.report import Outcome, write_reports
from runner.report.html import MAX_BINS, SYMBOLS, bin_size, bins, render_html, timeline_requests
from runner.report.model import Report

from report.report_support import SECRET, STANDARD_OUTCOMES, synthetic_report
from runs.runs_support import standard_report


@pytest.fixture
def report(tmp_path: Path) -> Report:
    return standard_report(tmp_path)


class Page(HTMLParser):
    """The tags, attributes and text of a page, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def test_the_page_is_self_contained(report: Report) -> None:
    text = render_html(report)
    page = Page(text)
    assert not page.all("script")
    assert not page.all("link")
    assert not page.all("img")
    assert not any("src" in attrs for _, attrs in page.tags)
    assert "@import" not in text
    assert "url(http" not in text
    assert not re.search(r"url\((?!#p-)", text)  # only the page's own SVG patterns
    for _, attrs in page.tags:
        for name, value in attrs.items():
            assert not (value or "").startswith(("http://", "https://", "//")), (name, value)


def test_no_secret_reaches_the_page(report: Report) -> None:
    assert SECRET not in render_html(report)


def test_the_reconciliation_lists_every_action_failures_first(report: Report) -> None:
    page = Page(render_html(report))
    rows = [a["class"] or "" for a in page.all("tr") if "outcome-" in (a.get("class") or "")]
    outcomes = [Outcome(css.split("outcome-")[1]) for css in rows]
    assert len(outcomes) == len(STANDARD_OUTCOMES)
    assert outcomes == sorted(outcomes, key=lambda outcome: outcome.rank)
    assert outcomes[0] == Outcome.FAILED
    assert outcomes[-1] == Outcome.OK


def test_meaning_never_rests_on_colour_alone(report: Report) -> None:
    text = render_html(report)
    for outcome in {Outcome(o) for o in STANDARD_OUTCOMES.values()}:
        assert f"{SYMBOLS[outcome]} {outcome}" in text  # a symbol and the outcome's name
    patterns = re.findall(r'<pattern id="p-(\w+)"', text)
    assert set(patterns) == {str(outcome) for outcome in Outcome}


def test_tables_and_charts_are_labelled(report: Report) -> None:
    page = Page(render_html(report))
    assert page.all("caption")
    assert all(attrs.get("scope") in {"col", "row"} for attrs in page.all("th"))
    charts = page.all("svg")
    assert {c["id"] for c in charts} == {"timeline-chart", "projects-chart", "models-chart"}
    assert all(c.get("role") == "img" and c.get("aria-labelledby") for c in charts)
    assert page.all("html")[0]["lang"] == "en"


def test_the_timeline_shows_every_request_429_and_retry(report: Report) -> None:
    requests = timeline_requests(report)
    attempts = sum(len(a.done.attempt_log) for a in report.actions)
    assert len(requests) == attempts
    text = render_html(report)
    limited = sum(r.rate_limited for r in requests)
    assert limited == 1
    assert text.count('class="rate-limited"') == 1
    assert text.count('class="retry"') >= 1
    assert f"{attempts:,} trigger requests" in text


def test_the_limit_is_drawn_only_when_known(report: Report) -> None:
    assert 'id="limit-line"' not in render_html(report)
    with_limit = render_html(report, rate_limit=10)
    assert 'id="limit-line"' in with_limit
    assert "limit 10/s (dashed)" in with_limit


@pytest.mark.parametrize(("span", "size"), [(1, 1), (120, 1), (121, 2), (3600, 30), (10**7, 86400)])
def test_bins_are_as_fine_as_the_chart_allows(span: float, size: int) -> None:
    assert bin_size(span) == size
    assert span / size <= MAX_BINS or size == 86400


def test_bins_count_requests_429s_and_retries(report: Report) -> None:
    requests = timeline_requests(report)
    size, slices = bins(requests, 200.0)
    assert size == 2
    assert sum(s.requests for s in slices) == len(requests)
    assert sum(s.retries for s in slices) == sum(r.retry for r in requests)


def test_outside_text_is_escaped(report: Report) -> None:
    from dataclasses import replace  # noqa: PLC0415

    hostile = replace(report.run, run_id="<script>alert(1)</script>")
    text = render_html(replace(report, run=hostile))
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_large_run_is_summarised(tmp_path: Path) -> None:
    big = synthetic_report(6_000)
    text = render_html(big)
    assert "more actions, all in report.json" in text
    assert text.count('<g class="bar"') <= 2 * 40 + 10


def test_write_reports_writes_the_html(report: Report, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path / "out", ["html", "json"])
    assert [p.name for p in paths] == ["report.json", "report.html"]
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8").startswith("<!doctype")
