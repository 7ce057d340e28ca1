"""The durable state of runs: the ledger every fact of a run is written to before it counts.

Reports, ``--resume``, ``mlrun runs`` and ``mlrun status`` are all views of it.
"""

from __future__ import annotations

from runner.store.ledger import (
    ActionRecord,
    ActionState,
    AttemptOutcome,
    AttemptRecord,
    JobRecord,
    Ledger,
    RunRecord,
    RunStatus,
    SettledBy,
    default_ledger_path,
)

__all__ = [
    "ActionRecord",
    "ActionState",
    "AttemptOutcome",
    "AttemptRecord",
    "JobRecord",
    "Ledger",
    "RunRecord",
    "RunStatus",
    "SettledBy",
    "default_ledger_path",
]
