"""``--state``: a run recorded in PostgreSQL from one directory, read and resumed from another.

Real ``mlrun`` processes. The state's URL is the only thing two directories (two CI machines)
share; its password never reaches the output.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from runner.errors import ConfigError, LedgerError
from runner.redact import safe_url
from runner.store import open_store, run_lease_key

from chaos.chaos_support import compare_triggers, write_manifest
from runs.runs_support import QUICKSTART, mlrun
from subprocesses import free_port, mlrun_command, start_served_sandbox

LEASE_SECONDS = "4"  # the killed process's lease: renewed every second, over 3 to 4 s after


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg  # noqa: PLC0415 - the postgres extra

    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql.encode()).fetchall()


@pytest.mark.slow
def test_a_run_recorded_in_postgres_is_listed_reported_and_refreshed_from_anywhere(
    postgres_url: str, tmp_path: Path
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    args = ("apply", str(QUICKSTART), "--sandbox", "--time-scale", "600")
    applied = mlrun(*args, "--state", postgres_url, cwd=here)
    assert applied.returncode == 0, applied.stderr
    assert f"ledger {postgres_url}" in applied.stderr
    assert not (here / ".mlrun" / "ledger.sqlite").exists()
    assert _rows(postgres_url, "SELECT key FROM leases") == []  # released at the end

    listed = mlrun("runs", "--format", "json", cwd=elsewhere, env={"MLRUN_STATE": postgres_url})
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert (run["status"], run["exitCode"]) == ("finished", 0)
    reported = mlrun("report", run["runId"][:12], "--state", postgres_url, cwd=elsewhere)
    assert reported.returncode == 0, reported.stderr
    assert run["runId"] in reported.stdout
    refreshed = mlrun("status", "last", "--state", postgres_url, cwd=here)  # its sandbox is here
    assert refreshed.returncode == 0, refreshed.stderr


@pytest.mark.slow
def test_killed_on_one_machine_the_run_is_resumed_on_another_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    planned = write_manifest(first / "manifest.yaml", projects=16, salt="pg", per_second=40)
    common = ("--state", postgres_url, "--no-wait", "--settle-grace", "0.5", "-q")
    with start_served_sandbox(tmp_path / "sandbox", seed=3) as sandbox:
        env = {**sandbox.env(), "MLRUN_LEASE_SECONDS": LEASE_SECONDS}
        process = subprocess.Popen(
            mlrun_command("apply", "manifest.yaml", *common),
            cwd=first,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _until(lambda: _count(postgres_url, "attempts") >= 5)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        (run_id,) = (str(row[0]) for row in _rows(postgres_url, "SELECT run_id FROM runs"))
        settled = "SELECT count(*) FROM actions WHERE state NOT IN ('pending', 'in_flight')"
        assert int(str(_rows(postgres_url, settled)[0][0])) < len(planned)  # killed mid-run
        with open_store(postgres_url) as other, pytest.raises(LedgerError) as refused:
            other.lock(run_lease_key(run_id))  # the dead machine's lease has not ended yet
        assert f"(pid {process.pid})" in str(refused.value)

        resumed = mlrun(
            "apply", "--resume", "last", *common, "--lock-timeout", "60", cwd=second, env=env
        )
        assert resumed.returncode == 0, resumed.stderr
        tally = compare_triggers(planned, sandbox.truth()["triggers"])
    assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)


def _count(url: str, table: str) -> int:
    try:
        return int(str(_rows(url, f"SELECT count(*) FROM {table}")[0][0]))
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return 0


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the run did not get there in time"
        time.sleep(0.02)


@pytest.mark.slow
def test_an_unreachable_state_exits_2_before_anything_is_sent_and_hides_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://mlrun:s3cret-pw@127.0.0.1:{free_port()}/runs?sslmode=disable"
    result = mlrun("apply", str(QUICKSTART), "--sandbox", "--state", url, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"cannot open the state {safe_url(url)}:" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "plan:" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob(".mlrun/sandbox/*.json"))  # no run was started


@pytest.mark.parametrize(
    ("login", "database", "message"),
    [
        ("no_such_role:pw-never-shown@", "postgres", 'role "no_such_role" does not exist'),
        ("", "no_such_database", 'database "no_such_database" does not exist'),
    ],
)
def test_a_refused_login_or_an_unknown_database_is_a_ledger_error(
    postgres_url: str, login: str, database: str, message: str
) -> None:
    server = urlsplit(postgres_url).netloc
    url = f"postgresql://{login}{server}/{database}"
    with pytest.raises(LedgerError, match="cannot open the state") as refused:
        open_store(url)
    assert message in str(refused.value)
    assert "pw-never-shown" not in str(refused.value)


@pytest.mark.slow
def test_a_newer_schema_in_postgres_exits_2_saying_upgrade(
    postgres_url: str, tmp_path: Path
) -> None:
    open_store(postgres_url).close()
    _rows(postgres_url, "UPDATE meta SET value='999' WHERE key='schema_version' RETURNING 1")
    result = mlrun("runs", "--state", postgres_url, cwd=tmp_path)
    assert result.returncode == 2
    assert "upgrade mentionlab-runner" in result.stderr


def test_without_psycopg_a_postgres_state_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "runner.store.postgres", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'mentionlab-runner\[postgres\]'"):
        open_store("postgres://db.example/runs")


@pytest.mark.parametrize("spec", ["mysql://db.example/runs", "sqlite:///tmp/x"])
def test_a_url_of_another_database_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="postgresql:// URL or the path of a SQLite ledger"):
        open_store(spec)


def test_a_lease_length_that_is_not_a_number_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLRUN_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="MLRUN_LEASE_SECONDS='soon'"):
        open_store("postgresql://127.0.0.1:1/x")
