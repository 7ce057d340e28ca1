"""GitHub Actions output for ``mlrun plan`` and ``mlrun apply``: annotations and the step summary.

Annotations are workflow commands (``::error file=…,line=…,title=…::message``) that GitHub shows
inline on the pull request's diff, at the manifest entry concerned: the trigger's own lines for an
action (``jobs[i]`` or ``cachedJobs``), the project's for an unreachable project, the manifest file
for a budget refusal. Problems become annotations:

============================ ========= ======================================================
what                         level     where
============================ ========= ======================================================
FAILED, UNKNOWN action       error     the trigger's entry (``SourceRef``), else the project's
PARTIAL, TIMEOUT, SKIPPED,   warning   the same
NOT_ATTEMPTED action
unreachable project          error     the project's entry
budget refusal               error     the first manifest file
the API refused the run      error     (no file)
============================ ========= ======================================================

GitHub shows at most 10 errors and 10 warnings per step, so each level is cut to
:data:`MAX_PER_LEVEL`, the last line saying how many more the report holds. Messages and
property values are escaped as the Actions toolkit does (``%``, CR, LF; and ``:`` and ``,`` in
properties); every text passes through :func:`runner.redact.redact`, so no key leaks.

The step summary: when ``GITHUB_STEP_SUMMARY`` names a file, the run's (or the plan's) Markdown
is appended to it; the Markdown renderers already keep it under GitHub's comment size.

Nothing here prints: the CLI writes what these functions return.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from runner.errors import MlrunError, ReportError
from runner.manifest.model import Manifest, SourceRef
from runner.redact import redact
from runner.report.model import ActionResult, Outcome, Report

# runner.plan.remote and runner.run.apply import the HTTP client: not for --offline.
if TYPE_CHECKING:
    from runner.plan.planfile import PlanFile
    from runner.plan.remote import ProjectProblem
    from runner.run.apply import ApplyResult

Level = Literal["error", "warning", "notice"]
MAX_PER_LEVEL = 10  # GitHub displays 10 error and 10 warning annotations per step
ANNOTATION_MODES = ("auto", "github", "none")
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

_LEVELS: Mapping[Outcome, Level] = {
    Outcome.FAILED: "error",
    Outcome.UNKNOWN: "error",
    Outcome.TIMEOUT: "warning",
    Outcome.PARTIAL: "warning",
    Outcome.NOT_ATTEMPTED: "warning",
    Outcome.SKIPPED: "warning",
}
_HINTS: Mapping[Outcome, str] = {
    Outcome.UNKNOWN: "the trigger may or may not have created a job: check the project's jobs "
    "before sending it again (`mlrun apply --resume` settles what it can)",
    Outcome.TIMEOUT: "still running when following stopped: `mlrun apply --resume` follows it",
    Outcome.NOT_ATTEMPTED: "the run stopped before sending it: `mlrun apply --resume` sends it",
}


def escape_data(text: str) -> str:
    """Escape a workflow command's message, as the GitHub Actions toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    """One workflow annotation."""

    level: Level
    title: str
    message: str
    source: SourceRef | None = None
    file: str | None = None  # when there is a file but no position

    def render(self, env: Mapping[str, str] | None = None) -> str:
        """The workflow command line, escaped and redacted."""
        properties: list[str] = []
        file = self.source.file if self.source is not None else self.file
        if file:
            properties.append(f"file={escape_property(workspace_relative(file, env or {}))}")
        if self.source is not None:
            properties += [f"line={self.source.line}", f"col={self.source.column}"]
        properties.append(f"title={escape_property(redact(self.title))}")
        return f"::{self.level} {','.join(properties)}::{escape_data(redact(self.message))}"


def workspace_relative(file: str, env: Mapping[str, str]) -> str:
    """``file`` relative to ``GITHUB_WORKSPACE`` when it lies inside it (GitHub needs that)."""
    workspace = env.get("GITHUB_WORKSPACE")
    path = Path(file)
    if workspace and path.is_absolute() and path.is_relative_to(workspace):
        return path.relative_to(workspace).as_posix()
    return file


def annotations_wanted(mode: str, env: Mapping[str, str]) -> bool:
    """``github`` always, ``none`` never, ``auto`` when running in GitHub Actions."""
    if mode == "auto":
        return env.get("GITHUB_ACTIONS") == "true"
    return mode == "github"


