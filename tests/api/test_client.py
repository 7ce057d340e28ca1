"""MentionLabClient against scripted answers (``httpx.MockTransport``) and the in-process sandbox.

What a paid trigger needs from the client: every failure sorted into provably not sent
(:class:`NotSent`) or maybe processed (:class:`OutcomeUnknown`), an answer that is not the API's
told apart (:class:`NotTheApi`), bounded bodies and requests, and the API key kept out of every
text a server sends back. Virtual time (trio's MockClock): a body trickling for minutes takes
no time here. The cases that need a real socket are in ``test_client_sockets.py``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import httpx
import pytest
import yaml
from runner.api import ClientOptions, MentionLabClient, Reply, api_key_from_env, check_base_url
from runner.api.client import MAX_BODY_BYTES
from runner.api.models import Job
from runner.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    MlrunError,
    NotSent,
    NotTheApi,
    OutcomeUnknown,
    RequestRejected,
)
from runner.sandbox import Faults, Sandbox, SandboxConfig, World

pytestmark = [
    pytest.mark.anyio,
    # A body given up mid-way leaves httpx's nested body iterators to trio's finalizer, which
    # closes them and says so; asyncio (mlrun's loop) closes them silently.
    pytest.mark.filterwarnings(
        r"ignore:Async generator 'httpx\.[\w.]+' was garbage collected:ResourceWarning"
    ),
]

KEY = "ml_live_" + "Zx9.q+R/t=="  # the characters a pattern-based mask would cut short
PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
API = "https://api.mentionlab.io"
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
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def client(handler: Handler, **options: Any) -> MentionLabClient:
    transport = httpx.MockTransport(handler)
    return MentionLabClient(
        api_key=KEY, base_url=API, transport=transport, options=ClientOptions(**options)
    )


async def trigger(api: MentionLabClient) -> Reply[Job]:
    return await api.trigger_job(
        project_id=PROJECT, organisation=None, models=["sonar"], execution_count=1
    )


def raising(error: type[httpx.TransportError]) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error("scripted", request=request)

    return handler


def texts_of(error: BaseException) -> str:
    """Every text an error carries: its message, its body, its request id, its causes."""
    parts: list[str] = []
    chain: BaseException | None = error
    while chain is not None:
        parts += [str(chain), repr(chain), repr(vars(chain))]
        chain = chain.__cause__ or chain.__context__
    return "\n".join(parts)


# -- sorting failures: not sent, or maybe processed -------------------------------------------

NEVER_LEFT = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
]
MAYBE_PROCESSED = [
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
]


@pytest.mark.parametrize("error", NEVER_LEFT, ids=lambda e: e.__name__)
async def test_what_never_left_is_not_sent(error: type[httpx.TransportError]) -> None:
    async with client(raising(error)) as api:
        with pytest.raises(NotSent, match=error.__name__):
            await trigger(api)


@pytest.mark.parametrize("error", MAYBE_PROCESSED, ids=lambda e: e.__name__)
async def test_what_may_have_arrived_is_outcome_unknown(error: type[httpx.TransportError]) -> None:
    async with client(raising(error)) as api:
        with pytest.raises(OutcomeUnknown, match=error.__name__):
            await trigger(api)


async def test_the_sandbox_losing_a_processed_answer_is_outcome_unknown() -> None:
    lost = Faults.parse("lost_response=1,lost_response_kind=reset")
    sandbox = Sandbox(SandboxConfig(faults=lost))
    api = MentionLabClient(api_key=KEY, base_url=API, transport=sandbox.transport())
    async with api:
        with pytest.raises(OutcomeUnknown):
            await trigger(api)
    assert len(sandbox.truth()["triggers"]) == 1  # it was processed: "unknown" is the truth


# -- bounded answers --------------------------------------------------------------------------


class Body(httpx.AsyncByteStream):
    """A scripted body: ``first``, then ``chunk`` every ``interval`` seconds, without end."""

    def __init__(self, chunk: bytes, *, first: bytes = b"", interval: float = 0.0) -> None:
        self.first, self.chunk, self.interval = first, chunk, interval
        self.sent = 0

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        self.sent += 1
        if self.sent == 1 and self.first:
            return self.first
        if self.interval:
            await anyio.sleep(self.interval)
        return self.chunk


def endless(chunk: bytes) -> Body:
    return Body(chunk)


def trickle(interval: float) -> Body:
    return Body(b"x", first=b'{"id": "', interval=interval)


async def test_an_endless_body_is_given_up_at_the_cap() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, stream=endless(b"x" * 65536))

    async with client(handler) as api:
        with pytest.raises(OutcomeUnknown, match="passed 4,194,304 bytes"):
            await trigger(api)


async def test_a_declared_huge_body_is_refused_before_it_is_read() -> None:
    body = endless(b"x")

    async def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-length": str(200 * 1024 * 1024), "content-type": "application/json"}
        return httpx.Response(200, headers=headers, stream=body)

    async with client(handler) as api:
        with pytest.raises(OutcomeUnknown, match="passed"):
            await trigger(api)
    assert body.sent == 0


async def test_the_cap_counts_decoded_bytes() -> None:
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1))  # a few kilobytes on the wire

    async def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return httpx.Response(201, headers=headers, content=bomb)

    assert len(bomb) < MAX_BODY_BYTES // 100
    async with client(handler) as api:
        with pytest.raises(OutcomeUnknown, match="passed"):
            await trigger(api)


async def test_a_body_under_the_cap_is_read_whole() -> None:
    padding = "p" * (MAX_BODY_BYTES - 1024)

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={**JOB, "padding": padding})

    async with client(handler) as api:
        reply = await trigger(api)
    assert reply.value.id == "job-1"


async def test_a_trickling_body_is_given_up_at_the_total_deadline() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "application/json"}
        return httpx.Response(201, headers=headers, stream=trickle(5.0))

    started = anyio.current_time()
    async with client(handler, request_timeout=30.0) as api:
        with pytest.raises(OutcomeUnknown, match="no whole answer within 60 s"):
            await trigger(api)
    assert anyio.current_time() - started == pytest.approx(60.0)


async def test_a_slow_server_within_the_deadline_is_waited_for() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(50.0)
        return httpx.Response(201, json=JOB)

    async with client(handler, request_timeout=30.0) as api:
        assert (await trigger(api)).value.id == "job-1"


# -- answers that are not the API's ----------------------------------------------------------

PORTAL = (
    f"<!DOCTYPE html>\n<html><head><title>WiFi {KEY}</title></head>\n"
    "<body>Welcome! Please accept the terms and conditions of the network before you continue "
    "browsing.</body></html>"
)


async def test_an_html_success_is_not_the_api_with_its_type_and_first_bytes() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, text=PORTAL)

    async with client(handler) as api:
        with pytest.raises(NotTheApi) as caught:
            await trigger(api)
    message = str(caught.value)
    assert message.startswith("POST /api/jobs/trigger: HTTP 200 with text/html")
    snippet = "'<!DOCTYPE html> <html><head><title>WiFi ml_live_***</title></head> <body>Welcome…'"
    assert snippet in message
    assert len(message) < 250
    assert caught.value.status == 200
    assert "Zx9" not in texts_of(caught.value)


async def test_an_endless_html_page_is_reported_at_once() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/html; charset=utf-8"}
        return httpx.Response(200, headers=headers, stream=endless(b"<p>portal</p>"))

    async with client(handler) as api:
        with pytest.raises(NotTheApi, match="text/html"):
            await trigger(api)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_named_with_its_target_and_not_followed(status: int) -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        location = f"https://user:pw@elsewhere.example/login?next=%2F&key={KEY}#top"
        return httpx.Response(status, headers={"location": location}, text="<html>moved</html>")

    async with client(handler) as api:
        with pytest.raises(NotTheApi) as caught:
            await trigger(api)
    assert str(caught.value) == (
        f"POST /api/jobs/trigger: HTTP {status}: redirected to https://elsewhere.example/login; "
        "mlrun does not follow redirects: check the base URL"
    )
    assert seen == [f"{API}/api/jobs/trigger"]


async def test_broken_json_under_a_json_type_is_malformed_not_fatal() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"content-type": "application/json"}, text='{"id":"')

    async with client(handler) as api:
        with pytest.raises(MalformedResponse) as caught:
            await trigger(api)
    assert not isinstance(caught.value, NotTheApi)
    assert 'the body is not JSON: \'{"id":"\'' in str(caught.value)


async def test_json_nested_beyond_reason_is_malformed() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"content-type": "application/json"}, text="[" * 100_000)

    async with client(handler) as api:
        with pytest.raises(MalformedResponse):
            await trigger(api)


# -- the key never comes back -----------------------------------------------------------------

KEYS = [
    "ml_live_" + "Zx9.q+R/t==",
    "ml_live_" + "aGVsbG8gd29ybGQ+Pz8/Pw==",
    "sk." + "Q2hlY2sgbWUgb3V0+/=",
]


@pytest.mark.parametrize("key", KEYS)
async def test_a_key_echoed_in_a_401_is_masked(key: str) -> None:
    world = World.from_mapping(
        yaml.safe_load(
            "organisations: [{id: 01234567-89ab-cdef-0123-456789abcdef, name: Acme,"
            " apiKeys: [ml_live_someoneelse], projects: []}]"
        )
    )
    sandbox = Sandbox(SandboxConfig(world=world, faults=Faults.parse("echo_key=1")))
    async with MentionLabClient(api_key=key, base_url=API, transport=sandbox.transport()) as api:
        with pytest.raises(AuthError) as caught:
            await trigger(api)
    assert str(caught.value) == "POST /api/jobs/trigger: HTTP 401: Invalid API key ml_live_***"
    assert caught.value.body["message"] == "Invalid API key ml_live_***"
    assert key not in texts_of(caught.value)
    assert key[8:] not in texts_of(caught.value)


@pytest.mark.parametrize("key", KEYS[:2])  # the sandbox answers any other key 401
async def test_a_key_echoed_in_a_400_is_masked(key: str) -> None:
    sandbox = Sandbox(SandboxConfig(faults=Faults.parse("error_400=1,echo_key=1")))
    async with MentionLabClient(api_key=key, base_url=API, transport=sandbox.transport()) as api:
        with pytest.raises(RequestRejected) as caught:
            await trigger(api)
    assert str(caught.value).endswith("HTTP 400: Validation failed; API key: ml_live_***")
    assert key[8:] not in texts_of(caught.value)


async def test_every_string_of_a_success_body_is_redacted() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        escaped = json.dumps(KEY).replace("/", "\\/")[1:-1]  # as PHP writes it
        job = {**JOB, "id": f"job-{KEY}", "createdBy": {"id": escaped, KEY: "x"}}
        return httpx.Response(201, json=job, headers={"x-request-id": f"req {KEY}"})

    async with client(handler) as api:
        reply = await trigger(api)
    assert reply.value.id == "job-ml_live_***"
    assert reply.request_id == "req ml_live_***"
    assert "Zx9" not in repr(reply)


async def test_a_key_echoed_in_a_text_error_body_is_masked_before_it_is_cut() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        text = "x" * 190 + f" bad key {KEY} " + "y" * 400
        return httpx.Response(502, headers={"content-type": "text/plain"}, text=text)

    async with client(handler) as api:
        with pytest.raises(MlrunError) as caught:
            await trigger(api)
    assert "Zx9" not in texts_of(caught.value)


# -- what the client refuses before sending anything ------------------------------------------

BAD_KEYS = {
    "a line break": "ml_live_abc\ndef",
    "a space": "ml_live_abc def",
    "not ASCII": "ml_live_abcédf",
    "a control character": "ml_live_abc\x7fdef",
}


@pytest.mark.parametrize(("kind", "key"), BAD_KEYS.items(), ids=BAD_KEYS.keys())
def test_a_key_no_header_can_carry_is_refused_without_being_shown(kind: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        api_key_from_env({"MENTIONLAB_API_KEY": key})
    assert f"character 12 is {kind}" in str(caught.value)
    assert "abc" not in str(caught.value)
    with pytest.raises(ConfigError):
        MentionLabClient(api_key=key, base_url=API)


def test_surrounding_whitespace_of_a_key_is_dropped() -> None:
    assert api_key_from_env({"MENTIONLAB_API_KEY": " ml_live_abc\n"}) == "ml_live_abc"


@pytest.mark.parametrize(
    "url",
    [
        f"https://api.example.com/?key={KEY}",
        f"https://api.example.com/#{KEY}",
        f"https://u:{KEY}@api.example.com",
        f"ftp://api.example.com/{KEY}?x",
        "https://[::1",
    ],
)
def test_a_base_url_with_a_query_fragment_or_credentials_is_refused_unechoed(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_base_url(url)
    assert "Zx9" not in str(caught.value)
    assert "?" not in str(caught.value)
