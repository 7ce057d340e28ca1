"""Typed views of the API's response bodies.

Parsing is strict about what the runner relies on (ids, counters, status) and lenient about the
rest, because the documentation contradicts itself on shapes (``project`` is a UUID or an object,
``createdBy`` may be null). A body that lacks what we rely on raises :class:`MalformedResponse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.errors import MalformedResponse

JOB_STATUSES = ("pending", "processing", "completed", "failed", "partial_failed")
TERMINAL_JOB_STATUSES = frozenset({"completed", "failed", "partial_failed"})


def _malformed(what: str, body: Any) -> MalformedResponse:
    return MalformedResponse(f"unexpected response body: {what}", status=200, body=body)


def _field(body: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise _malformed(f"missing field {name!r}", body)
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _malformed(f"field {name!r} has the wrong type", body)
    return value


def _id_of(value: Any) -> str | None:
    """An id given either as a string or as an object with an ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


@dataclass(frozen=True)
class Job:
    """A job of ``POST /api/jobs/trigger``, ``GET /api/jobs/{id}`` and the jobs list."""

    id: str
    project_id: str | None
    status: str
    total: int
    pending: int
    retrying: int
    success: int
    failed: int
    created_at: str
    updated_at: str | None
    created_by: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @classmethod
    def parse(cls, body: Any) -> Job:
        status = _field(body, "status", str)
        if status not in JOB_STATUSES:
            raise _malformed(f"unknown job status {status!r}", body)
        return cls(
            id=_field(body, "id", str),
            project_id=_id_of(body.get("project")),
            status=status,
            total=int(_field(body, "totalExecutions", (int, float))),
            pending=int(_field(body, "pendingExecutions", (int, float))),
            retrying=int(_field(body, "retryingExecutions", (int, float))),
            success=int(_field(body, "successExecutions", (int, float))),
            failed=int(_field(body, "failedExecutions", (int, float))),
            created_at=_field(body, "createdAt", str),
            updated_at=body.get("updatedAt") if isinstance(body.get("updatedAt"), str) else None,
            created_by=_id_of(body.get("createdBy")),
        )

    def counters(self) -> dict[str, int]:
        return {
            "total": self.total,
            "pending": self.pending,
            "retrying": self.retrying,
            "success": self.success,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class CachedJob:
    """One cached job of ``POST /api/cached-jobs/trigger`` (one per query of the project)."""

    id: str
    query_id: str | None
    ai_models: tuple[str, ...]
    execution_count: int
    status: str

    @classmethod
    def parse(cls, body: Any) -> CachedJob:
        models = _field(body, "aiModels", list)
        return cls(
            id=_field(body, "id", str),
            query_id=_id_of(body.get("query_id", body.get("queryId"))),
            ai_models=tuple(str(m) for m in models),
            execution_count=int(_field(body, "executionCount", (int, float))),
            status=_field(body, "status", str),
        )


@dataclass(frozen=True)
class PageInfo:
    """The pagination object of list endpoints."""

    total_records: int
    limit: int
    current_page: int
    total_pages: int
    next_page: int | None

    @classmethod
    def parse(cls, body: Any) -> PageInfo:
        page = _field(body, "page", dict)
        next_page = page.get("nextPage")
        return cls(
            total_records=int(_field(page, "totalRecords", (int, float))),
            limit=int(_field(page, "limit", (int, float))),
            current_page=int(_field(page, "currentPage", (int, float))),
            total_pages=int(_field(page, "totalPages", (int, float))),
            next_page=int(next_page) if isinstance(next_page, int | float) else None,
        )

    @property
    def is_last(self) -> bool:
        return self.next_page is None or self.current_page >= self.total_pages


@dataclass(frozen=True)
class JobPage:
    page: PageInfo
    jobs: tuple[Job, ...]

    @classmethod
    def parse(cls, body: Any) -> JobPage:
        results = _field(body, "results", list)
        return cls(page=PageInfo.parse(body), jobs=tuple(Job.parse(item) for item in results))


@dataclass(frozen=True)
class QueryPage:
    page: PageInfo
    query_ids: tuple[str, ...]

    @classmethod
    def parse(cls, body: Any) -> QueryPage:
        results = _field(body, "results", list)
        ids = tuple(_field(item, "id", str) for item in results)
        return cls(page=PageInfo.parse(body), query_ids=ids)


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    organisation: str | None

    @classmethod
    def parse(cls, body: Any) -> ProjectInfo:
        return cls(
            id=_field(body, "id", str),
            name=str(body.get("name", "")),
            organisation=_id_of(body.get("organisation")),
        )
