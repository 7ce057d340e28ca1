# ruff: noqa: ASYNC109 - httpcore's network interface takes `timeout` arguments
"""The HTTP transport under ``httpx.AsyncClient``: httpcore's pool over asyncio's own protocols.

httpx's default transport reaches the network through anyio streams: every read and write opens
a cancel scope, and the pool asks each idle connection "is your socket readable?" through
anyio's typed attributes, which rebuild a dictionary per question. On a loop that does nothing
else (a bare trigger loop) that costs ~0.13 ms per request; inside the engine, with its own cancel
scopes and timers around each request, ~0.45 ms, a third of the client's CPU per trigger
(docs/performance.md, "Limits off").

This module keeps httpcore's connection pool and HTTP/1.1 (h11), which are public and well-kept,
and gives them a network backend (``httpcore.AsyncNetworkBackend``, httpcore's documented
extension point) written on ``asyncio.Protocol``: bytes arrive in a buffer as the event loop
reads them; a read with nothing buffered waits on one future, its timeout one loop timer. Under
any other event loop (trio, in the virtual-time tests) connections go through httpcore's anyio
backend as before.

What it keeps from httpx's transport: TLS verified against the same default context
(``httpx.create_ssl_context``, which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``), the same
timeouts (each request's ``timeout`` extension), and httpcore's exceptions turned into httpx's
own, so :mod:`runner.api.client` sorts failures exactly as before (refused or connect timeout:
not sent; closed without an answer or read timeout: maybe processed). What it does not do:
proxies. :func:`default_transport` returns None (httpx's own transport, which reads
``HTTPS_PROXY`` and friends) when the environment configures a proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore
import httpx

# Stop reading from the socket when this much is buffered and not yet consumed.
_HIGH_WATER = 256 * 1024

_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


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
    """``httpx.AsyncHTTPTransport`` without proxies, over :class:`AsyncioBackend`."""

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _as_httpx_errors():
            await self._stream.aclose()


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:  # most specific first: timeouts are network errors
        raise _EXCEPTIONS.get(type(exc), httpx.TimeoutException)(str(exc)) from exc
    except Exception as exc:
        for core_type in type(exc).__mro__:
            mapped = _EXCEPTIONS.get(core_type)
            if mapped is not None:
                raise mapped(str(exc)) from exc
        raise


# -- the network backend ----------------------------------------------------------------------


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP (and TLS over it) on ``asyncio.Protocol``; anyio's backend on any other loop."""

    def __init__(self) -> None:
        self._portable = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): the portable backend
            return await self._portable.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, receiver = await loop.create_connection(
                    lambda: _Receiver(loop), host, port, local_addr=local
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        stream = AsyncioStream(transport, receiver)
        for option in socket_options or ():
            stream.socket.setsockopt(*option)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._portable.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._portable.sleep(seconds)


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


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: reads from the receiver's buffer, writes straight to the transport."""

    def __init__(self, transport: asyncio.Transport, receiver: _Receiver) -> None:
        self._transport = transport
        self._receiver = receiver
        self.socket = transport.get_extra_info("socket")
        self._poll = select.poll()  # registered once: the pool asks about idle connections often
        if self.socket is not None:
            self._poll.register(self.socket, select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        receiver = self._receiver
        if not receiver.buffer and not receiver.closed:
            try:
                await self._wait(seconds=timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout("timed out waiting for the response") from exc
        if receiver.buffer:
            chunk = bytes(receiver.buffer[:max_bytes])
            del receiver.buffer[:max_bytes]
            if receiver.reading_paused and len(receiver.buffer) < _HIGH_WATER // 2:
                receiver.reading_paused = False
                self._transport.resume_reading()
            return chunk
        if receiver.error is not None:
            raise httpcore.ReadError(str(receiver.error) or type(receiver.error).__name__)
        return b""

    async def _wait(self, *, seconds: float | None) -> None:
        receiver = self._receiver
        waiter: asyncio.Future[None] = receiver.loop.create_future()
        receiver.waiter = waiter
        timer = None if seconds is None else receiver.loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        finally:
            receiver.waiter = None
            if timer is not None:
                timer.cancel()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        receiver = self._receiver
        if receiver.closed or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if not receiver.writing_paused:
            return
        drained: asyncio.Future[None] = receiver.loop.create_future()
        receiver.drained = drained
        timer = None if timeout is None else receiver.loop.call_later(timeout, _expire, drained)
        try:
            await drained
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out sending the request") from exc
        finally:
            receiver.drained = None
            if timer is not None:
                timer.cancel()
        if receiver.closed:
            raise httpcore.WriteError("the connection closed while sending")

    async def aclose(self) -> None:
        # Abort, not close: close() would still send what is buffered, so a request given up
        # mid-send (timeout, cancellation) would reach the server whole after all.
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        receiver = self._receiver
        try:
            async with asyncio.timeout(timeout):
                transport = await receiver.loop.start_tls(
                    self._transport, receiver, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout("the TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        receiver.transport = transport
        return AsyncioStream(transport, receiver)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self._closed_by_peer()
        if info == "socket":
            return self.socket
        name = _TRANSPORT_INFO.get(info)
        return None if name is None else self._transport.get_extra_info(name)

    def _closed_by_peer(self) -> bool:
        """For an idle connection: something to read means the server closed it.

        The socket is asked too, not only what the loop has read: a close that arrived since
        the loop last looked must not send the next request into a dead connection (for a
        trigger, an answer lost that way is an ambiguous, paid-for question).
        """
        receiver = self._receiver
        if receiver.closed or receiver.buffer or self.socket is None:
            return True
        return self.socket.fileno() == -1 or bool(self._poll.poll(0))


_TRANSPORT_INFO = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
