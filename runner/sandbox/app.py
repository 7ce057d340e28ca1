"""The ASGI application: numbering, faults, auth, rate limits, routing, ground truth.

The order of a request's life, and where each fault can strike::

    number it (schedule)  -> refuse | latency | drop before processing
    route (unknown: 404)  -> auth (401) -> rate limits (429) -> 400 -> gateway error, unprocessed
    handler (400/402/403/404, commit delay) -> gateway error after processing | malformed body
    -> response lost (reset or timeout) | response sent

A 400 or 401 may quote the caller's API key in its message (``echo_key``), as a careless server
would: the runner must keep it out of everything it writes.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio

from runner.sandbox.core import Core
from runner.sandbox.errors import (
    REASONS,
    ConnectionDropped,
    ConnectionRefused,
    HttpError,
    NetworkFault,
    ResponseLost,
    bad_request,
)
from runner.sandbox.faults import Decision, decide
from runner.sandbox.handlers import TRIGGERS, Context, Route, route
from runner.sandbox.http import Header, Request, Response, read_body, send_response
from runner.sandbox.inprocess import IN_PROCESS, InProcess
from runner.sandbox.ratelimit import Verdict, ceil_seconds
from runner.sandbox.timefmt import http_date
from runner.sandbox.truth import key_fingerprint
from runner.sandbox.world import Principal

_GATEWAY_MESSAGES = {
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_HTML = b"text/html; charset=utf-8"
_BROKEN_BODIES = (b'{"id":"', b"<html><body>upstream error</body></html>", b"", b'{"status":}')
_INVALID_HEADER: Header = (b"x sandbox drop", b"1")  # uvicorn refuses it before writing a byte


class Exchange:
    """One request's connection: waits, network faults and how they reach the client."""

    def __init__(self, core: Core, receive: Any, send: Any) -> None:
        self.core = core
        self.receive = receive
        self.send = send
        self.in_process: InProcess | None = IN_PROCESS.get()
        self.waited = 0.0
        self.context: Context | None = None

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``; in process, a read timeout that expires first is raised."""
        if seconds <= 0:
            return
        timeout = self.in_process.read_timeout if self.in_process else None
        if timeout is not None and self.waited + seconds > timeout:
            await self.core.clock.sleep(max(0.0, timeout - self.waited))
            self.waited = timeout
            await self.fail(ResponseLost("timeout"), "timeout")
        self.waited += seconds
        await self.core.clock.sleep(seconds)

    async def fail(self, fault: NetworkFault, label: str) -> None:
        """Record a network fault and end the exchange without a (complete) response."""
        self.core.truth.fault(label)
        record = self.context.record if self.context else None
        if record is not None and record.response == "pending":
            record.response = label
        if self.in_process is not None:
            if isinstance(fault, ResponseLost) and fault.mode == "timeout":
                await self.core.clock.sleep(self._until_client_timeout())
            raise fault
        if isinstance(fault, ResponseLost) and fault.mode == "timeout":
            with anyio.move_on_after(self.core.faults.hang_seconds):
                while (await self.receive())["type"] != "http.disconnect":
                    pass
        start = {"type": "http.response.start", "status": 200, "headers": [_INVALID_HEADER]}
        # uvicorn refuses the header before writing a byte, then closes the connection.
        with contextlib.suppress(Exception):
            await self.send(start)
        raise fault

    def _until_client_timeout(self) -> float:
        timeout = self.in_process.read_timeout if self.in_process else None
        if timeout is None:
            return self.core.faults.hang_seconds
        return max(0.0, timeout - self.waited)


class SandboxApp:
    """The raw ASGI 3 application of the simulated MentionLab API."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"].startswith("/_sandbox/"):
            await self._control(scope, receive, send)
        else:
            await self._api(scope, receive, send)

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        core = self.core
        request = Request.from_scope(scope, await read_body(receive))
        now = core.clock.monotonic()
        sequence = core.next_request(now)
        found = route(request.method, request.path)
        core.truth.paths[found.label if found else "unmatched"] += 1
        trigger = found is not None and found.handler in TRIGGERS
        decision = decide(core.faults, core.seed, sequence, trigger=trigger)
        exchange = Exchange(core, receive, send)
        if decision.refuse:
            await exchange.fail(ConnectionRefused(), "refuse")
        await exchange.wait(core.scaled(decision.latency))
        if decision.drop_before:
            await exchange.fail(ConnectionDropped(), "drop_before")
        common = [(b"date", http_date(int(core.clock.wall())).encode()), _request_id(sequence)]
        response = await self._respond(request, found, decision, sequence, exchange, common)
        if decision.lost is not None:
            await exchange.fail(ResponseLost(decision.lost), "lost_response")
        _settle(core, response)
        await send_response(send, response, common)

    async def _respond(
        self,
        request: Request,
        found: Route | None,
        decision: Decision,
        sequence: int,
        exchange: Exchange,
        common: list[Header],
    ) -> Response:
        if found is None:
            return Response.error(HttpError(404, f"Cannot {request.method} {request.path}"))
        try:
            who = self.core.directory.authenticate(request.headers.get("x-api-key"))
        except HttpError as error:
            return self._error(error, request, decision)
        limited = self._limit(who, decision, common)
        if limited is not None:
            return limited
        if decision.error_400:
            self.core.truth.fault("error_400")
            return self._error(bad_request("Validation failed"), request, decision)
        if decision.gateway is not None and not decision.gateway_processed:
            return self._gateway(decision.gateway, None, processed=False)
        context = Context(
            core=self.core,
            request=request,
            who=who,
            sequence=sequence,
            now=self.core.clock.monotonic(),
            wall=self.core.clock.wall(),
            wait=exchange.wait,
            param=found.param,
        )
        exchange.context = context
        try:
            response = await found.handler(context)
        except HttpError as error:
            response = self._error(error, request, decision)
        return self._after(response, decision)

    def _error(self, error: HttpError, request: Request, decision: Decision) -> Response:
        """The answer of ``error``; a 400 or 401 quotes the caller's key under ``echo_key``."""
        key = request.headers.get("x-api-key")
        if decision.echo_key and key and error.status in {400, 401}:
            self.core.truth.fault("echo_key")
            message = error.message
            quoted = (
                [*message, f"API key: {key}"] if isinstance(message, list) else f"{message} {key}"
            )
            error = HttpError(error.status, quoted, error.headers)
        return Response.error(error)

    def _limit(self, who: Principal, decision: Decision, common: list[Header]) -> Response | None:
        """Admit, or answer 429; adds the X-RateLimit-* headers to ``common`` either way."""
        core = self.core
        now = core.clock.monotonic()
        limiter = core.limiter
        verdict = (
            limiter.peek(who.api_key, now)
            if decision.error_429
            else limiter.admit(who.api_key, now)
        )
        if verdict is not None:
            common.extend(_rate_headers(verdict, core.clock.wall()))
        if verdict is not None and not verdict.admitted and not decision.error_429:
            core.truth.rate_limited[key_fingerprint(who.api_key)] += 1
            return _too_many(verdict.retry_after, decision.retry_after, core.clock.wall())
        if decision.error_429:
            core.truth.fault("error_429")
            core.truth.rate_limited[key_fingerprint(who.api_key)] += 1
            return _too_many(core.scaled(2.0), decision.retry_after, core.clock.wall())
        return None

    def _after(self, response: Response, decision: Decision) -> Response:
        if decision.gateway is not None:
            return self._gateway(decision.gateway, response, processed=True)
        if decision.malformed and 200 <= response.status < 300:
            self.core.truth.fault("malformed")
            if response.record is not None:
                response.record.response = "malformed"
            response.body = _BROKEN_BODIES[int(decision.variant * len(_BROKEN_BODIES))]
        return response

    def _gateway(self, code: int, handled: Response | None, *, processed: bool) -> Response:
        """A gateway or server error, before the origin acted or after (``handled``)."""
        truth = self.core.truth
        truth.fault(f"error_{code}")
        record = handled.record if handled is not None else None
        if processed:
            truth.fault(f"error_{code}_processed")
        if record is not None:
            record.response = f"error_{code}"
        if code in {502, 504}:
            html = f"<html><head><title>{code} {_GATEWAY_MESSAGES[code]}</title></head></html>"
            return Response(code, body=html.encode(), record=record, content_type=_HTML)
        payload = {"statusCode": code, "message": _GATEWAY_MESSAGES[code], "error": _reason(code)}
        return Response(code, payload, record=record)

    async def _control(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = Request.from_scope(scope, await read_body(receive))
        try:
            response = self._control_response(request)
        except (HttpError, ValueError, TypeError) as error:
            status = error.status if isinstance(error, HttpError) else 400
            body = {"statusCode": status, "message": str(error), "error": REASONS[status]}
            response = Response(status, body)
        await send_response(send, response, [])

    def _control_response(self, request: Request) -> Response:
        core = self.core
        name = (request.method, request.path)
        if name == ("GET", "/_sandbox/truth"):
            return Response(200, core.truth_json())
        if name == ("GET", "/_sandbox/config"):
            return Response(200, core.describe())
        if name == ("POST", "/_sandbox/config"):
            changes = json.loads(request.body or b"{}")
            if not isinstance(changes, dict):
                raise TypeError("POST /_sandbox/config takes a JSON object")
            core.configure(changes)
            return Response(200, core.describe())
        if name == ("GET", "/_sandbox/health"):
            return Response(200, {"status": "ok", "requests": core.sequence})
        raise HttpError(404, f"Cannot {request.method} {request.path}")


def _reason(code: int) -> str:
    return REASONS[code]


def _request_id(sequence: int) -> Header:
    return (b"x-request-id", f"sb-{sequence}".encode())


def _rate_headers(verdict: Verdict, wall: float) -> list[Header]:
    reset = int(-(-(wall + verdict.reset_in) // 1))
    return [
        (b"x-ratelimit-limit", str(verdict.limit).encode()),
        (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
        (b"x-ratelimit-reset", str(reset).encode()),
    ]


def _too_many(wait: float, style: str, wall: float) -> Response:
    seconds = ceil_seconds(wait)
    body = {
        "statusCode": 429,
        "message": f"Too many requests. Please retry after {seconds} seconds.",
        "error": "Too Many Requests",
    }
    values = {
        "seconds": str(seconds),
        "http-date": http_date(int(wall) + seconds + 1),
        "garbage": "soon-ish",
        "huge": "86400",
    }
    headers = [(b"retry-after", values[style].encode())] if style in values else []
    return Response(429, body, headers=headers)


def _settle(core: Core, response: Response) -> None:
    core.truth.statuses[response.status] += 1
    record = response.record
    if record is not None:
        record.status = response.status
        if record.response == "pending":
            record.response = "ok"


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
