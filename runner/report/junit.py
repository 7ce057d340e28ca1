"""JUnit XML, as CI servers read it: one test suite per project, one test case per action.

FAILED, PARTIAL, UNKNOWN and TIMEOUT actions (and any action with a difference) carry a
``<failure>``; SKIPPED, NOT_ATTEMPTED and RUNNING ones a ``<skipped>``, but for the RUNNING ones
of a run that did not follow its jobs (``--no-wait``): their trigger was what was asked, so they
pass, as the exit code says. ``time`` is the action's duration from the first send to the end of
its jobs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Only builds XML from our own values; nothing untrusted is parsed here.
from xml.etree import ElementTree as ET

from runner.redact import redact
from runner.report.model import ActionResult, Outcome, Report

NOT_FOLLOWED_CASE = "triggered, not followed (--no-wait): `mlrun status RUN --wait` follows it"
_SKIPPED = frozenset({Outcome.SKIPPED, Outcome.NOT_ATTEMPTED, Outcome.RUNNING})
# Characters XML 1.0 cannot carry at all, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_junit(report: Report) -> str:
    """The report as a JUnit XML document (``<testsuites>`` root)."""
    root = ET.Element("testsuites", name=_clean(f"mlrun run {report.run.run_id}"))
    by_project: dict[str, list[ActionResult]] = {t.name: [] for t in report.totals.projects}
    for action in report.actions:
        by_project.setdefault(action.project, []).append(action)
    not_followed = {action.key for action in report.not_followed}
    suites = [_suite(report, name, actions, not_followed) for name, actions in by_project.items()]
    root.extend(suites)
    _count(root, suites)
    ET.indent(root)
    return redact(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")


def _suite(
    report: Report, project: str, actions: Sequence[ActionResult], not_followed: set[str]
) -> ET.Element:
    suite = ET.Element("testsuite", name=_clean(project), timestamp=report.run.started_at)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("runId", report.run.run_id),
        ("manifestDigest", report.run.manifest_digest),
    ):
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    suite.extend(_case(action, followed=action.key not in not_followed) for action in actions)
    _count(suite, list(suite.iter("testcase")))
    return suite


def _case(action: ActionResult, *, followed: bool) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=_clean(action.project),
        name=_clean(action.key),
        time=_seconds(action.done.durations.total),
    )
    if followed:  # else triggered as asked, its jobs left to `mlrun status`: a pass
        _mark(case, action)
    ET.SubElement(case, "system-out").text = _clean(_details(action, followed=followed))
    return case


def _mark(case: ET.Element, action: ActionResult) -> None:
    """``<skipped>`` or ``<failure>`` when the action is not OK, with the reason."""
    if action.outcome in _SKIPPED:
        ET.SubElement(case, "skipped", message=_clean(f"{action.outcome}: {action.reason}"))
    elif action.outcome != Outcome.OK or action.differences:
        failure = ET.SubElement(
            case,
            "failure",
            message=_clean(f"{action.outcome}: {action.reason}"),
            type=str(action.outcome),
        )
        failure.text = _clean("\n".join(d.message for d in action.differences) or action.reason)


def _details(action: ActionResult, *, followed: bool) -> str:
    done, asked = action.done, action.asked
    counters = done.counters
    lines = [] if followed else [NOT_FOLLOWED_CASE]
    lines += [
        (
            f"endpoint {asked.endpoint}, models {', '.join(asked.models)}, "
            f"executionCount {asked.execution_count}, expected {asked.expected_executions}"
        ),
        (
            f"state {done.state}, jobs {', '.join(done.job_ids) or '-'}, "
            f"status {done.job_status or '-'}"
        ),
        f"attempts {done.attempts}, rate limited {done.rate_limited}",
    ]
    if counters is not None:
        lines.append(
            f"executions total {counters.total}, success {counters.success}, failed "
            f"{counters.failed}, pending {counters.pending}, retrying {counters.retrying}"
        )
    lines += [f"ambiguous attempt {a.attempt}: settled by {a.settled_by}" for a in done.ambiguous]
    return "\n".join(lines)


def _count(element: ET.Element, children: Sequence[ET.Element]) -> None:
    """Set tests/failures/errors/skipped/time from the test cases under ``element``."""
    cases = [case for child in children for case in child.iter("testcase")]
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    element.set("errors", "0")
    element.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
    element.set("time", _seconds(sum(float(case.get("time", "0")) for case in cases)))


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\N{REPLACEMENT CHARACTER}", text)
