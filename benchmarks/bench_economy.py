"""The request economy of ``mlrun apply`` with a state: what a second scheduled apply still asks.

Two real ``mlrun apply`` processes (``python -m runner apply``) of one generated manifest
(``--projects`` projects, one job trigger each) against the served sandbox, sharing one state:
a SQLite file, and a PostgreSQL database created for the benchmark and dropped after it
(``$MLRUN_BENCH_POSTGRES``, default ``postgresql://root@127.0.0.1:5432/postgres``; skipped,
with the reason, where no server answers). Each backend gets its own sandbox and API key.

Limits: the documented ones (10/s, 300/min, 10,000/h) x10. The manifest says
``rateLimits: {perSecond: 100, perMinute: 3000, perHour: 100000}`` and the sandbox, served with
``--time-scale 10`` (jobs live ten times faster), enforces exactly those windows (given as
``100/10s,3000/10min,100000/10h``, which its time scale divides by ten). The sandbox's own
``documented`` policy at ``--time-scale 10`` (10 per 0.1 s, 300 per 6 s) cannot be said in a
manifest, and its headers, in whole seconds, would teach the limiter a window of 10 per second.

1. The first apply, empty state, ``--wait``: one queries read per project (planning), one
   job-list read per project (the in-flight guard), the trigger, then every job followed to its
   end, so the state sees each project's job end. For information: about 3 requests per
   trigger before following (the follower's job-list sweeps are counted with the guard's reads).
2. Once the minute window is empty again (as for an apply scheduled later), the second apply,
   ``--no-wait``, so that every request it makes is planning, guard or trigger. Targets:

   * requests per trigger <= 1.10: every request the sandbox received from it (429s included)
     over the jobs it created;
   * its span against the triggers-only ideal >= 0.90: span is the sandbox's clock from the
     apply's first request to its last trigger; the triggers-only ideal is the span of a third
     apply, once the minute window is empty again, that sends the triggers and nothing else
     (``--offline --allow-stacking``: no count read, no guard read), i.e. what the same engine
     needs for the triggers alone under the same limits.

   For information: the windows' own ideal (the earliest they admit N requests from empty
   windows, ``served.ideal_arrivals``), which no client reaches when a per-second window binds
   (each burst waits for its answers), and the process wall time and start-up.

Figures from the sandbox's ground truth (``GET /_sandbox/truth``: requests per endpoint, 429s,
admitted arrivals per key, the triggers), and the ``--verbose`` lines of each apply.

Run from the repository root::

    python benchmarks/bench_economy.py                  # 500 projects, both states: ~5.5 min
    python benchmarks/bench_economy.py --quick          # 200 projects: ~5 min (2 min idle each)
    python benchmarks/bench_economy.py --backend sqlite --projects 1000

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.ratelimit import Window
from runner.sandbox.truth import key_fingerprint

from served import ORG, Served, api_key, ideal_arrivals, machine, served_sandbox, table

DOCUMENTED = ((10, 1.0), (300, 60.0), (10_000, 3600.0))  # per second, minute, hour
MODELS = "[gpt-4.1-mini, claude-haiku-4-5]"
REQUESTS_PER_TRIGGER = 1.10
IDEAL_SHARE = 0.90
ADMIN_URL_ENV = "MLRUN_BENCH_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"
ENDPOINTS = (
    ("queries", "POST /api/queries/list"),
    ("jobs/list", "POST /api/jobs/list"),
    ("trigger", "POST /api/jobs/trigger"),
    ("GET job", "GET /api/jobs/{id}"),
)
SKIPPED = ("from the state", "reads skipped")  # in the --verbose lines about skipped reads
FOREIGN_ENV = ("CI", "GITHUB_", "GITLAB_", "MLRUN_", "MENTIONLAB_")  # no run key, state or URL


@dataclass(frozen=True)
class Verdict:
    name: str
    figure: str
    target: str
    ok: bool


# -- the manifest and the limits -------------------------------------------------------------------


def windows(scale: float) -> list[Window]:
    """The documented limits ``scale`` times faster, as manifest and sandbox enforce them."""
    return [Window(round(limit * scale), seconds) for limit, seconds in DOCUMENTED]


def sandbox_spec(scale: float) -> str:
    """The sandbox's windows before its time scale divides their lengths by ``scale``."""
    return ",".join(f"{w.limit}/{w.seconds * scale:g}s" for w in windows(scale))


