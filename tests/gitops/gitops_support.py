"""Helpers for the GitOps tests: the CLI as a user runs it, and scripted git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

from subprocesses import PRIVATE, run_mlrun

ROOT = Path(__file__).resolve().parents[2]
ORG = "01234567-89ab-cdef-0123-456789abcdef"
SECRET = "ml_live_" + "gitopsSECRETvalue123"

HEADER = f"""version: 1
defaults:
  organisation: {ORG}
  executionCount: 1
"""


def mlrun(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` in ``cwd``; no MENTIONLAB_/MLRUN_/GITHUB_ variable leaks in."""
    return run_mlrun(*args, cwd=cwd, env=env, timeout=timeout, drop=(*PRIVATE, "GITHUB_"))


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (a test repository under tmp_path) and return its output."""
    completed = subprocess.run(
        ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=CI", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return completed.stdout


def init_repo(repo: Path) -> Path:
    """An empty git repository on branch main."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in ``repo``; the new commit's id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def project(
    name: str,
    index: int,
    *,
    models: str = "core",
    count: int = 1,
    labels: str = "{team: a}",
) -> str:
    """One project entry of a manifest, with a stable id derived from ``index``."""
    return (
        f"  - name: {name}\n"
        f"    id: 3f1c2a4e-5b6d-4e7f-8a9b-{index:012d}\n"
        f"    labels: {labels}\n"
        f"    jobs:\n"
        f"      - models: {models}\n"
        f"        executionCount: {count}\n"
    )


def manifest(*projects: str, core: str = "[gpt-5-mini, claude-haiku-4-5]", budget: str = "") -> str:
    """A whole manifest: the header, a ``core`` model set, and ``projects``."""
    settings = f"settings:\n  budget: {{maxExecutions: {budget}}}\n" if budget else ""
    body = "".join(projects) if projects else ""
    return f"{HEADER}{settings}modelSets:\n  core: {core}\nprojects:\n{body}"
