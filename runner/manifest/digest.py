"""The digest of a manifest: sha256 of a canonical JSON of its resolved content.

Saved plans and reports compare it, so it depends only on what the run would do: not on key
order, formatting, comments, file names, or how the models were spelled (set name or list).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from runner.manifest.model import Manifest, Project, Settings, TriggerSpec


def canonical_content(manifest: Manifest) -> dict[str, Any]:
    """The resolved content of ``manifest`` as plain JSON values."""
    return {
        "version": manifest.version,
        "projects": [_project(project) for project in manifest.projects],
        "settings": _settings(manifest.settings),
        "extraModels": {
            "modelIds": sorted(manifest.extra_model_ids),
            "providerKeys": sorted(manifest.extra_provider_keys),
        },
    }


def canonical_json(manifest: Manifest) -> str:
    """``canonical_content`` serialised with sorted keys and no whitespace."""
    return json.dumps(
        canonical_content(manifest), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def compute_digest(manifest: Manifest) -> str:
    """sha256 hex of the canonical JSON."""
    return hashlib.sha256(canonical_json(manifest).encode("utf-8")).hexdigest()


def with_digest(manifest: Manifest) -> Manifest:
    """``manifest`` with its ``digest`` field set."""
    return dataclasses.replace(manifest, digest=compute_digest(manifest))


def _trigger(trigger: TriggerSpec) -> dict[str, Any]:
    return {"models": list(trigger.models), "executionCount": trigger.execution_count}


def _project(project: Project) -> dict[str, Any]:
    return {
        "name": project.name,
        "id": project.id.lower(),
        "organisation": project.organisation.lower() if project.organisation else None,
        "labels": dict(project.labels),
        "jobs": [_trigger(trigger) for trigger in project.jobs],
        "cachedJobs": _trigger(project.cached_jobs) if project.cached_jobs else None,
    }


def _settings(settings: Settings) -> dict[str, Any]:
    rates, timeouts = settings.rate_limits, settings.timeouts
    return {
        "concurrency": settings.concurrency,
        "rateLimits": [rates.per_second, rates.per_minute, rates.per_hour],
        "timeouts": [timeouts.request, timeouts.connect, timeouts.follow],
        "follow": settings.follow,
        "maxExecutions": settings.max_executions,
        "reports": {"dir": settings.reports.directory, "formats": list(settings.reports.formats)},
    }
