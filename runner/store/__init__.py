"""The durable state of runs: the ledger every fact of a run is written to before it counts.

One interface, :class:`Store`, two databases behind it: a SQLite file on this machine (the
default) and a PostgreSQL database a team shares. :func:`open_store` chooses from ``--state``.
Reports, ``--resume``, ``mlrun runs`` and ``mlrun status`` are all views of it.
"""

from __future__ import annotations

from runner.store.base import LeaseTimings, Store, run_lease_key
from runner.store.records import (
    ActionRecord,
    ActionState,
    AttemptOutcome,
    AttemptRecord,
    JobRecord,
    LeaseHolder,
    ProjectJob,
    RunRecord,
    RunStatus,
    SettledBy,
)
from runner.store.sqlite import SqliteStore
from runner.store.state import (
    STATE_ENV,
    default_ledger_path,
    default_state_dir,
    is_postgres_url,
    ledger_file,
    open_store,
    state_location,
)

__all__ = [
    "STATE_ENV",
    "ActionRecord",
    "ActionState",
    "AttemptOutcome",
    "AttemptRecord",
    "JobRecord",
    "LeaseHolder",
    "LeaseTimings",
    "ProjectJob",
    "RunRecord",
    "RunStatus",
    "SettledBy",
    "SqliteStore",
    "Store",
    "default_ledger_path",
    "default_state_dir",
    "is_postgres_url",
    "ledger_file",
    "open_store",
    "run_lease_key",
    "state_location",
]
