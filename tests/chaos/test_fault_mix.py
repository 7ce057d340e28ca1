"""The sandbox's fault mix over many actions, in virtual time: definite states, no duplicates,
and a report equal to the ground truth, action by action, then after following to the end.

Mix (every request, triggers and reads alike): 10 % 5xx (500, 502, 504 at 2.5 % each, half of
them answered after the job was created, and 2.5 % 503), 5 % connections dropped before
processing, 2 % responses lost after processing (reset or timeout), 1 % malformed 2xx bodies,
latency 20 ms..250 ms with 1 % spikes of 5 s. Reduced: 100 actions; full: 500.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from runner.run.follow import FollowOptions
from runner.run.options import EngineOptions
from runner.sandbox import Faults, Latency, SandboxConfig
from runner.store import ActionState

from chaos.chaos_harness import ChaosHarness
from figures import record
from harness import job_actions

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

MIX = Faults(
    error_500=0.025,
    error_502=0.025,
    error_504=0.025,
    error_503=0.025,
    drop_before=0.05,
    lost_response=0.02,
    malformed=0.01,
    latency=Latency(median_ms=20, p99_ms=250, spike_rate=0.01, spike_ms=5000),
)


@pytest.mark.parametrize("seed", [11, 12])
async def test_the_fault_mix_ends_every_action_definite_once_and_as_the_truth_says(
    tmp_path: Path, state: str, chaos_full: bool, seed: int
) -> None:
    count = 500 if chaos_full else 100
    harness = ChaosHarness(
        tmp_path,
        state=state,
        config=SandboxConfig(seed=seed, time_scale=20.0, faults=MIX),
        engine=EngineOptions(settle_grace=60.0),
        follow=FollowOptions(timeout=6 * 3600.0),
        seed=seed,
    )
    actions = job_actions(count)
    summary = await harness.run(actions)

    states = Counter(harness.states().values())
    assert set(states) <= {ActionState.TRIGGERED, ActionState.UNKNOWN}, states
    assert harness.duplicates() == 0
    assert harness.lost(actions) == 0
    harness.assert_exactly_once(actions)
    outcomes = harness.assert_report_matches_truth()
    compared = harness.assert_statuses_true()
    truth = harness.truth()
    assert summary.timed_out == ()
    assert compared == states[ActionState.TRIGGERED]
    report = harness.report_json()
    assert all(a["outcome"] in {"OK", "UNKNOWN"} for a in report["actions"]), outcomes
    record(
        "fault-mix",
        seed=seed,
        actions=count,
        requests=truth["requests"],
        faults=truth["faults"],
        ambiguous=sum(1 for a in report["actions"] if a["done"]["ambiguous"]),
        outcomes=outcomes,
        duplicates=harness.duplicates(),
        lost=harness.lost(actions),
        statuses_compared=compared,
    )
