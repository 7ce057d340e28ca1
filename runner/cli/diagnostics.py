"""Rendering manifest diagnostics: plain text for people, JSON for tools, GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.errors import Diagnostic

FORMATS = ("text", "json", "github")
_VALUE_WIDTH = 60


@dataclass(frozen=True)
class Outcome:
    """What validation found: the diagnostics, and figures about a valid manifest."""

    diagnostics: Sequence[Diagnostic]
    files: Sequence[str]
    projects: int = 0
    triggers: int = 0
    digest: str | None = None

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "warning")

    @property
    def valid(self) -> bool:
        return self.errors == 0


def render(outcome: Outcome, output_format: str) -> str:
    """The whole output of ``mlrun validate`` in ``output_format``."""
    renderers = {"text": render_text, "json": render_json, "github": render_github}
    return renderers[output_format](outcome)


# -- text --------------------------------------------------------------------------------------


def render_text(outcome: Outcome) -> str:
    lines = [line for d in outcome.diagnostics for line in text_lines(d)]
    lines.append(summary(outcome))
    return "\n".join(lines)


def text_lines(diagnostic: Diagnostic) -> list[str]:
    """``file:line:col: error: message (at $.path, value 'x')`` and an indented hint."""
    details = [f"at {diagnostic.json_path}"] if diagnostic.json_path != "$" else []
    if diagnostic.value is not None:
        details.append(f"value {show_value(diagnostic.value)}")
    suffix = f" ({', '.join(details)})" if details else ""
    lines = [f"{diagnostic.location()}: {diagnostic.severity}: {diagnostic.message}{suffix}"]
    if diagnostic.hint:
        lines.append(f"  hint: {diagnostic.hint}")
    return lines


def show_value(value: Any) -> str:
    """A value as written in YAML, shortened: 'anthropic', 3, true, [a, b]."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def summary(outcome: Outcome) -> str:
    files = _count(len(outcome.files), "file")
    warnings = f", {_count(outcome.warnings, 'warning')}" if outcome.warnings else ""
    if outcome.valid:
        return (
            f"valid: {_count(outcome.projects, 'project')}, {_count(outcome.triggers, 'trigger')}"
            f" in {files}{warnings}"
        )
    return f"invalid: {_count(outcome.errors, 'error')}{warnings} in {files}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


# -- json --------------------------------------------------------------------------------------


def render_json(outcome: Outcome) -> str:
    document = {
        "valid": outcome.valid,
        "errorCount": outcome.errors,
        "warningCount": outcome.warnings,
        "files": list(outcome.files),
        "projectCount": outcome.projects,
        "triggerCount": outcome.triggers,
        "digest": outcome.digest,
        "diagnostics": [diagnostic_json(d) for d in outcome.diagnostics],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "jsonPath": diagnostic.json_path,
        "message": diagnostic.message,
        "value": diagnostic.value,
        "hint": diagnostic.hint,
        "severity": diagnostic.severity,
        "code": diagnostic.code,
    }


# -- github ------------------------------------------------------------------------------------


def render_github(outcome: Outcome) -> str:
    lines = [github_annotation(d) for d in outcome.diagnostics]
    lines.append(summary(outcome))
    return "\n".join(lines)


def github_annotation(diagnostic: Diagnostic) -> str:
    """A workflow command: ``::error file=...,line=...,col=...,title=mlrun validate::message``."""
    from runner.cli.github import Annotation  # noqa: PLC0415 - only for --format github
    from runner.manifest.model import SourceRef  # noqa: PLC0415

    message = text_lines(diagnostic)[0].split(f"{diagnostic.severity}: ", 1)[1]
    if diagnostic.hint:
        message += f"\nhint: {diagnostic.hint}"
    line, column = diagnostic.line, diagnostic.column
    source = None if line is None or column is None else SourceRef(diagnostic.file, line, column)
    annotation = Annotation(
        diagnostic.severity, "mlrun validate", message, source=source, file=diagnostic.file
    )
    return annotation.render()
