"""The API key leaks nowhere: not in output, reports, the ledger, logs, error messages or reprs.

A recognisable canary key is set in the environment of every command a user runs (validate,
schema, plan, apply on the in-process and on a served sandbox with faults, a killed apply and its
resume, runs, status, report, the sandbox's own output) and of the error paths (a refused base
URL, a closed port, a 401 from a strict world, the key pasted into a manifest). Then every byte
they wrote is scanned: stdout, stderr, each file under the working directory (reports, the
ledger, its -wal and -shm, the lock file) and the served sandbox's log.

A server that echoes the key back (the sandbox's ``echo_key``, in its 400 and 401 bodies) is the
harder case: keys with the characters a pattern cannot mask (``.+/=``, another prefix) must be
removed by value, and a key no HTTP header can carry is refused without being printed.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from runner.api import MentionLabClient
from runner.errors import ApiError, AuthError, MlrunError, TransportError
from runner.sandbox import Sandbox, SandboxConfig, World

from chaos.chaos_support import (
    ServedSandbox,
    clean_env,
    free_port,
    mlrun_command,
    run_mlrun,
    start_served_sandbox,
    write_manifest,
)
from figures import record

CANARY = "ml_live_" + "SECRETcanary" + "7f3a9c2e5b1d4086"
MARKERS = (CANARY.encode(), b"SECRETcanary", CANARY.encode("utf-16-le"))
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
OTHER_KEY = "ml_live_" + "someoneelse0123456789"

STRICT_WORLD = f"""
organisations:
  - id: 01234567-89ab-cdef-0123-456789abcdef
    name: Acme
    apiKeys: [{OTHER_KEY}]
    projects:
      - {{id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b, name: Shoes, queries: 2}}
"""


def _leaks(data: bytes) -> list[bytes]:
    return [marker for marker in MARKERS if marker in data]


class Transcript:
    """Every output of every command, for one scan at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.outputs: list[tuple[str, bytes]] = []
        self.codes: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def run(self, label: str, *args: str, env: dict[str, str], timeout: float = 120) -> int:
        started = time.monotonic()
        result = run_mlrun(*args, cwd=self.workdir, env=env, timeout=timeout)
        self.seconds[label] = round(time.monotonic() - started, 2)
        self.outputs.append((f"{label} stdout", result.stdout.encode()))
        self.outputs.append((f"{label} stderr", result.stderr.encode()))
        self.codes[label] = result.returncode
        assert "Traceback" not in result.stderr, f"{label}: {result.stderr}"
        return result.returncode

    def files(self, *extra: Path) -> Iterator[tuple[str, bytes]]:
        for path in [*sorted(self.workdir.rglob("*")), *extra]:
            if path.is_file() and not path.is_symlink():
                yield str(path), path.read_bytes()

    def scan(self, *extra: Path) -> list[str]:
        found = []
        for where, data in [*self.outputs, *self.files(*extra)]:
            found += [f"{where}: {marker!r}" for marker in _leaks(data)]
        return found


