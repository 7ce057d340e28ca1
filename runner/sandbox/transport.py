"""The in-process transport: the ASGI app behind httpx, with network faults made real.

The app signals faults below HTTP by raising; this is the one place that translates them into
what a real httpx client would raise::

    ConnectionRefused   (never reached)              -> httpx.ConnectError
    ConnectionDropped   (closed before processing)   -> httpx.RemoteProtocolError
    ResponseLost reset  (processed, reply lost)      -> httpx.RemoteProtocolError
    ResponseLost timeout (processed, reply too late) -> httpx.ReadTimeout, after the read timeout
"""

from __future__ import annotations

from typing import Any

import httpx

from runner.sandbox.errors import ConnectionDropped, ConnectionRefused, ResponseLost
from runner.sandbox.inprocess import IN_PROCESS, InProcess

DISCONNECTED = "Server disconnected without sending a response."


class SandboxTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` around the sandbox app, mapping its network-fault signals."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self._inner = httpx.ASGITransport(app=app, client=client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        token = IN_PROCESS.set(InProcess(timeouts.get("read")))
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionRefused as exc:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request) from exc
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(DISCONNECTED, request=request) from exc
        except ResponseLost as exc:
            if exc.mode == "timeout":
                raise httpx.ReadTimeout("The read operation timed out", request=request) from exc
            raise httpx.RemoteProtocolError(DISCONNECTED, request=request) from exc
        finally:
            IN_PROCESS.reset(token)

    async def aclose(self) -> None:
        await self._inner.aclose()
