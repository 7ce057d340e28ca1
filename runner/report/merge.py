"""``mlrun report merge``: shard reports (report.json) combined into one report of the whole run.

Each CI shard runs a disjoint part of the plan and writes its own report. Merging reads them back
into the report model (:func:`report_from_json`, the inverse of :meth:`Report.to_json`), so the
merged report is reconciled and rendered by the very same code as any other:

* actions are concatenated, failures first; a key present in two shards is an error (the shards
  overlapped: the totals would count that action twice);
* totals are recomputed from the actions, and the exit code from the merged results;
* the run metadata names every merged run: ``runId`` is their ids joined by ``+``, the start is
  the earliest, the end the latest (none while one is unfinished), the status the most urgent.

Every input is validated against ``schemas/report.schema.json`` first, and so is the output. This
module is the report side's one user of jsonschema; its errors become :class:`UsageError` (an
input is not a report) or :class:`ReportError` (the merged report is invalid: a bug).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, ReportError, UsageError
from runner.isotime import parse_instant
from runner.report.build import iso
from runner.report.environment import CiInfo
from runner.report.model import (
    ActionResult,
    Ambiguity,
    Asked,
    AttemptInfo,
    CachedSummary,
    Counters,
    Difference,
    DifferenceKind,
    Done,
    Durations,
    JobInfo,
    Outcome,
    Report,
    RunInfo,
    Totals,
)
from runner.report.reconcile import compute_totals
from runner.report.render import atomic_write, render_json, write_reports
from runner.schemas import load_schema

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

REPORT_SCHEMA = "report.schema.json"
RUN_ID_SEPARATOR = "+"
# The most urgent status wins: it decides the merged exit code as it did each shard's.
_STATUS_URGENCY = ("interrupted", "running", "failed", "finished")


# -- reading -------------------------------------------------------------------------------------


def load_report(path: Path) -> Report:
    """The report in ``path`` (a report.json); UsageError when it is not a valid one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the report {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from exc
    problem = schema_problem(data)
    if problem is not None:
        raise UsageError(f"{path} is not an mlrun report (formatVersion 1): {problem}")
    return report_from_json(data)


def schema_problem(data: Any) -> str | None:
    """The most relevant schema violation of ``data`` as ``$.path: message``, or None."""
    from jsonschema.exceptions import best_match  # noqa: PLC0415 - jsonschema imports slowly

    error = best_match(_validator().iter_errors(data))
    if error is None:
        return None
    return f"{error.json_path}: {error.message}"


@cache
def _validator() -> Validator:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - jsonschema imports slowly

    validator: Validator = Draft202012Validator(load_schema(REPORT_SCHEMA))
    return validator


def report_from_json(data: Mapping[str, Any]) -> Report:
    """The report a valid report.json describes (the inverse of :meth:`Report.to_json`).

    The actions are read back as they were reconciled; only the totals are recomputed.
    """
    actions = tuple(_action(item) for item in data["actions"])
    order = [tally["name"] for tally in data["totals"]["projects"]]
    return Report(_run(data["run"]), actions, totals_in_order(actions, order))


def totals_in_order(actions: Sequence[ActionResult], projects: Sequence[str]) -> Totals:
    """The totals of ``actions``, projects listed in ``projects``' order (the plans' order).

    Actions are stored failures first, so their order no longer says the plan's.
    """
    totals = compute_totals(actions)
    rank = {name: index for index, name in enumerate(projects)}
    ordered = sorted(totals.projects, key=lambda tally: rank.get(tally.name, len(rank)))
    return replace(totals, projects=tuple(ordered))


def _run(data: Mapping[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=data["runId"],
        status=data["status"],
        manifest_digest=data["manifestDigest"],
        mlrun_version=data["mlrunVersion"],
        started_at=data["startedAt"],
        finished_at=data["finishedAt"],
        duration_seconds=float(data["durationSeconds"]),
        generated_at=data["generatedAt"],
        base_url=data["baseUrl"],
        ci=CiInfo.from_json(data["ci"]),
        stop_reason=data["stopReason"],
        budget_refused=data["budgetRefused"],
        skipped_projects=tuple((s["project"], s["reason"]) for s in data["skippedProjects"]),
        unreachable_projects=tuple(
            (s["project"], s["reason"]) for s in data.get("unreachableProjects", [])
        ),
        followed=data["followed"],
        rate_limits=tuple((w["limit"], w["seconds"]) for w in data.get("rateLimits", [])),
    )


def _action(data: Mapping[str, Any]) -> ActionResult:
    asked = data["asked"]
    return ActionResult(
        asked=Asked(
            key=data["key"],
            project=data["project"],
            project_id=asked["projectId"],
            endpoint=asked["endpoint"],
            models=tuple(asked["models"]),
            execution_count=asked["executionCount"],
            queries=asked["queries"],
            expected_executions=asked["expectedExecutions"],
        ),
        done=_done(data["done"]),
        outcome=Outcome(data["outcome"]),
        differences=tuple(
            Difference(DifferenceKind(d["kind"]), d["message"]) for d in data["differences"]
        ),
    )


def _done(data: Mapping[str, Any]) -> Done:
    durations = data["durations"]
    return Done(
        state=data["state"],
        job_ids=tuple(data["jobIds"]),
        job_status=data["jobStatus"],
        counters=_counters(data["counters"]),
        attempts=data["attempts"],
        rate_limited=data["rateLimited"],
        settled_by=data["settledBy"],
        detail=data["detail"],
        jobs=tuple(_job(job) for job in data["jobs"]),
        attempt_log=tuple(_attempt(attempt) for attempt in data["attemptLog"]),
        ambiguous=tuple(
            Ambiguity(a["attempt"], a["error"], a["settledBy"], a["detail"])
            for a in data["ambiguous"]
        ),
        durations=Durations(durations["sentToTriggered"], durations["triggeredToTerminal"]),
        cached=_cached(data["cached"]),
    )


def _counters(data: Mapping[str, int] | None) -> Counters | None:
    if data is None:
        return None
    return Counters(
        data["total"], data["success"], data["failed"], data["pending"], data["retrying"]
    )


def _job(data: Mapping[str, Any]) -> JobInfo:
    return JobInfo(
        job_id=data["id"],
        kind=data["kind"],
        status=data["status"],
        counters=_counters(data["counters"]),
        anomalies=tuple(data["anomalies"]),
    )


def _attempt(data: Mapping[str, Any]) -> AttemptInfo:
    return AttemptInfo(
        attempt=data["attempt"],
        sent_at=data["sentAt"],
        outcome=data["outcome"],
        http_status=data["httpStatus"],
        error=data["error"],
        seconds=data["seconds"],
    )


def _cached(data: Mapping[str, Any] | None) -> CachedSummary | None:
    if data is None:
        return None
    return CachedSummary(
        returned=data["returned"],
        expected=data["expected"],
        models_expected=tuple(data["modelsExpected"]),
        execution_count_expected=data["executionCountExpected"],
        checked=data["checked"],
        models_differ=data["modelsDiffer"],
        execution_count_differs=data["executionCountDiffers"],
        duplicate_queries=data["duplicateQueries"],
    )


# -- merging -------------------------------------------------------------------------------------


def merge_reports(reports: Sequence[Report], *, now: float, names: Sequence[str] = ()) -> Report:
    """One report of every action of ``reports``; ``names`` label them in error messages.

    UsageError when fewer than one report is given or two reports share an action key.
    """
    if not reports:
        raise UsageError("give at least one report to merge")
    labels = list(names) or [report.run.run_id for report in reports]
    _check_disjoint(reports, labels)
    actions = [action for report in reports for action in report.actions]
    ordered = tuple(sorted(actions, key=lambda action: action.outcome.rank))  # stable
    projects = [tally.name for report in reports for tally in report.totals.projects]
    return Report(_merged_run(reports, ordered, now), ordered, totals_in_order(actions, projects))


def _check_disjoint(reports: Sequence[Report], labels: Sequence[str]) -> None:
    owner: dict[str, str] = {}
    for report, label in zip(reports, labels, strict=True):
        for action in report.actions:
            if action.key in owner:
                raise UsageError(
                    f"action {action.key!r} is in both {owner[action.key]} and {label}: "
                    "shard reports must not overlap"
                )
            owner[action.key] = label


def _merged_run(reports: Sequence[Report], actions: Sequence[ActionResult], now: float) -> RunInfo:
    runs = [report.run for report in reports]
    started = min(runs, key=lambda run: _epoch(run.started_at)).started_at
    finished = None if any(run.finished_at is None for run in runs) else _latest_finish(runs)
    end = _epoch(finished) if finished is not None else max(_end(run) for run in runs)
    return RunInfo(
        run_id=RUN_ID_SEPARATOR.join(dict.fromkeys(run.run_id for run in runs)),
        status=min((run.status for run in runs), key=_STATUS_URGENCY.index),
        manifest_digest=_joined(run.manifest_digest for run in runs),
        mlrun_version=_joined(run.mlrun_version for run in runs),
        started_at=started,
        finished_at=finished,
        duration_seconds=round(max(0.0, end - _epoch(started)), 3),
        generated_at=iso(now),
        base_url=_joined(run.base_url for run in runs),
        ci=runs[0].ci,
        stop_reason=_stop_reasons(runs),
        budget_refused=any(run.budget_refused for run in runs),
        skipped_projects=_skipped(runs, {action.project for action in actions}),
        unreachable_projects=tuple(
            dict(pair for run in runs for pair in run.unreachable_projects).items()
        ),
        followed=all(run.followed for run in runs),
        rate_limits=_merged_limits(runs),
    )


def _merged_limits(runs: Sequence[RunInfo]) -> tuple[tuple[int, float], ...]:
    """Shards share the account's budget: together they enforce the sum per window."""
    totals: dict[float, int] = {}
    for run in runs:
        for limit, seconds in run.rate_limits:
            totals[seconds] = totals.get(seconds, 0) + limit
    return tuple((limit, seconds) for seconds, limit in sorted(totals.items()))


def _epoch(timestamp: str) -> float:
    return parse_instant(timestamp).timestamp()


def _latest_finish(runs: Sequence[RunInfo]) -> str:
    return max((run.finished_at for run in runs if run.finished_at), key=_epoch)


def _end(run: RunInfo) -> float:
    return _epoch(run.started_at) + run.duration_seconds


def _joined(values: Any) -> str:
    """The distinct values, in order, joined by ``, `` (one value stays as it is)."""
    return ", ".join(dict.fromkeys(values))


def _stop_reasons(runs: Sequence[RunInfo]) -> str | None:
    reasons = [f"{run.run_id}: {run.stop_reason}" for run in runs if run.stop_reason]
    if not reasons:
        return None
    return reasons[0].split(": ", 1)[1] if len(runs) == 1 else "; ".join(reasons)


def _skipped(runs: Sequence[RunInfo], present: set[str]) -> tuple[tuple[str, str], ...]:
    """Projects some shard left out and no other shard ran (a shard leaves out the others')."""
    skipped: dict[str, str] = {}
    for run in runs:
        for project, reason in run.skipped_projects:
            if project not in present:
                skipped.setdefault(project, reason)
    return tuple(skipped.items())


def validated_json(report: Report) -> dict[str, Any]:
    """``report.to_json()``, checked against the schema; ReportError names the violation."""
    data = report.to_json()
    problem = schema_problem(data)
    if problem is not None:
        raise ReportError(f"the merged report does not match its schema: {problem}")
    return data


def write_merged(report: Report, output: Path, formats: Sequence[str]) -> list[Path]:
    """Write the merged JSON to ``output`` (validated first), other ``formats`` beside it.

    ConfigError when a file cannot be written.
    """
    validated_json(report)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output, render_json(report))
    except OSError as exc:
        raise ConfigError(f"cannot write the merged report {output}: {exc}") from exc
    others = [name for name in formats if name != "json"]
    return [output, *write_reports(report, output.parent, others, full_report_hint=str(output))]
