"""The exit codes of every mlrun command: stable, documented in the README, each one tested."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # everything completed as asked (validate: the manifest is valid)
    ACTION_FAILED = 1  # some action failed, ended partial, is UNKNOWN or differs from the ask
    INVALID = 2  # invalid manifest, plan or command line; nothing was sent
    INTERRUPTED = 3  # interrupted (SIGINT/SIGTERM) or timed out following jobs: resumable
    BUDGET_REFUSED = 4  # the plan exceeds the manifest's budget; nothing was sent
    FATAL_API = 5  # the API refused the run (bad key, no access, credits) or is unreachable
    INTERNAL = 70  # a bug in mlrun (EX_SOFTWARE); the message asks for a report
