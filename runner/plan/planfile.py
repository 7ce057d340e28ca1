"""Saved plans: the versioned file ``mlrun plan -o plan.json`` writes and ``mlrun apply`` runs.

A saved plan is what a reviewer approved, so applying it runs exactly its actions, with the query
counts seen at plan time, and never re-plans. It refuses (:class:`~runner.errors.PlanError`,
exit 2) when the plan is older than the maximum age, when the manifest it names no longer has the
digest it had, or when it would be applied to another API than the one it was planned against::

    {
      "kind": "mlrun-plan",
      "formatVersion": 1,
      "createdAt": "2026-05-01T12:00:00Z",
      "manifestDigest": "<sha256 of the resolved manifest>",
      "manifestFiles": ["manifests/"],          # the PATHs given to `mlrun plan`, as typed
      "baseUrl": "https://api.mentionlab.io",
      "offline": false,                           # true: query counts unknown
      "plan": { ...Plan.to_json()... },
      "problems": [{"project", "projectId", "kind", "message"}]
    }

Readers ignore keys they do not know (``mlrun plan --format json`` adds a ``summary``) and refuse
a ``formatVersion`` they do not know.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, PlanError, UsageError
from runner.exitcodes import ExitCode
from runner.isotime import ZonelessTime, parse_instant
from runner.plan import Plan, Selection
from runner.redact import safe_url

if TYPE_CHECKING:  # runner.plan.remote imports the HTTP client, which an offline plan never needs
    from runner.manifest.model import Settings
    from runner.plan.remote import ProjectProblem

PLAN_KIND = "mlrun-plan"
FORMAT_VERSION = 1
DEFAULT_MAX_PLAN_AGE = 24 * 3600.0  # seconds: a plan approved yesterday is planned again
MAX_PLAN_AGE_ENV = "MLRUN_MAX_PLAN_AGE"


@dataclass(frozen=True)
class PlanFile:
    """A plan with its provenance: when, from which manifest, against which API."""

    plan: Plan
    created_at: datetime
    manifest_files: tuple[str, ...]
    base_url: str | None
    offline: bool = False
    problems: tuple[ProjectProblem, ...] = ()
    source: str = field(default="plan", compare=False)  # where it was read from, for messages

    @property
    def manifest_digest(self) -> str:
        """The digest of the resolved manifest the plan was built from."""
        return self.plan.manifest_digest

    def exit_code(self) -> ExitCode:
        """4 if the budget refuses the plan, 1 if some project is unreachable, else 0."""
        if self.plan.budget().refused:
            return ExitCode.BUDGET_REFUSED
        if self.problems:
            return ExitCode.ACTION_FAILED
        return ExitCode.OK

    def age(self, now: datetime) -> float:
        """Seconds since the plan was made (negative if the clocks disagree)."""
        return (now - self.created_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The saved-plan document (see the module docstring)."""
        return {
            "kind": PLAN_KIND,
            "formatVersion": FORMAT_VERSION,
            "createdAt": iso_utc(self.created_at),
            "manifestDigest": self.manifest_digest,
            "manifestFiles": list(self.manifest_files),
            "baseUrl": self.base_url,
            "offline": self.offline,
            "plan": self.plan.to_json(),
            "problems": [problem_json(p) for p in self.problems],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "plan") -> PlanFile:
        """Parse a saved-plan document; :class:`PlanError` if it is not one this mlrun reads."""
        _check_header(data, source)
        try:
            plan = Plan.from_json(data["plan"])
            saved = cls(
                plan=plan,
                created_at=_parse_time(data["createdAt"], source),
                manifest_files=tuple(str(p) for p in data["manifestFiles"]),
                base_url=data.get("baseUrl"),
                offline=bool(data.get("offline", False)),
                problems=tuple(_problem(p) for p in data.get("problems", ())),
                source=source,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"{source}: not a valid mlrun plan ({_describe(exc)})") from exc
        if data.get("manifestDigest") != plan.manifest_digest:
            raise PlanError(f"{source}: manifestDigest does not match the plan's own digest")
        return saved


