"""The typed, validated manifest: what the rest of the runner consumes.

Built by :func:`runner.manifest.load_manifest` after the YAML has been read safely, interpolated,
checked against ``schemas/manifest.schema.json`` and by the semantic checks. Every value here is
final: defaults applied, ``${VAR}`` resolved, model-set names expanded to concrete identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Endpoint(StrEnum):
    """Which trigger an action calls."""

    JOBS = "jobs"  # POST /api/jobs/trigger, model ids
    CACHED_JOBS = "cachedJobs"  # POST /api/cached-jobs/trigger, provider keys


@dataclass(frozen=True)
class SourceRef:
    """Where a manifest entry was written."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger a project asks for: its models and its execution count."""

    models: tuple[str, ...]
    execution_count: int
    model_set: str | None = None  # the set name the models came from, if any
    source: SourceRef | None = None


@dataclass(frozen=True)
class Project:
    """A MentionLab project and the triggers the manifest asks for it."""

    name: str
    id: str
    organisation: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    jobs: tuple[TriggerSpec, ...] = ()
    cached_jobs: TriggerSpec | None = None
    source: SourceRef | None = None


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per window, per API key. None: no limit on that window."""

    per_second: int | None = 10
    per_minute: int | None = 300
    per_hour: int | None = 10_000

    def windows(self) -> tuple[tuple[int, float], ...]:
        """(limit, window seconds) for every window that is set."""
        pairs = ((self.per_second, 1.0), (self.per_minute, 60.0), (self.per_hour, 3600.0))
        return tuple((limit, seconds) for limit, seconds in pairs if limit is not None)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``request``: one HTTP request; ``follow``: following all jobs to the end."""

    request: float = 30.0
    connect: float = 10.0
    follow: float = 3600.0


@dataclass(frozen=True)
class Reports:
    """Where and in which formats the run report is written."""

    directory: str = "mlrun-reports"
    formats: tuple[str, ...] = ("json", "markdown", "junit")


@dataclass(frozen=True)
class Settings:
    """Run settings; every field has the documented default."""

    concurrency: int = 8
    rate_limits: RateLimits = field(default_factory=RateLimits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    follow: bool = True
    max_executions: int | None = None
    reports: Reports = field(default_factory=Reports)
    max_count_age: float = 24 * 3600.0  # seconds a recorded query count stands for a new read


@dataclass(frozen=True)
class Manifest:
    """A whole manifest, possibly assembled from several files."""

    version: int
    projects: tuple[Project, ...]
    settings: Settings = field(default_factory=Settings)
    model_sets: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    extra_model_ids: tuple[str, ...] = ()
    extra_provider_keys: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    digest: str = ""  # sha256 of the resolved manifest content, for saved plans and reports

    def project(self, name: str) -> Project:
        for project in self.projects:
            if project.name == name:
                return project
        raise KeyError(name)


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, so a resumed run keeps the manifest's limits and timeouts."""
    limits, timeouts, reports = settings.rate_limits, settings.timeouts, settings.reports
    return {
        "concurrency": settings.concurrency,
        "rateLimits": [limits.per_second, limits.per_minute, limits.per_hour],
        "timeouts": [timeouts.request, timeouts.connect, timeouts.follow],
        "follow": settings.follow,
        "maxExecutions": settings.max_executions,
        "reports": {"dir": reports.directory, "formats": list(reports.formats)},
    }


def settings_from_json(data: Mapping[str, Any]) -> Settings:
    """The inverse of :func:`settings_to_json`."""
    per_second, per_minute, per_hour = data["rateLimits"]
    request, connect, follow = data["timeouts"]
    reports = data["reports"]
    return Settings(
        concurrency=int(data["concurrency"]),
        rate_limits=RateLimits(per_second, per_minute, per_hour),
        timeouts=Timeouts(float(request), float(connect), float(follow)),
        follow=bool(data["follow"]),
        max_executions=data["maxExecutions"],
        reports=Reports(str(reports["dir"]), tuple(reports["formats"])),
    )
