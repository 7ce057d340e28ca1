"""Raw ASGI plumbing: read a request, write a JSON response. No framework, for speed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from runner.sandbox.errors import HttpError, bad_request
from runner.sandbox.truth import TriggerRecord

Scope = dict[str, Any]
Message = dict[str, Any]
Header = tuple[bytes, bytes]


@dataclass
class Request:
    """The parts of an HTTP request the sandbox looks at."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_scope(cls, scope: Scope, body: bytes) -> Request:
        raw_query = scope.get("query_string", b"")
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(raw_query.decode("latin-1"))) if raw_query else {},
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )

    def json(self) -> Any:
        """The JSON body (None when empty), or 400 for a body that is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise bad_request(f"Unexpected token in JSON at position {_position(exc)}") from exc


def _position(exc: ValueError) -> int:
    return exc.pos if isinstance(exc, json.JSONDecodeError) else 0


@dataclass
class Response:
    """A response before encoding; ``record`` links a trigger's truth to how it was answered."""

    status: int
    payload: Any = None
    body: bytes | None = None
    headers: list[Header] = field(default_factory=list)
    record: TriggerRecord | None = None
    content_type: bytes = b"application/json; charset=utf-8"

    @classmethod
    def error(cls, error: HttpError) -> Response:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers]
        return cls(error.status, error.body(), headers=headers)

    def encoded(self) -> bytes:
        if self.body is None:
            self.body = json.dumps(self.payload, separators=(",", ":")).encode()
        return self.body


async def read_body(receive: Any) -> bytes:
    """The whole request body."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return bytes(body)
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def send_response(send: Any, response: Response, common: list[Header]) -> None:
    """Write ``response`` with the common headers (date, rate limits, request id)."""
    body = response.encoded()
    content_type = (b"content-type", response.content_type)
    headers = [content_type, (b"content-length", str(len(body)).encode()), *common]
    headers.extend(response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
