"""What every command shares: error rendering, exit codes, output streams.

Commands raise typed errors (``runner.errors``); :func:`exit_on_error` renders each one once and
exits with its documented code. Anything else is a bug: one line asking for a report, exit 70.
Every line written to stderr here passes through a redactor that removes the current
``MENTIONLAB_API_KEY`` and any ``ml_live_…`` token: texts from the API are redacted where they
enter mlrun, and this is the last line of defence for the rest (an argument echoed back).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from runner.endpoints import API_KEY_ENV
from runner.errors import (
    AnswerOutOfBounds,
    AuthError,
    BudgetExceeded,
    ConfigError,
    LedgerError,
    ManifestError,
    MlrunError,
    NotTheApi,
    PlanError,
    QuotaExhausted,
    RunInterrupted,
    SignalInterrupt,
    Unreachable,
    UsageError,
    collapse,
)
from runner.exitcodes import ExitCode
from runner.redact import Redactor

P = ParamSpec("P")
R = TypeVar("R")


def exit_code_for(error: MlrunError) -> ExitCode:
    """The documented exit code of an error that ends a command."""
    if isinstance(error, ManifestError | UsageError | ConfigError | PlanError | LedgerError):
        return ExitCode.INVALID
    if isinstance(error, BudgetExceeded):
        return ExitCode.BUDGET_REFUSED
    if isinstance(error, RunInterrupted):
        return ExitCode.INTERRUPTED
    if isinstance(error, AuthError | QuotaExhausted | Unreachable | NotTheApi | AnswerOutOfBounds):
        return ExitCode.FATAL_API
    return ExitCode.ACTION_FAILED


def mask(text: str) -> str:
    """``text`` with the API key of the environment and any ``ml_live_…`` token masked."""
    return Redactor([os.environ.get(API_KEY_ENV, "").strip()])(text)


def echo_err(message: str) -> None:
    """Write ``message`` to stderr, masked (:func:`mask`)."""
    click.echo(mask(message), err=True)


def exit_on_error(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command body; render a typed error once and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return func(*args, **kwargs)
            except BaseExceptionGroup as group:  # concurrent tasks failed together: one error
                raise collapse(group) from group
        except ManifestError as error:
            # Commands that render diagnostics themselves catch ManifestError first.
            for diagnostic in error.diagnostics:
                echo_err(f"{diagnostic.location()}: {diagnostic.severity}: {diagnostic.message}")
            sys.exit(ExitCode.INVALID)
        except MlrunError as error:
            echo_err(f"error: {error}")
            sys.exit(exit_code_for(error))
        except (SignalInterrupt, KeyboardInterrupt) as error:
            signal_name = f" ({error})" if str(error) else ""
            echo_err(f"interrupted{signal_name}")
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as error:  # the last line of defence: a bug in mlrun
            if os.environ.get("MLRUN_DEBUG"):
                raise
            echo_err(
                f"internal error: {type(error).__name__}: {error}\n"
                "This is a bug in mlrun; please report it with the command you ran "
                "(set MLRUN_DEBUG=1 for the traceback)."
            )
            sys.exit(ExitCode.INTERNAL)

    return wrapper
