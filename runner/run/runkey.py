"""Run keys: the name a run keeps across machines, so a re-run continues it instead of paying again.

``--run-key KEY`` names a run; in CI the key defaults to one derived from the provider's
environment, stable across a re-run of the same job and shared by the shards of one job:

* GitHub Actions: ``github:<repository>:<run id>:<job>``. ``GITHUB_RUN_ID`` is kept by
  "Re-run jobs" (``GITHUB_RUN_ATTEMPT`` grows), and a matrix's legs share ``GITHUB_JOB``.
* GitLab CI: ``gitlab:<project path>:<pipeline id>:<job name>``. A retried job keeps its
  pipeline and name; the `` 2/4`` that ``parallel:`` adds to a job's name is left out, so its
  parallel jobs share the key.

The shard (``--shard I/N``) is not part of the key: it names the part of the run a job applies.
Anywhere else, and with ``--run-key ''``, a run has no key and each apply starts a new run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

RUN_KEY_ENV = "MLRUN_RUN_KEY"
_PARALLEL_SUFFIX = re.compile(r"\s+\d+/\d+$")


def run_key(given: str | None, env: Mapping[str, str]) -> str | None:
    """The run's key: ``given`` (``--run-key``), ``$MLRUN_RUN_KEY``, the CI job's, or None.

    An empty ``given`` asks for no key, even in CI.
    """
    if given is not None:
        return given.strip() or None
    if env.get(RUN_KEY_ENV):
        return env[RUN_KEY_ENV].strip() or None
    return ci_run_key(env)


def ci_run_key(env: Mapping[str, str]) -> str | None:
    """The key the CI provider's environment gives the running job, if it is a known one."""
    if env.get("GITHUB_ACTIONS") == "true":
        parts = (env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID"), env.get("GITHUB_JOB"))
        if all(parts):
            return "github:" + ":".join(str(part) for part in parts)
    if env.get("GITLAB_CI") == "true":
        name = _PARALLEL_SUFFIX.sub("", env.get("CI_JOB_NAME", ""))
        parts = (env.get("CI_PROJECT_PATH"), env.get("CI_PIPELINE_ID"), name)
        if all(parts):
            return "gitlab:" + ":".join(str(part) for part in parts)
    return None


def lease_key(key: str, part: str) -> str:
    """The lock of one part of a keyed run: one writer per part, parts side by side."""
    return f"run:{key}:{part}"
