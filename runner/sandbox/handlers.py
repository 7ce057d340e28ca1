"""One function per endpoint: headers, body, world lookups, then the store."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runner.sandbox.core import Core
from runner.sandbox.errors import HttpError, bad_request
from runner.sandbox.http import Request, Response
from runner.sandbox.jobs import Job, JobState, cached_job_json, job_json
from runner.sandbox.state import TriggerRequest
from runner.sandbox.truth import TriggerRecord
from runner.sandbox.validation import (
    JOB_SORT_FIELDS,
    JOB_STATUSES,
    QUERY_SORT_FIELDS,
    header_uuid,
    object_body,
    one_of,
    optional_header_uuid,
    paging,
    path_uuid,
    sort_spec,
    string_field,
    string_list,
    trigger_body,
)
from runner.sandbox.world import Principal, Project, Query, project_json, query_json


@dataclass
class Context:
    """One request being handled."""

    core: Core
    request: Request
    who: Principal
    sequence: int
    now: float
    wall: float
    wait: Callable[[float], Awaitable[None]]
    param: str = ""
    record: TriggerRecord | None = field(default=None)

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)


Handler = Callable[[Context], Awaitable[Response]]


def _project(ctx: Context, *, organisation_required: bool) -> Project:
    headers = ctx.request.headers
    if organisation_required:
        organisation: str | None = header_uuid(headers, "x-organisation-id")
    else:
        organisation = optional_header_uuid(headers, "x-organisation-id")
    project_id = header_uuid(headers, "x-project-id")
    return ctx.core.directory.project(project_id, organisation, ctx.who)


async def trigger_job(ctx: Context) -> Response:
    """``POST /api/jobs/trigger``: one job over every query of the project."""
    project = _project(ctx, organisation_required=False)
    models, count = trigger_body(ctx.request.json(), ctx.core.catalog.model_ids)
    executions = len(project.queries) * len(models) * count
    return await _trigger(ctx, "job", project, models, count, executions)


async def trigger_cached(ctx: Context) -> Response:
    """``POST /api/cached-jobs/trigger``: one cached job per query, provider keys mapped."""
    project = _project(ctx, organisation_required=True)
    keys, count = trigger_body(ctx.request.json(), ctx.core.catalog.provider_keys)
    models = ctx.core.catalog.models_for_keys(keys)
    executions = len(project.queries) * len(models) * count
    return await _trigger(ctx, "cached", project, keys, count, executions)


async def _trigger(
    ctx: Context, kind: str, project: Project, models: tuple[str, ...], count: int, total: int
) -> Response:
    core = ctx.core
    delay = core.scaled(core.faults.commit_delay)
    idempotency_key = ctx.header("idempotency-key") or None
    request = TriggerRequest(
        kind=kind,
        who=ctx.who,
        project=project,
        ai_models=models,
        execution_count=count,
        idempotency_key=idempotency_key,
        sequence=ctx.sequence,
        commit_at=ctx.now + delay,
        commit_wall=ctx.wall + delay,
        fingerprint=f"{kind}|{project.id}|{','.join(models)}|{count}",
    )
    if core.config.honour_idempotency_key and (earlier := core.store.replay(request, ctx.now)):
        core.truth.fault("idempotent_replay")
        return Response(201, _trigger_payload(core, earlier, ctx.now))
    core.store.charge(total)
    if kind == "job":
        core.store.create_job(request, core.faults, core.scaled(core.faults.list_lag))
    else:
        core.store.create_cached(request, core.catalog.models_for_keys(models))
    ctx.record = core.truth.triggers[-1]
    await ctx.wait(delay)
    payload = _trigger_payload(core, ctx.record, core.clock.monotonic())
    return Response(201, payload, record=ctx.record)


def _trigger_payload(core: Core, record: TriggerRecord, now: float) -> Any:
    if record.kind == "job":
        job = core.store.jobs[record.ids[0]]
        return job_json(job, core.store.observe(job, max(now, job.commit_at)))
    return [cached_job_json(core.store.cached[i], now) for i in record.ids]


async def get_job(ctx: Context) -> Response:
    """``GET /api/jobs/{id}``."""
    project = _project(ctx, organisation_required=False)
    job_id = path_uuid(ctx.param)
    job = ctx.core.store.visible_job(job_id, project.id, ctx.now)
    if job is None:
        raise HttpError(404, "Job not found")
    return Response(200, job_json(job, ctx.core.store.observe(job, ctx.now)))


async def list_jobs(ctx: Context) -> Response:
    """``POST /api/jobs/list?limit=&page=``: filters in the body, newest first by default."""
    project = _project(ctx, organisation_required=False)
    page = paging(ctx.request.query, 100)
    body = object_body(ctx.request.json())
    status = body.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise bad_request(one_of("status", JOB_STATUSES))
    created_by = string_field(body, "createdBy")
    order = sort_spec(body.get("sort"), JOB_SORT_FIELDS) or [("createdAt", True)]
    store = ctx.core.store
    jobs = store.listed_jobs(project.id, ctx.now)
    if created_by is not None:
        jobs = [job for job in jobs if job.creator.id == created_by]
    if status is None and all(name == "createdAt" for name, _ in order):
        # Only the page's jobs need a state: a list stays cheap however many jobs exist.
        jobs.sort(key=lambda job: job.seq, reverse=order[0][1])
        render = lambda job: job_json(job, store.observe(job, ctx.now))  # noqa: E731
        return Response(200, _paged(jobs, page.limit, page.page, render))
    rows = [(job, store.observe(job, ctx.now)) for job in jobs]
    rows = [(job, state) for job, state in rows if status is None or state.status == status]
    return Response(200, _paged(_sorted_jobs(rows, order), page.limit, page.page, _render_row))


def _render_row(row: tuple[Job, JobState]) -> dict[str, Any]:
    return job_json(*row)


def _sorted_jobs(
    rows: list[tuple[Job, JobState]], order: Sequence[tuple[str, bool]]
) -> list[tuple[Job, JobState]]:
    keys: dict[str, Callable[[tuple[Job, JobState]], Any]] = {
        "createdAt": lambda r: r[0].seq,
        "updatedAt": lambda r: r[0].wall(r[1].updated_at),
        "status": lambda r: r[1].status,
    }
    rows = sorted(rows, key=lambda r: r[0].seq, reverse=order[0][1])
    for name, descending in reversed(order):
        rows.sort(key=keys[name], reverse=descending)
    return rows


def _paged(rows: Sequence[Any], limit: int, page: int, render: Callable[[Any], Any]) -> Any:
    total = len(rows)
    pages = math.ceil(total / limit)
    start = (page - 1) * limit
    return {
        "page": {
            "totalRecords": total,
            "limit": limit,
            "currentPage": page,
            "totalPages": pages,
            "nextPage": page + 1 if page < pages else None,
            "prevPage": page - 1 if page > 1 else None,
        },
        "results": [render(row) for row in rows[start : start + limit]],
    }


async def get_cached(ctx: Context) -> Response:
    """``GET /api/cached-jobs/{id}``."""
    project = _project(ctx, organisation_required=True)
    job = ctx.core.store.cached.get(path_uuid(ctx.param))
    if job is None or job.project_id != project.id or ctx.now < job.commit_at:
        raise HttpError(404, "Cached job not found")
    return Response(200, cached_job_json(job, ctx.now))


async def list_queries(ctx: Context) -> Response:
    """``POST /api/queries/list?limit=&page=`` (limit up to 500)."""
    project = _project(ctx, organisation_required=False)
    page = paging(ctx.request.query, 500)
    body = object_body(ctx.request.json())
    queries = _filter_queries(project.queries, body)
    for name, descending in reversed(sort_spec(body.get("sort"), QUERY_SORT_FIELDS)):
        queries.sort(key=partial(_query_key, name=name), reverse=descending)
    render = partial(query_json, project=project.id)
    return Response(200, _paged(queries, page.limit, page.page, render))


def _filter_queries(queries: Sequence[Query], body: dict[str, Any]) -> list[Query]:
    text = (string_field(body, "query") or "").lower()
    languages = string_list(body, "languages")
    countries = string_list(body, "countries")
    tag_ids = {int(t) for t in string_list(body, "tagIds") or ()}
    tag_names = set(string_list(body, "tagNames") or ())
    return [
        q
        for q in queries
        if text in q.text.lower()
        and (languages is None or q.language in languages)
        and (countries is None or q.country in countries)
        and (not tag_ids or tag_ids & set(q.tags))
        and (not tag_names or tag_names & {f"tag-{t}" for t in q.tags})
    ]


def _query_key(query: Query, *, name: str) -> str:
    if name == "updatedAt":
        return query.id  # every sandbox query shares one creation epoch; order by id
    return str(getattr(query, "text" if name == "query" else name))


async def list_projects(ctx: Context) -> Response:
    """``GET /api/projects/list``: a bare array."""
    organisation = header_uuid(ctx.request.headers, "x-organisation-id")
    directory = ctx.core.directory
    named = optional_header_uuid(ctx.request.headers, "x-project-id")
    if directory.world is None and named is not None:
        directory.project(named, organisation, ctx.who)  # lenient: a project named exists
    projects = directory.projects(organisation, ctx.who)
    return Response(200, [project_json(p) for p in projects])


async def get_project(ctx: Context) -> Response:
    """``GET /api/projects/{id}``."""
    project = _project(ctx, organisation_required=True)
    if path_uuid(ctx.param) != project.id:
        raise bad_request("x-project-id must match the project id in the path")
    return Response(200, project_json(project))


STATIC: dict[tuple[str, str], Handler] = {
    ("POST", "/api/jobs/trigger"): trigger_job,
    ("POST", "/api/jobs/list"): list_jobs,
    ("POST", "/api/cached-jobs/trigger"): trigger_cached,
    ("POST", "/api/queries/list"): list_queries,
    ("GET", "/api/projects/list"): list_projects,
}
WITH_ID: dict[tuple[str, str], Handler] = {
    ("GET", "/api/jobs/"): get_job,
    ("GET", "/api/cached-jobs/"): get_cached,
    ("GET", "/api/projects/"): get_project,
}
TRIGGERS = frozenset({trigger_job, trigger_cached})


@dataclass(frozen=True)
class Route:
    """A matched endpoint: its handler, the path parameter and a label for counting."""

    handler: Handler
    param: str
    label: str


def route(method: str, path: str) -> Route | None:
    """The endpoint for ``method path``, or None (answered 404 as NestJS does)."""
    handler = STATIC.get((method, path))
    if handler is not None:
        return Route(handler, "", f"{method} {path}")
    prefix, _, param = path.rpartition("/")
    handler = WITH_ID.get((method, prefix + "/"))
    if handler is None or not param:
        return None
    return Route(handler, param, f"{method} {prefix}/{{id}}")
