"""``mlrun apply`` against a base URL where something other than the API answers.

A captive portal's HTML page or a redirect is told at the first answer, with what answered, and
ends the command with exit 5 (the run as a whole is refused), not minutes of retried reads.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from subprocesses import run_mlrun

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
KEY = "ml_live_" + "portal0123456789"


class Portal(http.server.BaseHTTPRequestHandler):
    """Answers every request with the page or redirect the server was started for."""

    server: Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer()

    def _answer(self) -> None:
        self.server.requests += 1
        status, headers, body = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        del format, args


class Server(http.server.ThreadingHTTPServer):
    def __init__(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        super().__init__(("127.0.0.1", 0), Portal)
        self.answer = answer
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def serving(answer: tuple[int, dict[str, str], bytes]) -> Iterator[Server]:
    server = Server(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def portal() -> Iterator[Server]:
    page = b"<!doctype html><html><title>Sign in to Hotel WiFi</title></html>"
    yield from serving((200, {"content-type": "text/html; charset=utf-8"}, page))


@pytest.fixture
def redirect() -> Iterator[Server]:
    yield from serving((301, {"location": "https://login.example/?next=%2F&token=abc"}, b""))


@pytest.mark.slow
def test_a_portal_page_ends_the_command_at_once_with_exit_5(portal: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_mlrun(
        "apply",
        QUICKSTART,
        cwd=tmp_path,
        env={"MENTIONLAB_API_KEY": KEY, "MENTIONLAB_BASE_URL": portal.url},
    )
    assert result.returncode == 5, result.stderr
    assert (
        "HTTP 200 with text/html; charset=utf-8, not the API's JSON: "
        "'<!doctype html><html><title>Sign in to Hotel WiFi</title></html>'"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert portal.requests <= 3  # one per project at most: nothing retried
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_a_redirect_is_named_and_not_followed(redirect: Server, tmp_path: Path) -> None:
    result = run_mlrun(
        "apply",
        QUICKSTART,
        cwd=tmp_path,
        env={"MENTIONLAB_API_KEY": KEY, "MENTIONLAB_BASE_URL": redirect.url},
    )
    assert result.returncode == 5, result.stderr
    assert (
        "HTTP 301: redirected to https://login.example/; mlrun does not follow redirects: "
        "check the base URL"
    ) in result.stderr
    assert "token" not in result.stderr
    assert redirect.requests <= 3
