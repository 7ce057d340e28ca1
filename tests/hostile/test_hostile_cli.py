"""Hostile manifests through the real CLI: exit 2 fast, file and line, no traceback, no request.

Every case of the corpus (tests/manifest/invalid and the generated hostile cases of
:mod:`hostile_corpus`: bombs, deep nesting, huge and endless files, binary, wrong encodings,
object-constructing tags, duplicate keys in every spelling, secrets, missing variables) runs as
``mlrun apply FILE --sandbox`` in a fresh directory: it must exit 2 within the bound (interpreter
start included), name the file (and the line when the problem has one), print no traceback, and
create no ledger (nothing was run). A representative subset runs against a served sandbox
instead, whose ground truth must show zero requests.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos.chaos_support import clean_env, run_mlrun, start_served_sandbox
from figures import record
from hostile.hostile_corpus import Case, build_corpus

pytestmark = pytest.mark.chaos

BOUND_SECONDS = 3.0  # one second of work, with slack for interpreter start and a busy CI box
SERVED_SUBSET = (
    "merge-bomb-455-bytes",
    "billion-laughs-9x9",
    "nesting-5000-flow-lists",
    "fifty-megabytes",
    "python-object-apply-tag",
    "dup-key-hex-int",
    "secret-in-label",
    "missing-variable-in-organisation",
    "utf16-le-bom",
    "symlink-to-dev-zero",
    "unknown-model-typo",
    "syntax-tab",
)


@dataclass(frozen=True)
class Outcome:
    case: Case
    code: int
    stdout: str
    stderr: str
    seconds: float
    ledger_created: bool


def _apply(
    case: Case,
    workdir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Outcome:
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    try:
        result = run_mlrun(
            "apply", str(case.path), *extra, cwd=workdir, env=env or clean_env(), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        hung = f"(killed after {timeout:g} s: it hung)"
        return Outcome(case, -1, "", hung, timeout, ledger_created=False)
    seconds = time.perf_counter() - started
    created = (workdir / ".mlrun").exists() or (workdir / "mlrun-reports").exists()
    return Outcome(case, result.returncode, result.stdout, result.stderr, seconds, created)


def _check(outcome: Outcome) -> list[str]:
    """What is wrong with one outcome (empty: as it must be)."""
    case, err = outcome.case, outcome.stderr
    problems = []
    if outcome.code != 2:
        problems.append(f"exit {outcome.code}")
    if "Traceback" in err + outcome.stdout:
        problems.append("a traceback")
    if str(case.path) not in err:
        problems.append("the file is not named")
    if case.has_line and f"{case.path}:" not in err:
        problems.append("no line")
    if case.expect and case.expect not in err:
        problems.append(f"no {case.expect!r} in the message")
    if outcome.seconds >= BOUND_SECONDS:
        problems.append(f"took {outcome.seconds:.2f} s")
    if outcome.ledger_created:
        problems.append("a ledger or report was created")
    return [f"{case.name}: {p} | {err[:300]!r}" for p in problems]


def test_every_hostile_manifest_is_refused_fast_clearly_and_before_any_run(
    tmp_path: Path, chaos_full: bool
) -> None:
    corpus = build_corpus(tmp_path / "corpus")
    assert len(corpus) >= 60
    # Full: every case, one at a time, so that each time is measured alone (the figures in the
    # docs). Reduced: every third case (a fixed third, each kind of hostility represented), two
    # at a time on CI's two cores, under the same bound.
    cases = corpus if chaos_full else corpus[::3]
    with ThreadPoolExecutor(max_workers=1 if chaos_full else 2) as pool:
        outcomes = list(
            pool.map(lambda c: _apply(c, tmp_path / "work" / c.name, "--sandbox"), cases)
        )
    problems = [p for outcome in outcomes for p in _check(outcome)]
    times = sorted(o.seconds for o in outcomes)
    record(
        "hostile-manifests",
        cases=len(cases),
        exit_2=sum(o.code == 2 for o in outcomes),
        tracebacks=sum("Traceback" in o.stderr for o in outcomes),
        median_seconds=round(statistics.median(times), 3),
        max_seconds=round(times[-1], 3),
        workers=1 if chaos_full else 2,
        slowest=max(outcomes, key=lambda o: o.seconds).case.name,
    )
    assert not problems, "\n".join(problems)


def test_hostile_manifests_send_no_request_to_a_served_api(tmp_path: Path) -> None:
    cases = {c.name: c for c in build_corpus(tmp_path / "corpus")}
    with start_served_sandbox(tmp_path / "sandbox", seed=0) as sandbox:
        outcomes = [
            _apply(cases[name], tmp_path / "work" / name, env=sandbox.env())
            for name in SERVED_SUBSET
        ]
        truth = sandbox.truth()
    problems = [p for outcome in outcomes for p in _check(outcome)]
    assert not problems, "\n".join(problems)
    assert truth["requests"] == 0
    assert truth["triggers"] == []


@pytest.mark.skipif(sys.platform != "linux", reason="/dev/zero and os.mkfifo as on Linux")
def test_a_fifo_as_manifest_does_not_hang(tmp_path: Path) -> None:
    import os  # noqa: PLC0415

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    case = Case("fifo", fifo, has_line=False)
    outcome = _apply(case, tmp_path / "work", "--sandbox", timeout=BOUND_SECONDS + 1)
    # A FIFO would block open() forever: the loader refuses anything but a regular file.
    assert outcome.code == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.seconds < BOUND_SECONDS
