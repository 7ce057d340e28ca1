"""The HTTP transport under the client: HTTP/1.1 (h11) on asyncio's own protocols, pooled.

httpx's default transport goes through httpcore's connection pool and anyio streams. Both are
general: the pool re-examines every connection (and asks every idle socket whether it is
readable) each time a request is queued or a response closed, behind an async lock, and every
read and write opens a cancel scope. For a runner whose client is CPU-bound on one event loop
(limits off, docs/performance.md) that generality was most of its cost per request.

This module is the narrow version of the same thing: one HTTP/1.1 connection per request at a
time, parsed and framed by h11 (the parser httpcore itself uses); a pool that keeps idle
connections per origin, newest first, and hands one out without awaiting anything when one is
free; bytes read by an ``asyncio.Protocol`` into a buffer, a read with nothing buffered waiting on
one future whose timeout is one loop timer. A response whose body has arrived whole with its
head (every MentionLab answer on a healthy connection) is handed back already read; a longer one
streams.

What it keeps from httpx's transport: TLS verified against the same default context
(``httpx.create_ssl_context``, which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``), the same
timeouts (each request's ``timeout`` extension: connect, read, write, pool), and httpx's own
exception types, so :mod:`runner.api.client` sorts failures exactly as before: refused, connect
or pool timeout, an unsupported URL: not sent; closed without an answer, a reset, a read or
write timeout: maybe processed. Before a request goes out on an idle connection, the socket
itself is asked whether the server has closed it (a close the loop has not read yet must not
swallow a paid trigger). What it does not do: proxies and HTTP/2. :func:`default_transport`
returns None (httpx's own client, which reads ``HTTPS_PROXY`` and friends) when the
environment configures a proxy. Under any other event loop than asyncio's (trio, in the
virtual-time tests) requests go through httpx's own transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import h11
import httpx

# Stop reading from the socket when this much is buffered and not yet consumed.
_HIGH_WATER = 256 * 1024
# A request body up to this size goes out in the same write as its head.
_ONE_WRITE = 64 * 1024
_Origin = tuple[bytes, bytes, int]
# The longest incomplete response head accepted (httpcore's value; h11's default is 16 KiB).
_MAX_HEAD = 100 * 1024


def proxy_configured() -> bool:
    """Whether the environment asks for an HTTP(S) proxy (``HTTPS_PROXY``, ``ALL_PROXY``...).

    ``NO_PROXY`` alone (common on CI machines) or an FTP proxy is not one.
    """
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The runner's transport, or None for httpx's own when a proxy is configured."""
    if proxy_configured():
        return None
    return PooledTransport(limits=limits)


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over ``asyncio.Protocol``, at most ``limits.max_connections`` requests at once."""

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl_context = ssl_context
        self._max_open = limits.max_connections or 2**31
        self._max_idle = (
            self._max_open
            if limits.max_keepalive_connections is None
            else limits.max_keepalive_connections
        )
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._busy = 0  # connections lent to a request, or being opened for one
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._portable: httpx.AsyncHTTPTransport | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): httpx's own transport
            return await self._portable_transport().handle_async_request(request)
        self._ensure_open()
        origin = _origin(request.url)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        await self._take_slot(loop, timeouts.get("pool"))
        connection: _Connection | None = None
        try:
            connection = self._reusable(origin, loop) or await _Connection.open(
                loop, origin, self._tls(origin), timeouts.get("connect")
            )
            self._ensure_open()  # closed while we waited for a slot or a connection: send nothing
            return await connection.exchange(request, timeouts, self._give_back)
        except BaseException:
            if connection is not None:
                connection.abort()
            self._release_slot()
            raise

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("the transport is closed")

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.abort()
        self._idle.clear()
        self._idle_count = 0
        if self._portable is not None:
            await self._portable.aclose()

    # -- slots: at most max_connections requests hold a connection ---------------------------

    async def _take_slot(self, loop: asyncio.AbstractEventLoop, seconds: float | None) -> None:
        if self._busy < self._max_open:  # then nobody waits: a freed slot goes to a waiter
            self._busy += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        timer = None if seconds is None else loop.call_later(seconds, _expire, waiter)
        try:
            await waiter  # _release_slot counts the slot as ours before waking us
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no connection became free in time") from exc
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # granted as we were cancelled: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done():
                self._waiting.remove(waiter)

    def _release_slot(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._busy -= 1

    # -- idle connections ---------------------------------------------------------------------

    def _reusable(self, origin: _Origin, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """The newest idle connection to ``origin`` still open; closes the stale ones met."""
        connections = self._idle.get(origin)
        while connections:
            connection = connections.pop()
            self._idle_count -= 1
            if connection.fit_for_reuse(loop, self._limits.keepalive_expiry):
                return connection
            connection.abort()
        if self._idle_count and self._idle_count + self._busy > self._max_open:
            self._drop_oldest_idle()  # another origin's idle connection makes room for ours
        return None

    def _give_back(self, connection: _Connection, reusable: bool) -> None:
        """A request is done with ``connection``: keep it for the next one, or close it."""
        if reusable and not self._closed and self._max_idle > 0:
            if self._idle_count >= self._max_idle:
                self._drop_oldest_idle()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.abort()
        self._release_slot()

    def _drop_oldest_idle(self) -> None:
        oldest = min(
            (c for connections in self._idle.values() for c in connections[:1]),
            key=lambda c: c.idle_since,
            default=None,
        )
        if oldest is not None:
            self._idle[oldest.origin].remove(oldest)
            self._idle_count -= 1
            oldest.abort()

    def _tls(self, origin: _Origin) -> ssl.SSLContext | None:
        if origin[0] != b"https":
            return None
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _portable_transport(self) -> httpx.AsyncHTTPTransport:
        if self._portable is None:
            self._portable = httpx.AsyncHTTPTransport(
                verify=self._ssl_context or httpx.create_ssl_context(), limits=self._limits
            )
        return self._portable


def _origin(url: httpx.URL) -> _Origin:
    scheme = url.raw_scheme
    if scheme not in (b"http", b"https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    if not url.raw_host:
        raise httpx.UnsupportedProtocol(f"no host in {url}")
    port = url.port or (443 if scheme == b"https" else 80)
    return scheme, url.raw_host, port


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


# -- one connection -------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    """Buffers what the loop reads and wakes the one reader waiting for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False  # end of stream or connection lost
        self.error: Exception | None = None
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()
        self._release_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._release_writer()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _release_writer(self) -> None:
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)


