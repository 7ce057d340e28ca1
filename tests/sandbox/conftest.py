"""Fixtures for the sandbox tests: an in-process httpx client on a sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from runner.sandbox import Sandbox

from sandbox.support import BASE_URL, HEADERS, Connect


@pytest.fixture
def connect() -> Connect:
    """``connect(sandbox, **client_options)``: an in-process client with the test headers."""

    def open_client(sandbox: Sandbox, **options: Any) -> httpx.AsyncClient:
        options.setdefault("headers", HEADERS)
        return httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL, **options)

    return open_client
