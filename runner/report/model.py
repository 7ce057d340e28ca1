"""The reconciled run report: what the manifest asked for, what the API did, and every difference.

A report is a value (frozen dataclasses, no I/O) built from the ledger by
:func:`runner.report.build.build_report`; the renderers only read it. Its JSON form
(:meth:`Report.to_json`) is described by ``schemas/report.schema.json`` (``formatVersion`` 1).

Outcomes, one per action (failures sort first, in this order):

=============== ===========================================================================
FAILED          the trigger was refused, or the job ended ``failed``
UNKNOWN         nobody can tell what happened (unsettled ambiguous trigger, job 404, no job)
TIMEOUT         the job was still running when following stopped
PARTIAL         the job ended, but not as asked (``partial_failed``, or counters that differ)
NOT_ATTEMPTED   the run ended before this action was sent
SKIPPED         not triggered on purpose (budget, fail-fast, a fatal stop)
RUNNING         triggered, not followed to the end (yet)
OK              ended ``completed``, exactly as asked
=============== ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runner.exitcodes import ExitCode
from runner.report.environment import CiInfo

FORMAT_VERSION = 1


class Outcome(StrEnum):
    """The verdict on one action, declared worst first (the order failures are listed in)."""

    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    TIMEOUT = "TIMEOUT"
    PARTIAL = "PARTIAL"
    NOT_ATTEMPTED = "NOT_ATTEMPTED"
    SKIPPED = "SKIPPED"
    RUNNING = "RUNNING"
    OK = "OK"

    @property
    def rank(self) -> int:
        """0 for the worst outcome; sorting by rank puts failures first."""
        return list(Outcome).index(self)


class DifferenceKind(StrEnum):
    """Why an action is not exactly what was asked."""

    ACTION_FAILED = "action_failed"
    ACTION_UNKNOWN = "action_unknown"
    ACTION_SKIPPED = "action_skipped"
    NOT_ATTEMPTED = "not_attempted"
    UNSETTLED = "unsettled"  # sent, outcome never settled (the run stopped first)
    NO_JOB = "no_job"  # triggered, but no job id or job record
    JOB_FAILED = "job_failed"
    JOB_PARTIAL = "job_partial_failed"
    TIMEOUT = "timeout"
    JOB_NOT_FOUND = "job_not_found"
    STATUS_BACKWARDS = "status_moved_backwards"
    EXECUTIONS_MISMATCH = "executions_mismatch"
    COUNTERS_INCONSISTENT = "counters_inconsistent"
    CACHED_COUNT = "cached_count_mismatch"
    CACHED_MODELS = "cached_models_mismatch"
    CACHED_EXECUTION_COUNT = "cached_execution_count_mismatch"
    CACHED_DUPLICATE_QUERY = "cached_duplicate_query"
    ANOMALY = "anomaly"  # any other anomaly the follower recorded


@dataclass(frozen=True)
class Difference:
    """One way an action differs from what the manifest asked, with the reason in words."""

    kind: DifferenceKind
    message: str

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "message"}``."""
        return {"kind": str(self.kind), "message": self.message}


@dataclass(frozen=True)
class Asked:
    """What the manifest asked of one action."""

    key: str
    project: str
    project_id: str
    endpoint: str
    models: tuple[str, ...]
    execution_count: int
    queries: int | None
    expected_executions: int | None

    def to_json(self) -> dict[str, Any]:
        """The ``asked`` object of an action."""
        return {
            "projectId": self.project_id,
            "endpoint": self.endpoint,
            "models": list(self.models),
            "executionCount": self.execution_count,
            "queries": self.queries,
            "expectedExecutions": self.expected_executions,
        }


@dataclass(frozen=True)
class Counters:
    """Execution counters, as the jobs list reports them (summed over an action's jobs)."""

    total: int = 0
    success: int = 0
    failed: int = 0
    pending: int = 0
    retrying: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.total + other.total,
            self.success + other.success,
            self.failed + other.failed,
            self.pending + other.pending,
            self.retrying + other.retrying,
        )

    @property
    def consistent(self) -> bool:
        """True when success + failed + pending + retrying == total."""
        return self.success + self.failed + self.pending + self.retrying == self.total

    def to_json(self) -> dict[str, int]:
        """``{"total", "success", "failed", "pending", "retrying"}``."""
        return {
            "total": self.total,
            "success": self.success,
            "failed": self.failed,
            "pending": self.pending,
            "retrying": self.retrying,
        }


