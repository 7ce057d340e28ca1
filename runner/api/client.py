"""The MentionLab client: one method per endpoint the runner uses, on httpx's requests.

Requests are ``httpx.Request`` values sent straight to the transport: the runner's own HTTP/1.1
(:mod:`runner.api.transport`, half the CPU per request of httpx's default stack), or, when the
environment configures a proxy, ``httpx.AsyncClient``, which honours it. This module and the
transport are the only ones that talk to httpx. Every httpx exception is translated here into the
project's tree (``runner.errors``): what provably never left (connect refused or timed out, no
pooled connection) is :class:`NotSent`; what may have been processed (read timeout, connection
closed without an answer) is :class:`OutcomeUnknown`. Error statuses become :class:`ApiError`
subclasses. Each reply and each error carries the response's rate-limit information so the
caller's limiter learns from every response.

The API key is sent in ``x-api-key`` and is never part of a message, a repr or a log line.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar
from urllib.parse import urlsplit

import httpx

from runner import __version__
from runner.api.models import CachedJob, Job, JobPage, ProjectInfo, QueryPage
from runner.api.transport import default_transport
from runner.endpoints import API_KEY_ENV, DEFAULT_BASE_URL
from runner.errors import (
    ApiError,
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFound,
    NotSent,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    ServiceUnavailable,
)
from runner.ratelimit.headers import RateLimitInfo, parse_rate_limit_headers

T = TypeVar("T")

_QUOTA_WORDS = ("credit", "quota", "insufficient", "balance")
_URL_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A parsed success response with what it told us about the rate limits."""

    value: T
    status: int
    rate: RateLimitInfo
    request_id: str | None = None


@dataclass(frozen=True)
class ClientOptions:
    """Connection settings; seconds."""

    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 16
    # Below common server idle timeouts, so a pooled connection is rarely closed under us.
    keepalive_expiry: float = 4.0


