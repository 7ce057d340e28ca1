"""Collecting diagnostics while a manifest is checked, so that all of them are reported at once.

Each stage (YAML, schema, semantic checks) adds findings by JSON path; the position comes from the
document. A finding can *cover* its path: a later finding at or below a covered path says the same
thing again (a value the schema already refused is not also "an unknown model"), so it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.errors import Diagnostic, Severity
from runner.manifest.document import JsonPath, Mark, format_path, locate

_MAX_VALUE_ITEMS = 10


@dataclass
class Findings:
    """The diagnostics of one manifest, in the order found."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    _covered: set[tuple[str, JsonPath]] = field(default_factory=set)

    def add(  # noqa: PLR0913 - every field of a diagnostic is a keyword, named at the call site
        self,
        file: str,
        path: JsonPath,
        message: str,
        *,
        root: Any = None,
        hint: str | None = None,
        value: Any = None,
        code: str = "invalid",
        severity: Severity = "error",
        at_key: bool = False,
        mark: Mark | None = None,
        covers: bool = True,
        always: bool = False,
    ) -> None:
        """Record a finding at ``path`` of ``file``; its position is looked up in ``root``.

        Unless ``always``, a finding at or below a path an earlier error covers is dropped.
        """
        if not always and self.is_covered(file, path):
            return
        if mark is None and root is not None:
            located = locate(root, path)
            mark = (located.key_mark if at_key else None) or located.mark
        line, column = mark if mark is not None else (None, None)
        diagnostic = Diagnostic(
            message=message,
            file=file,
            line=line,
            column=column,
            json_path=format_path(path),
            value=summarise(value),
            hint=hint,
            severity=severity,
            code=code,
        )
        self.diagnostics.append(diagnostic)
        if covers and severity == "error":
            self._covered.add((file, path))

    def is_covered(self, file: str, path: JsonPath) -> bool:
        """Whether a finding at ``path`` or one of its ancestors was already reported."""
        return any((file, path[:depth]) in self._covered for depth in range(len(path) + 1))

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


def summarise(value: Any) -> Any:
    """The offending value as plain JSON, kept short: scalars and small lists of scalars."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and len(value) <= _MAX_VALUE_ITEMS and all(map(_is_scalar, value)):
        return list(value)
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
