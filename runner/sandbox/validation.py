"""Request validation with NestJS/class-validator style messages (400, ``message`` an array)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.sandbox.errors import bad_request

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
JOB_STATUSES = ("pending", "processing", "completed", "failed", "partial_failed")
JOB_SORT_FIELDS = ("createdAt", "updatedAt", "status")
QUERY_SORT_FIELDS = ("query", "language", "country", "updatedAt")
DIRECTIONS = ("ASC", "DESC")


def is_uuid(value: str | None) -> bool:
    return value is not None and UUID_RE.match(value) is not None


def header_uuid(headers: Mapping[str, str], name: str) -> str:
    """A required UUID header, or 400."""
    value = headers.get(name)
    if value is None or value == "":
        raise bad_request(f"{name} header is required")
    if not is_uuid(value):
        raise bad_request(f"{name} must be a UUID")
    return value.lower()


def optional_header_uuid(headers: Mapping[str, str], name: str) -> str | None:
    """An optional UUID header: None when absent, 400 when malformed."""
    if not headers.get(name):
        return None
    return header_uuid(headers, name)


def path_uuid(value: str) -> str:
    if not is_uuid(value):
        raise bad_request("Validation failed (uuid is expected)")
    return value.lower()


def one_of(name: str, values: Sequence[str]) -> str:
    return f"{name} must be one of the following values: {', '.join(values)}"


def trigger_body(payload: Any, allowed: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """``aiModels`` and ``executionCount`` of a trigger, or 400 listing every problem."""
    body = payload if isinstance(payload, dict) else {}
    problems = _models_problems(body.get("aiModels"), allowed)
    problems += _count_problems(body.get("executionCount"))
    if problems:
        raise bad_request(*problems)
    return tuple(body["aiModels"]), int(body["executionCount"])


def _models_problems(models: Any, allowed: Sequence[str]) -> list[str]:
    if not isinstance(models, list):
        return [
            "aiModels should not be empty",
            "aiModels must be an array",
            f"each value in {one_of('aiModels', allowed)}",
        ]
    if not models:
        return ["aiModels should not be empty"]
    problems = []
    if any(not isinstance(m, str) or m not in allowed for m in models):
        problems.append(f"each value in {one_of('aiModels', allowed)}")
    elif len(set(models)) != len(models):
        problems.append("All aiModels's elements must be unique")
    return problems


def _count_problems(count: Any) -> list[str]:
    if not isinstance(count, int | float) or isinstance(count, bool):
        return [
            "executionCount must not be less than 1",
            "executionCount must be a number conforming to the specified constraints",
        ]
    problems = []
    if count < 1:
        problems.append("executionCount must not be less than 1")
    if count != int(count):
        problems.append("executionCount must be an integer number")
    return problems


@dataclass(frozen=True)
class Paging:
    limit: int
    page: int


def paging(query: Mapping[str, str], maximum: int) -> Paging:
    """``limit`` (1..maximum, default 50) and ``page`` (>= 1, default 1) from the query string."""
    problems: list[str] = []
    limit = _int_param(query, "limit", 50, problems, maximum)
    page = _int_param(query, "page", 1, problems, None)
    if problems:
        raise bad_request(*problems)
    return Paging(limit, page)


def _int_param(
    query: Mapping[str, str], name: str, default: int, problems: list[str], maximum: int | None
) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer number")
        return default
    if value < 1:
        problems.append(f"{name} must not be less than 1")
    if maximum is not None and value > maximum:
        problems.append(f"{name} must not be greater than {maximum}")
    return value


def sort_spec(raw: Any, fields: Sequence[str]) -> list[tuple[str, bool]]:
    """``[{field, direction}]`` as ``(field, descending)`` pairs, or 400."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("sort must be an array")
    problems, out = [], []
    for index, item in enumerate(raw):
        entry = item if isinstance(item, dict) else {}
        field, direction = entry.get("field"), entry.get("direction", "ASC")
        if field not in fields:
            problems.append(one_of(f"sort.{index}.field", fields))
        if direction not in DIRECTIONS:
            problems.append(one_of(f"sort.{index}.direction", DIRECTIONS))
        out.append((str(field), direction == "DESC"))
    if problems:
        raise bad_request(*problems)
    return out


def string_field(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return value


def string_list(body: Mapping[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise bad_request(f"{name} must be an array")
    return [str(v) for v in value]


def object_body(payload: Any) -> dict[str, Any]:
    """A list endpoint's optional filter body (an absent body is ``{}``)."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise bad_request("body must be an object")
    return payload
