"""PooledTransport over real loopback sockets, through httpx and through MentionLabClient.

Each test scripts a tiny server (anyio, so the same helper serves the trio test) and checks what
the client sees: bodies and headers intact, connections reused and bounded, and every failure
sorted the way a paid trigger needs: provably not sent (:class:`NotSent`) or maybe processed
(:class:`OutcomeUnknown`). The server also records what it received, so a "not sent" claim is
checked against a server that saw no request, and a "maybe processed" one against a server that
saw the whole request.

No sleeps: a test waits on events the server sets, and a timeout appears only where a timeout is
the behaviour under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import os
import random
import socket
import ssl
import struct
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trustme
from anyio.abc import ByteStream, Listener, SocketAttribute
from anyio.streams.tls import TLSListener
from runner.api.client import ClientOptions, MentionLabClient, Reply
from runner.api.models import Job
from runner.api.transport import PooledTransport, default_transport
from runner.errors import NotSent, OutcomeUnknown

from subprocesses import ServedSandbox, start_served_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "ml_live_transport0123456789"
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
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=30.0)
TIMEOUT = httpx.Timeout(10.0)  # generous: nothing here should come near it
BIG = random.Random(0).randbytes(2 * 1024 * 1024)  # 2 MiB, well over the 256 KiB read buffer


@pytest.fixture
def anyio_backend() -> str:
    """Real time on asyncio, PooledTransport's own backend (the trio test asks for trio)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy in the environment, so MentionLabClient picks PooledTransport by default."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


