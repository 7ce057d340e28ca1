"""The sandbox's state as JSON: what it created, so an in-process sandbox outlives its process.

An in-process sandbox (``mlrun apply --sandbox``) lives inside one mlrun process; the API it
stands for does not forget its jobs when a client exits. :func:`dump` writes what the sandbox
created (jobs, cached jobs, the ground truth, credits used, the request counter) and
:func:`restore` loads it into a new sandbox, so ``mlrun apply --resume`` of a sandbox run
follows the same jobs. Sandbox times are on the monotonic clock; they are carried over by the
wall time that passed in between, so a reboot in between changes nothing. API keys are not
written: the state is restored for the one key that created it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runner.sandbox.core import Core
from runner.sandbox.jobs import CachedJob, Job
from runner.sandbox.truth import TriggerRecord
from runner.sandbox.world import Query, User

VERSION = 1
_JOB_TIMES = ("commit_at", "listed_at")
_CACHED_TIMES = ("commit_at",)


def dump(core: Core) -> dict[str, Any]:
    """The created state of ``core`` as JSON data."""
    store = core.store
    return {
        "version": VERSION,
        "seed": core.config.seed,
        "monotonic": core.clock.monotonic(),
        "wall": core.clock.wall(),
        "sequence": core.sequence,
        "creditsUsed": store.credits_used,
        "jobs": [dataclasses.asdict(job) for job in store.jobs.values()],
        "cached": [dataclasses.asdict(job) for job in store.cached.values()],
        "triggers": [_without_key(dataclasses.asdict(r)) for r in core.truth.triggers],
    }


def restore(core: Core, data: dict[str, Any], *, api_key: str) -> None:
    """Load what :func:`dump` wrote into a fresh ``core`` (same seed), as created by ``api_key``.

    ValueError if the data is of another version or seed.
    """
    if data.get("version") != VERSION or data.get("seed") != core.config.seed:
        raise ValueError("the sandbox state is of another version or seed")
    shift = (core.clock.monotonic() - data["monotonic"]) - (core.clock.wall() - data["wall"])
    jobs = [_job(raw, shift) for raw in data["jobs"]]
    cached = [_cached(raw, shift) for raw in data["cached"]]
    triggers = [_trigger(raw, shift, api_key) for raw in data["triggers"]]
    sequence, credits_used = int(data["sequence"]), int(data["creditsUsed"])
    store = core.store
    for job in jobs:
        store.jobs[job.id] = job
        store.project_jobs.setdefault(job.project_id, []).append(job)
    store.cached.update((job.id, job) for job in cached)
    core.truth.triggers.extend(triggers)
    store.credits_used = credits_used
    core.sequence = core.truth.requests = sequence


def _without_key(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "api_key"}


def _trigger(raw: dict[str, Any], shift: float, api_key: str) -> TriggerRecord:
    record = TriggerRecord(**{**raw, "ids": tuple(raw["ids"]), "api_key": api_key})
    record.ai_models = tuple(record.ai_models)
    record.created_monotonic += shift
    return record


def _job(raw: dict[str, Any], shift: float) -> Job:
    fields = {**raw, "creator": User(**raw["creator"]), "ai_models": tuple(raw["ai_models"])}
    for name in _JOB_TIMES:
        fields[name] += shift
    return Job(**fields)


def _cached(raw: dict[str, Any], shift: float) -> CachedJob:
    query = {**raw["query"], "tags": tuple(raw["query"]["tags"])}
    fields = {**raw, "query": Query(**query), "ai_models": tuple(raw["ai_models"])}
    for name in _CACHED_TIMES:
        fields[name] += shift
    return CachedJob(**fields)
