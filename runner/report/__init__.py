"""The reconciled run report: model, reconciliation, and its renderers.

``build_report(ledger, run_id, env=...)`` reads a run from the ledger and reconciles what was asked
with what was done; ``render_text``/``render_json``/``render_markdown``/``render_junit`` format it;
``write_reports`` writes the files. Nothing here does HTTP.

The names are imported on first use: a command that renders a plan (``runner.report.plan``) does
not pay for the ledger, the reconciliation and every renderer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.report.build import build_report
    from runner.report.environment import CiInfo, ci_info
    from runner.report.model import ActionResult, Difference, DifferenceKind, Outcome, Report
    from runner.report.render import (
        FORMATS,
        render_json,
        render_junit,
        render_markdown,
        render_text,
        write_reports,
    )

_WHERE = {
    "build_report": "build",
    "CiInfo": "environment",
    "ci_info": "environment",
    "ActionResult": "model",
    "Difference": "model",
    "DifferenceKind": "model",
    "Outcome": "model",
    "Report": "model",
    "FORMATS": "render",
    "render_json": "render",
    "render_junit": "render",
    "render_markdown": "render",
    "render_text": "render",
    "write_reports": "render",
}

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
    "render_json",
    "render_junit",
    "render_markdown",
    "render_text",
    "write_reports",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.report.{module}"), name)