@dataclass(frozen=True)
class JobInfo:
    """One job (or cached job) an action created, as last seen."""

    job_id: str
    kind: str
    status: str | None  # None: the id is known but the job was never seen
    counters: Counters | None
    anomalies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The job's entry in ``done.jobs``."""
        return {
            "id": self.job_id,
            "kind": self.kind,
            "status": self.status,
            "counters": None if self.counters is None else self.counters.to_json(),
            "anomalies": list(self.anomalies),
        }


@dataclass(frozen=True)
class AttemptInfo:
    """One send of a trigger, from the ledger's attempts."""

    attempt: int
    sent_at: str  # ISO 8601
    outcome: str | None  # None: sent, no outcome recorded (the process stopped)
    http_status: int | None
    error: str | None
    seconds: float | None

    def to_json(self) -> dict[str, Any]:
        """The attempt's entry in ``done.attemptLog``."""
        return {
            "attempt": self.attempt,
            "sentAt": self.sent_at,
            "outcome": self.outcome,
            "httpStatus": self.http_status,
            "error": self.error,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Ambiguity:
    """An attempt whose outcome was unknown when it ended, and how that was settled."""

    attempt: int
    error: str | None
    settled_by: str  # e.g. "adopted from the job list", "not created; resent", "unsettled"
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        """The entry in ``done.ambiguous``."""
        return {
            "attempt": self.attempt,
            "error": self.error,
            "settledBy": self.settled_by,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Durations:
    """Seconds from the first send to the trigger's acceptance, and from there to the end."""

    sent_to_triggered: float | None = None
    triggered_to_terminal: float | None = None

    @property
    def total(self) -> float:
        """Both spans added, the unknown ones counting 0 (JUnit's ``time``)."""
        return (self.sent_to_triggered or 0.0) + (self.triggered_to_terminal or 0.0)

    def to_json(self) -> dict[str, float | None]:
        """``{"sentToTriggered", "triggeredToTerminal"}`` in seconds."""
        return {
            "sentToTriggered": self.sent_to_triggered,
            "triggeredToTerminal": self.triggered_to_terminal,
        }


@dataclass(frozen=True)
class CachedSummary:
    """The cached jobs a cachedJobs trigger returned, against what the project asked.

    ``returned``/``expected`` come from the job ids and the query count. The per-job checks
    (``checked`` > 0) need each cached job's query, models and count, which the engine records
    in a ``cached_jobs`` run event; without it they stay at zero and no mismatch is claimed.
    """

    returned: int
    expected: int | None  # the project's query count: one cached job per query
    models_expected: tuple[str, ...]  # the models the provider keys asked map to
    execution_count_expected: int
    checked: int = 0
    models_differ: int = 0
    execution_count_differs: int = 0
    duplicate_queries: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``done.cached`` object."""
        return {
            "returned": self.returned,
            "expected": self.expected,
            "modelsExpected": list(self.models_expected),
            "executionCountExpected": self.execution_count_expected,
            "checked": self.checked,
            "modelsDiffer": self.models_differ,
            "executionCountDiffers": self.execution_count_differs,
            "duplicateQueries": self.duplicate_queries,
        }


@dataclass(frozen=True)
class Done:
    """What the runner and the API actually did for one action, from the ledger."""

    state: str  # the ledger's ActionState value
    job_ids: tuple[str, ...] = ()
    job_status: str | None = None  # the jobs' final status ("mixed" when they disagree)
    counters: Counters | None = None  # None: no job seen
    attempts: int = 0
    rate_limited: int = 0
    settled_by: str | None = None
    detail: str | None = None
    jobs: tuple[JobInfo, ...] = ()
    attempt_log: tuple[AttemptInfo, ...] = ()
    ambiguous: tuple[Ambiguity, ...] = ()
    durations: Durations = field(default_factory=Durations)
    cached: CachedSummary | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``done`` object of an action."""
        return {
            "state": self.state,
            "jobIds": list(self.job_ids),
            "jobStatus": self.job_status,
            "counters": None if self.counters is None else self.counters.to_json(),
            "attempts": self.attempts,
            "rateLimited": self.rate_limited,
            "settledBy": self.settled_by,
            "detail": self.detail,
            "jobs": [job.to_json() for job in self.jobs],
            "attemptLog": [attempt.to_json() for attempt in self.attempt_log],
            "ambiguous": [item.to_json() for item in self.ambiguous],
            "durations": self.durations.to_json(),
            "cached": None if self.cached is None else self.cached.to_json(),
        }


@dataclass(frozen=True)
class ActionResult:
    """One action: asked, done, the verdict and every difference."""

    asked: Asked
    done: Done
    outcome: Outcome
    differences: tuple[Difference, ...] = ()

    @property
    def key(self) -> str:
        """The action's stable key, ``<project>/jobs/<i>`` or ``<project>/cachedJobs``."""
        return self.asked.key

    @property
    def project(self) -> str:
        """The project's name in the manifest."""
        return self.asked.project

    @property
    def reason(self) -> str:
        """The first difference's message, else the ledger's detail, else the outcome."""
        if self.differences:
            return self.differences[0].message
        if self.done.detail:
            return self.done.detail
        if self.outcome == Outcome.RUNNING:
            status = self.done.job_status or "pending"
            return f"job still {status} when following stopped; `mlrun status` refreshes it"
        return str(self.outcome)

    def to_json(self) -> dict[str, Any]:
        """The action's entry in ``actions``."""
        return {
            "key": self.key,
            "project": self.project,
            "outcome": str(self.outcome),
            "asked": self.asked.to_json(),
            "done": self.done.to_json(),
            "differences": [d.to_json() for d in self.differences],
        }


@dataclass(frozen=True)
class Tally:
    """Totals over a group of actions: a project, a model, or the whole run.

    ``expected`` is None when some action's query count is unknown.
    """

    name: str
    actions: int = 0
    expected: int | None = 0
    counters: Counters = field(default_factory=Counters)
    outcomes: tuple[tuple[Outcome, int], ...] = ()  # (outcome, count), worst first, no zeros
    # Actions of the group that create one-off jobs: a group of cached-jobs triggers only has no
    # execution counts (cached jobs recur; no counter reports their runs). Not in the JSON.
    job_actions: int = 0

    @property
    def counts_executions(self) -> bool:
        """Whether the execution columns apply (some action of the group creates a job)."""
        return self.job_actions > 0 or self.actions == 0

    @property
    def problems(self) -> int:
        """Actions whose outcome is not OK."""
        return sum(count for outcome, count in self.outcomes if outcome != Outcome.OK)

    def count(self, outcome: Outcome) -> int:
        """How many actions of this group ended with ``outcome``."""
        return dict(self.outcomes).get(outcome, 0)

    def to_json(self) -> dict[str, Any]:
        """A row of ``totals``."""
        return {
            "name": self.name,
            "actions": self.actions,
            "expected": self.expected,
            **self.counters.to_json(),
            "outcomes": {str(outcome): count for outcome, count in self.outcomes},
        }


@dataclass(frozen=True)
class Totals:
    """Totals per project, per model and for the run.

    The API counts executions per job, not per model: a job's counters are shared among its
    models (round-robin, so the per-model rows still add up to the run). ``models_exact`` is
    True when every action has a single model, so no sharing was needed.
    """

    run: Tally
    projects: tuple[Tally, ...]
    models: tuple[Tally, ...]
    models_exact: bool

    def to_json(self) -> dict[str, Any]:
        """The ``totals`` object."""
        return {
            "run": self.run.to_json(),
            "projects": [tally.to_json() for tally in self.projects],
            "models": [tally.to_json() for tally in self.models],
            "modelsAttribution": "exact" if self.models_exact else "shared",
        }


@dataclass(frozen=True)
class RunInfo:
    """Run metadata: identity, provenance, timing and how it ended."""

    run_id: str
    status: str  # the ledger's RunStatus value
    manifest_digest: str
    mlrun_version: str
    started_at: str  # ISO 8601, UTC
    finished_at: str | None
    duration_seconds: float
    generated_at: str
    base_url: str  # without user info, query or fragment
    ci: CiInfo = field(default_factory=CiInfo)
    stop_reason: str | None = None  # the engine's "stop" event, if any
    budget_refused: bool = False
    skipped_projects: tuple[tuple[str, str], ...] = ()  # (project, reason): not in the plan
    # (project, why): asked for by the manifest, but it could not be planned (unknown to the
    # key, or the API did not answer): nothing was triggered for it, and the run says so.
    unreachable_projects: tuple[tuple[str, str], ...] = ()
    followed: bool = True  # False with --no-wait: jobs were triggered, not followed
    rate_limits: tuple[tuple[int, float], ...] = ()  # (limit, window seconds) the run enforced

    @property
    def rate_limit_per_second(self) -> float | None:
        """The limit a per-second timeline is drawn against: the 1-second window if any,
        else the tightest sustained rate."""
        if not self.rate_limits:
            return None
        short = [limit / seconds for limit, seconds in self.rate_limits if seconds <= 1.0]
        if short:
            return min(short)
        return min(limit / seconds for limit, seconds in self.rate_limits)

    @property
    def fatal_stop(self) -> bool:
        """True when the run was refused as a whole: bad key, no access, no credits, not the API."""
        reason = self.stop_reason or ""
        fatal = ("AuthError", "QuotaExhausted", "NotTheApi", "AnswerOutOfBounds")
        return any(name in reason for name in fatal)

    def to_json(self) -> dict[str, Any]:
        """The ``run`` object."""
        return {
            "runId": self.run_id,
            "status": self.status,
            "manifestDigest": self.manifest_digest,
            "mlrunVersion": self.mlrun_version,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "durationSeconds": self.duration_seconds,
            "generatedAt": self.generated_at,
            "baseUrl": self.base_url,
            "ci": self.ci.to_json(),
            "stopReason": self.stop_reason,
            "budgetRefused": self.budget_refused,
            "followed": self.followed,
            "rateLimits": [
                {"limit": limit, "seconds": seconds} for limit, seconds in self.rate_limits
            ],
            "skippedProjects": [
                {"project": project, "reason": reason} for project, reason in self.skipped_projects
            ],
            "unreachableProjects": [
                {"project": project, "reason": reason}
                for project, reason in self.unreachable_projects
            ],
        }


_PROBLEM_OUTCOMES = frozenset(Outcome) - {Outcome.OK}
_RESUMABLE_OUTCOMES = frozenset({Outcome.TIMEOUT, Outcome.RUNNING})


@dataclass(frozen=True)
class Report:
    """The whole reconciled report of one run; actions are ordered failures first."""

    run: RunInfo
    actions: tuple[ActionResult, ...]
    totals: Totals

    @property
    def problems(self) -> tuple[ActionResult, ...]:
        """The actions a human must look at, worst first: every outcome but OK, and but
        RUNNING in a run that did not follow its jobs (:attr:`not_followed`)."""
        return tuple(a for a in self.actions if self._is_problem(a.outcome))

    @property
    def not_followed(self) -> tuple[ActionResult, ...]:
        """The RUNNING actions of a run that did not follow its jobs (``--no-wait``).

        What was asked: information, not problems. ``mlrun status RUN --wait`` follows them.
        """
        if self.run.followed:
            return ()
        return tuple(a for a in self.actions if a.outcome == Outcome.RUNNING)

    def problem_count(self, tally: Tally) -> int:
        """How many of ``tally``'s actions are problems, as :attr:`problems` counts them."""
        return sum(count for outcome, count in tally.outcomes if self._is_problem(outcome))

    def _is_problem(self, outcome: Outcome) -> bool:
        return outcome != Outcome.OK and (self.run.followed or outcome != Outcome.RUNNING)

    def exit_code(self) -> ExitCode:
        """The documented exit code of the run, from its results.

        Precedence, first match wins (the most urgent thing for a human to act on):

        1. ``FATAL_API`` (5): the run stopped on a refused key, no credits, or a server that
           does not answer as the API (NotTheApi, AnswerOutOfBounds): fix the key or the base
           URL first;
        2. ``BUDGET_REFUSED`` (4): the budget refused the plan;
        3. ``INTERRUPTED`` (3): the run was interrupted, or an action is TIMEOUT or RUNNING:
           the run is resumable, and resuming may still turn failures into results;
        4. ``ACTION_FAILED`` (1): an action is not OK (failed, partial, unknown, skipped,
           not attempted) or differs from what was asked, or a project could not be planned;
        5. ``OK`` (0): every action completed exactly as asked.

        With ``--no-wait`` (``run.followed`` false) a RUNNING job is what was asked: it counts as
        OK for the exit code.
        """
        outcomes = {action.outcome for action in self.actions}
        if not self.run.followed:
            outcomes.discard(Outcome.RUNNING)
        if self.run.fatal_stop:
            return ExitCode.FATAL_API
        if self.run.budget_refused:
            return ExitCode.BUDGET_REFUSED
        if self.run.status == "interrupted" or outcomes & _RESUMABLE_OUTCOMES:
            return ExitCode.INTERRUPTED
        if (
            outcomes & _PROBLEM_OUTCOMES
            or any(a.differences for a in self.actions)
            or self.run.unreachable_projects
        ):
            return ExitCode.ACTION_FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """The report as JSON data, valid against ``schemas/report.schema.json``."""
        return {
            "formatVersion": FORMAT_VERSION,
            "exitCode": int(self.exit_code()),
            "run": self.run.to_json(),
            "totals": self.totals.to_json(),
            "actions": [action.to_json() for action in self.actions],
        }
