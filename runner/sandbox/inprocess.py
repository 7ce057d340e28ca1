"""How the app knows it runs in process: the transport sets this for the request's duration."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class InProcess:
    """The in-process client's read timeout (None: no timeout), to simulate timeouts."""

    read_timeout: float | None


IN_PROCESS: ContextVar[InProcess | None] = ContextVar("mlrun_sandbox_in_process", default=None)
