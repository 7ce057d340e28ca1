"""Each fault, as a client sees it and as the ground truth records it."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from runner.sandbox import Change, Faults
from runner.sandbox.jobs import TERMINAL
from runner.sandbox.truth import key_fingerprint

from sandbox.support import JOB_BODY, KEY, Connect, make_sandbox

pytestmark = pytest.mark.anyio


async def trigger(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/api/jobs/trigger", json=JOB_BODY)


async def test_refused_connection_never_reaches_the_server(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"refuse": 1.0})
    async with connect(sandbox) as client:
        with pytest.raises(httpx.ConnectError):
            await trigger(client)
    truth = sandbox.truth()
    assert truth["triggers"] == []
    assert truth["faults"] == {"refuse": 1}


async def test_dropped_before_processing(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"drop_before": 1.0})
    async with connect(sandbox) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await trigger(client)
    assert sandbox.truth()["triggers"] == []
    assert sandbox.truth()["faults"] == {"drop_before": 1}


async def test_lost_response_reset_after_the_job_was_created(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"lost_response": 1.0, "lost_response_kind": "reset"})
    async with connect(sandbox) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await trigger(client)
        sandbox.set_faults(Faults())
        listed = (await client.post("/api/jobs/list", json={})).json()
    (record,) = sandbox.truth()["triggers"]
    assert record["response"] == "lost_response"
    assert [job["id"] for job in listed["results"]] == [record["jobId"]]


async def test_lost_response_timeout_waits_for_the_read_timeout(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"lost_response": 1.0, "lost_response_kind": "timeout"})
    async with connect(sandbox, timeout=7.0) as client:
        started = anyio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await trigger(client)
        assert anyio.current_time() - started == pytest.approx(7.0)
    assert sandbox.truth()["triggers"][0]["response"] == "lost_response"


async def test_lost_response_kinds_are_mixed_by_seed(connect: Connect) -> None:
    sandbox = make_sandbox(seed=9, faults={"lost_response": 1.0})
    kinds = set()
    async with connect(sandbox, timeout=1.0) as client:
        for _ in range(12):
            try:
                await trigger(client)
            except httpx.TransportError as error:
                kinds.add(type(error))
    assert kinds == {httpx.RemoteProtocolError, httpx.ReadTimeout}
    assert len(sandbox.truth()["triggers"]) == 12


@pytest.mark.parametrize("code", [500, 502, 504])
async def test_gateway_errors_after_processing(connect: Connect, code: int) -> None:
    sandbox = make_sandbox(faults={f"error_{code}": 1.0, f"processed_{code}": 1.0})
    async with connect(sandbox) as client:
        response = await trigger(client)
    assert response.status_code == code
    (record,) = sandbox.truth()["triggers"]
    assert record["response"] == f"error_{code}"
    assert record["responseStatus"] == code
    assert sandbox.truth()["faults"][f"error_{code}_processed"] == 1
    if code == 500:
        assert response.json()["statusCode"] == 500
    else:
        assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("code", [500, 502, 503, 504])
async def test_gateway_errors_before_processing(connect: Connect, code: int) -> None:
    processed = {} if code == 503 else {f"processed_{code}": 0.0}
    sandbox = make_sandbox(faults={f"error_{code}": 1.0, **processed})
    async with connect(sandbox) as client:
        response = await trigger(client)
    assert response.status_code == code
    assert sandbox.truth()["triggers"] == []
    assert sandbox.truth()["faults"] == {f"error_{code}": 1}


async def test_503_is_never_processed(connect: Connect) -> None:
    with pytest.raises(ValueError, match="never processed"):
        Faults.parse("error_503=1@1")
    sandbox = make_sandbox(faults="error_503=1")
    async with connect(sandbox) as client:
        response = await trigger(client)
    assert response.status_code == 503
    assert response.json() == {
        "statusCode": 503,
        "message": "Service Unavailable",
        "error": "Service Unavailable",
    }
    assert sandbox.truth()["triggers"] == []


async def test_malformed_body_after_processing(connect: Connect) -> None:
    sandbox = make_sandbox(seed=1, faults={"malformed": 1.0})
    async with connect(sandbox) as client:
        responses = [await trigger(client) for _ in range(8)]
    for response in responses:
        assert response.status_code == 201
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    truth = sandbox.truth()
    assert len(truth["triggers"]) == 8
    assert {record["response"] for record in truth["triggers"]} == {"malformed"}


async def test_injected_429_takes_no_slot(connect: Connect) -> None:
    sandbox = make_sandbox(rate_limits="documented", faults={"error_429": 1.0})
    async with connect(sandbox) as client:
        response = await trigger(client)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-ratelimit-remaining"] == "10"
    assert sandbox.truth()["faults"] == {"error_429": 1}
    assert sandbox.truth()["arrivals"].get(key_fingerprint(KEY), []) == []


async def test_latency_is_virtual_and_distributed(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"latency": "50ms"})
    async with connect(sandbox) as client:
        started = anyio.current_time()
        await client.get("/api/projects/list")
        assert anyio.current_time() - started == pytest.approx(0.05)
    sandbox.set_faults(latency="20ms..400ms", spike="0.1:3s")
    delays = []
    async with connect(sandbox) as client:
        for _ in range(200):
            started = anyio.current_time()
            await client.get("/api/projects/list")
            delays.append(anyio.current_time() - started)
    delays.sort()
    assert 0.01 < delays[100] < 0.04
    assert max(delays) > 3.0


async def test_latency_beyond_the_read_timeout_is_a_timeout(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"latency": "30s"})
    async with connect(sandbox, timeout=5.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await trigger(client)
    assert sandbox.truth()["triggers"] == []
    assert sandbox.truth()["faults"] == {"timeout": 1}


async def test_slow_commit_then_late_listing(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"commit_delay": "40s", "list_lag": "20s"})
    async with connect(sandbox, timeout=10.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await trigger(client)
        (record,) = sandbox.truth()["triggers"]
        assert record["response"] == "timeout"
        assert (await client.get(f"/api/jobs/{record['jobId']}")).status_code == 404
        await anyio.sleep(31.0)  # t = 41: committed, not listed yet
        assert (await client.get(f"/api/jobs/{record['jobId']}")).status_code == 200
        assert (await client.post("/api/jobs/list", json={})).json()["results"] == []
        await anyio.sleep(20.0)  # t = 61: listed
        listed = (await client.post("/api/jobs/list", json={})).json()["results"]
    assert [job["id"] for job in listed] == [record["jobId"]]


async def test_commit_delay_within_the_timeout_answers(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"commit_delay": "3s"})
    async with connect(sandbox, timeout=10.0) as client:
        started = anyio.current_time()
        response = await trigger(client)
        assert anyio.current_time() - started == pytest.approx(3.0)
    assert response.status_code == 201


async def test_jobs_that_never_finish_vanish_or_flap(connect: Connect) -> None:
    async with connect(make_sandbox(faults={"never_finish": 1.0})) as client:
        job = (await trigger(client)).json()
        await anyio.sleep(86_400.0)
        stuck = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert stuck["status"] == "processing"
    sandbox = make_sandbox(faults={"vanish": 1.0})
    async with connect(sandbox) as client:
        job = (await trigger(client)).json()
        gone = await client.get(f"/api/jobs/{job['id']}")
    assert gone.status_code == 404
    assert sandbox.truth()["triggers"][0]["jobId"] == job["id"]
    assert sandbox.job(job["id"])["id"] == job["id"]
    sandbox = make_sandbox(faults={"flap": 1.0})
    async with connect(sandbox) as client:
        job = (await trigger(client)).json()
        await anyio.sleep(86_400.0)
        reads = [(await client.get(f"/api/jobs/{job['id']}")).json() for _ in range(4)]
    assert [r["status"] in TERMINAL for r in reads] == [True, False, True, True]
    assert reads[1]["pendingExecutions"] == 1
    assert sandbox.truth()["faults"] == {"flap": 1}


async def test_target_triggers_spares_reads(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"error_503": 1.0, "target": "triggers"})
    async with connect(sandbox) as client:
        read = await client.get("/api/projects/list")
        write = await trigger(client)
    assert (read.status_code, write.status_code) == (200, 503)


async def test_outage_for_a_while_then_recovery(connect: Connect) -> None:
    sandbox = make_sandbox(
        faults={"error_503": 1.0}, schedule=(Change(after_seconds=120.0, faults=Faults()),)
    )
    async with connect(sandbox) as client:
        during = await trigger(client)
        await anyio.sleep(119.0)
        still = await trigger(client)
        await anyio.sleep(1.0)
        after = await trigger(client)
    assert (during.status_code, still.status_code, after.status_code) == (503, 503, 201)


async def test_control_endpoint_changes_faults_mid_run(connect: Connect) -> None:
    sandbox = make_sandbox()
    async with connect(sandbox) as client:
        changed = await client.post(
            "/_sandbox/config", json={"faults": "error_503=1", "rate_limits": "5/s", "credits": 9}
        )
        response = await trigger(client)
        bad = await client.post("/_sandbox/config", json={"nope": 1})
        config = (await client.get("/_sandbox/config")).json()
    assert changed.status_code == 200
    assert response.status_code == 503
    assert bad.status_code == 400
    assert config["rateLimits"] == ["5/s"]
    assert config["credits"] == {"initial": 9, "used": 0}
