"""Strict worlds (404/403/401) and the Idempotency-Key option, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner.sandbox import World

from sandbox.support import CACHED_BODY, JOB_BODY, Connect, make_sandbox

pytestmark = pytest.mark.anyio
ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"
PROJECT_A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
PROJECT_B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
UNKNOWN = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
WORLD_YAML = f"""
organisations:
  - id: {ORG_A}
    name: Acme
    apiKeys: [ml_live_acme]
    projects:
      - id: {PROJECT_A}
        name: Shoes
        queries:
          - best running shoes
          - {{query: meilleures chaussures, language: fr, country: FR, tags: [3]}}
  - id: {ORG_B}
    name: Beta
    apiKeys: [ml_live_beta]
    projects:
      - {{id: {PROJECT_B}, name: Banks, queries: 4}}
"""


@pytest.fixture
def world(tmp_path: Path) -> World:
    path = tmp_path / "world.yaml"
    path.write_text(WORLD_YAML, encoding="utf-8")
    return World.load(path)


def headers(key: str, org: str, project: str) -> dict[str, str]:
    return {"x-api-key": key, "x-organisation-id": org, "x-project-id": project}


async def test_world_file_loads_yaml_and_json(world: World, tmp_path: Path) -> None:
    assert [org.name for org in world.organisations] == ["Acme", "Beta"]
    assert world.api_keys == {"ml_live_acme": ORG_A, "ml_live_beta": ORG_B}
    path = tmp_path / "world.json"
    path.write_text(json.dumps({"organisations": [{"id": ORG_A, "projects": []}]}))
    assert World.load(path).organisations[0].id == ORG_A


async def test_strict_world_knows_only_its_projects(connect: Connect, world: World) -> None:
    sandbox = make_sandbox(world=world)
    acme = headers("ml_live_acme", ORG_A, PROJECT_A)
    async with connect(sandbox, headers=acme) as client:
        ok = await client.post("/api/jobs/trigger", json=JOB_BODY)
        queries = (await client.post("/api/queries/list", json={})).json()["results"]
        unknown = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"x-project-id": UNKNOWN}
        )
        foreign = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"x-project-id": PROJECT_B}
        )
        wrong_org = await client.post(
            "/api/cached-jobs/trigger", json=CACHED_BODY, headers={"x-organisation-id": ORG_B}
        )
        listed = await client.get("/api/projects/list")
        other_list = await client.get("/api/projects/list", headers={"x-organisation-id": ORG_B})
        stranger = await client.get("/api/projects/list", headers={"x-api-key": "ml_live_nobody"})
    assert ok.status_code == 201
    assert ok.json()["totalExecutions"] == 2 * 3 * 3
    assert [q["query"] for q in queries] == ["best running shoes", "meilleures chaussures"]
    assert queries[1]["tags"] == [3]
    assert unknown.status_code == 404
    assert unknown.json() == {
        "statusCode": 404,
        "message": "Project not found",
        "error": "Not Found",
    }
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "Forbidden"
    assert wrong_org.status_code == 403
    assert [p["id"] for p in listed.json()] == [PROJECT_A]
    assert other_list.status_code == 403
    assert stranger.status_code == 401


async def test_world_counts_generate_queries(connect: Connect, world: World) -> None:
    async with connect(
        make_sandbox(world=world), headers=headers("ml_live_beta", ORG_B, PROJECT_B)
    ) as client:
        page = (await client.post("/api/queries/list", json={})).json()["page"]
    assert page["totalRecords"] == 4


async def test_lenient_world_accepts_any_ml_live_key_and_project(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        response = await client.post(
            "/api/jobs/trigger",
            json=JOB_BODY,
            headers=headers("ml_live_anything", ORG_B, UNKNOWN),
        )
    assert response.status_code == 201


async def test_idempotency_key_ignored_by_default(connect: Connect) -> None:
    sandbox = make_sandbox()
    async with connect(sandbox) as client:
        same = {"Idempotency-Key": "run-1/action-1"}
        first = await client.post("/api/jobs/trigger", json=JOB_BODY, headers=same)
        second = await client.post("/api/jobs/trigger", json=JOB_BODY, headers=same)
    assert first.json()["id"] != second.json()["id"]
    records = sandbox.truth()["triggers"]
    assert [r["idempotencyKey"] for r in records] == ["run-1/action-1"] * 2


async def test_idempotency_key_honoured_when_asked(connect: Connect) -> None:
    sandbox = make_sandbox(honour_idempotency_key=True, credits=10_000)
    async with connect(sandbox) as client:
        same = {"Idempotency-Key": "run-1/action-1"}
        first = await client.post("/api/jobs/trigger", json=JOB_BODY, headers=same)
        again = await client.post("/api/jobs/trigger", json=JOB_BODY, headers=same)
        changed = await client.post(
            "/api/jobs/trigger", json={**JOB_BODY, "executionCount": 1}, headers=same
        )
        other = await client.post(
            "/api/jobs/trigger", json=JOB_BODY, headers={"Idempotency-Key": "x"}
        )
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert changed.status_code == 422
    assert other.json()["id"] != first.json()["id"]
    truth = sandbox.truth()
    assert len(truth["triggers"]) == 2
    assert truth["triggers"][0]["replays"] == 1
    assert truth["credits"]["used"] == 2 * first.json()["totalExecutions"]


async def test_idempotency_conflict_while_the_first_is_in_flight(connect: Connect) -> None:
    import anyio  # noqa: PLC0415

    sandbox = make_sandbox(honour_idempotency_key=True, faults={"commit_delay": "5s"})
    results: list[int] = []
    async with connect(sandbox, timeout=30.0) as client:

        async def send() -> None:
            response = await client.post(
                "/api/jobs/trigger", json=JOB_BODY, headers={"Idempotency-Key": "k"}
            )
            results.append(response.status_code)

        async with anyio.create_task_group() as group:
            group.start_soon(send)
            await anyio.sleep(1.0)
            group.start_soon(send)
    assert sorted(results) == [201, 409]