def iso_utc(moment: datetime) -> str:
    """``2026-05-01T12:00:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def problem_json(problem: ProjectProblem) -> dict[str, str]:
    """A :class:`ProjectProblem` as JSON."""
    return {
        "project": problem.project,
        "projectId": problem.project_id,
        "kind": problem.kind,
        "message": problem.message,
    }


def _problem(data: Mapping[str, Any]) -> ProjectProblem:
    from runner.plan.remote import ProjectProblem  # noqa: PLC0415 - see the imports

    return ProjectProblem(
        str(data["project"]), str(data["projectId"]), str(data["kind"]), str(data["message"])
    )


def _check_header(data: Mapping[str, Any], source: str) -> None:
    if not isinstance(data, Mapping) or data.get("kind") != PLAN_KIND:
        raise PlanError(f'{source}: not an mlrun plan (no "kind": "{PLAN_KIND}")')
    version = data.get("formatVersion")
    if version != FORMAT_VERSION:
        raise PlanError(
            f"{source}: plan formatVersion {version!r} is not supported by this mlrun "
            f"(it reads version {FORMAT_VERSION}); run `mlrun plan` again with this version"
        )


def _parse_time(value: Any, source: str) -> datetime:
    try:
        return parse_instant(str(value))  # not ISO 8601: not a valid plan, as the caller says
    except ZonelessTime as exc:
        raise PlanError(f"{source}: createdAt {value!r} has no time zone") from exc


def _describe(exc: Exception) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


# -- files --------------------------------------------------------------------------------------


def write_plan_file(path: Path, plan_file: PlanFile) -> None:
    """Write ``plan_file`` to ``path`` atomically (a reader never sees half a plan)."""
    # Compact, by the C encoder: ``indent`` falls back to pure Python, 3x slower at 5,000 projects.
    text = json.dumps(plan_file.to_json(), ensure_ascii=False) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        raise PlanError(f"cannot write the plan to {path}: {exc.strerror or exc}") from exc


def read_plan_file(path: Path) -> PlanFile:
    """Read a saved plan; :class:`PlanError` if it cannot be read or is not a plan we know."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read the plan {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not an mlrun plan (invalid JSON: {exc})") from exc
    return PlanFile.from_json(data, source=str(path))


def read_saved_plan(paths: Sequence[str | os.PathLike[str]]) -> PlanFile | None:
    """The saved plan ``paths`` names: exactly one ``.json`` file whose ``kind`` is mlrun-plan.

    None for anything else (manifests, directories, JSON that is no plan), so the manifest loader
    reports on those as usual.
    """
    if len(paths) != 1 or not str(paths[0]).endswith(".json"):
        return None
    path = Path(paths[0])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping) or data.get("kind") != PLAN_KIND:
        return None
    return PlanFile.from_json(data, source=str(path))


# -- applying a saved plan ----------------------------------------------------------------------


def max_plan_age(env: Mapping[str, str]) -> float:
    """The maximum age of a saved plan, in seconds: ``MLRUN_MAX_PLAN_AGE`` or 24 hours."""
    raw = env.get(MAX_PLAN_AGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PLAN_AGE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{MAX_PLAN_AGE_ENV}={raw!r}: give a number of seconds above 0")
    return seconds


def verify_saved_plan(
    saved: PlanFile,
    *,
    selection: Selection,
    base_url: str,
    env: Mapping[str, str],
    max_age: float | None = None,
    now: datetime | None = None,
) -> tuple[Plan, Settings]:
    """The saved plan and its manifest's settings, once it is known fresh and unchanged.

    Re-loads the manifest files the plan names (``env`` resolves ``${VAR}``, as at plan time)
    and raises :class:`PlanError` if the plan is too old, its manifest's digest changed, or it
    was planned against another API than ``base_url``; :class:`UsageError` for ``--select``.
    """
    from runner.manifest import load_manifest  # noqa: PLC0415 - keep imports lazy for the CLI

    if selection.include or selection.exclude:
        raise UsageError("a saved plan runs exactly as planned; --select/--exclude go to `plan`")
    check_age(saved, now or datetime.now(UTC), max_plan_age(env) if max_age is None else max_age)
    check_base_url(saved, base_url)
    manifest = load_manifest(saved.manifest_files, env=env).manifest
    check_digest(saved, manifest.digest)
    return saved.plan, manifest.settings


def check_age(saved: PlanFile, now: datetime, max_age: float) -> None:
    """:class:`PlanError` if ``saved`` is older than ``max_age`` seconds at ``now``."""
    age = saved.age(now)
    if age > max_age:
        raise PlanError(
            f"{saved.source}: the plan is stale: made {_span(age)} ago "
            f"({iso_utc(saved.created_at)}), the maximum age is {_span(max_age)} "
            f"({MAX_PLAN_AGE_ENV}); run `mlrun plan` again"
        )


def check_digest(saved: PlanFile, digest: str) -> None:
    """:class:`PlanError` if the manifest's digest is no longer the one planned."""
    if digest != saved.manifest_digest:
        files = ", ".join(saved.manifest_files)
        raise PlanError(
            f"{saved.source}: the manifest ({files}) changed since the plan was made "
            f"(digest {saved.manifest_digest[:12]} then, {digest[:12]} now); "
            "run `mlrun plan` again"
        )


def check_base_url(saved: PlanFile, base_url: str) -> None:
    """:class:`PlanError` if the plan was made against another API than ``base_url``."""
    if saved.base_url is not None and not _same_api(saved.base_url, base_url):
        raise PlanError(
            f"{saved.source}: the plan was made against {safe_url(saved.base_url)}, "
            f"not {safe_url(base_url)}; "
            "apply it where it was planned, or run `mlrun plan` again"
        )


def _same_api(one: str, other: str) -> bool:
    return safe_url(one).rstrip("/") == safe_url(other).rstrip("/")


def _span(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
