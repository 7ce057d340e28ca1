"""Every renderer, checked by a real consumer: jsonschema, junitparser, markdown-it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt
from runner.errors import ConfigError, UsageError
from runner.exitcodes import ExitCode
from runner.report import (
    Outcome,
    Report,
    build_report,
    render_json,
    render_junit,
    render_markdown,
    render_text,
    write_reports,
)
from runner.report.markdown import GITHUB_COMMENT_LIMIT
from runner.schemas import load_schema

from report.report_support import (
    SECRET,
    STANDARD_OUTCOMES,
    job_action,
    open_scenario,
    standard_scenario,
    synthetic_report,
)

FAILURES = {"FAILED", "PARTIAL", "UNKNOWN", "TIMEOUT"}
SKIPS = {"SKIPPED", "NOT_ATTEMPTED"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    scenario = standard_scenario(tmp_path_factory.mktemp("render"))
    return build_report(scenario.ledger, scenario.run_id, env={}, now=1_750_000_900.0)


@pytest.fixture(scope="module")
def big() -> Report:
    return synthetic_report(20_000)


def validate(document: Any) -> None:
    schema = load_schema("report")
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


# -- JSON ----------------------------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema("report"))


def test_json_is_valid_against_the_schema(report: Report) -> None:
    document = json.loads(render_json(report))
    validate(document)
    assert document["formatVersion"] == 1
    assert document["exitCode"] == 3
    assert {a["key"]: a["outcome"] for a in document["actions"]} == STANDARD_OUTCOMES


def test_a_synthetic_report_of_every_outcome_is_valid_too() -> None:
    validate(synthetic_report(300).to_json())


def test_the_schema_rejects_unknown_fields(report: Report) -> None:
    document = report.to_json()
    document["actions"][0]["surprise"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, load_schema("report"))


# -- JUnit ---------------------------------------------------------------------------------------


def test_junit_is_read_by_junitparser_with_the_right_counts(report: Report) -> None:
    xml = JUnitXml.fromstring(render_junit(report))
    suites = list(xml)
    assert [suite.name for suite in suites] == ["acme", "beta", "gamma", "delta"]
    cases = {case.name: case for suite in suites for case in suite}
    assert set(cases) == set(STANDARD_OUTCOMES)
    for key, outcome in STANDARD_OUTCOMES.items():
        results = cases[key].result
        assert any(isinstance(r, Failure) for r in results) == (outcome in FAILURES), key
        assert any(isinstance(r, Skipped) for r in results) == (outcome in SKIPS), key
        assert cases[key].classname == key.split("/")[0]
    expected_failures = sum(o in FAILURES for o in STANDARD_OUTCOMES.values())
    assert sum(suite.failures for suite in suites) == expected_failures
    assert sum(suite.skipped for suite in suites) == sum(
        o in SKIPS for o in STANDARD_OUTCOMES.values()
    )
    assert sum(suite.tests for suite in suites) == len(STANDARD_OUTCOMES)


def test_junit_times_come_from_the_durations(report: Report) -> None:
    xml = JUnitXml.fromstring(render_junit(report))
    cases = {case.name: case for suite in xml for case in suite}
    assert cases["acme/jobs/0"].time == pytest.approx(61.0)
    assert cases["gamma/jobs/0"].time == 0.0


def test_junit_failure_says_why(report: Report) -> None:
    xml = JUnitXml.fromstring(render_junit(report))
    case = next(case for suite in xml for case in suite if case.name == "gamma/jobs/2")
    failure = case.result[0]
    assert failure.type == "PARTIAL"
    assert "expected 30 executions" in failure.message


# -- Markdown ------------------------------------------------------------------------------------


def tables(markdown: str) -> int:
    return sum(token.type == "table_open" for token in MarkdownIt().enable("table").parse(markdown))


def test_markdown_renders_a_summary_and_tables_failures_first(report: Report) -> None:
    markdown = render_markdown(report, full_report_hint="mlrun-reports/report.json")
    assert tables(markdown) == 4  # summary, problems, per project, per model
    problems = markdown.index("#### Problems")
    assert problems < markdown.index("#### Per project")
    assert markdown.index("`beta/jobs/0`") < markdown.index("`gamma/jobs/2`")
    assert "Full report: mlrun-reports/report.json" in markdown


def test_markdown_of_20000_actions_stays_under_the_limit(big: Report) -> None:
    markdown = render_markdown(big, full_report_hint="artifact report.json")
    assert len(markdown) <= 65_000 < GITHUB_COMMENT_LIMIT
    assert tables(markdown) == 4
    assert "more, see artifact report.json" in markdown
    first_problem = next(line for line in markdown.splitlines() if line.startswith("| **"))
    assert first_problem.startswith("| **FAILED** |")


@pytest.mark.parametrize("limit", [0, 50, 500, 5_000, 30_000])
def test_markdown_fits_any_limit(big: Report, limit: int) -> None:
    assert len(render_markdown(big, limit=limit)) <= limit


def test_markdown_escapes_table_breaking_text(big: Report) -> None:
    markdown = render_markdown(big, limit=20_000)
    assert "with a pipe" in markdown
    assert "\\| with a pipe" in markdown


# -- text ----------------------------------------------------------------------------------------


def test_text_summary_lists_problems_first_and_the_files(report: Report) -> None:
    text = render_text(report, color=False, files=["out/report.json", "out/junit.xml"])
    lines = text.splitlines()
    assert lines[0].startswith("mlrun run 20250615T000000Z-abcdef · finished")
    assert "exit 3" in lines[0]
    assert "Actions     12: 1 FAILED, 2 UNKNOWN, 1 TIMEOUT, 3 PARTIAL" in text
    problems = [line for line in lines if line.startswith("  ") and "/" in line]
    assert problems[0].split()[:2] == ["FAILED", "beta/jobs/0"]
    assert lines[-1] == "Reports: out/report.json, out/junit.xml"
    assert "\033[" not in text


def test_text_is_colored_on_request_and_bounded(big: Report) -> None:
    text = render_text(big, color=True, max_rows=10)
    assert "\033[31mFAILED" in text
    assert "more: see the full report" in text
    assert len(text.splitlines()) < 40


# -- secrets -------------------------------------------------------------------------------------


def test_no_renderer_leaks_an_api_key(report: Report) -> None:
    outputs = [
        render_json(report),
        render_junit(report),
        render_markdown(report),
        render_text(report, color=True),
    ]
    for output in outputs:
        assert SECRET not in output
        assert "ml_live_***" in output  # the error detail that carried the key, masked
    assert "api_key" not in render_json(report)  # the base URL's query is gone


# -- files ---------------------------------------------------------------------------------------


def test_write_reports_writes_every_format_atomically(report: Report, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path / "out", ["junit", "md", "json", "text"])
    assert [p.name for p in paths] == ["report.json", "report.md", "junit.xml", "report.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    validate(json.loads(paths[0].read_text()))
    assert f"Full report: {tmp_path / 'out' / 'report.json'}" in paths[1].read_text()
    assert "Reports: " in paths[3].read_text()


def test_write_reports_replaces_existing_files(report: Report, tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("old")
    write_reports(report, tmp_path, ["json"])
    assert json.loads((tmp_path / "report.json").read_text())["formatVersion"] == 1


def test_unknown_format_is_a_usage_error(report: Report, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown report format 'pdf'"):
        write_reports(report, tmp_path, ["json", "pdf"])


def test_unwritable_directory_is_a_config_error(report: Report, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the report"):
        write_reports(report, blocker / "sub", ["json"])


def test_a_20000_action_run_is_reported_from_the_ledger(tmp_path: Path) -> None:
    actions = [job_action(f"project-{i % 300}", i) for i in range(20_000)]
    scenario = open_scenario(tmp_path, actions)
    scenario.end()
    report = build_report(scenario.ledger, scenario.run_id, env={})
    assert report.totals.run.count(Outcome.NOT_ATTEMPTED) == 20_000
    assert report.exit_code() == ExitCode.ACTION_FAILED
    assert len(render_markdown(report)) <= 65_000


def test_an_empty_run_renders_in_every_format(tmp_path: Path) -> None:
    scenario = open_scenario(tmp_path, [])
    scenario.end()
    report = build_report(scenario.ledger, scenario.run_id, env={})
    assert report.exit_code() == ExitCode.OK
    paths = write_reports(report, tmp_path / "out", ["json", "markdown", "junit", "text"])
    validate(json.loads(paths[0].read_text()))
    assert "every action completed as asked" in paths[1].read_text()
    assert JUnitXml.fromfile(str(paths[2])).tests == 0
    assert "Every action completed as asked." in paths[3].read_text()
