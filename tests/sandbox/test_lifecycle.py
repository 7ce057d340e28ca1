"""Job life cycle: lazy, monotone counters that always add up; terminal states; time scale."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runner.sandbox import Faults
from runner.sandbox.jobs import TERMINAL, Job, job_fate, job_state
from runner.sandbox.world import User

from sandbox.support import JOB_BODY, Connect, make_sandbox

USER = User.for_key("ml_live_x")


def make_job(seed: int, total: int, faults: Faults) -> Job:
    fate = job_fate(seed, f"job-{seed}", total, faults, 1.0)
    return Job(
        id=f"job-{seed}",
        seq=1,
        project_id="p",
        organisation_id="o",
        creator=USER,
        ai_models=("sonar",),
        execution_count=1,
        total=total,
        commit_at=0.0,
        commit_wall=1_790_000_000.0,
        listed_at=0.0,
        pending_for=fate.pending_for,
        processing_for=fate.processing_for,
        failures=fate.failures,
        stuck_at=fate.stuck_at,
    )


rates = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    total=st.integers(0, 3000),
    failure=rates,
    job_failure=st.sampled_from([0.0, 0.5]),
    never=st.sampled_from([0.0, 0.5]),
    moments=st.lists(st.floats(min_value=0.0, max_value=20_000.0), min_size=1, max_size=30),
)
def test_counters_add_up_and_never_go_backwards(
    seed: int,
    total: int,
    failure: float,
    job_failure: float,
    never: float,
    moments: list[float],
) -> None:
    faults = Faults(execution_failure=failure, job_failure=job_failure, never_finish=never)
    job = make_job(seed, total, faults)
    previous = None
    for moment in sorted(moments):
        state = job_state(job, moment)
        parts = (state.pending, state.retrying, state.success, state.failed)
        assert min(parts) >= 0
        assert sum(parts) == total
        if previous is not None:
            assert state.success >= previous.success
            assert state.failed >= previous.failed
            assert state.updated_at >= previous.updated_at
            assert not (previous.terminal and not state.terminal)
        previous = state
    final = job_state(job, 1e9)
    if job.stuck_at is None:
        assert final.terminal
        assert final.failed == job.failures
    else:
        assert final.status == "processing"


def test_terminal_status_follows_outcomes() -> None:
    assert job_state(make_job(1, 30, Faults()), 1e9).status == "completed"
    assert job_state(make_job(1, 30, Faults(job_failure=1.0)), 1e9).status == "failed"
    assert (
        job_state(make_job(1, 3000, Faults(execution_failure=0.5)), 1e9).status == "partial_failed"
    )
    assert job_state(make_job(1, 0, Faults()), 0.0).status == "completed"


@pytest.mark.anyio
async def test_jobs_reach_terminal_states_in_virtual_time(connect: Connect) -> None:
    sandbox = make_sandbox(faults={"execution_failure": 0.3})
    async with connect(sandbox) as client:
        ids = [
            (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()["id"] for _ in range(5)
        ]
        seen: dict[str, list[str]] = {job_id: [] for job_id in ids}
        for _ in range(200):
            for job_id in ids:
                seen[job_id].append((await client.get(f"/api/jobs/{job_id}")).json()["status"])
            if all(history[-1] in TERMINAL for history in seen.values()):
                break
            await anyio.sleep(5.0)
    for history in seen.values():
        assert history[-1] in TERMINAL
        assert "processing" in history or history[0] == "pending"
        statuses = list(dict.fromkeys(history))
        assert statuses[0] in {"pending", "processing"}


@pytest.mark.anyio
async def test_time_scale_divides_the_life_cycle(connect: Connect) -> None:
    async def time_to_finish(scale: float) -> float:
        sandbox = make_sandbox(seed=4, time_scale=scale)
        async with connect(sandbox) as client:
            job = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
            started = anyio.current_time()
            while (await client.get(f"/api/jobs/{job['id']}")).json()["status"] not in TERMINAL:
                await anyio.sleep(0.01)
            return anyio.current_time() - started

    slow, fast = await time_to_finish(1.0), await time_to_finish(100.0)
    assert slow > 10.0
    assert fast == pytest.approx(slow / 100.0, rel=0.05, abs=0.02)


@pytest.mark.anyio
async def test_updated_at_moves_and_created_at_does_not(connect: Connect) -> None:
    async with connect(make_sandbox()) as client:
        job = (await client.post("/api/jobs/trigger", json=JOB_BODY)).json()
        await anyio.sleep(3600.0)
        later = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert later["createdAt"] == job["createdAt"]
    assert later["updatedAt"] > job["updatedAt"]
    assert later["status"] == "completed"