def check_base_url(url: str) -> str:
    """https anywhere; plain http only to a loopback address (the served sandbox)."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError("the base URL must not carry credentials")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"plain http is allowed only to loopback addresses, not {parts.hostname!r}; use https"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_from_env(env: Mapping[str, str]) -> str:
    """The API key from ``MENTIONLAB_API_KEY``; a clear error before any request if missing."""
    key = env.get(API_KEY_ENV, "").strip()
    if not key:
        raise ConfigError(
            f"{API_KEY_ENV} is not set: export your MentionLab API key "
            "(or use --sandbox, which accepts any ml_live_... key and sets one for you)"
        )
    return key


class MentionLabClient:
    """Async client for the endpoints a batch runner needs."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        options = options or ClientOptions()
        self._base_url = check_base_url(base_url)
        limits = httpx.Limits(
            max_connections=options.max_connections,
            max_keepalive_connections=options.max_connections,
            keepalive_expiry=options.keepalive_expiry,
        )
        timeout = httpx.Timeout(
            options.request_timeout, connect=options.connect_timeout, pool=options.connect_timeout
        )
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}
        self._headers = {
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
            "user-agent": f"mentionlab-runner/{__version__}",
            "x-api-key": api_key,
        }
        # Requests go straight to the transport: the client's cookies, auth, redirects and
        # hooks are unused here and cost a tenth of a request's CPU. With a proxy configured,
        # httpx's client (which routes through it) sends them instead.
        self._transport = transport or default_transport(limits)
        self._proxied = (
            httpx.AsyncClient(limits=limits, timeout=timeout) if self._transport is None else None
        )

    def __repr__(self) -> str:
        return f"MentionLabClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        if self._proxied is not None:
            await self._proxied.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- jobs ---------------------------------------------------------------------------------

    async def trigger_job(
        self,
        *,
        project_id: str,
        organisation: str | None,
        models: Sequence[str],
        execution_count: int,
        idempotency_key: str | None = None,
    ) -> Reply[Job]:
        """``POST /api/jobs/trigger``: a paid, non-idempotent job over every query."""
        headers = _context_headers(project_id, organisation)
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        body = {"aiModels": list(models), "executionCount": execution_count}
        return await self._call("POST", "/api/jobs/trigger", Job.parse, headers=headers, json=body)

    async def get_job(
        self, *, project_id: str, organisation: str | None, job_id: str
    ) -> Reply[Job]:
        """``GET /api/jobs/{id}``."""
        headers = _context_headers(project_id, organisation)
        return await self._call("GET", f"/api/jobs/{job_id}", Job.parse, headers=headers)

    async def list_jobs(
        self,
        *,
        project_id: str,
        organisation: str | None,
        page: int = 1,
        limit: int = 100,
        created_by: str | None = None,
        status: str | None = None,
    ) -> Reply[JobPage]:
        """``POST /api/jobs/list``, newest first."""
        body: dict[str, Any] = {"sort": [{"field": "createdAt", "direction": "DESC"}]}
        if created_by:
            body["createdBy"] = created_by
        if status:
            body["status"] = status
        return await self._call(
            "POST",
            "/api/jobs/list",
            JobPage.parse,
            headers=_context_headers(project_id, organisation),
            params={"limit": limit, "page": page},
            json=body,
        )

    # -- cached jobs --------------------------------------------------------------------------

    async def trigger_cached_jobs(
        self,
        *,
        project_id: str,
        organisation: str,
        provider_keys: Sequence[str],
        execution_count: int,
        idempotency_key: str | None = None,
    ) -> Reply[tuple[CachedJob, ...]]:
        """``POST /api/cached-jobs/trigger``: one cached job per query of the project."""
        headers = _context_headers(project_id, organisation)
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        body = {"aiModels": list(provider_keys), "executionCount": execution_count}
        return await self._call(
            "POST", "/api/cached-jobs/trigger", _parse_cached_jobs, headers=headers, json=body
        )

    async def get_cached_job(
        self, *, project_id: str, organisation: str, cached_job_id: str
    ) -> Reply[CachedJob]:
        """``GET /api/cached-jobs/{id}``."""
        headers = _context_headers(project_id, organisation)
        path = f"/api/cached-jobs/{cached_job_id}"
        return await self._call("GET", path, CachedJob.parse, headers=headers)

    # -- queries and projects -----------------------------------------------------------------

    async def list_queries(
        self, *, project_id: str, organisation: str | None, page: int = 1, limit: int = 500
    ) -> Reply[QueryPage]:
        """``POST /api/queries/list``; ``limit`` up to 500."""
        return await self._call(
            "POST",
            "/api/queries/list",
            QueryPage.parse,
            headers=_context_headers(project_id, organisation),
            params={"limit": limit, "page": page},
            json={},
        )

    async def list_projects(self, *, organisation: str) -> Reply[tuple[ProjectInfo, ...]]:
        """``GET /api/projects/list``: a bare array of the organisation's projects."""
        return await self._call(
            "GET",
            "/api/projects/list",
            _parse_projects,
            headers={"x-organisation-id": organisation},
        )

    # -- the one place requests are sent ------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        parse: Any,
        *,
        headers: dict[str, str],
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Reply[Any]:
        request = httpx.Request(
            method,
            self._url(path),
            params=params,
            headers={**self._headers, **headers},
            json=json,
            extensions=self._extensions,
        )
        try:
            response = await self._send(request)
        except httpx.HTTPError as exc:
            raise _translate_transport_error(exc, method, path) from exc
        rate = parse_rate_limit_headers(response.headers, response.status_code)
        request_id = response.headers.get("x-request-id")
        if response.status_code >= 400:
            raise _error_for(response, method, path, rate, request_id)
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponse(
                f"{method} {path}: the response body is not JSON",
                status=response.status_code,
                method=method,
                path=path,
                rate=rate,
            ) from exc
        try:
            value = parse(body)
        except MalformedResponse as exc:
            exc.status, exc.method, exc.path, exc.rate = response.status_code, method, path, rate
            raise
        return Reply(value=value, status=response.status_code, rate=rate, request_id=request_id)

    def _url(self, path: str) -> httpx.URL:
        """The parsed URL of a path: parsed once per path (a third of building a request)."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:  # job ids make paths unbounded
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self._base_url + path)
        return url

    async def _send(self, request: httpx.Request) -> httpx.Response:
        if self._proxied is not None:
            return await self._proxied.send(request)
        assert self._transport is not None
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response


def _context_headers(project_id: str, organisation: str | None) -> dict[str, str]:
    headers = {"x-project-id": project_id}
    if organisation:
        headers["x-organisation-id"] = organisation
    return headers


def _parse_cached_jobs(body: Any) -> tuple[CachedJob, ...]:
    if not isinstance(body, list):
        raise MalformedResponse("unexpected response body: expected an array", status=201)
    return tuple(CachedJob.parse(item) for item in body)


def _parse_projects(body: Any) -> tuple[ProjectInfo, ...]:
    if not isinstance(body, list):
        raise MalformedResponse("unexpected response body: expected an array", status=200)
    return tuple(ProjectInfo.parse(item) for item in body)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _translate_transport_error(exc: httpx.HTTPError, method: str, path: str) -> Exception:
    """Sort a transport failure into provably-unsent or maybe-processed."""
    kind = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return NotSent(f"{method} {path}: not sent ({kind}: {_short(exc)})")
    return OutcomeUnknown(f"{method} {path}: no answer ({kind}: {_short(exc)})")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


def _error_body(response: httpx.Response) -> tuple[Any, str]:
    """The error body and a readable message from it (NestJS: statusCode, message, error)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:500], response.text[:200]
    if isinstance(body, dict):
        message = body.get("message", body.get("error", ""))
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        return body, str(message)
    return body, json.dumps(body)[:200]


def _error_for(  # noqa: PLR0911 - the status table reads best flat
    response: httpx.Response,
    method: str,
    path: str,
    rate: RateLimitInfo,
    request_id: str | None,
) -> ApiError:
    status = response.status_code
    body, detail = _error_body(response)
    message = f"{method} {path}: HTTP {status}" + (f": {detail}" if detail else "")
    common: dict[str, Any] = {
        "status": status,
        "body": body,
        "request_id": request_id,
        "method": method,
        "path": path,
        "rate": rate,
    }
    if status == 402 or (status in {403, 429} and _mentions_quota(detail)):
        return QuotaExhausted(message, **common)
    if status == 429:
        return RateLimited(message, retry_after=rate.retry_after, **common)
    if status in {401, 403}:
        return AuthError(message, **common)
    if status == 404:
        return NotFound(message, **common)
    if status == 503:
        return ServiceUnavailable(message, retry_after=rate.retry_after, **common)
    if status >= 500:
        return ServerError(message, **common)
    return RequestRejected(message, **common)


def _mentions_quota(detail: str) -> bool:
    lowered = detail.lower()
    return any(word in lowered for word in _QUOTA_WORDS)
