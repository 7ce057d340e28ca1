"""Which state a command uses: a SQLite file on this machine, or a PostgreSQL database.

The state is named by ``--state`` (or ``MLRUN_STATE``): a PostgreSQL URL
(``postgresql://`` or ``postgres://``) or the path of a SQLite ledger. Without one, the ledger
is ``$MLRUN_STATE_DIR/ledger.sqlite``, by default ``.mlrun/ledger.sqlite`` under the current
directory. psycopg is imported only for a PostgreSQL URL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from runner.errors import ConfigError
from runner.redact import safe_url
from runner.store.base import LeaseTimings, Store

STATE_ENV = "MLRUN_STATE"
STATE_DIR_ENV = "MLRUN_STATE_DIR"
LEASE_ENV = "MLRUN_LEASE_SECONDS"
POSTGRES_SCHEMES = ("postgresql", "postgres")
POSTGRES_EXTRA = "pip install 'mentionlab-runner[postgres]'"

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")


def default_state_dir() -> Path:
    """``$MLRUN_STATE_DIR``, by default ``.mlrun`` under the current directory."""
    return Path(os.environ.get(STATE_DIR_ENV, ".mlrun"))


def default_ledger_path() -> Path:
    """``$MLRUN_STATE_DIR/ledger.sqlite``, by default in ``.mlrun/`` under the current directory."""
    return default_state_dir() / "ledger.sqlite"


def is_postgres_url(spec: str | Path | None) -> bool:
    """Whether ``spec`` names a PostgreSQL database rather than a SQLite file."""
    match = _URL.match(str(spec)) if isinstance(spec, str) else None
    return match is not None and match["scheme"].lower() in POSTGRES_SCHEMES


def ledger_file(spec: str | Path | None) -> Path | None:
    """The SQLite file ``spec`` names (the default ledger for None); None for a database URL.

    ConfigError for a URL of another kind of database.
    """
    if spec is None or spec == "":
        return default_ledger_path()
    if is_postgres_url(spec):
        return None
    match = _URL.match(str(spec))
    if match is not None:
        raise ConfigError(
            f"the state {match['scheme']}://... is not a state mlrun can use: give a "
            "postgresql:// URL or the path of a SQLite ledger"
        )
    return Path(spec)


def state_location(spec: str | Path | None) -> str:
    """The state ``spec`` names, as messages show it: a path, or a URL without secrets."""
    path = ledger_file(spec)
    return str(path) if path is not None else safe_url(str(spec))


def lease_timings() -> LeaseTimings:
    """The lease of a PostgreSQL state: ``$MLRUN_LEASE_SECONDS`` (default 60), renewed every
    quarter of it."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return LeaseTimings()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{LEASE_ENV}={raw!r}: give the lease's length in seconds, above 0")
    return LeaseTimings(duration=seconds, heartbeat=seconds / 4, poll=min(1.0, seconds / 4))


def open_store(spec: str | Path | None = None, *, timings: LeaseTimings | None = None) -> Store:
    """Open the state ``spec`` names (see the module's docstring), its schema up to date.

    ``timings``: the lease's, on PostgreSQL (default :func:`lease_timings`).
    LedgerError when it cannot be opened; ConfigError when PostgreSQL is asked for without
    psycopg installed.
    """
    path = ledger_file(spec)
    if path is not None:
        from runner.store.sqlite import SqliteStore  # noqa: PLC0415 - one backend per command

        return SqliteStore.open(path)
    try:
        from runner.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg is optional
    except ImportError as exc:
        raise ConfigError(
            f"a PostgreSQL state needs psycopg, which is not installed: {POSTGRES_EXTRA}"
        ) from exc
    return PostgresStore.open(str(spec), timings=timings or lease_timings())