_GiveBack = Callable[["_Connection", bool], None]


class _Connection:
    """One HTTP/1.1 connection: h11's state machine over a protocol's buffer."""

    def __init__(self, origin: _Origin, transport: asyncio.Transport, receiver: _Receiver) -> None:
        self.origin = origin
        self.loop = receiver.loop
        self._transport = transport
        self._receiver = receiver
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.pending: list[bytes] = []  # body parts parsed with the head, for a streaming body
        self.idle_since = time.monotonic()
        self._poll = select.poll()
        self._socket = transport.get_extra_info("socket")
        if self._socket is not None:
            self._poll.register(self._socket, select.POLLIN)

    @classmethod
    async def open(
        cls,
        loop: asyncio.AbstractEventLoop,
        origin: _Origin,
        tls: ssl.SSLContext | None,
        seconds: float | None,
    ) -> _Connection:
        _, host, port = origin
        name = host.decode("ascii")
        try:
            async with asyncio.timeout(seconds):
                transport, receiver = await loop.create_connection(
                    lambda: _Receiver(loop),
                    name,
                    port,
                    ssl=tls,
                    server_hostname=name if tls is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return cls(origin, transport, receiver)

    def fit_for_reuse(self, loop: asyncio.AbstractEventLoop, expiry: float | None) -> bool:
        """Open, same loop, not idle too long, and the server has not closed it.

        For an idle connection anything to read means the server closed it. The socket is
        asked, not only what the loop has read: a close that arrived since the loop last
        looked must not take the next request into a dead connection (for a trigger, an answer
        lost that way is an ambiguous, paid-for question).
        """
        receiver = self._receiver
        if loop is not self.loop or receiver.closed or receiver.buffer:
            return False
        if self._transport.is_closing():
            return False
        if expiry is not None and time.monotonic() - self.idle_since > expiry:
            return False
        return not self._poll.poll(0)

    def abort(self) -> None:
        # Abort, not close: close() would still send what is buffered, so a request given up
        # mid-send (timeout, cancellation) would reach the server whole after all.
        if self.loop.is_closed():
            # Left over from an earlier event loop, which can no longer close it: tell the
            # server now; the descriptor goes with the transport when it is collected.
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_RDWR)
            return
        self._transport.abort()

    async def exchange(
        self, request: httpx.Request, timeouts: dict[str, float | None], give_back: _GiveBack
    ) -> httpx.Response:
        """Send ``request``, read the response's head: the response, read whole or streaming.

        ``give_back(self, reusable)`` is called once the response is over (at once when it was
        read whole), never on failure: the caller aborts the connection then.
        """
        await self._send(request, timeouts.get("write"))
        read_timeout = timeouts.get("read")
        head = await self._next_event(read_timeout)
        while isinstance(head, h11.InformationalResponse):
            head = await self._next_event(read_timeout)
        if not isinstance(head, h11.Response):
            raise httpx.RemoteProtocolError("the server sent no response")
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": head.reason}
        headers = head.headers.raw_items()
        body = self._body_so_far()
        if body is not None:  # the whole answer is here: no stream to drive
            response = httpx.Response(
                head.status_code,
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions=extensions,
            )
            self.pending = []
            self._done(give_back)
            return response
        stream = _BodyStream(self, read_timeout, give_back)
        return httpx.Response(
            head.status_code, headers=headers, stream=stream, extensions=extensions
        )

    async def _send(self, request: httpx.Request, seconds: float | None) -> None:
        head = h11.Request(
            method=request.method,
            target=request.url.raw_path,
            headers=request.headers.raw,
        )
        try:
            data = self._h11.send(head) or b""
            stream = request.stream
            if isinstance(stream, httpx.ByteStream):  # the whole body, in memory
                content = b"".join(stream)
                if len(content) <= _ONE_WRITE:
                    data += self._h11.send(h11.Data(data=content)) if content else b""
                    data += self._h11.send(h11.EndOfMessage()) or b""
                    await self._write(data, seconds)
                    return
            await self._write(data, seconds)
            async for part in stream:  # type: ignore[union-attr]
                if part:
                    await self._write(self._h11.send(h11.Data(data=part)) or b"", seconds)
            await self._write(self._h11.send(h11.EndOfMessage()) or b"", seconds)
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc

    async def _write(self, data: bytes, seconds: float | None) -> None:
        receiver = self._receiver
        if receiver.closed or self._transport.is_closing():
            raise httpx.WriteError("the connection is closed")
        self._transport.write(data)
        if not receiver.writing_paused:
            return
        try:
            await self._until(receiver, "drained", seconds)
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out sending the request") from exc
        if receiver.closed:
            raise httpx.WriteError("the connection closed while sending")

    async def _until(
        self, receiver: _Receiver, name: Literal["waiter", "drained"], seconds: float | None
    ) -> None:
        """Until the receiver resolves its future ``name`` (data or the end; room to write).

        Its timeout is one loop timer (TimeoutError), cheaper than a timeout scope per wait.
        """
        future: asyncio.Future[None] = self.loop.create_future()
        setattr(receiver, name, future)
        timer = None if seconds is None else self.loop.call_later(seconds, _expire, future)
        try:
            await future
        finally:
            setattr(receiver, name, None)
            if timer is not None:
                timer.cancel()

    async def _next_event(self, seconds: float | None) -> Any:
        """h11's next event, reading from the socket as long as it needs data."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(await self._read(seconds))

    async def _read(self, seconds: float | None) -> bytes:
        """What the loop has buffered; b"" for the end of the stream; waits for something."""
        receiver = self._receiver
        if not receiver.buffer and not receiver.closed:
            try:
                await self._until(receiver, "waiter", seconds)
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out waiting for the response") from exc
        if receiver.buffer:
            data = bytes(receiver.buffer)
            receiver.buffer.clear()
            if receiver.reading_paused:
                receiver.reading_paused = False
                self._transport.resume_reading()
            return data
        if receiver.error is not None:
            raise httpx.ReadError(str(receiver.error) or type(receiver.error).__name__)
        return b""

    def _body_so_far(self) -> bytes | None:
        """The whole body if h11 has it without reading more, else None (events kept)."""
        self.pending = []
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if isinstance(event, h11.Data):
                self.pending.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(self.pending)
            else:  # NEED_DATA: the rest is still on its way
                return None

    async def next_body_part(self, seconds: float | None) -> bytes | None:
        """The next piece of a streaming body, None at its end."""
        event = await self._next_event(seconds)
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return None
        raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in a response body")

    def _done(self, give_back: _GiveBack) -> None:
        """The response is over: ready h11 for the next request if both sides allow it."""
        reusable = (
            self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
            and not self._h11.trailing_data[0]  # bytes past the response: not ours to answer with
        )
        if reusable:
            self._h11.start_next_cycle()
            self.idle_since = time.monotonic()
        give_back(self, reusable)


class _BodyStream(httpx.AsyncByteStream):
    """A body still arriving: read as the caller iterates; the connection back at its end."""

    def __init__(
        self, connection: _Connection, seconds: float | None, give_back: _GiveBack
    ) -> None:
        self._connection = connection
        self._seconds = seconds
        self._give_back: _GiveBack | None = give_back

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        try:
            for parsed in connection.pending:
                yield parsed
            connection.pending = []
            while (part := await connection.next_body_part(self._seconds)) is not None:
                yield part
        except BaseException:
            await self.aclose()
            raise
        give_back, self._give_back = self._give_back, None
        if give_back is not None:
            connection._done(give_back)  # noqa: SLF001 - the stream is the connection's own

    async def aclose(self) -> None:
        give_back, self._give_back = self._give_back, None
        if give_back is not None:  # walked away before the end: the rest would be in the way
            self._connection.abort()
            give_back(self._connection, False)  # noqa: FBT003
