"""Every endpoint's happy path and documented errors, in process."""

from __future__ import annotations

import re
from typing import Any

import pytest
from runner.catalog import default_catalog

from sandbox.support import (
    CACHED_BODY,
    HEADERS,
    JOB_BODY,
    KEY,
    ORGANISATION,
    PROJECT,
    Connect,
    make_sandbox,
)

pytestmark = pytest.mark.anyio
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
JOB_KEYS = {
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


def assert_job(job: dict[str, Any]) -> None:
    assert set(job) == JOB_KEYS
    assert ISO_MS.match(job["createdAt"])
    assert ISO_MS.match(job["updatedAt"])
    parts = ("pending", "retrying", "success", "failed")
    assert job["totalExecutions"] == sum(job[f"{p}Executions"] for p in parts)
    assert set(job["createdBy"]) == {"id", "firstName", "lastName", "email"}


def assert_error(body: dict[str, Any], status: int) -> None:
    assert set(body) == {"statusCode", "message", "error"}
    assert body["statusCode"] == status


async def test_trigger_returns_a_pending_job_sized_queries_models_count(connect: Connect) -> None:
    sandbox = make_sandbox(seed=3)
    async with connect(sandbox) as client:
        queries = (await client.post("/api/queries/list", json={})).json()["page"]["totalRecords"]
        response = await client.post("/api/jobs/trigger", json=JOB_BODY)
    assert response.status_code == 201
    job = response.json()
    assert_job(job)
    assert job["status"] == "pending"
    assert job["project"] == PROJECT
    assert job["totalExecutions"] == queries * 3 * 3 == job["pendingExecutions"]
    record = sandbox.truth()["triggers"][0]
    assert record["jobId"] == job["id"]
    assert record["totalExecutions"] == job["totalExecutions"]
    assert record["response"] == "ok"


async def test_common_headers_on_every_response(connect: Connect) -> None:
    async with connect(make_sandbox(rate_limits="documented")) as client:
        response = await client.get(f"/api/jobs/{PROJECT}")
    assert response.status_code == 404
    assert re.match(r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", response.headers["date"])
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert response.headers[name].isdigit()


async def test_get_job_and_creator_is_stable_per_key(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        first = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
        second = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
        fetched = await client.get(f"/api/jobs/{first['id']}")
    assert fetched.status_code == 200
    assert_job(fetched.json())
    assert fetched.json()["id"] == first["id"]
    assert first["createdBy"] == second["createdBy"]
    assert first["id"] != second["id"]


async def test_get_job_errors(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        job = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
        bad_id = await client.get("/api/jobs/not-a-uuid")
        unknown = await client.get(f"/api/jobs/{ORGANISATION}")
        other_project = {**HEADERS, "x-project-id": ORGANISATION}
        elsewhere = await client.get(f"/api/jobs/{job['id']}", headers=other_project)
    assert bad_id.status_code == 400
    assert isinstance(bad_id.json()["message"], list)
    assert unknown.status_code == 404
    assert_error(unknown.json(), 404)
    assert elsewhere.status_code == 404


async def test_list_jobs_pages_newest_first(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        ids = [
            (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()["id"] for _ in range(5)
        ]
        first = (await client.post("/api/jobs/list?limit=2&page=1", json={})).json()
        last = (await client.post("/api/jobs/list?limit=2&page=3")).json()
        beyond = (await client.post("/api/jobs/list?limit=2&page=9", json={})).json()
    assert first["page"] == {
        "totalRecords": 5,
        "limit": 2,
        "currentPage": 1,
        "totalPages": 3,
        "nextPage": 2,
        "prevPage": None,
    }
    assert [job["id"] for job in first["results"]] == ids[::-1][:2]
    assert last["page"]["nextPage"] is None
    assert last["page"]["prevPage"] == 2
    assert [job["id"] for job in last["results"]] == [ids[0]]
    assert beyond["results"] == []
    for job in first["results"]:
        assert_job(job)


async def test_list_jobs_filters_and_sorts(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        mine = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
        other = {**HEADERS, "x-api-key": "ml_live_someone_else"}
        await client.post("/api/jobs/trigger", json=JOB_BODY, headers=other)
        by_me = await client.post("/api/jobs/list", json={"createdBy": mine["createdBy"]["id"]})
        pending = await client.post("/api/jobs/list", json={"status": "pending"})
        done = await client.post("/api/jobs/list", json={"status": "completed"})
        ascending = await client.post(
            "/api/jobs/list", json={"sort": [{"field": "createdAt", "direction": "ASC"}]}
        )
        by_status = await client.post(
            "/api/jobs/list", json={"sort": [{"field": "status", "direction": "DESC"}]}
        )
    assert [job["id"] for job in by_me.json()["results"]] == [mine["id"]]
    assert pending.json()["page"]["totalRecords"] == 2
    assert done.json()["results"] == []
    assert ascending.json()["results"][0]["id"] == mine["id"]
    assert by_status.status_code == 200


@pytest.mark.parametrize(
    ("query", "body", "fragment"),
    [
        ("limit=0", {}, "limit must not be less than 1"),
        ("limit=101", {}, "limit must not be greater than 100"),
        ("limit=x", {}, "limit must be an integer number"),
        ("page=0", {}, "page must not be less than 1"),
        ("", {"status": "done"}, "status must be one of the following values"),
        ("", {"sort": [{"field": "id"}]}, "sort.0.field must be one of"),
        ("", {"sort": {"field": "status"}}, "sort must be an array"),
        ("", {"createdBy": 3}, "createdBy must be a string"),
    ],
)
async def test_list_jobs_validation(
    connect: Connect, query: str, body: dict[str, Any], fragment: str
) -> None:
    async with connect(make_sandbox()) as client:
        response = await client.post(f"/api/jobs/list?{query}", json=body)
    assert response.status_code == 400
    assert_error(response.json(), 400)
    assert any(fragment in message for message in response.json()["message"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"aiModels": ["gpt-4"], "executionCount": 1}, "each value in aiModels must be one of"),
        ({"aiModels": ["openai"], "executionCount": 1}, "each value in aiModels must be one of"),
        ({"aiModels": [], "executionCount": 1}, "aiModels should not be empty"),
        ({"aiModels": "gpt-5-mini", "executionCount": 1}, "aiModels must be an array"),
        ({"executionCount": 1}, "aiModels must be an array"),
        ({"aiModels": ["sonar"], "executionCount": 0}, "executionCount must not be less than 1"),
        ({"aiModels": ["sonar"], "executionCount": "3"}, "executionCount must be a number"),
        ({"aiModels": ["sonar"]}, "executionCount must be a number"),
        ({"aiModels": ["sonar"], "executionCount": 1.5}, "executionCount must be an integer"),
        ({"aiModels": ["sonar", "sonar"], "executionCount": 1}, "must be unique"),
    ],
)
async def test_trigger_validation(connect: Connect, body: dict[str, Any], fragment: str) -> None:
    sandbox = make_sandbox()
    async with connect(sandbox) as client:
        response = await client.post("/api/jobs/trigger", json=body)
    assert response.status_code == 400
    assert_error(response.json(), 400)
    assert any(fragment in message for message in response.json()["message"])
    assert sandbox.truth()["triggers"] == []


async def test_bad_json_and_bad_headers(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        bad_json = await client.post(
            "/api/jobs/trigger", content=b"{oops", headers={"content-type": "application/json"}
        )
        no_project = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"x-project-id": ""}
        )
        bad_project = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"x-project-id": "a1b2c3d4-e5f6-g7h8"}
        )
    for response in (bad_json, no_project, bad_project):
        assert response.status_code == 400
        assert isinstance(response.json()["message"], list)
    assert "x-project-id must be a UUID" in bad_project.json()["message"]


async def test_auth_missing_and_invalid_key(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        missing = await client.post("/api/jobs/trigger", json=JOB_BODY, headers={"x-api-key": ""})
        invalid = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"x-api-key": "sk_live_abc"}
        )
    assert missing.status_code == invalid.status_code == 401
    assert_error(invalid.json(), 401)
    assert invalid.json()["error"] == "Unauthorized"


async def test_unknown_path_and_wrong_method_are_404(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        unknown = await client.get("/api/nothing")
        wrong = await client.delete("/api/jobs/trigger")
    assert unknown.status_code == wrong.status_code == 404
    assert unknown.json()["message"] == "Cannot GET /api/nothing"
    assert wrong.json()["message"] == "Cannot DELETE /api/jobs/trigger"


async def test_cached_jobs_trigger_one_per_query_with_mapped_models(connect: Connect) -> None:
    sandbox = make_sandbox(seed=5)
    async with connect(sandbox) as client:
        queries = (await client.post("/api/queries/list", json={})).json()["results"]
        response = await client.post("/api/cached-jobs/trigger", json=CACHED_BODY)
        cached = response.json()
        fetched = await client.get(f"/api/cached-jobs/{cached[0]['id']}")
    assert response.status_code == 201
    assert isinstance(cached, list)
    assert len(cached) == len(queries)
    models = list(
        default_catalog().models_for_keys(["openai", "anthropic", "google-generative-ai"])
    )
    for item, query in zip(cached, queries, strict=True):
        assert item["query_id"] == query["id"]
        assert item["query"] == query["query"]
        assert item["aiModels"] == models
        assert item["executionCount"] == 3
        assert item["status"] == "pending"
        assert ISO_MS.match(item["createdAt"])
    assert fetched.status_code == 200
    assert fetched.json()["id"] == cached[0]["id"]
    record = sandbox.truth()["triggers"][0]
    assert record["kind"] == "cached"
    assert record["cachedJobIds"] == [item["id"] for item in cached]
    assert record["totalExecutions"] == len(queries) * len(models) * 3


async def test_cached_jobs_need_the_organisation_and_provider_keys(connect: Connect) -> None:
    headers = {"x-api-key": KEY, "x-project-id": PROJECT}
    async with connect(make_sandbox(), headers=headers) as client:
        no_org = await client.post("/api/cached-jobs/trigger", json=CACHED_BODY)
        org = {"x-organisation-id": ORGANISATION}
        model_ids = await client.post("/api/cached-jobs/trigger", json=JOB_BODY, headers=org)
        unknown = await client.get(f"/api/cached-jobs/{PROJECT}", headers=org)
    assert no_org.status_code == 400
    assert model_ids.status_code == 400
    assert unknown.status_code == 404


async def test_queries_list_filters_and_pages(connect: Connect) -> None:
    async with connect(make_sandbox(seed=11)) as client:
        everything = (await client.post("/api/queries/list?limit=500", json={})).json()
        queries = everything["results"]
        language = queries[0]["language"]
        filtered = await client.post("/api/queries/list", json={"languages": [language]})
        text = await client.post("/api/queries/list", json={"query": queries[0]["query"].upper()})
        one = await client.post("/api/queries/list?limit=1&page=1", json={})
        too_big = await client.post("/api/queries/list?limit=501", json={})
    assert 1 <= everything["page"]["totalRecords"] <= 12
    assert set(queries[0]) == {"id", "project", "tags", "query", "language", "country", "updatedAt"}
    assert all(q["language"] == language for q in filtered.json()["results"])
    assert queries[0]["id"] in {q["id"] for q in text.json()["results"]}
    assert len(one.json()["results"]) == 1
    assert too_big.status_code == 400


async def test_projects_list_and_get(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        listed = await client.get("/api/projects/list")
        project = await client.get(f"/api/projects/{PROJECT}")
        mismatch = await client.get(f"/api/projects/{ORGANISATION}")
        no_org = await client.get("/api/projects/list", headers={"x-organisation-id": ""})
    assert listed.status_code == 200
    assert isinstance(listed.json(), list)
    assert PROJECT in {p["id"] for p in listed.json()}
    body = project.json()
    assert body["id"] == PROJECT
    assert body["organisation"] == ORGANISATION
    assert body["recurrence"] in {"manual", "daily", "weekly", "biweekly", "monthly"}
    assert mismatch.status_code == 400
    assert no_org.status_code == 400


async def test_credits_run_out_with_402_and_nothing_created(connect: Connect) -> None:
    sandbox = make_sandbox(credits=1)
    async with connect(sandbox) as client:
        refused = await client.post("/api/jobs/trigger", json=JOB_BODY)
        sandbox.set_credits(10_000)
        accepted = await client.post("/api/jobs/trigger", json=JOB_BODY)
    assert refused.status_code == 402
    assert refused.json()["error"] == "Payment Required"
    assert refused.json()["message"].startswith("Insufficient credits")
    assert accepted.status_code == 201
    truth = sandbox.truth()
    assert len(truth["triggers"]) == 1
    assert truth["credits"]["used"] == accepted.json()["totalExecutions"]