def manifest(projects: int, scale: float) -> str:
    """``projects`` projects, one job trigger each, rate limits ``scale`` x the documented."""
    per_second, per_minute, per_hour = (w.limit for w in windows(scale))
    lines = [
        "version: 1",
        "defaults:",
        f"  organisation: {ORG}",
        "settings:",
        f"  rateLimits: {{perSecond: {per_second}, perMinute: {per_minute}, perHour: {per_hour}}}",
        "projects:",
    ]
    for index in range(projects):
        project = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-economy-{index}")
        lines += [
            f"  - name: project-{index:05d}",
            f"    id: {project}",
            "    jobs:",
            f"      - models: {MODELS}",
        ]
    return "\n".join(lines) + "\n"


# -- the state backends ----------------------------------------------------------------------------


def postgres_unavailable(admin: str) -> str | None:
    """Why no PostgreSQL state can be used here (None: it can)."""
    try:
        import psycopg  # noqa: PLC0415 - optional
    except ImportError:
        return "psycopg is not installed (pip install 'mentionlab-runner[postgres]')"
    try:
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"no PostgreSQL server answers at {admin} ({ADMIN_URL_ENV}): {error}"
    return None


@contextlib.contextmanager
def postgres_state(admin: str) -> Iterator[str]:
    """A new database for the benchmark's state: its URL; dropped afterwards."""
    import psycopg  # noqa: PLC0415 - optional

    name = f"mlrun_bench_economy_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- one apply -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """One ``mlrun apply`` process and what the sandbox saw of it."""

    name: str
    code: int
    output: str
    started: float  # time.monotonic(), the sandbox's clock too (system-wide on Linux)
    ended: float
    paths: dict[str, int]  # requests per endpoint label
    rejected: int  # 429s
    arrivals: list[float]  # admitted requests, in order
    triggers: list[float]  # jobs created (the sandbox's createdMonotonic)

    @property
    def requests(self) -> int:
        return sum(self.paths.values())

    @property
    def created(self) -> int:
        return len(self.triggers)

    @property
    def startup(self) -> float:
        return self.arrivals[0] - self.started if self.arrivals else float("nan")

    @property
    def span(self) -> float:
        """From the apply's first request to its last trigger, on the sandbox's clock."""
        return self.triggers[-1] - self.arrivals[0] if self.triggers and self.arrivals else 0.0

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def said(self) -> list[str]:
        """The ``--verbose`` lines saying which reads the state saved."""
        lines = self.output.splitlines()
        return [line.strip() for line in lines if any(words in line for words in SKIPPED)]

    def admitted_per(self, seconds: float) -> list[int]:
        """Admitted requests in each ``seconds`` from the first (the bursts and the gaps)."""
        if not self.arrivals:
            return []
        counts = [0] * (int((self.arrivals[-1] - self.arrivals[0]) / seconds) + 1)
        for arrival in self.arrivals:
            counts[int((arrival - self.arrivals[0]) / seconds)] += 1
        return counts


@dataclass(frozen=True)
class Seen:
    """The sandbox's ground truth of one key up to a moment, to subtract from a later one."""

    paths: dict[str, int]
    rejected: int
    arrivals: int
    triggers: int

    @classmethod
    def of(cls, truth: dict[str, Any], key: str) -> Seen:
        fingerprint = key_fingerprint(key)
        return cls(
            paths=dict(truth["paths"]),
            rejected=int(truth["rateLimited"].get(fingerprint, 0)),
            arrivals=len(truth["arrivals"].get(fingerprint, [])),
            triggers=len(truth["triggers"]),
        )


