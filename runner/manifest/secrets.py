"""API keys do not belong in a manifest: find them, and never echo them back.

A manifest is committed, reviewed and printed in CI logs, so anything that looks like a
MentionLab key (``ml_live_`` and at least 8 more characters) is an error, and every diagnostic is
redacted before it leaves the loader, including values that came from the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from runner.errors import Diagnostic

_KEY = re.compile(r"ml_live_[A-Za-z0-9_\-]{8,}")
REDACTED = "ml_live_[REDACTED]"
API_KEY_HINT = (
    "remove the key from the manifest; mlrun reads it from the MENTIONLAB_API_KEY environment"
    " variable (in CI, from a secret)"
)


def secret_positions(text: str) -> Iterator[tuple[int, int]]:
    """1-based (line, column) of every key-like string in ``text``."""
    for match in _KEY.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        yield line, column


def contains_secret(text: str) -> bool:
    return _KEY.search(text) is not None


def redact(value: Any) -> Any:
    """``value`` with every key-like string replaced; lists are redacted item by item."""
    if isinstance(value, str):
        return _KEY.sub(REDACTED, value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def redact_diagnostic(diagnostic: Diagnostic) -> Diagnostic:
    """The same diagnostic with no key-like string in its message, value or hint."""
    return dataclasses.replace(
        diagnostic,
        message=redact(diagnostic.message),
        json_path=redact(diagnostic.json_path),
        value=redact(diagnostic.value),
        hint=redact(diagnostic.hint),
    )
