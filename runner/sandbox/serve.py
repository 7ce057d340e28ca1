"""Serving the sandbox on loopback with uvicorn (imported only here, only when serving)."""

from __future__ import annotations

import importlib.util
import logging

from runner.sandbox.config import SandboxConfig
from runner.sandbox.errors import NetworkFault
from runner.sandbox.sandbox import Sandbox


class QuietNetworkFaults(logging.Filter):
    """Drop uvicorn's traceback for the connections the sandbox closes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, NetworkFault)


def http_implementation() -> str:
    """``httptools`` when installed (several times faster), else ``h11``."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def serve(config: SandboxConfig, host: str, port: int, *, log_level: str = "warning") -> None:
    """Run the sandbox until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    import uvicorn  # noqa: PLC0415 - a heavy import, only for `mlrun sandbox serve`

    logging.getLogger("uvicorn.error").addFilter(QuietNetworkFaults())
    uvicorn.run(
        Sandbox(config).app,
        host=host,
        port=port,
        http=http_implementation(),
        log_level=log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        date_header=False,
    )
