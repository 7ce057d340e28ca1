"""MentionLabClient over real loopback sockets: the failures only a real connection shows.

Each test scripts a tiny server and checks how the client sorts what happened: provably not
sent (:class:`NotSent`), maybe processed (:class:`OutcomeUnknown`), not the API
(:class:`NotTheApi`). The server records every whole request it read, so "not sent" is checked
against a server that saw nothing and "maybe processed" against one that saw the whole request.
Real time on asyncio, mlrun's own event loop; the timeouts are short and every timing assertion
is a generous upper bound.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import ByteStream, SocketAttribute
from runner.api import ClientOptions, MentionLabClient, Reply
from runner.api.models import Job
from runner.errors import NotSent, NotTheApi, OutcomeUnknown

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "ml_live_" + "sockets0123456789"
PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
JOB = {
    "id": "job-1",
    "project": PROJECT,
    "status": "pending",
    "totalExecutions": 1,
    "pendingExecutions": 1,
    "retryingExecutions": 0,
    "successExecutions": 0,
    "failedExecutions": 0,
    "createdAt": "2025-01-01T00:00:00Z",
}


@pytest.fixture
def anyio_backend() -> str:
    """Real time on asyncio: sockets and a mock clock do not mix."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- a scripted loopback server ---------------------------------------------------------------


class Conn:
    """One accepted connection, read and written by a test's script."""

    def __init__(self, stream: ByteStream, server: Server) -> None:
        self.stream = stream
        self.server = server
        self._buffer = b""

    async def request(self) -> bytes | None:
        """Read one whole request (head and content-length body); None if the client left."""
        while b"\r\n\r\n" not in self._buffer:
            if not await self._fill():
                return None
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lengths = [h for h in head.lower().split(b"\r\n") if h.startswith(b"content-length:")]
        length = int(lengths[0].split(b":")[1]) if lengths else 0
        while len(rest) < length:
            if not await self._fill():
                return None
            rest = self._buffer.partition(b"\r\n\r\n")[2]
        self._buffer = rest[length:]
        self.server.requests.append(head.split(b" ", 2)[1].decode())
        return head

    async def _fill(self) -> bool:
        try:
            self._buffer += await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
        return True

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def respond(self, status: int, body: bytes, content_type: str) -> None:
        head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
        await self.send(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)


@dataclass
class Server:
    port: int
    host: str = "127.0.0.1"
    requests: list[str] = field(default_factory=list)  # targets of the whole requests read

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


