"""``mlrun apply`` against a server whose answers never end, are huge or trickle in.

Each is cut at the client's size or time cap (``AnswerOutOfBounds``): the run stops at the first
one, with exit 5 (the server does not answer as the API does), in bounded memory and time, never
with minutes of retried reads or exit 70.
"""

from __future__ import annotations

import contextlib
import http.server
import resource
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from figures import record
from subprocesses import run_mlrun

KEY = "ml_live_" + "bounded0123456789"
MANIFEST = """\
version: 1
defaults: {organisation: 01234567-89ab-cdef-0123-456789abcdef}
settings:
  timeouts: {request: 2, connect: 2}
projects:
  - name: acme
    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b
    jobs: [{models: [gpt-5-mini]}]
  - name: globex
    id: c0ffee00-1234-4abc-8def-0123456789ab
    jobs: [{models: [sonar]}]
"""
MB = 1024 * 1024


def _endless(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    chunk = b"[" + b"0," * 32_000
    while True:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def _huge(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(200 * MB))
    handler.end_headers()
    block = b" " * MB
    for _ in range(200):
        handler.wfile.write(block)


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", "1000")
    handler.end_headers()
    for _ in range(1000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.5)  # the test server's pace, in its own thread: one byte every 0.5 s


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: Callable[[http.server.BaseHTTPRequestHandler], None]

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer()

    def _answer(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):  # the client hung up at its cap
            type(self).answer(self)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        del format, args


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    requests = 0


@pytest.fixture(params=[_endless, _huge, _trickle], ids=["endless", "huge", "trickle"])
def server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    handler = type("Handler", (_Handler,), {"answer": staticmethod(request.param)})
    served = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()


@pytest.mark.slow
def test_an_answer_out_of_bounds_stops_the_run_quickly_in_bounded_memory(
    server: _Server, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    started = time.monotonic()
    result = run_mlrun(
        "apply", "m.yaml", cwd=tmp_path, env={"MENTIONLAB_API_KEY": KEY, "MENTIONLAB_BASE_URL": url}
    )
    seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    assert "it may have been processed" in result.stderr
    assert server.requests <= 2  # the first answer out of bounds ends it: nothing retried
    assert seconds < 60
    assert peak_mb < 300
    kind = request.node.callspec.id
    record(f"answer out of bounds ({kind})", seconds=round(seconds, 1), peak_mb=round(peak_mb))
