"""The served sandbox: `mlrun sandbox serve` on loopback, driven by curl and httpx."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from subprocesses import start_served_sandbox

KEY = "ml_live_served"
PROJECT = "fedcba98-7654-3210-fedc-ba9876543210"
ORGANISATION = "01234567-89ab-cdef-0123-456789abcdef"
# The request bodies of the reference's seed files (seed-000 jobs trigger, seed-001 cached jobs).
SEED_JOBS_BODY = """
{
  "aiModels": [
    "gpt-4.1-mini",
    "claude-haiku-4-5",
    "gemini-2.5-flash"
  ],
  "executionCount": 3
}
"""
SEED_CACHED_BODY = """
{
  "aiModels": [
    "openai",
    "anthropic",
    "google-generative-ai"
  ],
  "executionCount": 3
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("served")
    extra = ("--rate-limits", "off")
    with start_served_sandbox(directory, seed=7, time_scale=1, extra=extra) as sandbox:
        yield sandbox.url
    assert "Traceback" not in sandbox.log.read_text(encoding="utf-8")


@pytest.fixture
def configure(server: str) -> Iterator[Any]:
    def apply(**changes: Any) -> None:
        httpx.post(f"{server}/_sandbox/config", json=changes).raise_for_status()

    yield apply
    apply(faults={}, rate_limits="off")


def curl(url: str, headers: dict[str, str], body: str) -> tuple[int, Any]:
    """The seed file's curl command, with only the URL changed and the API key added."""
    if shutil.which("curl") is None:
        response = httpx.post(
            url, headers={"Content-Type": "application/json", **headers}, content=body
        )
        return response.status_code, response.json()
    command = ["curl", "--silent", "--request", "POST", "--url", url]
    command += ["--header", "Content-Type: application/json"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    command += ["--data", body, "--write-out", "\n%{http_code}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=20).stdout
    text, _, status = output.rpartition("\n")
    return int(status), json.loads(text)


@pytest.mark.slow
def test_seed_000_jobs_trigger_with_curl(server: str) -> None:
    headers = {"x-project-id": PROJECT, "x-api-key": KEY}
    status, job = curl(f"{server}/api/jobs/trigger", headers, SEED_JOBS_BODY)
    assert status == 201
    assert set(job) == {
        "id",
        "project",
        "totalExecutions",
        "pendingExecutions",
        "retryingExecutions",
        "successExecutions",
        "failedExecutions",
        "status",
        "createdAt",
        "updatedAt",
        "createdBy",
    }
    assert job["project"] == PROJECT
    assert job["totalExecutions"] % 9 == 0
    assert set(job["createdBy"]) == {"firstName", "lastName", "email", "id"}


@pytest.mark.slow
def test_seed_001_cached_jobs_trigger_with_curl(server: str) -> None:
    headers = {"x-organisation-id": ORGANISATION, "x-project-id": PROJECT, "x-api-key": KEY}
    status, cached = curl(f"{server}/api/cached-jobs/trigger", headers, SEED_CACHED_BODY)
    assert status == 201
    assert isinstance(cached, list)
    assert cached
    assert set(cached[0]) == {
        "id",
        "project",
        "query_id",
        "query",
        "aiModels",
        "executionCount",
        "language",
        "country",
        "status",
        "updatedAt",
        "createdAt",
        "restricted",
    }
    assert cached[0]["aiModels"] == ["gpt-4.1-mini", "claude-haiku-4-5", "gemini-2.5-flash"]


@pytest.mark.slow
def test_other_endpoints_served(server: str) -> None:
    headers = {"x-api-key": KEY, "x-project-id": PROJECT, "x-organisation-id": ORGANISATION}
    with httpx.Client(base_url=server, headers=headers) as client:
        job = client.post("/api/jobs/trigger", json={"aiModels": ["sonar"], "executionCount": 1})
        fetched = client.get(f"/api/jobs/{job.json()['id']}")
        listed = client.post("/api/jobs/list?limit=1", json={})
        queries = client.post("/api/queries/list", json={})
        projects = client.get("/api/projects/list")
        project = client.get(f"/api/projects/{PROJECT}")
        unauthorised = client.get("/api/projects/list", headers={"x-api-key": "nope"})
    assert [r.status_code for r in (fetched, listed, queries, projects, project)] == [200] * 5
    assert listed.json()["page"]["limit"] == 1
    assert unauthorised.status_code == 401
    assert len(fetched.headers.get_list("date")) == 1


@pytest.mark.slow
def test_network_faults_reach_a_real_client(server: str, configure: Any) -> None:
    headers = {"x-api-key": KEY, "x-project-id": PROJECT}
    body = {"aiModels": ["sonar"], "executionCount": 1}
    with httpx.Client(base_url=server, headers=headers, timeout=1.0) as client:
        configure(faults={"drop_before": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/jobs/trigger", json=body)
        configure(faults={"lost_response": 1.0, "lost_response_kind": "reset"})
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/api/jobs/trigger", json=body)
        configure(faults={"lost_response": 1.0, "lost_response_kind": "timeout"})
        with pytest.raises(httpx.ReadTimeout):
            client.post("/api/jobs/trigger", json=body)
    truth = httpx.get(f"{server}/_sandbox/truth").json()
    assert [t["response"] for t in truth["triggers"][-2:]] == ["lost_response", "lost_response"]
    assert truth["faults"]["drop_before"] >= 1


@pytest.mark.slow
def test_http_faults_and_limits_served(server: str, configure: Any) -> None:
    headers = {"x-api-key": "ml_live_limited", "x-project-id": PROJECT}
    body = {"aiModels": ["sonar"], "executionCount": 1}
    with httpx.Client(base_url=server, headers=headers) as client:
        configure(faults={"error_503": 1.0})
        unavailable = client.post("/api/jobs/trigger", json=body)
        configure(faults={"malformed": 1.0})
        malformed = client.post("/api/jobs/trigger", json=body)
        configure(faults={}, rate_limits="1/min", credits=None)
        client.get("/api/projects/list", headers={"x-organisation-id": ORGANISATION})
        limited = client.get("/api/projects/list", headers={"x-organisation-id": ORGANISATION})
    assert unavailable.status_code == 503
    assert malformed.status_code == 201
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
