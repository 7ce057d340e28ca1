"""The one exception tree of mlrun.

Every error the runner raises on purpose derives from :class:`MlrunError`. The branches say who
must act; the CLI renders each one once, at the edge, and maps it to an exit code::

    MlrunError
    ├── UsageError                 the command line is wrong                    (exit 2)
    ├── ManifestError              the manifest's author must fix a file        (exit 2)
    │                              carries every Diagnostic found, with positions
    ├── ConfigError                the environment is wrong: API key, base URL  (exit 2)
    ├── ApiError                   the remote side answered with an error
    │   ├── AuthError              401/403: bad key or wrong organisation        (fatal for the run)
    │   ├── QuotaExhausted         402 or a quota/credits message                (fatal for the run)
    │   ├── NotFound               404                                           (fails one action)
    │   ├── RequestRejected        400/409/422 and other 4xx                     (fails one action)
    │   ├── RateLimited            429, with retry_after                         (wait, then go on)
    │   ├── ServiceUnavailable     503: documented as "not processed, retry"     (safe to resend)
    │   ├── ServerError            500/502/504: the origin may have acted        (ambiguous: a POST)
    │   ├── MalformedResponse      2xx whose body is not the documented shape    (ambiguous: a POST)
    │   └── NotTheApi              a redirect, or a 2xx that is not JSON (an     (fatal for the run;
    │                              HTML page, a captive portal)                  a POST: ambiguous)
    ├── TransportError             no HTTP answer
    │   ├── NotSent                connect refused/timeout, pool timeout: provably never sent
    │   └── OutcomeUnknown         read timeout, connection closed: may have been processed
    │       └── AnswerOutOfBounds  an answer past the size or time cap          (fatal for the run;
    │                              (a body too large, trickling)                 a POST: ambiguous)
    ├── LedgerError                the journal cannot be read or written        (stop sending)
    │   └── LeaseLost              this run's lease ended or was taken over     (stop sending)
    ├── PlanError                  a saved plan cannot be used (stale, manifest changed)
    ├── ReportError                a report cannot be written (disk, permissions)
    ├── BudgetExceeded             the plan costs more than the manifest's budget (exit 4)
    └── RunInterrupted             SIGINT/SIGTERM: stopped cleanly, resumable   (exit 3)

Third-party exceptions (yaml, jsonschema, httpx, sqlite3, psycopg) are translated into this tree
in the one module that calls each library, chained with ``from exc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a manifest, pointing at its source."""

    message: str
    file: str
    line: int | None = None
    column: int | None = None
    json_path: str = "$"
    value: Any = None
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"

    def location(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class MlrunError(Exception):
    """Base of every error mlrun raises on purpose."""


class UsageError(MlrunError):
    """The command line asks for something impossible."""


class ConfigError(MlrunError):
    """The environment is not set up (API key, base URL, files)."""


@dataclass
class ManifestError(MlrunError):
    """The manifest is invalid; carries all the diagnostics found at once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.summary())

    def summary(self) -> str:
        errors = [d for d in self.diagnostics if d.severity == "error"]
        if len(errors) == 1:
            d = errors[0]
            return f"{d.location()}: {d.message}"
        return f"{len(errors)} errors in the manifest"


class ApiError(MlrunError):
    """The API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        rate: object | None = None,
    ) -> None:
        super().__init__(message)
        self.rate = rate  # the RateLimitInfo of the response, for the limiter
        self.status = status
        self.body = body
        self.request_id = request_id
        self.method = method
        self.path = path


class AuthError(ApiError):
    """401/403: the key is refused or cannot reach this organisation/project. Fatal for the run."""


class QuotaExhausted(ApiError):
    """402 or a quota/credit refusal: every further trigger would fail. Fatal for the run."""


class NotFound(ApiError):
    """404: the project (or job) does not exist for this key."""


class RequestRejected(ApiError):
    """A 4xx other than 401/402/403/404/429: the request itself is wrong. Fails one action."""


class RateLimited(ApiError):
    """429: rejected before processing; wait ``retry_after`` seconds (None if absent/garbage)."""

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    """503: documented as temporarily unavailable; the request was not processed."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """500/502/504 and other 5xx: the origin may have processed the request."""


class MalformedResponse(ApiError):
    """A success status whose body is not the documented shape."""


class NotTheApi(ApiError):
    """Something other than the API answered: a redirect, or a success that is not JSON.

    A wrong base URL, a captive portal or a proxy's page: no later request can do better, so
    the run stops sending. A trigger answered this way may still have reached the API.
    """


class TransportError(MlrunError):
    """No HTTP answer was received."""


class NotSent(TransportError):
    """The request provably never reached the service (connect refused/timeout, pool timeout)."""


class Unreachable(NotSent):
    """Nothing at the base URL has answered this run: every connection attempt failed.

    A wrong URL or a dead service, told in seconds instead of waiting out an outage.
    """


class OutcomeUnknown(TransportError):
    """The request may have been processed, and no whole answer arrived.

    A read timeout, a connection closed without a response, a body past the client's size or
    time cap.
    """


class AnswerOutOfBounds(OutcomeUnknown):
    """An answer cut off at the size or time cap: it may have been processed.

    No answer of the API comes near the caps: a server that sends an endless, huge or trickling
    body is not answering as the API does, so the run stops sending, as for :class:`NotTheApi`.
    """


class LedgerError(MlrunError):
    """The run's journal cannot be opened, read or written. Nothing more may be sent."""


class LeaseLost(LedgerError):
    """This process is no longer the run's one writer: its lease ended or was taken over."""


class PlanError(MlrunError):
    """A saved plan cannot be applied (unknown version, stale, or the manifest changed)."""


class ReportError(MlrunError):
    """A report file cannot be written."""


class BudgetExceeded(MlrunError):
    """The plan would spend more executions than the manifest's budget allows."""


class RunInterrupted(MlrunError):
    """The run was stopped by a signal; it is resumable."""


class SignalInterrupt(BaseException):
    """SIGINT or SIGTERM arrived outside a run's own handling; the command ends with exit 3.

    Not a KeyboardInterrupt: CPython marks a KeyboardInterrupt raised inside ``exec`` of a
    string (a dataclass being built, as modules are imported) as unhandled even when it is
    caught, and the process then exits by SIGINT instead of with its own code.
    """


def collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a task group's failure stands for: its first mlrun error, else its first.

    Concurrent tasks fail together (a ledger that cannot be written fails every writer), and the
    CLI renders one error, with its exit code, not a group.
    """
    leaves = list(_leaves(group))
    for kind in (MlrunError, SignalInterrupt, KeyboardInterrupt):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0] if leaves else group


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error
