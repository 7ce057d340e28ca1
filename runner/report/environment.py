"""Where a run came from: the commit and the CI run, read from the usual CI variables.

Pure: the environment is passed in as a mapping (the CLI passes ``os.environ``), never read here.
Each provider is one row of :data:`_PROVIDERS`; the first whose marker variable is set wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.redact import safe_url

Env = Mapping[str, str]


@dataclass(frozen=True)
class CiInfo:
    """The CI system, commit and run a report was produced in, and who started it.

    Outside CI only ``actor`` may be known: the local user.
    """

    provider: str | None = None
    commit: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    job: str | None = None  # the CI job's name
    actor: str | None = None  # who started the CI run, or the local user

    def to_json(self) -> dict[str, Any]:
        """The ``run.ci`` object of the report's JSON form."""
        return {
            "provider": self.provider,
            "commit": self.commit,
            "runId": self.run_id,
            "runUrl": self.run_url,
            "job": self.job,
            "actor": self.actor,
        }

    def started_by(self) -> str | None:
        """``octocat (github job apply)``, ``alice``: who or which CI job started the run."""
        where = " ".join(part for part in (self.provider, self.job and f"job {self.job}") if part)
        if self.actor and where:
            return f"{self.actor} ({where})"
        return self.actor or where or None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CiInfo:
        """The inverse of :meth:`to_json` (for CI info stored in a run's ledger metadata)."""
        return cls(
            provider=_text(data.get("provider")),
            commit=_text(data.get("commit")),
            run_id=_text(data.get("runId")),
            run_url=_text(data.get("runUrl")),
            job=_text(data.get("job")),
            actor=_text(data.get("actor")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _github_url(env: Env) -> str | None:
    server, repository, run = (
        env.get("GITHUB_SERVER_URL"),
        env.get("GITHUB_REPOSITORY"),
        env.get("GITHUB_RUN_ID"),
    )
    if not (server and repository and run):
        return None
    return f"{server.rstrip('/')}/{repository}/actions/runs/{run}"


def _var(name: str) -> Callable[[Env], str | None]:
    return lambda env: env.get(name) or None


def _first(*names: str) -> Callable[[Env], str | None]:
    return lambda env: next((env[n] for n in names if env.get(n)), None)


# (provider, marker variable, commit, run id, run URL)
_PROVIDERS: tuple[
    tuple[
        str,
        str,
        Callable[[Env], str | None],
        Callable[[Env], str | None],
        Callable[[Env], str | None],
    ],
    ...,
] = (
    ("github", "GITHUB_SHA", _var("GITHUB_SHA"), _var("GITHUB_RUN_ID"), _github_url),
    (
        "gitlab",
        "CI_COMMIT_SHA",
        _var("CI_COMMIT_SHA"),
        _var("CI_PIPELINE_ID"),
        _var("CI_PIPELINE_URL"),
    ),
    (
        "buildkite",
        "BUILDKITE",
        _var("BUILDKITE_COMMIT"),
        _first("BUILDKITE_BUILD_NUMBER", "BUILDKITE_BUILD_ID"),
        _var("BUILDKITE_BUILD_URL"),
    ),
    (
        "circleci",
        "CIRCLE_SHA1",
        _var("CIRCLE_SHA1"),
        _first("CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
        _var("CIRCLE_BUILD_URL"),
    ),
    ("jenkins", "JENKINS_URL", _var("GIT_COMMIT"), _var("BUILD_ID"), _var("BUILD_URL")),
)


# (provider, its job's name, who started the CI run)
_WHO: dict[str, tuple[str, str]] = {
    "github": ("GITHUB_JOB", "GITHUB_ACTOR"),
    "gitlab": ("CI_JOB_NAME", "GITLAB_USER_LOGIN"),
    "buildkite": ("BUILDKITE_LABEL", "BUILDKITE_BUILD_CREATOR"),
    "circleci": ("CIRCLE_JOB", "CIRCLE_USERNAME"),
    "jenkins": ("JOB_NAME", "BUILD_USER_ID"),
}
_LOCAL_USER = ("USER", "USERNAME", "LOGNAME")

CI_VARIABLES = (
    "GITHUB_SHA",
    "GITHUB_RUN_ID",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "CI_COMMIT_SHA",
    "CI_PIPELINE_ID",
    "CI_PIPELINE_URL",
    "BUILDKITE",
    "BUILDKITE_COMMIT",
    "BUILDKITE_BUILD_NUMBER",
    "BUILDKITE_BUILD_ID",
    "BUILDKITE_BUILD_URL",
    "CIRCLE_SHA1",
    "CIRCLE_WORKFLOW_ID",
    "CIRCLE_BUILD_NUM",
    "CIRCLE_BUILD_URL",
    "JENKINS_URL",
    "GIT_COMMIT",
    "BUILD_ID",
    "BUILD_URL",
    *(name for pair in _WHO.values() for name in pair),
)
"""Every variable :func:`ci_info` reads: what a run should record in its metadata."""


def ci_info(env: Env) -> CiInfo:
    """The CI provider, commit and run of ``env``; an empty :class:`CiInfo` outside CI."""
    for provider, marker, commit, run_id, run_url in _PROVIDERS:
        if env.get(marker):
            url = run_url(env)
            job, actor = _WHO[provider]
            return CiInfo(
                provider,
                commit(env),
                run_id(env),
                None if url is None else safe_url(url),
                job=env.get(job) or None,
                actor=env.get(actor) or None,
            )
    return CiInfo(actor=_first(*_LOCAL_USER)(env))