# -- a scripted loopback server ---------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int
    host: str = "127.0.0.1"
    scheme: str = "http"
    accepted: int = 0  # connections accepted
    open_now: int = 0
    requests: list[Received] = field(default_factory=list)  # complete requests read
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    def record(self, received: Received) -> None:
        self.requests.append(received)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def until_requests(self, count: int) -> None:
        """Wait until the server has read ``count`` complete requests."""
        while len(self.requests) < count:
            await self._arrived.wait()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class Conn:
    """One accepted connection, read and written by a test's script."""

    def __init__(self, stream: ByteStream, server: Server, index: int) -> None:
        self.stream = stream
        self.server = server
        self.index = index  # 0 for the first connection the server accepted
        self._buffer = bytearray()

    async def _fill(self) -> bool:
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
        self._buffer += data
        return True

    async def head(self) -> tuple[str, str, dict[str, str]] | None:
        """The next request's line and headers, or None if the client closed first."""
        while b"\r\n\r\n" not in self._buffer:
            if not await self._fill():
                return None
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)
        line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = {}
        for header in lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, target, headers

    async def body_bytes(self, length: int) -> int:
        """Read up to ``length`` body bytes, discarding them; how many arrived before EOF."""
        seen = 0
        while seen < length:
            if not self._buffer and not await self._fill():
                break
            take = min(len(self._buffer), length - seen)
            del self._buffer[:take]
            seen += take
        return seen

    async def request(self) -> Received | None:
        """The next complete request, or None if the client closed before sending one."""
        head = await self.head()
        if head is None:
            return None
        method, target, headers = head
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            if not await self._fill():
                return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        received = Received(method, target, headers, body)
        self.server.record(received)
        return received

    async def respond(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        lines = [f"HTTP/1.1 {status} Whatever", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if close:
            lines.append("connection: close")
        await self.stream.send("\r\n".join([*lines, "", ""]).encode("latin-1") + body)

    async def respond_json(self, value: Any, *, status: int = 200) -> None:
        body = json.dumps(value).encode()
        await self.respond(body, status=status, headers={"content-type": "application/json"})

    async def close(self) -> None:
        await self.stream.aclose()


Script = Callable[[Conn], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(script: Script, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Serve ``script`` on each connection to a loopback port until the block ends."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = Server(port=tcp.extra(SocketAttribute.local_port))
    listener: Listener[Any] = tcp
    if tls is not None:
        listener = TLSListener(tcp, tls, standard_compatible=False)
        server.host, server.scheme = "localhost", "https"

    async def handle(stream: ByteStream) -> None:
        conn = Conn(stream, server, server.accepted)
        server.accepted += 1
        server.open_now += 1
        try:
            # The client going away mid-script is its business, not a server failure.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await script(conn)
        finally:
            server.open_now -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()


async def echo(conn: Conn) -> None:
    """Answer each request with a JSON account of it, keeping the connection alive."""
    while (request := await conn.request()) is not None:
        account = {
            "method": request.method,
            "target": request.target,
            "body": request.body.decode(),
            "x-probe": request.headers.get("x-probe"),
            "connection": conn.index,
        }
        body = json.dumps(account).encode()
        headers = {"content-type": "application/json", "x-served-by": f"conn-{conn.index}"}
        await conn.respond(body, headers=headers)


async def hang(conn: Conn) -> None:
    """Read the request and never answer."""
    await conn.request()
    await anyio.sleep_forever()


def client(
    transport: httpx.AsyncBaseTransport | None = None, *, timeout: httpx.Timeout = TIMEOUT
) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport or PooledTransport(limits=LIMITS), timeout=timeout)


def mentionlab(url: str, **options: Any) -> MentionLabClient:
    """The real client with its default transport (PooledTransport: no proxy here)."""
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


# -- round trips and the pool -----------------------------------------------------------------


async def test_post_round_trip_keeps_body_and_headers() -> None:
    async with serve(echo) as server, client() as http:
        response = await http.post(
            f"{server.url}/api/jobs/trigger?x=1",
            json={"aiModels": ["sonar"], "executionCount": 2},
            headers={"x-probe": "probe-value"},
        )
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "conn-0"
    assert response.headers["content-type"] == "application/json"
    account = response.json()
    assert account["method"] == "POST"
    assert account["target"] == "/api/jobs/trigger?x=1"
    assert json.loads(account["body"]) == {"aiModels": ["sonar"], "executionCount": 2}
    assert account["x-probe"] == "probe-value"
    assert server.requests[0].headers["content-type"] == "application/json"


async def test_sequential_requests_reuse_one_connection() -> None:
    async with serve(echo) as server, client() as http:
        responses = [await http.get(f"{server.url}/{n}") for n in range(6)]
    assert [r.json()["target"] for r in responses] == [f"/{n}" for n in range(6)]
    assert {r.headers["x-served-by"] for r in responses} == {"conn-0"}
    assert server.accepted == 1


async def test_concurrent_requests_use_at_most_max_connections() -> None:
    four_in_flight = anyio.Event()
    most_open = 0

    async def script(conn: Conn) -> None:
        nonlocal most_open
        most_open = max(most_open, conn.server.open_now)
        while (request := await conn.request()) is not None:
            if len(conn.server.requests) >= 4:
                four_in_flight.set()
            await four_in_flight.wait()  # the first four are answered only once all are in
            await conn.respond(request.target.encode())

    statuses: dict[int, tuple[int, bytes]] = {}
    async with serve(script) as server, client() as http:

        async def one(n: int) -> None:
            response = await http.get(f"{server.url}/{n}")
            statuses[n] = (response.status_code, response.content)

        with anyio.fail_after(10):  # a pool that serialised requests would never get four in
            async with anyio.create_task_group() as group:
                for n in range(8):
                    group.start_soon(one, n)
    assert statuses == {n: (200, f"/{n}".encode()) for n in range(8)}
    assert server.accepted == 4
    assert most_open == 4


async def test_connection_close_response_is_followed_by_a_new_connection() -> None:
    async def script(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            await conn.respond(request.target.encode(), close=True)
            return

    async with serve(script) as server, client() as http:
        first = await http.get(f"{server.url}/a")
        second = await http.get(f"{server.url}/b")
    assert (first.content, second.content) == (b"/a", b"/b")
    assert server.accepted == 2


# -- bodies -----------------------------------------------------------------------------------


async def test_large_response_body_arrives_intact_and_the_connection_is_reused() -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.respond(BIG)

    async with serve(script) as server, client() as http:
        first = await http.get(f"{server.url}/big")
        second = await http.get(f"{server.url}/big")
    assert first.content == BIG
    assert second.content == BIG
    assert server.accepted == 1


async def test_large_request_body_is_sent_intact() -> None:
    upload = random.Random(1).randbytes(8 * 1024 * 1024)  # over the socket buffers: writes pause

    async def script(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            await conn.respond(hashlib.sha256(request.body).hexdigest().encode())

    async with serve(script) as server, client() as http:
        response = await http.post(f"{server.url}/upload", content=upload)
    assert response.text == hashlib.sha256(upload).hexdigest()


async def test_chunked_response_streams_and_arrives_intact() -> None:
    chunks = [b"first chunk;", b"x" * 70_000, b"last"]
    first_seen = anyio.Event()

    async def script(conn: Conn) -> None:
        await conn.request()
        head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        await conn.stream.send(head + b"%x\r\n%s\r\n" % (len(chunks[0]), chunks[0]))
        await first_seen.wait()  # the client has the first chunk before the rest exists
        for chunk in chunks[1:]:
            await conn.stream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await conn.stream.send(b"0\r\n\r\n")
        await echo(conn)

    received = bytearray()
    async with serve(script) as server, client() as http:
        async with http.stream("GET", f"{server.url}/chunked") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            async for part in response.aiter_raw():
                received += part
                if len(received) >= len(chunks[0]):
                    first_seen.set()
        after = await http.get(f"{server.url}/after")
    assert bytes(received) == b"".join(chunks)
    assert after.headers["x-served-by"] == "conn-0"  # the chunked response ended cleanly


async def test_abandoned_streamed_response_leaves_the_client_usable() -> None:
    async def script(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            await conn.respond(BIG if request.target == "/big" else b"small")

    async with serve(script) as server, client() as http:
        async with http.stream("GET", f"{server.url}/big") as response:
            async for part in response.aiter_raw():
                assert part
                break  # read a little, then walk away
        after = await http.get(f"{server.url}/small")
    assert after.content == b"small"
    assert server.accepted == 2  # the half-read connection was not put back in the pool


async def test_a_slot_given_up_by_a_cancelled_waiter_goes_to_the_next_in_line() -> None:
    # One connection, held; two more requests wait for it; the first waiter is cancelled.
    release = anyio.Event()

    async def script(conn: Conn) -> None:
        request = await conn.request()
        assert request is not None
        await release.wait()
        await conn.respond(request.target.encode())
        await echo(conn)

    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    answers: dict[str, bytes] = {}
    async with serve(script) as server, client(PooledTransport(limits=one)) as http:

        async def get(path: str) -> None:
            answers[path] = (await http.get(f"{server.url}{path}")).content

        async with anyio.create_task_group() as group:
            group.start_soon(get, "/holder")
            await server.until_requests(1)
            with anyio.CancelScope() as waiter:
                waiter.cancel()  # cancelled as soon as it has to wait: the slot is taken
                await get("/cancelled")
            group.start_soon(get, "/next")
            await anyio.wait_all_tasks_blocked()
            release.set()
        with anyio.fail_after(5):  # a slot lost to the cancelled waiter would hang here
            await get("/after")
    assert answers["/holder"] == b"/holder"
    assert json.loads(answers["/next"])["target"] == "/next"
    assert "/cancelled" not in answers
    assert server.accepted == 1
    assert [r.target for r in server.requests] == ["/holder", "/next", "/after"]


async def test_idle_connection_past_keepalive_expiry_is_replaced() -> None:
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2, keepalive_expiry=0.05)
    async with serve(echo) as server, client(PooledTransport(limits=limits)) as http:
        first = await http.get(f"{server.url}/1")
        await anyio.sleep(0.2)  # the expiry is the behaviour under test
        second = await http.get(f"{server.url}/2")
    assert (first.headers["x-served-by"], second.headers["x-served-by"]) == ("conn-0", "conn-1")


async def test_an_idle_connection_to_another_origin_makes_room() -> None:
    # Room for two idle connections but one open: the cap on open connections wins.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=2)
    async with (
        serve(echo) as first,
        serve(echo) as second,
        client(PooledTransport(limits=one)) as http,
    ):
        with anyio.fail_after(5):  # the first origin's idle connection must not block the second
            a = await http.get(f"{first.url}/a")
            b = await http.get(f"{second.url}/b")
            again = await http.get(f"{first.url}/c")
    assert [r.json()["target"] for r in (a, b, again)] == ["/a", "/b", "/c"]
    assert (first.accepted, second.accepted) == (2, 1)


async def test_informational_responses_are_skipped() -> None:
    async def script(conn: Conn) -> None:
        await conn.request()
        await conn.stream.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n")
        await conn.respond(b"final")
        await echo(conn)

    async with serve(script) as server, client() as http:
        response = await http.get(f"{server.url}/")
        after = await http.get(f"{server.url}/after")
    assert (response.status_code, response.content) == (200, b"final")
    assert after.headers["x-served-by"] == "conn-0"


async def test_a_body_that_ends_with_the_connection_is_read_whole() -> None:
    async def script(conn: Conn) -> None:
        await conn.request()
        await conn.stream.send(b"HTTP/1.1 200 OK\r\n\r\nno length, ")
        await conn.stream.send(b"ends at close")
        await conn.close()

    async with serve(script) as server, client() as http:
        response = await http.get(f"{server.url}/")
    assert response.content == b"no length, ends at close"


async def test_a_long_response_head_in_several_reads_is_accepted() -> None:
    # 20 KB of headers (cookies, a content-security-policy) arriving in three pieces: over h11's
    # default of 16 KiB for an incomplete head, within httpcore's 100 KiB.
    policy = "x" * 20_000

    async def script(conn: Conn) -> None:
        await conn.request()
        head = f"HTTP/1.1 201 Created\r\ncontent-security-policy: {policy}\r\n".encode()
        for start in range(0, len(head), 8_000):
            await conn.stream.send(head[start : start + 8_000])
            await anyio.wait_all_tasks_blocked()  # the client reads each piece on its own
        await conn.stream.send(b"content-length: 2\r\n\r\nok")
        await echo(conn)

    async with serve(script) as server, client() as http:
        response = await http.post(f"{server.url}/api/jobs/trigger", json={"n": 1})
    assert (response.status_code, response.content) == (201, b"ok")
    assert response.headers["content-security-policy"] == policy


async def test_bytes_past_the_end_of_a_response_retire_the_connection() -> None:
    # A misbehaving server or proxy sends more than its content-length: what follows must not be
    # taken for the answer to the next request (a trigger answered with a stale body).
    async def script(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            extra = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nstale"
            await conn.stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" + extra)
            await anyio.sleep_forever()
        await echo(conn)

    async with serve(script) as server, client() as http:
        first = await http.get(f"{server.url}/first")
        second = await http.post(f"{server.url}/api/jobs/trigger", json={"n": 1})
    assert first.content == b"ok"
    assert second.json()["target"] == "/api/jobs/trigger"
    assert server.accepted == 2


async def test_a_request_waiting_for_a_slot_is_not_sent_after_the_transport_closes() -> None:
    release = anyio.Event()

    async def script(conn: Conn) -> None:
        await conn.request()
        await release.wait()
        await conn.respond(b"late")
        await echo(conn)

    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    transport = PooledTransport(limits=one)
    outcome: list[BaseException] = []
    async with serve(script) as server, client(transport) as http:

        async def waiter() -> None:
            try:
                await http.post(f"{server.url}/api/jobs/trigger", json={"n": 1})
            except RuntimeError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(http.get, f"{server.url}/holder")
            await server.until_requests(1)
            group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()  # the trigger waits for the one slot
            await transport.aclose()
            release.set()
    assert [r.target for r in server.requests] == ["/holder"]
    assert len(outcome) == 1


def test_connections_left_from_an_earlier_event_loop_are_not_reused() -> None:
    import http.server  # noqa: PLC0415 - a threaded server outlives the event loops
    import threading  # noqa: PLC0415

    class Answer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the connection stays in the pool

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = PooledTransport(limits=LIMITS)
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    async def get() -> bytes:
        response = await transport.handle_async_request(httpx.Request("GET", url))
        return await response.aread()

    try:
        assert [asyncio.run(get()) for _ in range(3)] == [b"ok"] * 3
    finally:
        asyncio.run(transport.aclose())
        server.shutdown()
        server.server_close()
        # An earlier loop's connection is shut down but only its transport's collection
        # releases the descriptor (with a ResourceWarning): collected here, not in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


# -- failures and how they are sorted ---------------------------------------------------------


async def test_refused_connection_is_connect_error_and_not_sent(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"{url}/api/jobs/trigger", json={})
    async with mentionlab(url) as api:
        with pytest.raises(NotSent):
            await trigger(api)


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full queue")
async def test_connect_timeout_is_not_sent() -> None:
    # A listener that never accepts, its queue full: Linux drops further SYNs, so connect hangs.
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.settimeout(0.0)  # non-blocking
            filler.connect_ex(address)
        url = f"http://127.0.0.1:{address[1]}"
        async with client(timeout=httpx.Timeout(10.0, connect=0.2)) as http:
            with pytest.raises(httpx.ConnectTimeout):
                await http.get(f"{url}/")
        async with mentionlab(url, connect_timeout=0.2) as api:
            with pytest.raises(NotSent):
                await trigger(api)


async def test_read_timeout_is_outcome_unknown() -> None:
    async with serve(hang) as server:
        async with client(timeout=httpx.Timeout(10.0, read=0.2)) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(f"{server.url}/api/jobs/trigger", json={"n": 1})
        async with mentionlab(server.url, request_timeout=0.2) as api:
            with pytest.raises(OutcomeUnknown):
                await trigger(api)
    # Both requests reached the server whole: "maybe processed" is the honest answer.
    assert [r.target for r in server.requests] == ["/api/jobs/trigger"] * 2


NO_WHOLE_ANSWER = {
    "closed without an answer": b"",
    "a body cut short": b'HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n{"id":',
    "not HTTP": b"this is not HTTP\r\n\r\n",
}


@pytest.mark.parametrize("answer", NO_WHOLE_ANSWER.values(), ids=NO_WHOLE_ANSWER.keys())
async def test_a_request_without_a_whole_answer_is_outcome_unknown(answer: bytes) -> None:
    async def script(conn: Conn) -> None:
        await conn.request()
        if answer:
            await conn.stream.send(answer)
        await conn.close()  # FIN

    async with serve(script) as server:
        async with client() as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post(f"{server.url}/api/jobs/trigger", json={"n": 1})
        async with mentionlab(server.url) as api:
            with pytest.raises(OutcomeUnknown):
                await trigger(api)
    assert len(server.requests) == 2  # both whole: the server may well have acted on them


def _whole_request(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return len(body) >= (int(lengths[0].split(b":")[1]) if lengths else 0)


async def _reset_after_request(listener: socket.socket) -> bytes:
    """Accept one connection, read one whole request, then reset it: RST, no FIN first."""
    await anyio.wait_readable(listener)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(0.0)  # non-blocking
        data = b""
        while not _whole_request(data):
            await anyio.wait_readable(conn)
            data += conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return data


async def test_reset_without_an_answer_is_outcome_unknown() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.0)  # non-blocking
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        seen: list[bytes] = []

        async def server() -> None:
            seen.append(await _reset_after_request(listener))
            seen.append(await _reset_after_request(listener))

        async with anyio.create_task_group() as group:
            group.start_soon(server)
            async with client() as http:
                with pytest.raises(httpx.ReadError):
                    await http.post(f"{url}/api/jobs/trigger", json={"n": 1})
            async with mentionlab(url) as api:
                with pytest.raises(OutcomeUnknown):
                    await trigger(api)
    assert [request.split(b" ", 2)[1] for request in seen] == [b"/api/jobs/trigger"] * 2


async def test_pool_timeout_is_not_sent() -> None:
    # One connection, held by a trigger the server never answers: the next cannot get one.
    # The client's pool timeout is its connect timeout; loopback connects take microseconds.
    async with (
        serve(hang) as server,
        mentionlab(server.url, max_connections=1, connect_timeout=0.2) as api,
        anyio.create_task_group() as group,
    ):
        group.start_soon(trigger, api)
        await server.until_requests(1)
        with pytest.raises(NotSent):
            await trigger(api)
        group.cancel_scope.cancel()
    assert len(server.requests) == 1  # the second trigger never reached the server


async def test_cancelled_request_leaves_the_client_usable() -> None:
    release = anyio.Event()

    async def script(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            await release.wait()
            await conn.respond(b"late answer to the cancelled request")  # must reach nobody
        await echo(conn)

    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with serve(script) as server, client(PooledTransport(limits=one)) as http:
        with anyio.CancelScope() as scope:

            async def cancel_once_sent() -> None:
                await server.until_requests(1)  # the request is out; its answer is awaited
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_sent)
                await http.get(f"{server.url}/cancelled")
        assert scope.cancelled_caught
        release.set()
        after = await http.get(f"{server.url}/after")
    assert after.json()["target"] == "/after"
    assert server.accepted == 2


# -- stale keep-alive connections -------------------------------------------------------------


async def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    closed = anyio.Event()

    async def script(conn: Conn) -> None:
        request = await conn.request()
        assert request is not None
        await conn.respond(b"one")  # keep-alive: no connection: close
        if conn.index == 0:
            await conn.close()
            closed.set()
            return
        await echo(conn)

    async with serve(script) as server, client() as http:
        first = await http.get(f"{server.url}/one")
        await closed.wait()
        second = await http.get(f"{server.url}/two")
    assert (first.content, second.content) == (b"one", b"one")
    assert server.accepted == 2


async def test_close_not_yet_read_by_the_loop_is_still_noticed() -> None:
    # The server closes the idle connection right after answering, and the FIN reaches the
    # client's socket while the client's task runs on, so the event loop has not read it yet
    # when the next request picks a connection. The socket says it is closed (httpx's own
    # transport looks, and passes this test); a request sent on it instead fails as "maybe
    # processed" although no server ever saw it.
    raw: list[socket.socket] = []

    async def script(conn: Conn) -> None:
        if conn.index == 0:
            await conn.request()
            raw.append(conn.stream.extra(SocketAttribute.raw_socket))
            await conn.respond(b"one")
            await anyio.sleep_forever()
        await echo(conn)

    async with serve(script) as server, client() as http:
        first = await http.get(f"{server.url}/one")
        raw[0].shutdown(socket.SHUT_RDWR)
        second = await http.get(f"{server.url}/two")
    assert first.content == b"one"
    assert second.json()["target"] == "/two"
    assert server.accepted == 2


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_round_trip(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    transport = PooledTransport(limits=LIMITS, ssl_context=client_tls)
    async with serve(echo, tls=server_tls) as server, client(transport) as http:
        assert server.url.startswith("https://localhost:")
        first = await http.post(f"{server.url}/tls", json={"a": 1})
        second = await http.get(f"{server.url}/tls2")
    assert json.loads(first.json()["body"]) == {"a": 1}
    assert second.json()["target"] == "/tls2"
    assert server.accepted == 1


async def test_tls_large_response(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.respond(BIG)

    transport = PooledTransport(limits=LIMITS, ssl_context=client_tls)
    async with serve(script, tls=server_tls) as server, client(transport) as http:
        first = await http.get(f"{server.url}/big")
        second = await http.get(f"{server.url}/big")
    assert first.content == BIG
    assert second.content == BIG
    assert server.accepted == 1


async def test_tls_through_mentionlab_client(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async def script(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.respond_json(JOB, status=201)

    async with serve(script, tls=server_tls) as server:
        transport = PooledTransport(limits=LIMITS, ssl_context=client_tls)
        api = MentionLabClient(api_key=KEY, base_url=server.url, transport=transport)
        async with api:
            reply = await trigger(api)
    assert reply.status == 201
    assert reply.value.id == "job-1"
    assert server.requests[0].headers["x-api-key"] == KEY


async def test_untrusted_certificate_is_connect_error_and_not_sent(
    server_tls: ssl.SSLContext,
) -> None:
    async with serve(echo, tls=server_tls) as server:
        async with client() as http:  # the default context: the test CA is not trusted
            with pytest.raises(httpx.ConnectError):
                await http.get(f"{server.url}/")
        async with mentionlab(server.url) as api:
            with pytest.raises(NotSent):
                await trigger(api)
    assert server.requests == []


# -- trio: httpx's own transport ------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_round_trip_and_reuse(closed_port: int) -> None:
    import trio  # noqa: PLC0415 - test-only dependency, as in conftest

    assert trio.lowlevel.current_task()  # really on trio: no asyncio loop for AsyncioBackend
    async with serve(echo) as server, client() as http:
        first = await http.post(f"{server.url}/trio", json={"t": 1})
        second = await http.get(f"{server.url}/trio2")
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{closed_port}/")
    assert json.loads(first.json()["body"]) == {"t": 1}
    assert second.json()["target"] == "/trio2"
    assert server.accepted == 1


# -- default_transport ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"])
def test_default_transport_defers_to_httpx_when_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "http://proxy.invalid:3128")
    assert default_transport(LIMITS) is None


def test_default_transport_is_pooled_without_a_proxy() -> None:
    assert isinstance(default_transport(LIMITS), PooledTransport)


def test_no_proxy_alone_does_not_configure_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # NO_PROXY lists hosts to reach directly; on its own it asks for no proxy (httpx agrees).
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert isinstance(default_transport(LIMITS), PooledTransport)


# -- the served sandbox -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedSandbox]:
    directory: Path = tmp_path_factory.mktemp("transport-sandbox")
    with start_served_sandbox(directory, seed=3, extra=("--rate-limits", "off")) as served:
        yield served


async def test_served_sandbox_through_mentionlab_client(sandbox: ServedSandbox) -> None:
    async with MentionLabClient(api_key=KEY, base_url=sandbox.url) as api:
        job = await trigger(api)
        fetched = await api.get_job(project_id=PROJECT, organisation=None, job_id=job.value.id)
        assert fetched.value.id == job.value.id
        sandbox.configure(faults={"lost_response": 1.0, "lost_response_kind": "reset"})
        try:
            with pytest.raises(OutcomeUnknown):
                await trigger(api)
        finally:
            sandbox.configure(faults={})
        again = await trigger(api)
    assert again.status == 201
    triggers = sandbox.truth()["triggers"]
    assert triggers[-2]["response"] == "lost_response"  # it was processed: "unknown" was right


# -- a request given up on mid-send ----------------------------------------------------------


@pytest.mark.parametrize("give_up", ["write_timeout", "cancel"])
async def test_request_given_up_mid_send_is_not_completed_later(give_up: str) -> None:
    # Far more than the socket buffers hold, so most of the body is still in the client's hands
    # when it gives up; what it gives up on must not go on to reach the server whole. A first
    # request warms the connection up: anyio's server stream reads everything that arrives
    # until its first receive(), and only what it is asked for after that.
    size = 32 * 1024 * 1024
    sending = anyio.Event()
    given_up = anyio.Event()
    delivered: list[int] = []
    done = anyio.Event()

    async def script(conn: Conn) -> None:
        await conn.respond(b"warm" if await conn.request() else b"")
        head = await conn.head()
        assert head is not None
        length = int(head[2]["content-length"])
        assert length == size
        first = await conn.body_bytes(1)  # the body is being sent: all of it is queued
        sending.set()
        await given_up.wait()
        delivered.append(first + await conn.body_bytes(length - first))
        done.set()

    timeout = httpx.Timeout(10.0, write=0.2)
    async with serve(script) as server, client(timeout=timeout) as http:
        url = f"{server.url}/upload"
        assert (await http.get(f"{server.url}/warm")).content == b"warm"
        if give_up == "write_timeout":
            with pytest.raises(httpx.WriteTimeout):
                await http.post(url, content=bytes(size))
        else:
            async with anyio.create_task_group() as group:

                async def cancel_once_sending() -> None:
                    await sending.wait()
                    group.cancel_scope.cancel()

                group.start_soon(cancel_once_sending)
                await http.post(url, content=bytes(size))
        given_up.set()
        with anyio.fail_after(5):
            await done.wait()
    assert delivered[0] < size, "the abandoned request reached the server whole"