def mlrun_apply(
    sandbox: Served, key: str, *, arguments: Sequence[str], cwd: Path, name: str
) -> Apply:
    """Run ``python -m runner apply`` to its end; what the sandbox saw of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env["MENTIONLAB_API_KEY"] = key
    command = [sys.executable, "-m", "runner", "apply", *arguments]
    command += ["--base-url", sandbox.url, "--yes", "--no-progress", "--verbose"]
    before = Seen.of(sandbox.truth(), key)
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    ended = time.monotonic()
    truth = sandbox.truth()
    fingerprint = key_fingerprint(key)
    paths = {
        label: count - before.paths.get(label, 0)
        for label, count in truth["paths"].items()
        if count > before.paths.get(label, 0)
    }
    return Apply(
        name=name,
        code=done.returncode,
        output=done.stdout + done.stderr,
        started=started,
        ended=ended,
        paths=paths,
        rejected=int(truth["rateLimited"].get(fingerprint, 0)) - before.rejected,
        arrivals=sorted(truth["arrivals"].get(fingerprint, []))[before.arrivals :],
        triggers=sorted(t["createdMonotonic"] for t in truth["triggers"][before.triggers :]),
    )


def wait_for_empty_windows(last: float, limits: Sequence[Window], *, longest: float) -> float:
    """Sleep until every window up to ``longest`` seconds holds none of the arrivals up to
    ``last`` (as for an apply scheduled later); the seconds slept."""
    clear = max(w.seconds for w in limits if w.seconds <= longest)
    pause = max(0.0, last + clear + 0.5 - time.monotonic())
    time.sleep(pause)
    return pause


# -- one backend -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    backend: str
    first: Apply
    second: Apply
    triggers_only: Apply  # the same triggers sent alone: the ideal the second is held to
    waited: float
    hour_used: int  # the first apply's requests still in the hour window at the second's start


def both_applies(backend: str, state: str, projects: int, scale: float, work: Path) -> Pair:
    """The first apply (empty state, followed) and the second (``--no-wait``) of one manifest."""
    path = work / f"{backend}.yaml"
    path.write_text(manifest(projects, scale))
    limits = windows(scale)
    key = api_key(f"economy_{backend}")
    common = [str(path), "--state", state, "--report-dir", str(work / "reports")]
    with served_sandbox(time_scale=scale, rate_limits=sandbox_spec(scale)) as sandbox:
        print(f"  {backend}: first apply (empty state, --wait) ...", flush=True)
        first = mlrun_apply(
            sandbox, key, arguments=[*common, "--run-key", "first", "--wait"], cwd=work, name="1st"
        )
        check_ran(first)
        waited = wait_for_empty_windows(first.arrivals[-1], limits, longest=60.0)
        print(f"  {backend}: second apply (--no-wait), after {waited:.1f}s ...", flush=True)
        second = mlrun_apply(
            sandbox,
            key,
            arguments=[*common, "--run-key", "second", "--no-wait"],
            cwd=work,
            name="2nd",
        )
        check_ran(second)
        wait_for_empty_windows(second.arrivals[-1], limits, longest=60.0)
        print(f"  {backend}: the triggers alone (--offline --allow-stacking) ...", flush=True)
        alone = mlrun_apply(
            sandbox,
            key,
            arguments=[*common, "--run-key", "alone", "--no-wait", "--offline", "--allow-stacking"],
            cwd=work,
            name="alone",
        )
        check_ran(alone)
    return Pair(backend, first, second, alone, waited, len(first.arrivals) + first.rejected)


def check_ran(apply: Apply) -> None:
    """An apply that did not run to its end measures nothing: stop with its output."""
    if apply.code not in {0, 1} or not apply.triggers:
        sys.exit(f"the {apply.name} apply exited {apply.code}:\n{apply.output[-4000:]}")


# -- figures ---------------------------------------------------------------------------------------


def before_following(apply: Apply) -> int:
    """Requests other than the follower's job reads (its job-list sweeps cannot be told apart)."""
    return apply.requests - apply.paths.get("GET /api/jobs/{id}", 0)


def row(pair: Pair, apply: Apply, limits: Sequence[Window]) -> list[str]:
    ideal = ideal_arrivals(limits, apply.created)[-1]
    other = apply.requests - sum(apply.paths.get(label, 0) for _, label in ENDPOINTS)
    return [
        pair.backend,
        apply.name,
        *(str(apply.paths.get(label, 0)) for _, label in ENDPOINTS),
        str(other),
        str(apply.rejected),
        str(apply.created),
        f"{before_following(apply) / apply.created:.3f}",
        f"{apply.wall:.2f}",
        f"{apply.startup:.2f}",
        f"{apply.span:.2f}",
        f"{ideal:.2f}",
        f"{ideal / apply.span:.3f}" if apply.span else "-",
    ]


