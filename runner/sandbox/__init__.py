"""The sandbox: a faithful, deterministic simulation of the MentionLab API.

``Sandbox(SandboxConfig(...), clock=...)`` holds an ASGI app (``.app``), an in-process httpx
transport (``.transport()``) and the ground truth of what it processed (``.truth()``). See
``docs/sandbox.md`` for every option, the fault syntax and the choices made where the API
reference is silent.
"""

from __future__ import annotations

from runner.sandbox.config import Change, SandboxConfig
from runner.sandbox.errors import (
    ConnectionDropped,
    ConnectionRefused,
    NetworkFault,
    ResponseLost,
)
from runner.sandbox.faults import Faults, Latency
from runner.sandbox.ratelimit import RateLimitPolicy, Window, max_in_window, window_violations
from runner.sandbox.sandbox import Sandbox
from runner.sandbox.world import Organisation, ProjectSpec, Query, World

__all__ = [
    "Change",
    "ConnectionDropped",
    "ConnectionRefused",
    "Faults",
    "Latency",
    "NetworkFault",
    "Organisation",
    "ProjectSpec",
    "Query",
    "RateLimitPolicy",
    "ResponseLost",
    "Sandbox",
    "SandboxConfig",
    "Window",
    "World",
    "max_in_window",
    "window_violations",
]
