"""The typed :class:`Manifest` from documents that passed every check."""

from __future__ import annotations

from typing import Any

from runner.manifest.assemble import Assembled, Origin
from runner.manifest.digest import with_digest
from runner.manifest.document import Mark, PosMap
from runner.manifest.model import (
    Manifest,
    Project,
    RateLimits,
    Reports,
    Settings,
    SourceRef,
    Timeouts,
    TriggerSpec,
)

_DEFAULT_EXECUTION_COUNT = 1


def build_manifest(assembled: Assembled) -> Manifest:
    """The final manifest: defaults applied, set names expanded, digest computed."""
    extra = assembled.section("extraModels")
    defaults = _Defaults(assembled)
    manifest = Manifest(
        version=1,
        projects=tuple(_project(defaults, p, origin) for p, origin in assembled.projects),
        settings=_settings(assembled.section("settings")),
        model_sets={name: tuple(models) for name, (models, _) in assembled.model_sets.items()},
        extra_model_ids=tuple(extra.get("modelIds", ())),
        extra_provider_keys=tuple(extra.get("providerKeys", ())),
        files=tuple(document.file for document in assembled.documents),
    )
    return with_digest(manifest)


class _Defaults:
    """What ``defaults`` gives every project, and the model sets, looked up once."""

    def __init__(self, assembled: Assembled) -> None:
        defaults = assembled.section("defaults")
        self.organisation = defaults.get("organisation")
        self.models = defaults.get("models")
        self.cached_models = defaults.get("cachedModels")
        self.execution_count = defaults.get("executionCount")
        self.model_sets = assembled.model_sets


def _source(file: str, mark: Mark | None) -> SourceRef:
    line, column = mark or (1, 1)
    return SourceRef(file, line, column)


def _project(defaults: _Defaults, project: PosMap, origin: Origin) -> Project:
    file = origin.document.file
    jobs = project.get("jobs", [])
    cached = project.get("cachedJobs")
    cached_spec = None
    if cached is not None:
        source = _source(file, project.value_marks["cachedJobs"])
        cached_spec = _trigger(defaults, cached, defaults.cached_models, source)
    return Project(
        name=project["name"],
        id=project["id"],
        organisation=project.get("organisation", defaults.organisation),
        labels=dict(project.get("labels", {})),
        jobs=tuple(
            _trigger(defaults, entry, defaults.models, _source(file, jobs.item_marks[i]))
            for i, entry in enumerate(jobs)
        ),
        cached_jobs=cached_spec,
        source=_source(file, project.mark),
    )


def _trigger(
    defaults: _Defaults, entry: dict[str, Any], default_models: Any, source: SourceRef
) -> TriggerSpec:
    models = entry.get("models", default_models)
    count = entry.get("executionCount", defaults.execution_count)
    if isinstance(models, str):
        names, set_name = tuple(defaults.model_sets[models][0]), models
    else:
        names, set_name = tuple(models), None
    return TriggerSpec(
        models=names,
        execution_count=int(count if count is not None else _DEFAULT_EXECUTION_COUNT),
        model_set=set_name,
        source=source,
    )


def _settings(raw: dict[str, Any]) -> Settings:
    defaults = Settings()
    rates = raw.get("rateLimits", {})
    timeouts = raw.get("timeouts", {})
    reports = raw.get("reports", {})
    return Settings(
        concurrency=raw.get("concurrency", defaults.concurrency),
        rate_limits=RateLimits(
            per_second=rates.get("perSecond", defaults.rate_limits.per_second),
            per_minute=rates.get("perMinute", defaults.rate_limits.per_minute),
            per_hour=rates.get("perHour", defaults.rate_limits.per_hour),
        ),
        timeouts=Timeouts(
            request=float(timeouts.get("request", defaults.timeouts.request)),
            connect=float(timeouts.get("connect", defaults.timeouts.connect)),
            follow=float(timeouts.get("follow", defaults.timeouts.follow)),
        ),
        follow=raw.get("follow", defaults.follow),
        max_executions=raw.get("budget", {}).get("maxExecutions", defaults.max_executions),
        reports=Reports(
            directory=reports.get("dir", defaults.reports.directory),
            formats=tuple(reports.get("formats", defaults.reports.formats)),
        ),
        max_count_age=float(raw.get("plan", {}).get("maxCountAge", defaults.max_count_age)),
    )
