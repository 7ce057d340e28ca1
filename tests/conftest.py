"""Shared fixtures: no real network, virtual time, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner.store import Store, open_store

from postgres_support import fresh_database, unavailable

_LOOPBACK = ("127.", "::1", "localhost")


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str):  # AF_UNIX path
        return True
    return isinstance(address, tuple) and bool(address) and str(address[0]).startswith(_LOOPBACK)


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a non-loopback address fails the test: nothing here reaches the API."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            pytest.fail(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            pytest.fail(f"test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(autouse=True)
def _not_in_a_ci_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite behaves alike on a laptop and in CI: no run key from the CI job running it."""
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "MLRUN_RUN_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Every async test runs on trio with a mock clock: sleeps are instant, time is virtual."""
    from trio.testing import MockClock  # noqa: PLC0415 - test-only dependency

    return ("trio", {"clock": MockClock(autojump_threshold=0)})


# -- the state: SQLite and PostgreSQL ------------------------------------------------------------

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test's own; skipped without a server."""
    request.node.add_marker(pytest.mark.postgres)
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state of each kind, as ``--state`` names it: a file path or a database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "ledger.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(state: str) -> Iterator[Store]:
    """A fresh store of each kind, closed after the test."""
    with open_store(state) as opened:
        yield opened


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``CI=true`` a skipped PostgreSQL test fails: CI must prove both backends."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and item.get_closest_marker("postgres") and os.environ.get("CI") == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a PostgreSQL test was skipped under CI=true: {reason}"


def _hypothesis_profile() -> None:
    """Property tests are deterministic (the same examples every run) and free of wall-clock
    deadlines, which a loaded CI machine would otherwise turn into flakes."""
    from hypothesis import settings  # noqa: PLC0415

    settings.register_profile("mlrun", derandomize=True, deadline=None, print_blob=True)
    settings.load_profile("mlrun")


_hypothesis_profile()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos suite is slow by nature (real processes, kills, faults): ``-m "not slow"``
    leaves it out."""
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(pytest.mark.slow)
