"""A fresh PostgreSQL database per test, on the server the project's machines run.

The server is ``$MLRUN_TEST_POSTGRES`` (default ``postgresql://127.0.0.1:5432/postgres``, trust
auth). Each test that asks for one gets its own database, ``mlrun_test_<pid>_<n>``, dropped
after it. Where no server answers, or psycopg is missing, the test is skipped with the reason;
under ``CI=true`` such a skip fails the run (``tests/conftest.py``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from urllib.parse import urlsplit, urlunsplit

from runner.store import Store

ADMIN_URL_ENV = "MLRUN_TEST_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://127.0.0.1:5432/postgres"

_numbers = itertools.count(1)
_opened: list[Store] = []


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


@cache
def unavailable() -> str | None:
    """Why no PostgreSQL test can run here (None: they can), asked once per session."""
    try:
        import psycopg  # noqa: PLC0415 - optional
    except ImportError:
        return "psycopg is not installed (pip install 'mentionlab-runner[postgres]')"
    try:
        with psycopg.connect(admin_url(), connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"no PostgreSQL server answers at {admin_url()} ({ADMIN_URL_ENV}): {error}"
    return None


def database_url(name: str) -> str:
    """The admin URL with another database name."""
    parts = urlsplit(admin_url())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database for one test: its URL; dropped afterwards, connections and all."""
    import psycopg  # noqa: PLC0415 - optional

    name = f"mlrun_test_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        close_tracked()
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def track(store: Store) -> Store:
    """Close ``store`` when its test's database is dropped (a harness does not close its own)."""
    _opened.append(store)
    return store


def close_tracked() -> None:
    while _opened:
        with suppress(Exception):
            _opened.pop().close()
