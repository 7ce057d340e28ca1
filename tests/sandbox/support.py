"""Shared values for the sandbox tests: ids, headers, bodies, a sandbox on the virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from runner.clock import LoopClock
from runner.sandbox import Sandbox, SandboxConfig

BASE_URL = "https://api.mentionlab.io"
PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
ORGANISATION = "01234567-89ab-cdef-0123-456789abcdef"
KEY = "ml_live_test_key"
HEADERS = {"x-api-key": KEY, "x-project-id": PROJECT, "x-organisation-id": ORGANISATION}
JOB_BODY = {
    "aiModels": ["gpt-4.1-mini", "claude-haiku-4-5", "gemini-2.5-flash"],
    "executionCount": 3,
}
CACHED_BODY = {"aiModels": ["openai", "anthropic", "google-generative-ai"], "executionCount": 3}

Connect = Callable[..., httpx.AsyncClient]


def make_sandbox(**options: Any) -> Sandbox:
    """A sandbox on the event loop's (virtual) clock; limits off unless asked."""
    options.setdefault("rate_limits", "off")
    return Sandbox(SandboxConfig(**options), clock=LoopClock())