Script = Callable[[Conn], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(script: Script, host: str = "127.0.0.1") -> AsyncIterator[Server]:
    """Serve ``script`` on every connection to a loopback port until the block ends."""
    listener = await anyio.create_tcp_listener(local_host=host)
    server = Server(port=listener.extra(SocketAttribute.local_port))

    async def handle(stream: ByteStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await script(Conn(stream, server))

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()


async def answer_job(conn: Conn) -> None:
    while await conn.request() is not None:
        await conn.respond(201, json.dumps(JOB).encode(), "application/json")


async def hang(conn: Conn) -> None:
    await conn.request()
    await anyio.sleep_forever()


def mentionlab(url: str, **options: Any) -> MentionLabClient:
    """The real client with httpx's own stack (no transport injected)."""
    return MentionLabClient(api_key=KEY, base_url=url, options=ClientOptions(**options))


async def trigger(api: MentionLabClient) -> Reply[Job]:
    return await api.trigger_job(
        project_id=PROJECT, organisation=None, models=["sonar"], execution_count=1
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it are refused, reliably."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- sorting failures -------------------------------------------------------------------------


async def test_a_round_trip_through_httpx_s_own_stack() -> None:
    async with serve(answer_job) as server, mentionlab(server.url) as api:
        replies = [await trigger(api) for _ in range(3)]
    assert [reply.value.id for reply in replies] == ["job-1"] * 3
    assert server.requests == ["/api/jobs/trigger"] * 3


async def test_a_refused_connection_is_not_sent(closed_port: int) -> None:
    async with mentionlab(f"http://127.0.0.1:{closed_port}") as api:
        with pytest.raises(NotSent, match="ConnectError"):
            await trigger(api)


async def test_a_read_timeout_is_outcome_unknown() -> None:
    async with serve(hang) as server, mentionlab(server.url, request_timeout=0.2) as api:
        with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
            await trigger(api)
    assert server.requests == ["/api/jobs/trigger"]  # it arrived whole: it may have been acted on


NO_WHOLE_ANSWER = {
    "closed without an answer": b"",
    "a body cut short": b'HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n{"id":',
    "a chunked body cut short": b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{",
    "not HTTP": b"this is not HTTP\r\n\r\n",
}


@pytest.mark.parametrize("answer", NO_WHOLE_ANSWER.values(), ids=NO_WHOLE_ANSWER.keys())
async def test_a_request_without_a_whole_answer_is_outcome_unknown(answer: bytes) -> None:
    async def script(conn: Conn) -> None:
        await conn.request()
        await conn.send(answer)  # then the connection closes

    async with serve(script) as server, mentionlab(server.url) as api:
        with pytest.raises(OutcomeUnknown):
            await trigger(api)
    assert server.requests == ["/api/jobs/trigger"]


async def test_no_free_connection_is_a_pool_timeout_and_not_sent() -> None:
    # One connection, held by a trigger the server never answers: the next cannot get one.
    options = {"max_connections": 1, "connect_timeout": 0.2}
    async with (
        serve(hang) as server,
        mentionlab(server.url, **options) as api,
        anyio.create_task_group() as group,
    ):
        group.start_soon(trigger, api)
        while not server.requests:
            await anyio.sleep(0.01)
        with pytest.raises(NotSent, match="PoolTimeout"):
            await trigger(api)
        group.cancel_scope.cancel()
    assert server.requests == ["/api/jobs/trigger"]  # the second never reached the server


# -- bounded answers --------------------------------------------------------------------------


async def endless_chunked(conn: Conn) -> None:
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
    await conn.send(b"transfer-encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        await conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))


async def test_an_endless_chunked_body_stops_at_the_cap_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        async with serve(endless_chunked) as server, mentionlab(server.url) as api:
            with pytest.raises(OutcomeUnknown, match="passed 4,194,304 bytes"):
                await api.list_projects(organisation=PROJECT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024


async def test_a_trickling_body_is_given_up_at_the_total_deadline() -> None:
    async def script(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 201 OK\r\ncontent-type: application/json\r\n")
        await conn.send(b"content-length: 1000\r\n\r\n")
        while True:  # one byte well within every read timeout, never the whole body
            await conn.send(b" ")
            await anyio.sleep(0.05)

    started = time.monotonic()
    async with serve(script) as server, mentionlab(server.url, request_timeout=0.3) as api:
        with pytest.raises(OutcomeUnknown, match=r"no whole answer within 0\.6 s"):
            await trigger(api)
    assert time.monotonic() - started < 10
    assert server.requests == ["/api/jobs/trigger"]


async def test_an_html_page_is_not_the_api() -> None:
    async def portal(conn: Conn) -> None:
        await conn.request()
        await conn.respond(200, b"<html><body>Sign in to the WiFi</body></html>", "text/html")

    async with serve(portal) as server, mentionlab(server.url) as api:
        with pytest.raises(NotTheApi, match="HTTP 200 with text/html, not the API's JSON"):
            await trigger(api)


# -- loopback is reached directly, whatever the proxy settings -------------------------------


def _loopback_hosts() -> list[str]:
    hosts = ["127.0.0.1", "localhost"]
    if socket.has_ipv6:
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            hosts.append("::1")
    return hosts


@pytest.mark.parametrize("host", _loopback_hosts())
async def test_a_loopback_base_url_bypasses_the_proxy(
    host: str, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{closed_port}"  # nothing listens there
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    async with serve(answer_job, host="::1" if host == "::1" else "127.0.0.1") as server:
        url = f"http://{'[::1]' if host == '::1' else host}:{server.port}"
        async with httpx.AsyncClient() as plain:  # the proxy is in force for anyone else
            with pytest.raises(httpx.ConnectError):
                await plain.get(url)
        async with mentionlab(url) as api:
            assert (await trigger(api)).value.id == "job-1"
    assert server.requests == ["/api/jobs/trigger"]
