"""Benchmark: `mlrun validate` on a generated 5,000-project manifest, and `mlrun --version`.

Run from the repository root:  python benchmarks/bench_validate.py [--projects 5000] [--runs 5]

Each measurement is a fresh process, as a user or CI runs it. Targets: validate under
1 s and 150 MB peak RSS; `mlrun --version` under 150 ms. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from served import machine

VALIDATE_SECONDS = 1.0
VALIDATE_MB = 150.0
VERSION_SECONDS = 0.150


def generate(projects: int) -> str:
    """A realistic manifest: labels, two jobs entries and a cachedJobs entry per project."""
    lines = [
        "# yaml-language-server: $schema=../schemas/manifest.schema.json",
        "version: 1",
        "defaults:",
        "  organisation: ${MENTIONLAB_ORG_ID:-01234567-89ab-cdef-0123-456789abcdef}",
        "modelSets:",
        "  core: [gpt-5-mini, claude-haiku-4-5, gemini-2.5-flash]",
        "  providers: [openai, anthropic]",
        "settings:",
        "  budget: {maxExecutions: 10000000}",
        "projects:",
    ]
    for index in range(projects):
        lines += [
            f"  - name: project-{index:05d}",
            f"    id: {uuid.UUID(int=index * 7919 + 1, version=4)}",
            f"    labels: {{team: team-{index % 17}, region: {('eu', 'us', 'apac')[index % 3]}}}",
            "    jobs:",
            "      - models: core",
            "        executionCount: 2",
            "      - models: [sonar, deepseek-v3.2-maas]",
            "    cachedJobs:",
            "      models: providers",
        ]
    return "\n".join(lines) + "\n"


def mlrun_command() -> list[str]:
    script = shutil.which("mlrun")
    return [script] if script else [sys.executable, "-m", "runner"]


def run_once(args: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def peak_child_mb() -> float:
    """Peak RSS of the largest child process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def report(name: str, times: list[float], target: float) -> bool:
    median, worst = statistics.median(times), max(times)
    ok = median < target
    print(
        f"{name}: median {median * 1000:.0f} ms, best {min(times) * 1000:.0f} ms,"
        f" worst {worst * 1000:.0f} ms (target < {target * 1000:.0f} ms) {'ok' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    print(f"# bench_validate: {machine()}")
    command = mlrun_command()
    with tempfile.TemporaryDirectory() as directory:
        manifest = Path(directory) / "generated.yaml"
        manifest.write_text(generate(options.projects), encoding="utf-8")
        size_kb = manifest.stat().st_size / 1024
        print(f"manifest: {options.projects} projects, {size_kb:.0f} KiB; command: {command}")
        run_once([*command, "validate", str(manifest)])  # warm the file cache and .pyc files
        validate_times = [
            run_once([*command, "validate", str(manifest)]) for _ in range(options.runs)
        ]
        peak = peak_child_mb()
    version_times = [run_once([*command, "--version"]) for _ in range(options.runs * 2)]
    ok = report("validate", validate_times, VALIDATE_SECONDS)
    memory_ok = peak < VALIDATE_MB
    print(
        f"validate peak RSS: {peak:.0f} MB (target < {VALIDATE_MB:.0f} MB)"
        f" {'ok' if memory_ok else 'MISSED'}"
    )
    version_ok = report("mlrun --version", version_times, VERSION_SECONDS)
    return 0 if ok and memory_ok and version_ok else 1


if __name__ == "__main__":
    sys.exit(main())
