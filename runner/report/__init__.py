"""The reconciled run report: model, reconciliation, and its renderers.

``build_report(ledger, run_id, env=...)`` reads a run from the ledger and reconciles what was asked
with what was done; ``render_text``/``render_json``/``render_markdown``/``render_junit`` format it;
``write_reports`` writes the files. Nothing here does HTTP.
"""

from runner.report.build import build_report
from runner.report.environment import CiInfo, ci_info
from runner.report.model import (
    ActionResult,
    Difference,
    DifferenceKind,
    Outcome,
    Report,
)
from runner.report.redact import redact, safe_url
from runner.report.render import (
    FORMATS,
    render_json,
    render_junit,
    render_markdown,
    render_text,
    write_reports,
)

__all__ = [
    "FORMATS",
    "ActionResult",
    "CiInfo",
    "Difference",
    "DifferenceKind",
    "Outcome",
    "Report",
    "build_report",
    "ci_info",
    "redact",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_text",
    "safe_url",
    "write_reports",
]