def verdicts_of(pair: Pair, projects: int) -> list[Verdict]:
    second = pair.second
    per_trigger = second.requests / second.created
    ideal = pair.triggers_only.span
    share = ideal / second.span if second.span else 0.0
    created = (pair.first.created, second.created)
    return [
        Verdict(
            f"{pair.backend}: each apply created one job per project",
            f"{created[0]}, {created[1]} of {projects}; exit {pair.first.code}, {second.code}",
            f"{projects}, {projects}; exit 0|1, 0",
            created == (projects, projects) and second.code == 0,
        ),
        Verdict(
            f"{pair.backend}: 2nd apply, requests per trigger",
            f"{per_trigger:.3f} ({second.requests} / {second.created})",
            f"<= {REQUESTS_PER_TRIGGER:.2f}",
            per_trigger <= REQUESTS_PER_TRIGGER,
        ),
        Verdict(
            f"{pair.backend}: 2nd apply, triggers-only span / its span",
            f"{share:.3f} ({ideal:.2f}s / {second.span:.2f}s)",
            f">= {IDEAL_SHARE:.2f}",
            share >= IDEAL_SHARE,
        ),
    ]


HEADERS = (
    "state",
    "apply",
    *(name for name, _ in ENDPOINTS),
    "other",
    "429s",
    "jobs",
    "req/trigger",
    "wall s",
    "start-up s",
    "span s",
    "ideal s",
    "ideal/span",
)


def report(pairs: Sequence[Pair], limits: Sequence[Window]) -> None:
    applies = [(p, a) for p in pairs for a in (p.first, p.second, p.triggers_only)]
    print(table(HEADERS, [row(p, a, limits) for p, a in applies]))
    print(
        "  req/trigger: every request but the follower's job reads (GET job), 429s included, over "
        "the jobs created; the 1st apply's jobs/list holds the guard's reads and the follower's "
        "sweeps. wall: the process; start-up: process start to its first request; span: its "
        "first request to its last trigger (the sandbox's clock); ideal: the earliest the "
        "windows admit that many triggers from empty windows (for information); alone: the "
        "triggers sent with no read (--offline --allow-stacking), the 2nd apply's yardstick."
    )
    for pair in pairs:
        for apply in (pair.first, pair.second, pair.triggers_only):
            for line in apply.said() or ["(no reads skipped)"]:
                print(f"  {pair.backend}, {apply.name} apply --verbose: {line}")
        print(
            f"  {pair.backend}: the 2nd apply started {pair.waited:.1f}s after the 1st ended (the "
            f"minute window empty); the hour window still held {pair.hour_used} of its "
            f"{limits[-1].limit} requests"
        )
        quarters = " ".join(str(count) for count in pair.second.admitted_per(0.25))
        print(f"  {pair.backend}: the 2nd apply's admissions per 0.25 s from its first: {quarters}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=500, help="projects (one trigger each)")
    parser.add_argument("--quick", action="store_true", help="200 projects")
    parser.add_argument("--time-scale", type=float, default=10.0, help="limits and job life x")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    args = parser.parse_args()
    projects = 200 if args.quick else args.projects
    scale = args.time_scale
    limits = windows(scale)
    if projects <= limits[0].limit:  # all admitted at once: an ideal of 0 s
        parser.error(f"--projects must exceed the per-second limit ({limits[0].limit})")
    print(f"# bench_economy: {machine()}")
    print(
        f"{projects} projects, one job trigger each; limits (manifest and sandbox): "
        f"{', '.join(f'{w.limit}/{w.seconds:g}s' for w in limits)}; sandbox --time-scale "
        f"{scale:g} --rate-limits {sandbox_spec(scale)}"
    )
    pairs: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="mlrun-bench-economy-") as name:
        work = Path(name)
        if args.backend in {"sqlite", "all"}:
            pairs.append(both_applies("sqlite", str(work / "state.sqlite"), projects, scale, work))
        if args.backend in {"postgresql", "all"}:
            admin = os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)
            if (why := postgres_unavailable(admin)) is not None:
                print(f"  postgresql: skipped, {why}")
            else:
                with postgres_state(admin) as url:
                    pairs.append(both_applies("postgresql", url, projects, scale, work))
    print()
    report(pairs, limits)
    verdicts = [v for pair in pairs for v in verdicts_of(pair, projects)]
    print("\n## Targets")
    print(
        table(
            ["target", "figure", "wanted", "result"],
            [[v.name, v.figure, v.target, "PASS" if v.ok else "MISS"] for v in verdicts],
        )
    )
    raise SystemExit(0 if verdicts and all(v.ok for v in verdicts) else 1)


if __name__ == "__main__":
    main()
