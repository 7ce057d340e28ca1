"""Shared fixtures: no real network, virtual time, and the CLI run as a user runs it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner.store import Store, open_store

import figures
from postgres_support import fresh_database, unavailable

_LOOPBACK = ("127.", "::1", "localhost")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-full",
        action="store_true",
        default=False,
        help="Run the chaos and hostile-input tests at full size (100 kills, 500-action fault "
        "mix, ...); MLRUN_CHAOS_FULL=1 does the same.",
    )
    parser.addoption(
        "--chaos-figures",
        default=None,
        metavar="FILE",
        help="Write the figures the tests recorded (kills, lost, duplicated, ...) to FILE as JSON "
        "lines.",
    )


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
    if report.when == "call":
        figures.attach(report)
    if report.skipped and item.get_closest_marker("postgres") and os.environ.get("CI") == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a PostgreSQL test was skipped under CI=true: {reason}"


_figures: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Gather the figures each test recorded, whichever process ran it."""
    _figures.extend(figures.reported(report))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the figures the tests recorded (the numbers docs/reliability.md quotes)."""
    if not _figures:
        return
    terminalreporter.section("chaos figures")
    for row in _figures:
        terminalreporter.write_line(json.dumps(row, sort_keys=True))
    target = config.getoption("--chaos-figures")
    if target:
        figures.write(Path(target), _figures)


def _hypothesis_profile() -> None:
    """Property tests are deterministic (the same examples every run) and free of wall-clock
    deadlines, which a loaded CI machine would otherwise turn into flakes."""
    from hypothesis import settings  # noqa: PLC0415

    settings.register_profile("mlrun", derandomize=True, deadline=None, print_blob=True)
    settings.load_profile("mlrun")


_hypothesis_profile()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos suite is slow by nature (real processes, kills, faults): ``-m "not slow"``
    leaves it out. Slow tests go first, so that the workers share them out from the start."""
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core (at most eight), as most of a slow test's time is spent
    waiting on the processes it starts and the sandbox's simulated jobs."""
    del config
    return min(8, 2 * (os.cpu_count() or 1))
