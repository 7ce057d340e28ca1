"""The trigger phase of ``mlrun apply`` over loopback against the served sandbox.

Three scenarios, each one sandbox subprocess, the runners one after another in the same run
(each with its own API key, so each starts from empty windows), figures from the sandbox's
ground truth and from the clients:

``default``  the documented limits (10/s, 300/min, 10,000/h), time-scaled x10. mlrun's engine
             (``runner.run.execute``, ``wait=False``, a real ``MentionLabClient``, a ledger on
             disk, a ``RateLimiter`` told the scaled windows and built as ``mlrun apply`` builds
             it, with its slow start, the in-flight guard on) beside a
             naive client (``asyncio.gather`` + semaphore) and one behind ``aiolimiter`` (one
             ``AsyncLimiter(N, W)`` per window). Targets for mlrun: sustained rate >= 0.97 x the
             binding window, 429s < 0.5 % of requests.
``unknown``  the sandbox enforces the ``v2`` policy (20 per second, 120 per minute) in real time
             (the headers carry whole seconds, which time scaling would blur); mlrun's limiter
             gets no windows and learns from the headers and 429s. Targets: 429s < 5 %, a rate
             >= 0.9 x the ideal (ideal span / actual span of the admissions; the ideal is the
             greedy schedule the policy allows, computed with the sandbox's own sliding log).
``off``      no limits: the headroom. Triggers/s of the engine over httpx's stock stack
             (ledger on disk as ``mlrun apply`` opens it: each intent committed ``FULL``;
             ``--allow-stacking`` so it sends the same requests), interleaved rounds, medians.
             Target: >= 200 triggers/s (20 x the documented rate), so a 2-core CI runner is
             never what limits a run. For information, a bare httpx + anyio loop with the same
             concurrency, and the engine with no fsync at all (``OFF``), on tmpfs, and with the
             in-flight guard on.

Run from the repository root::

    python benchmarks/bench_apply.py            # every scenario: about 5.5 min
    python benchmarks/bench_apply.py --quick    # smaller N: about 2 min
    python benchmarks/bench_apply.py --scenario default --time-scale 20 --triggers 500

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
from runner.ratelimit import Window
from runner.run.execute import RunOptions
from runner.run.options import EngineOptions

from baselines import ClientResult, bare_loop, leaky_bucket, naive
from served import (
    EngineRun,
    KeyTraffic,
    api_key,
    binding_window,
    ideal_arrivals,
    key_traffic,
    ledger_dir,
    machine,
    run_engine,
    scaled_windows,
    served_sandbox,
    sustained_rate,
    table,
    trigger_actions,
)

CONCURRENCY = 8  # the manifest's default `settings.concurrency`
JOBS_PER_PROJECT = 5  # the engine's in-flight guard costs one job-list read per project


@dataclass(frozen=True)
class Sizes:
    default_triggers: int
    default_scale: float
    unknown_triggers: int
    unknown_scale: float
    off_triggers: int
    off_rounds: int


FULL = Sizes(
    default_triggers=500,
    default_scale=10.0,
    unknown_triggers=250,
    unknown_scale=1.0,  # headers carry whole seconds: time-scaled windows blur what they say
    off_triggers=2000,
    off_rounds=5,
)
QUICK = Sizes(
    default_triggers=300,
    default_scale=10.0,
    unknown_triggers=125,
    unknown_scale=2.0,
    off_triggers=600,
    off_rounds=1,
)


@dataclass(frozen=True)
class Verdict:
    name: str
    figure: str
    target: str
    ok: bool


def pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def engine_once(
    url: str,
    key: str,
    count: int,
    windows: Sequence[Window],
    ledger_path: Path,
    synchronous: str | None = None,
    *,
    allow_stacking: bool = False,
) -> EngineRun:
    actions = trigger_actions(count, salt=key, jobs_per_project=JOBS_PER_PROJECT)
    options = RunOptions(engine=EngineOptions(allow_stacking=allow_stacking), wait=False)

    async def main() -> EngineRun:
        return await run_engine(
            url=url,
            key=key,
            actions=actions,
            windows=windows,
            concurrency=CONCURRENCY,
            ledger_path=ledger_path,
            options=options,
            synchronous=synchronous,
        )

    return anyio.run(main)


# -- scenario 1: the documented limits ---------------------------------------------------------- -


def traffic_row(
    name: str, traffic: KeyTraffic, seconds: float, windows: Sequence[Window], window: Window
) -> list[str]:
    ideal = ideal_arrivals(windows, len(traffic.arrivals))[-1]
    rate, periods = sustained_rate(traffic.arrivals, window)
    limit_rate = window.limit / window.seconds
    return [
        name,
        str(traffic.requests),
        str(traffic.rejected),
        pct(traffic.rejected_share),
        f"{seconds:.2f}",
        f"{rate:.1f}/s over {periods}",
        f"{rate / limit_rate:.3f}",
        f"{ideal / traffic.span:.3f}" if traffic.span else "-",
    ]


def scenario_default(sizes: Sizes, verdicts: list[Verdict]) -> None:
    scale, count = sizes.default_scale, sizes.default_triggers
    windows = scaled_windows("documented", scale)
    requests = count + count // JOBS_PER_PROJECT  # the in-flight guard's read per project
    window = binding_window(windows, requests)
    ideal = ideal_arrivals(windows, requests)[-1]
    print(f"\n## Documented limits x{scale:g}: {count} triggers, concurrency {CONCURRENCY}")
    print(f"windows (real seconds): {', '.join(f'{w.limit}/{w.seconds:g}s' for w in windows)}")
    print(
        f"binding window {window.limit}/{window.seconds:g}s = {window.limit / window.seconds:g}/s;"
        f" ideal span of {requests} admissions {ideal:.2f}s"
    )
    keys = {name: api_key(name) for name in ("engine", "naive", "aiolimiter")}
    runs: dict[str, float] = {}
    client_side: dict[str, str] = {}
    with served_sandbox(time_scale=scale, rate_limits="documented") as sandbox, ledger_dir() as d:
        engine = engine_once(sandbox.url, keys["engine"], count, windows, d / "ledger.sqlite")
        runs["engine"] = engine.seconds
        client_side["engine"] = (
            f"{engine.progress.requests} requests, {engine.stats.throttled} 429s "
            f"({engine.progress.rate_limited} of them on triggers), "
            f"{engine.progress.triggered} triggered"
        )
        baselines: dict[str, Callable[[], ClientResult]] = {
            "naive": lambda: naive(
                sandbox.url, keys["naive"], trigger_actions(count, salt="n"), CONCURRENCY
            ),
            "aiolimiter": lambda: leaky_bucket(
                sandbox.url,
                keys["aiolimiter"],
                trigger_actions(count, salt="a"),
                CONCURRENCY,
                windows,
            ),
        }
        for name, run in baselines.items():
            result = run()
            runs[name] = result.seconds
            client_side[name] = (
                f"{result.requests} requests, {result.rate_limited} 429s, "
                f"{result.created} created, {result.gave_up} gave up"
            )
        truth = sandbox.truth()
    labels = {
        "engine": "mlrun engine",
        "naive": "naive gather+semaphore",
        "aiolimiter": "aiolimiter (1 bucket/window)",
    }
    rows = [
        traffic_row(labels[name], key_traffic(truth, keys[name]), runs[name], windows, window)
        for name in keys
    ]
    print(
        table(
            [
                "client",
                "requests",
                "429s",
                "429 share",
                "wall s",
                f"sustained (per {window.seconds:g}s)",
                "x binding",
                "ideal/actual span",
            ],
            rows,
        )
    )
    for name, text in client_side.items():
        print(f"  client side, {labels[name]}: {text}")
    mine = key_traffic(truth, keys["engine"])
    rate, _ = sustained_rate(mine.arrivals, window)
    ratio = rate / (window.limit / window.seconds)
    verdicts.append(
        Verdict("default: sustained rate", f"{ratio:.3f} x binding", ">= 0.97", ratio >= 0.97)
    )
    verdicts.append(
        Verdict(
            "default: 429 share", pct(mine.rejected_share), "< 0.5 %", mine.rejected_share < 0.005
        )
    )


# -- scenario 2: limits the runner is not told ----------------------------------------------------


def scenario_unknown(sizes: Sizes, verdicts: list[Verdict]) -> None:
    scale, count = sizes.unknown_scale, sizes.unknown_triggers
    windows = scaled_windows("v2", scale)
    ideal = ideal_arrivals(windows, count)[-1]
    key = api_key("learning")
    print(
        f"\n## Limits not told (sandbox 'v2' x{scale:g}): {count} triggers, concurrency "
        f"{CONCURRENCY}"
    )
    print(
        f"server windows (real seconds): {', '.join(f'{w.limit}/{w.seconds:g}s' for w in windows)}"
        f"; ideal span {ideal:.2f}s"
    )
    with served_sandbox(time_scale=scale, rate_limits="v2") as sandbox, ledger_dir() as d:
        engine = engine_once(sandbox.url, key, count, [], d / "ledger.sqlite")
        truth = sandbox.truth()
    traffic = key_traffic(truth, key)
    ideal = ideal_arrivals(windows, len(traffic.arrivals))[-1]
    learned = ", ".join(f"{w.limit}/{w.seconds:g}s" for w in engine.stats.learned_windows)
    rows = [
        [
            "mlrun engine, windows=[]",
            str(traffic.requests),
            str(traffic.rejected),
            pct(traffic.rejected_share),
            f"{traffic.span:.2f}",
            f"{ideal:.2f}",
            f"{ideal / traffic.span:.3f}",
            learned or "-",
        ]
    ]
    print(
        table(
            [
                "client",
                "requests",
                "429s",
                "429 share",
                "span s",
                "ideal s",
                "ideal/actual",
                "learned windows",
            ],
            rows,
        )
    )
    pauses = engine.stats.pauses
    print(
        f"  limiter: {engine.stats.throttled} throttled, {len(pauses)} pauses totalling "
        f"{sum(p.seconds for p in pauses):.2f}s, {engine.stats.learned_caps} caps learned; "
        f"wall {engine.seconds:.2f}s"
    )
    verdicts.append(
        Verdict(
            "unknown: 429 share",
            pct(traffic.rejected_share),
            "< 5 %",
            traffic.rejected_share < 0.05,
        )
    )
    ratio = ideal / traffic.span
    verdicts.append(Verdict("unknown: rate", f"{ratio:.3f} x ideal", ">= 0.9", ratio >= 0.9))


# -- scenario 3: limits off -----------------------------------------------------------------------


def commit_cost(directory: Path, synchronous: str = "FULL", commits: int = 400) -> float:
    """Seconds per commit of one small row, WAL + ``synchronous``, in ``directory``."""
    path = directory / f"commit-cost-{synchronous}.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE t (a INTEGER)")
        started = time.perf_counter()
        for i in range(commits):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", (i,))
            db.execute("COMMIT")
        return (time.perf_counter() - started) / commits
    finally:
        db.close()


POLICY = "production: each intent FULL"
PRODUCTION = f"mlrun engine, --allow-stacking, ledger on disk ({POLICY})"


BARE = "bare httpx + anyio loop, for information"
HEADROOM = 200.0  # triggers/s with the limits off: 20 x the documented 10/s


def off_variants(d: Path, shm: Path) -> list[tuple[str, Path, str | None, bool]]:
    """(name, ledger path, synchronous override, --allow-stacking) of each engine variant."""
    return [
        (PRODUCTION, d / "policy.sqlite", None, True),
        (
            "mlrun engine, --allow-stacking, ledger on disk, no fsync at all (OFF)",
            d / "off.sqlite",
            "OFF",
            True,
        ),
        (
            f"mlrun engine, --allow-stacking, ledger on tmpfs ({POLICY})",
            shm / "l.sqlite",
            None,
            True,
        ),
        (
            f"mlrun engine, in-flight guard on, ledger on disk ({POLICY})",
            d / "guard.sqlite",
            None,
            False,
        ),
    ]


def scenario_off(sizes: Sizes, verdicts: list[Verdict]) -> None:
    """Each variant ``sizes.off_rounds`` times, interleaved (the machine is shared): medians.

    The verdict is the production engine's median rate against the headroom target; its ratio
    to the bare loop of the same round (run back to back) is printed for information.
    """
    count = sizes.off_triggers
    print(
        f"\n## Limits off: {count} triggers, concurrency {CONCURRENCY}, "
        f"{sizes.off_rounds} interleaved rounds (median, min-max)"
    )
    rates: dict[str, list[float]] = defaultdict(list)
    requests: dict[str, int] = {}
    paired: list[float] = []
    with (
        served_sandbox(time_scale=1.0, rate_limits="off") as sandbox,
        ledger_dir() as d,
        tempfile.TemporaryDirectory(dir="/dev/shm") as shm,
    ):
        url = sandbox.url
        bare_loop(url, api_key("warmup"), trigger_actions(200, salt="w"), CONCURRENCY)
        for round_ in range(sizes.off_rounds):
            bare = bare_loop(
                url, api_key(f"b{round_}"), trigger_actions(count, salt=f"b{round_}"), CONCURRENCY
            )
            rates[BARE].append(count / bare.seconds)
            requests[BARE] = bare.requests
            for i, (name, path, synchronous, stacking) in enumerate(off_variants(d, Path(shm))):
                run = engine_once(
                    url,
                    api_key(f"e{round_}-{i}"),
                    count,
                    [],
                    path.with_suffix(f".{round_}"),
                    synchronous,
                    allow_stacking=stacking,
                )
                rates[name].append(run.progress.triggered / run.seconds)
                requests[name] = run.progress.requests
                if name == PRODUCTION:  # right after the bare loop: the round's pair
                    paired.append(rates[PRODUCTION][-1] / rates[BARE][-1])
        per_commit = {level: commit_cost(d, level) for level in ("FULL", "NORMAL")}
    base = statistics.median(rates[BARE])
    rows = [
        [
            name,
            f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})",
            f"{statistics.median(values) / base:.3f}",
            f"{1000 / statistics.median(values):.3f}",
            str(requests[name]),
        ]
        for name, values in rates.items()
    ]
    print(table(["client", "triggers/s", "x bare", "ms/trigger", "requests"], rows))
    print(
        f"  one WAL commit on this disk: {1000 * per_commit['FULL']:.3f} ms with synchronous=FULL,"
        f" {1000 * per_commit['NORMAL']:.3f} ms with NORMAL; the engine commits each intent"
        " with FULL, its other writes with NORMAL"
    )
    print(
        f"  production engine / bare loop, round by round: "
        f"{', '.join(f'{r:.3f}' for r in paired)} (for information)"
    )
    rate = statistics.median(rates[PRODUCTION])
    verdicts.append(
        Verdict("off: headroom", f"{rate:,.0f} triggers/s", f">= {HEADROOM:g}", rate >= HEADROOM)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about 2 min)")
    parser.add_argument("--scenario", choices=["default", "unknown", "off", "all"], default="all")
    parser.add_argument("--triggers", type=int, help="override N for the chosen scenario")
    parser.add_argument("--time-scale", type=float, help="override the sandbox's time scale")
    parser.add_argument("--rounds", type=int, help="override the limits-off rounds (5)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.triggers:
        sizes = replace(
            sizes,
            default_triggers=args.triggers,
            unknown_triggers=args.triggers,
            off_triggers=args.triggers,
        )
    if args.rounds:
        sizes = replace(sizes, off_rounds=args.rounds)
    if args.time_scale:
        sizes = replace(sizes, default_scale=args.time_scale, unknown_scale=args.time_scale)
    print(f"# bench_apply: {machine()}")
    verdicts: list[Verdict] = []
    scenarios = {"default": scenario_default, "unknown": scenario_unknown, "off": scenario_off}
    for name, scenario in scenarios.items():
        if args.scenario in {name, "all"}:
            scenario(sizes, verdicts)
    print("\n## Targets")
    print(
        table(
            ["target", "figure", "wanted", "result"],
            [[v.name, v.figure, v.target, "pass" if v.ok else "MISS"] for v in verdicts],
        )
    )
    raise SystemExit(0 if all(v.ok for v in verdicts) else 1)


if __name__ == "__main__":
    main()