# -- where entries were written -----------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where each project and each trigger was written in the manifest."""

    projects: Mapping[str, SourceRef] = field(default_factory=dict)
    actions: Mapping[str, SourceRef] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @classmethod
    def of(cls, manifest: Manifest) -> Sources:
        """The positions of every project and trigger of ``manifest``."""
        projects: dict[str, SourceRef] = {}
        actions: dict[str, SourceRef] = {}
        for project in manifest.projects:
            if project.source is not None:
                projects[project.name] = project.source
            for index, job in enumerate(project.jobs):
                if job.source is not None:
                    actions[f"{project.name}/jobs/{index}"] = job.source
            cached = project.cached_jobs
            if cached is not None and cached.source is not None:
                actions[f"{project.name}/cachedJobs"] = cached.source
        return cls(projects, actions, manifest.files)

    def of_action(self, key: str, project: str) -> SourceRef | None:
        """The trigger's own entry, else its project's."""
        return self.actions.get(key) or self.projects.get(project)


def load_sources(
    paths: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> Sources:
    """The positions in the manifest at ``paths``; empty when it cannot be loaded (no positions
    is better than no annotation)."""
    if not paths:
        return Sources()
    from runner.manifest import load_manifest  # noqa: PLC0415 - yaml and jsonschema, lazily

    try:
        return Sources.of(load_manifest(paths, env=env).manifest)
    except MlrunError:
        return Sources(files=tuple(os.fspath(p) for p in paths))


# -- what becomes an annotation -----------------------------------------------------------------


def action_annotation(action: ActionResult, sources: Sources) -> Annotation | None:
    """An annotation for an action that did not end as asked (None for OK and RUNNING)."""
    level = _LEVELS.get(action.outcome)
    if level is None:
        return None
    lines = [action.reason]
    if action.done.job_ids:
        lines.append(f"job: {', '.join(action.done.job_ids)}")
    if action.outcome in _HINTS:
        lines.append(f"hint: {_HINTS[action.outcome]}")
    return Annotation(
        level,
        f"mlrun apply: {action.key} {action.outcome}",
        "\n".join(lines),
        sources.of_action(action.key, action.project),
    )


def report_annotations(report: Report, sources: Sources) -> list[Annotation]:
    """Every problem of a run, worst first."""
    found: list[Annotation] = []
    if report.run.fatal_stop:
        reason = report.run.stop_reason or "refused"
        found.append(Annotation("error", "mlrun apply: the API refused the run", reason))
    found += [a for a in (action_annotation(x, sources) for x in report.problems) if a]
    return found


def problem_annotations(
    problems: Iterable[ProjectProblem], sources: Sources, command: str
) -> list[Annotation]:
    """An error at each project the key cannot reach."""
    return [
        Annotation(
            "error",
            f"mlrun {command}: project {p.project} unreachable",
            f"project {p.project} (id {p.project_id}): {p.message}; not triggered",
            sources.projects.get(p.project),
        )
        for p in problems
    ]


def budget_annotation(message: str, sources: Sources, command: str) -> Annotation:
    """An error on the manifest for a plan the budget refuses."""
    return Annotation(
        "error",
        f"mlrun {command}: refused by the budget",
        f"{message}; nothing was sent",
        file=sources.files[0] if sources.files else None,
    )


def capped(annotations: Sequence[Annotation], most: int = MAX_PER_LEVEL) -> list[Annotation]:
    """At most ``most`` annotations per level; the last one says how many more there are."""
    kept: list[Annotation] = []
    for level in ("error", "warning", "notice"):
        same = [a for a in annotations if a.level == level]
        if len(same) <= most:
            kept += same
            continue
        rest = len(same) - (most - 1)
        kept += same[: most - 1]
        kept.append(
            Annotation(
                same[0].level,
                f"mlrun: {rest} more {level}s",
                f"{rest} more problems of this level; the run report lists every one",
            )
        )
    return kept


def render_annotations(
    annotations: Sequence[Annotation], env: Mapping[str, str] | None = None
) -> list[str]:
    """The workflow command lines, capped per level."""
    return [a.render(env) for a in capped(annotations)]


# -- the step summary ---------------------------------------------------------------------------


def append_step_summary(markdown: str, env: Mapping[str, str]) -> Path | None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY`` if set; the file, or None.

    :class:`ReportError` when the file cannot be written.
    """
    target = env.get(STEP_SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    text = redact(markdown)
    try:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise ReportError(f"cannot append to {STEP_SUMMARY_ENV} ({path}): {exc.strerror}") from exc
    return path


# -- what plan and apply hand to GitHub -----------------------------------------------------------


@dataclass(frozen=True)
class GitHubOutput:
    """What ``plan``/``apply`` give GitHub: annotation lines (for stderr), and the step summary.

    Each method returns the lines the CLI should write to stderr (annotations, and a warning if
    the step summary could not be written) and appends the Markdown to the step summary.
    """

    annotate: bool
    summarise: bool
    env: Mapping[str, str]

    @classmethod
    def from_options(cls, mode: str, step_summary: bool, env: Mapping[str, str]) -> GitHubOutput:
        """``--annotations MODE`` and ``--[no-]step-summary``, in ``env``."""
        return cls(annotations_wanted(mode, env), step_summary, env)

    def after_plan(self, plan_file: PlanFile, *, full_plan_hint: str | None = None) -> list[str]:
        """Unreachable projects and a budget refusal; the plan's Markdown to the summary."""
        lines: list[str] = []
        if self.annotate and (plan_file.problems or plan_file.plan.budget().refused):
            sources = load_sources(plan_file.manifest_files, self.env)
            found = problem_annotations(plan_file.problems, sources, "plan")
            verdict = plan_file.plan.budget()
            if verdict.refused:
                found.append(budget_annotation(verdict.message(), sources, "plan"))
            lines += render_annotations(found, self.env)
        from runner.report.plan import render_plan  # noqa: PLC0415 - only with a summary

        return lines + self._summary(
            lambda: render_plan(plan_file, "markdown", full_plan_hint=full_plan_hint)
        )

    def after_apply(
        self, result: ApplyResult, paths: Sequence[str], report_files: Sequence[Path] = ()
    ) -> list[str]:
        """Every problem of the run; its Markdown (a dry run: the plan's) to the summary."""
        lines: list[str] = []
        report = result.report
        problems = bool(result.problems) or (report is not None and bool(report.problems))
        if self.annotate and problems:
            sources = load_sources(paths, self.env)
            found = problem_annotations(result.problems, sources, "apply")
            if report is not None:
                found = report_annotations(report, sources) + found
            lines += render_annotations(found, self.env)
        return lines + self._summary(lambda: _apply_markdown(result, paths, report_files))

    def after_refusal(self, message: str, paths: Sequence[str], command: str) -> list[str]:
        """The budget refused the plan: an error on the manifest, and a line in the summary."""
        lines: list[str] = []
        if self.annotate:
            annotation = budget_annotation(message, load_sources(paths, self.env), command)
            lines.append(annotation.render(self.env))
        refusal = f"### ⛔ mlrun {command}: refused by the budget\n\n{message}; nothing was sent.\n"
        return lines + self._summary(lambda: refusal)

    def _summary(self, markdown: Callable[[], str]) -> list[str]:
        if not (self.summarise and self.env.get(STEP_SUMMARY_ENV)):
            return []
        try:
            append_step_summary(markdown(), self.env)
        except ReportError as error:
            return [f"warning: {error}"]
        return []


def _apply_markdown(result: ApplyResult, paths: Sequence[str], files: Sequence[Path]) -> str:
    """The run report's Markdown, or for a dry run the plan's."""
    if result.report is not None:
        from runner.report import render_markdown  # noqa: PLC0415

        full = next((str(f) for f in files if f.suffix == ".json"), None)
        return render_markdown(result.report, full_report_hint=full)
    from runner.plan.planfile import PlanFile  # noqa: PLC0415
    from runner.report.plan import render_plan  # noqa: PLC0415

    dry = PlanFile(
        plan=result.plan,
        created_at=datetime.now(UTC),
        manifest_files=tuple(paths),
        base_url=None,
        problems=result.problems,
    )
    return render_plan(dry, "markdown")