def _has_run(ledger: Path) -> bool:
    """A run is recorded in ``ledger`` (the file itself exists from the lock on)."""
    if not ledger.exists():
        return False
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return bool(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return False


def _kill_then_resume(transcript: Transcript, sandbox: ServedSandbox, manifest: Path) -> None:
    env = {**sandbox.env(CANARY)}
    args = ["--state-dir", "killed", "--report-dir", "killed-reports", "--settle-grace", "0.5"]
    args.append("--no-wait")
    process = subprocess.Popen(
        mlrun_command("apply", str(manifest), *args),
        cwd=transcript.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90  # an upper bound: planning against the faulty sandbox
        while not _has_run(transcript.workdir / "killed" / "ledger.sqlite"):
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)
        time.sleep(0.3)
    finally:  # never leave the apply running, whatever failed above
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate()
    transcript.outputs += [("killed apply stdout", out), ("killed apply stderr", err)]
    assert transcript.run("resume", "apply", "--resume", *args, env=env) in {0, 1}


@pytest.fixture
def faulty_served(tmp_path: Path) -> Iterator[ServedSandbox]:
    # Lost responses by reset only: a held connection would only make the test wait.
    faults = "error_502=0.1,error_503=0.1,lost_response=0.05,lost_response_kind=reset,"
    faults += "malformed=0.05,drop_before=0.05"
    with start_served_sandbox(
        tmp_path / "sandbox",
        seed=5,
        time_scale=200.0,
        extra=("--faults", faults, "--log-level", "debug"),
    ) as sandbox:
        yield sandbox


@pytest.mark.slow
@pytest.mark.chaos
def test_the_api_key_appears_in_no_output_file_or_log(
    tmp_path: Path, faulty_served: ServedSandbox
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    transcript = Transcript(workdir)
    env = clean_env(MENTIONLAB_API_KEY=CANARY)
    manifest = workdir / "manifest.yaml"
    write_manifest(manifest, projects=6, salt="secrets")
    quick = str(QUICKSTART)

    transcript.run("validate", "validate", quick, env=env)
    transcript.run("schema", "schema", env=env)
    transcript.run("plan", "plan", quick, "--sandbox", env=env)
    transcript.run("apply sandbox", "apply", quick, "--sandbox", "--time-scale", "600", env=env)
    served_env = faulty_served.env(CANARY)
    served_args = ("--settle-grace", "0.5", "--no-wait")  # following is scanned via --sandbox
    transcript.run("apply served", "apply", str(manifest), *served_args, env=served_env)
    transcript.run("runs", "runs", env=env)
    transcript.run("status", "status", "last", env=served_env)
    transcript.run("report", "report", "show", "last", env=env)
    _kill_then_resume(transcript, faulty_served, manifest)

    # Error paths: each says what is wrong without the key.
    remote = {**env, "MENTIONLAB_BASE_URL": "http://api.example.com"}
    assert transcript.run("plain http", "apply", quick, env=remote) == 2
    closed = {**env, "MENTIONLAB_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    transcript.run("closed port", "apply", quick, "--state-dir", "closed", env=closed, timeout=180)
    inputs = tmp_path / "inputs"  # written by the test, with the key in them: not scanned
    inputs.mkdir()
    pasted = inputs / "pasted.yaml"
    pasted.write_text(QUICKSTART.read_text().replace("acme-eu\n", f"acme-eu\n    # {CANARY}\n"))
    assert transcript.run("key in manifest", "apply", str(pasted), "--sandbox", env=env) == 2
    from_env = inputs / "from-env.yaml"
    from_env.write_text(
        QUICKSTART.read_text().replace(
            "labels: {team: growth, region: eu}", "labels: {k: ${MENTIONLAB_API_KEY}}"
        )
    )
    assert transcript.run("key via ${}", "validate", str(from_env), env=env) == 2

    leaks = transcript.scan(faulty_served.log)
    assert not leaks, (leaks, transcript.seconds)
    assert transcript.codes["apply sandbox"] == 0
    assert transcript.codes["apply served"] in {0, 1}


@pytest.mark.slow
@pytest.mark.chaos
def test_a_401_from_a_strict_world_does_not_echo_the_key(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(STRICT_WORLD)
    workdir = tmp_path / "work"
    workdir.mkdir()
    transcript = Transcript(workdir)
    with start_served_sandbox(tmp_path / "sandbox", seed=1, extra=("--world", str(world))) as sb:
        code = transcript.run("401", "apply", str(QUICKSTART), env=sb.env(CANARY))
        log = sb.log
    assert code == 5  # FATAL_API: the API refused the run as a whole
    assert not transcript.scan(log)


def _strict_sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(world=World.from_mapping(yaml.safe_load(STRICT_WORLD))))


@pytest.mark.anyio
async def test_reprs_of_the_client_and_of_its_errors_hide_the_key() -> None:
    sandbox = _strict_sandbox()
    client = MentionLabClient(
        api_key=CANARY, base_url="https://api.mentionlab.io", transport=sandbox.transport()
    )
    texts = [repr(client), str(client)]
    async with client:
        with pytest.raises(AuthError) as refused:
            await client.trigger_job(
                project_id="3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
                organisation=None,
                models=("gpt-5-mini",),
                execution_count=1,
            )
    errors: list[BaseException] = [refused.value]
    async with MentionLabClient(
        api_key=CANARY, base_url=f"http://127.0.0.1:{free_port()}"
    ) as closed:
        with pytest.raises((TransportError, ApiError)) as unreachable:
            await closed.list_jobs(
                project_id="3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", organisation=None, page=1
            )
        errors.append(unreachable.value)
    for error in errors:
        assert isinstance(error, MlrunError)
        chain: BaseException | None = error
        while chain is not None:
            texts += [repr(chain), str(chain), repr(vars(chain)), repr(chain.args)]
            chain = chain.__cause__ or chain.__context__
    leaks = [text for text in texts if "SECRETcanary" in text]
    assert not leaks, leaks


# -- a server that echoes the key --------------------------------------------------------------

LISTED = "ml_live_" + "Qx7dot.Vw3plus+Kz9slash/Jm4eq=="  # the strict world knows this one
UNLISTED = "ml_live_" + "Hb5dot.Lp8plus+Tr2slash/Gy6eq="
FOREIGN = "sk." + "Wd4base.Mn1plus+Zc3slash/Ry7eq=="  # not an ml_live_ key at all
NON_ASCII = "ml_live_" + "Ué9nonascii"
ECHO_WORLD = f"""
organisations:
  - id: 01234567-89ab-cdef-0123-456789abcdef
    name: Acme
    apiKeys: ["{LISTED}"]
    projects:
      - {{id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b, name: acme-eu, queries: 2}}
      - {{id: 7d2e9b10-4c3a-4f5e-9a8b-1c2d3e4f5a6b, name: acme-us, queries: 2}}
      - {{id: c0ffee00-1234-4abc-8def-0123456789ab, name: globex, queries: 2}}
"""


def _pieces(key: str) -> list[bytes]:
    """The key, its part after the prefix, and each run of it between punctuation."""
    tail = key.split("_", 2)[-1] if key.startswith("ml_") else key
    runs = [run for run in re.split(r"[._+/=]", tail) if len(run) >= 4]
    return [key.encode(), tail.encode(), *(run.encode() for run in runs)]


@pytest.mark.slow
@pytest.mark.chaos
def test_keys_echoed_in_400_and_401_bodies_reach_no_output_report_or_ledger(
    tmp_path: Path,
) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(ECHO_WORLD)
    workdir = tmp_path / "work"
    workdir.mkdir()
    transcript = Transcript(workdir)
    quick = str(QUICKSTART)
    reports: tuple[str, ...] = ("--report-dir", "reports")
    reports += tuple(
        f"--report-format={kind}" for kind in ("json", "markdown", "junit", "text", "html")
    )
    extra = ("--world", str(world), "--faults", "echo_key=1,error_400=1,target=triggers")
    with start_served_sandbox(tmp_path / "sandbox", seed=3, extra=extra) as sandbox:
        # Every trigger refused with a 400 that quotes the key: each action fails, the run goes on.
        rejected = sandbox.env(LISTED)
        assert transcript.run("400", "apply", quick, *reports, env=rejected) == 1
        assert transcript.run("runs", "runs", env=rejected) == 0
        transcript.run("report", "report", "show", "last", env=rejected)
        transcript.run("status", "status", "last", env=rejected)
        truth = sandbox.truth()
        sandbox.configure(faults={"echo_key": 1})
        for label, key in (("401 ml_live_", UNLISTED), ("401 foreign", FOREIGN)):
            state = ("--state-dir", f"state-{len(transcript.codes)}")
            assert transcript.run(label, "apply", quick, *state, env=sandbox.env(key)) == 5
        assert transcript.run("non-ASCII", "apply", quick, env=sandbox.env(NON_ASCII)) == 2
        assert transcript.codes["non-ASCII"] == 2
        quoted_url = {**sandbox.env(LISTED), "MENTIONLAB_BASE_URL": f"{sandbox.url}/?key={LISTED}"}
        assert transcript.run("key in the URL", "apply", quick, env=quoted_url) == 2
        selected = ("--select", LISTED, "--state-dir", "selected")
        assert transcript.run("key as --select", "apply", quick, *selected, env=rejected) == 2

    assert truth["faults"]["echo_key"] >= 3  # the server did echo, on every trigger
    assert (workdir / "reports").is_dir()
    assert list(workdir.rglob("ledger.sqlite"))
    pieces = [piece for key in (LISTED, UNLISTED, FOREIGN, NON_ASCII) for piece in _pieces(key)]
    pieces += [NON_ASCII.encode("latin-1", "replace")]
    leaks = [
        f"{where}: {piece!r}"
        for where, data in [*transcript.outputs, *transcript.files()]
        for piece in pieces
        if piece in data
    ]
    assert not leaks, leaks
    read = len(transcript.outputs) + sum(1 for _ in transcript.files())
    record("keys echoed in 400/401 bodies", keys=4, outputs_and_files=read, leaks=0)
    stderr = dict(transcript.outputs)
    assert b"Invalid API key ml_live_***" in stderr["401 ml_live_ stderr"]
    assert b"Validation failed; API key: ml_live_***" in stderr["400 stderr"] + b"".join(
        data for _, data in transcript.files()
    )


@pytest.mark.slow
def test_click_s_own_usage_errors_mask_the_key(tmp_path: Path) -> None:
    key = "ml_live_" + "odd.key+/=" + "0123456789"
    for args in (("apply", f"--{key}", "m.yaml"), ("apply", "--select", key, "--nope")):
        result = run_mlrun(*args, cwd=tmp_path, env={"MENTIONLAB_API_KEY": key})
        assert result.returncode == 2, result.stderr
        assert "No such option" in result.stderr
        assert key not in result.stderr + result.stdout
        assert "odd.key" not in result.stderr + result.stdout
