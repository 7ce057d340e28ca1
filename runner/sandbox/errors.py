"""HTTP errors with NestJS bodies, and the network-fault signals the app raises.

Errors become ``{"statusCode", "message", "error"}`` responses. Network-fault signals are not
HTTP at all: in process the transport turns them into the httpx exceptions a real client would
see; served, the app closes the connection without a complete response.
"""

from __future__ import annotations

from typing import Any, Literal

REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HttpError(Exception):
    """An error answer; ``message`` is a list of strings for validation errors (400)."""

    def __init__(
        self,
        status: int,
        message: str | list[str],
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"statusCode": self.status, "message": self.message, "error": REASONS[self.status]}


def bad_request(*messages: str) -> HttpError:
    """A NestJS validation error: 400 with ``message`` an array of strings."""
    return HttpError(400, list(messages))


class NetworkFault(Exception):
    """Base of the signals for faults below HTTP: no (complete) response reaches the client."""

    kind = "network"


class ConnectionRefused(NetworkFault):
    """The request never reached the server (in-process only)."""

    kind = "refuse"


class ConnectionDropped(NetworkFault):
    """The connection closed before the request was processed."""

    kind = "drop_before"


class ResponseLost(NetworkFault):
    """The request was (or may have been) processed, then the response never arrived."""

    kind = "lost_response"

    def __init__(self, mode: Literal["reset", "timeout"]) -> None:
        super().__init__(mode)
        self.mode = mode
