"""What only the API can tell a plan: does each project exist for this key, how many queries.

One request per project (``POST /api/queries/list`` with ``limit=1`` gives ``totalRecords``),
through the run's limiter like every other request. Problems are data: a project the key cannot
reach becomes a :class:`ProjectProblem`, reported precisely, and nothing is triggered for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from runner.api import MentionLabClient, Reply
from runner.errors import (
    AnswerOutOfBounds,
    ApiError,
    AuthError,
    NotFound,
    NotSent,
    NotTheApi,
    OutcomeUnknown,
    Unreachable,
)
from runner.plan import Action, Plan
from runner.ratelimit import RequestKind

Requester = Callable[[RequestKind, Callable[[], Awaitable[Reply[Any]]]], Awaitable[Reply[Any]]]


@dataclass(frozen=True)
class ProjectProblem:
    """Why a project cannot be planned against the API."""

    project: str
    project_id: str
    kind: str  # not_found | forbidden | unauthorized | error
    message: str


@dataclass(frozen=True)
class RemoteFacts:
    query_counts: dict[str, int]  # by project name: the ones read and the ones known
    problems: tuple[ProjectProblem, ...]
    requests: int
    known: int = 0  # counts given (recorded in the state by an earlier read), not read


async def resolve_query_counts(
    plan: Plan,
    *,
    client: MentionLabClient,
    request: Requester,
    on_read: Callable[[int, int], None] | None = None,
    known: Mapping[str, int] | None = None,
    on_count: Callable[[Action, int], None] | None = None,
) -> RemoteFacts:
    """Each planned project's query count, one request per project not in ``known``.

    ``known`` holds counts by project name that need no request. ``on_read(done, total)`` is
    called as each project is read (or found unreachable), ``on_count(action, count)`` with
    each count read.
    """
    first_action, counts = _to_read(plan, known or {})
    reused = len(counts)
    problems: list[ProjectProblem] = []
    done = 0

    async def count(action: Action) -> None:
        nonlocal done
        await read(action)
        done += 1
        if on_read is not None:
            on_read(done, len(first_action))

    async def read(action: Action) -> None:
        try:
            reply = await request(
                RequestKind.TRIGGER,
                lambda: client.list_queries(
                    project_id=action.project_id,
                    organisation=action.organisation,
                    page=1,
                    limit=1,
                ),
            )
        except (Unreachable, NotTheApi, AnswerOutOfBounds):
            raise
        except (ApiError, OutcomeUnknown, NotSent) as exc:
            problems.append(_problem(action, exc))
            return
        counts[action.project] = reply.value.page.total_records
        if on_count is not None:
            on_count(action, reply.value.page.total_records)

    projects = list(first_action.values())
    if projects:  # the first alone: a wrong URL or a dead API is told in seconds, once
        try:
            await count(projects[0])
        except Unreachable as exc:
            raise Unreachable(
                f"nothing answered at {client.base_url}: {exc}; nothing was sent"
            ) from exc
    async with anyio.create_task_group() as group:
        for action in projects[1:]:
            group.start_soon(count, action)
    order = {name: i for i, name in enumerate(first_action)}
    problems.sort(key=lambda p: order[p.project])
    return RemoteFacts(counts, tuple(problems), requests=len(first_action), known=reused)


def _to_read(plan: Plan, known: Mapping[str, int]) -> tuple[dict[str, Action], dict[str, int]]:
    """The first action of each project to read, and the counts ``known`` gives the others."""
    first_action: dict[str, Action] = {}
    counts: dict[str, int] = {}
    for action in plan.actions:
        if action.project in known:
            counts[action.project] = known[action.project]
        else:
            first_action.setdefault(action.project, action)
    return first_action, counts


def _problem(action: Action, exc: Exception) -> ProjectProblem:
    if isinstance(exc, NotFound):
        kind, message = "not_found", f"project {action.project_id} does not exist for this key"
    elif isinstance(exc, AuthError) and exc.status == 401:
        kind, message = "unauthorized", str(exc)
    elif isinstance(exc, AuthError) and exc.status == 403:
        kind = "forbidden"
        message = f"project {action.project_id} is not reachable with this key" + (
            f" in organisation {action.organisation}" if action.organisation else ""
        )
    else:
        kind, message = "error", f"could not read the project's queries: {exc}"
    return ProjectProblem(action.project, action.project_id, kind, message)
