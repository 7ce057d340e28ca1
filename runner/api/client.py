"""The MentionLab client: one method per endpoint the runner uses, over ``httpx.AsyncClient``.

Requests go through httpx's own stack (pool, TLS, the environment's proxies; a loopback base URL
always directly) or an injected transport such as the sandbox's. Every httpx exception is
translated here: what provably never left is :class:`NotSent`; what may have been processed is
:class:`OutcomeUnknown`, and so is a body past ``max_body_bytes`` or a request past
``total_timeout``. Error statuses become :class:`ApiError` subclasses, an answer that cannot be
the API's (a redirect, a success that is not JSON) :class:`NotTheApi`. Every text a server sends
passes through one :class:`~runner.redact.Redactor` holding the API key before anything
stores or prints it (docs/architecture.md, "The HTTP stack").
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar, cast
from urllib.parse import urlsplit

import anyio
import httpx

from runner import __version__
from runner.api.models import CachedJob, Job, JobPage, ProjectInfo, QueryPage
from runner.endpoints import API_KEY_ENV, DEFAULT_BASE_URL
from runner.errors import (
    AnswerOutOfBounds,
    ApiError,
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFound,
    NotSent,
    NotTheApi,
    OutcomeUnknown,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    ServiceUnavailable,
)
from runner.ratelimit.headers import RateLimitInfo, parse_rate_limit_headers
from runner.redact import Redactor, safe_url

T = TypeVar("T")

_QUOTA_WORDS = ("credit", "quota", "insufficient", "balance")
MAX_BODY_BYTES = 4 * 1024 * 1024  # far above any answer of the API (a page of 500 queries)
_SNIPPET_CHARS = 80  # of a body that is not the API's, quoted in the error
_PEEK_BYTES = 16 * 1024  # read of such a body, enough for the snippet once redacted
_PEEK_SECONDS = 2.0


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A parsed success response with what it told us about the rate limits."""

    value: T
    status: int
    rate: RateLimitInfo
    request_id: str | None = None


@dataclass(frozen=True)
class ClientOptions:
    """Connection settings; seconds.

    ``request_timeout`` bounds each wait for the network (a read, a write); ``total_timeout``
    (default: twice ``request_timeout``) bounds one whole request, connect to the last byte of
    the body; ``max_body_bytes`` bounds a response body.
    """

    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    total_timeout: float | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_connections: int = 16
    # Below common server idle timeouts, so a pooled connection is rarely closed under us.
    keepalive_expiry: float = 4.0

    @property
    def deadline(self) -> float:
        """Seconds one request may take, from its connection to the end of its body."""
        return self.total_timeout or 2 * self.request_timeout


def check_base_url(url: str) -> str:
    """https anywhere; plain http only to a loopback address (the served sandbox).

    A base URL is the API's root: one with credentials, a query or a fragment (where keys hide)
    is refused, and named only without them.
    """
    shown = safe_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"base URL {shown!r} is not a valid URL") from exc
    if parts.scheme not in {"https", "http"} or not host:
        raise ConfigError(f"base URL {shown!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError(f"the base URL {shown!r} must not carry credentials")
    if "?" in url or "#" in url:
        raise ConfigError(
            f"the base URL {shown!r} must not have a query or a fragment: give the API's root"
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"plain http is allowed only to loopback addresses, not {host!r}; use https"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_key(key: str) -> str:
    """``key`` if an HTTP header can carry it: printable ASCII, no space; ConfigError if not.

    The message says where the offending character is, never what the key holds.
    """
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":
            raise ConfigError(
                f"{API_KEY_ENV} is not a valid API key: character {position} is "
                f"{_character_kind(char)}; a key is printable ASCII without spaces "
                "(check how it was copied or exported)"
            )
    return key


def _character_kind(char: str) -> str:
    if char in "\r\n":
        return "a line break"
    if char.isspace():
        return "a space"
    if not char.isascii():
        return "not ASCII"
    return "a control character"


def api_key_from_env(env: Mapping[str, str]) -> str:
    """The API key from ``MENTIONLAB_API_KEY``; a clear error before any request if missing."""
    key = env.get(API_KEY_ENV, "").strip()
    if not key:
        raise ConfigError(
            f"{API_KEY_ENV} is not set: export your MentionLab API key "
            "(or use --sandbox, which accepts any ml_live_... key and sets one for you)"
        )
    return check_api_key(key)


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
        self._options = options or ClientOptions()
        self._base_url = check_base_url(base_url)
        self._redact = Redactor([check_api_key(api_key)])
        self._http = _http_client(self._base_url, api_key, transport, self._options)

    def __repr__(self) -> str:
        return f"MentionLabClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        await self._http.aclose()

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
        request = self._http.build_request(method, path, params=params, headers=headers, json=json)
        answer = await self._exchange(request, method, path)
        what = f"{method} {path}"
        common: dict[str, Any] = {
            "status": answer.status,
            "method": method,
            "path": path,
            "rate": answer.rate,
        }
        if answer.status >= 400:
            raise self._error_for(answer, what, common)
        try:
            body = self._json(answer.body)
        except ValueError as exc:
            raise MalformedResponse(
                f"{what}: HTTP {answer.status}: the body is not JSON: {self._snippet(answer.body)}",
                **common,
            ) from exc
        try:
            value = parse(body)
        except MalformedResponse as exc:
            exc.status, exc.method, exc.path, exc.rate = answer.status, method, path, answer.rate
            raise
        return Reply(value=value, status=answer.status, rate=answer.rate, request_id=answer.id)

    async def _exchange(self, request: httpx.Request, method: str, path: str) -> _Answer:
        """Send ``request`` and read its whole answer, within the size and time caps."""
        what = f"{method} {path}"
        deadline = self._options.deadline
        with anyio.move_on_after(deadline):
            try:
                response = await self._http.send(request, stream=True)
                try:
                    return await self._answer(response, method, path)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, what) from exc
        raise AnswerOutOfBounds(
            f"{what}: no whole answer within {deadline:g} s; it may have been processed"
        )

    async def _answer(self, response: httpx.Response, method: str, path: str) -> _Answer:
        what = f"{method} {path}"
        status = response.status_code
        answer = _Answer(
            status=status,
            rate=parse_rate_limit_headers(response.headers, status),
            id=self._redact.optional(response.headers.get("x-request-id")),
            content_type=self._redact(response.headers.get("content-type", "")),
        )
        if 300 <= status < 400:
            location = self._redact(safe_url(response.headers.get("location", "")))
            raise NotTheApi(
                f"{what}: HTTP {status}: redirected to {location or '(no Location header)'}; "
                "mlrun does not follow redirects: check the base URL",
                status=status,
                method=method,
                path=path,
                rate=answer.rate,
            )
        if status < 300 and not _declares_json(answer.content_type):
            raise await self._not_json(response, answer, method, path)
        answer.body = await self._body(response, what)
        return answer

    async def _body(self, response: httpx.Response, what: str) -> bytes:
        """The whole body, or OutcomeUnknown as soon as it passes the size cap."""
        cap = self._options.max_body_bytes
        declared = response.headers.get("content-length", "")
        too_large = AnswerOutOfBounds(
            f"{what}: HTTP {response.status_code}: the body passed {cap:,} bytes and was not "
            "read; it may have been processed"
        )
        if (
            declared.isdigit()
            and int(declared) > cap
            and "content-encoding" not in response.headers
        ):
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async with _chunks(response) as body:
            async for chunk in body:
                size += len(chunk)
                if size > cap:
                    raise too_large
                chunks.append(chunk)
        return b"".join(chunks)

    async def _not_json(
        self, response: httpx.Response, answer: _Answer, method: str, path: str
    ) -> NotTheApi:
        """A success that is not JSON: an HTML page, a captive portal, another service."""
        peek = bytearray()
        # The status and content type already tell; the start of the body only illustrates.
        with anyio.move_on_after(_PEEK_SECONDS), contextlib.suppress(httpx.HTTPError):
            async with _chunks(response) as body:
                async for chunk in body:
                    peek += chunk
                    if len(peek) >= _PEEK_BYTES:
                        break
        kind = answer.content_type or "no content type"
        return NotTheApi(
            f"{method} {path}: HTTP {answer.status} with {kind}, not the API's JSON: "
            f"{self._snippet(bytes(peek))}; check the base URL and any proxy",
            status=answer.status,
            method=method,
            path=path,
            rate=answer.rate,
        )

    def _json(self, raw: bytes) -> Any:
        """The redacted JSON value of a body; ValueError if it is not JSON (or absurdly deep)."""
        try:
            return self._redact.data(json.loads(raw))
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc

    def _snippet(self, body: bytes) -> str:
        """The start of a body, redacted, on one line, quoted."""
        text = " ".join(self._redact(body.decode("utf-8", "replace")).split())
        if len(text) > _SNIPPET_CHARS:
            text = text[:_SNIPPET_CHARS] + "…"
        return repr(text) if text else "an empty body"

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> Exception:
        """Sort a transport failure into provably-unsent or maybe-processed."""
        text = str(exc).splitlines()[0] if str(exc) else ""
        detail = f"{type(exc).__name__}: {self._redact(text)[:200]}"
        if isinstance(exc, _NOT_SENT):
            return NotSent(f"{what}: not sent ({detail})")
        return OutcomeUnknown(f"{what}: no answer ({detail})")

    def _error_for(  # noqa: PLR0911 - the status table reads best flat
        self, answer: _Answer, what: str, common: dict[str, Any]
    ) -> ApiError:
        status = answer.status
        body, detail = self._error_body(answer.body)
        message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
        common = {**common, "body": body, "request_id": answer.id}
        retry_after = answer.rate.retry_after
        if status == 402 or (status in {403, 429} and _mentions_quota(detail)):
            return QuotaExhausted(message, **common)
        if status == 429:
            return RateLimited(message, retry_after=retry_after, **common)
        if status in {401, 403}:
            return AuthError(message, **common)
        if status == 404:
            return NotFound(message, **common)
        if status == 503:
            return ServiceUnavailable(message, retry_after=retry_after, **common)
        if status >= 500:
            return ServerError(message, **common)
        return RequestRejected(message, **common)

    def _error_body(self, raw: bytes) -> tuple[Any, str]:
        """The error body, redacted, and a readable message from it (NestJS: message, error)."""
        try:
            body = self._json(raw)
        except ValueError:
            text = self._redact(raw.decode("utf-8", "replace"))
            return text[:500], text[:200]
        if isinstance(body, dict):
            message = body.get("message", body.get("error", ""))
            if isinstance(message, list):
                message = "; ".join(str(m) for m in message)
            return body, str(message)
        return body, json.dumps(body)[:200]


@dataclass
class _Answer:
    """What one request brought back: the status, what its headers said, and its body."""

    status: int
    rate: RateLimitInfo
    id: str | None
    content_type: str
    body: bytes = b""


def _http_client(
    base_url: str,
    api_key: str,
    transport: httpx.AsyncBaseTransport | None,
    options: ClientOptions,
) -> httpx.AsyncClient:
    """httpx's client for ``base_url``: its own stack, or ``transport`` when one is given."""
    limits = httpx.Limits(
        max_connections=options.max_connections,
        max_keepalive_connections=options.max_connections,
        keepalive_expiry=options.keepalive_expiry,
    )
    timeout = httpx.Timeout(
        options.request_timeout, connect=options.connect_timeout, pool=options.connect_timeout
    )
    headers = {
        "accept": "application/json",
        "user-agent": f"mentionlab-runner/{__version__}",
        "x-api-key": api_key,
    }
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        transport=transport,
        mounts=_direct_to_loopback(base_url) if transport is None else None,
        limits=limits,
        timeout=timeout,
        follow_redirects=False,
    )


def _chunks(response: httpx.Response) -> contextlib.aclosing[AsyncGenerator[bytes, None]]:
    """The decoded body's chunks, closed when the reading stops early (a cap, a peek)."""
    return contextlib.aclosing(cast("AsyncGenerator[bytes, None]", response.aiter_bytes()))


def _direct_to_loopback(base_url: str) -> dict[str, httpx.AsyncBaseTransport | None]:
    """No proxy for a loopback base URL, as ``NO_PROXY`` conventions have it."""
    host = urlsplit(base_url).hostname or ""
    if not is_loopback(host):
        return {}
    pattern_host = f"[{host}]" if ":" in host else host
    return {f"all://{pattern_host}": None}


def _declares_json(content_type: str) -> bool:
    """Whether a content type is JSON's; a missing one is given the benefit of the doubt."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return not mime or mime in {"application/json", "text/json"} or mime.endswith("+json")


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


def _mentions_quota(detail: str) -> bool:
    lowered = detail.lower()
    return any(word in lowered for word in _QUOTA_WORDS)
