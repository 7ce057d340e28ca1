"""The hostile-manifest corpus: the invalid tree of tests/manifest plus what a hostile user adds.

Built at run time (a 50 MB file is not checked in): :func:`build_corpus` writes every generated
case under a directory and returns them with the invalid tree's files. Each case says whether its
error must carry a line number (a problem of the whole file, such as its size or encoding, has
none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVALID = REPO / "tests" / "manifest" / "invalid"
MIB = 1024 * 1024

HEADER = "version: 1\n"
PROJECT = (
    "projects:\n"
    "  - name: acme\n"
    "    id: 3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n"
    "    jobs:\n"
    "      - models: [gpt-5-mini]\n"
)
VALID = HEADER + PROJECT


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    has_line: bool  # the error names a line (file:LINE)
    expect: str = ""  # a fragment the error output must contain


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = [HEADER.strip(), 'a0: &a0 ["lol"]']
    lines += [
        f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]"
        for level in range(1, levels + 1)
    ]
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 8, width: int = 8) -> str:
    """The 455-byte document that takes plain yaml.safe_load over 10 s and 300 MB."""
    lines = ["m0: &m0 {k: v}"]
    lines += [
        f"m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * width)}]}}"
        for level in range(1, levels + 1)
    ]
    return "\n".join(lines) + "\n"


def labels(body: str) -> str:
    """A valid manifest whose project has the labels mapping ``body`` (indented 6)."""
    return VALID.replace("    jobs:", f"    labels:\n      {body}\n    jobs:")


def _generated() -> dict[str, tuple[str | bytes, bool] | tuple[str | bytes, bool, str]]:
    """name → (content, has_line[, a fragment the error must contain]). Content is text
    (UTF-8) or raw bytes."""
    deep_block = HEADER + "x:\n" + "".join(f"{'  ' * (i + 1)}- \n" for i in range(3000))
    return {
        "billion-laughs-9x9": (billion_laughs(), True, "aliases expand"),
        "merge-bomb-455-bytes": (merge_bomb(), True, "aliases expand"),
        "merge-bomb-12-levels": (merge_bomb(12, 8), True, "aliases expand"),
        "alias-bomb-in-projects": (
            billion_laughs(6, 10).replace("a6:", "projects:"),
            True,
        ),
        "self-referencing-mapping-alias": (HEADER + "x: &x {y: *x}\n" + PROJECT, True, "cycle"),
        "alias-as-key": (labels("&k team: a\n      *k : b"), True, "duplicate key"),
        "nesting-5000-flow-lists": (HEADER + "x: " + "[" * 5000 + "]" * 5000 + "\n", True),
        "nesting-5000-flow-maps": (HEADER + "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", True),
        "nesting-3000-block-sequences": (deep_block, True),
        "nesting-100-unclosed": (HEADER + "x: " + "[" * 100 + "\n", True),
        "huge-scalar-9mb": (VALID.replace("name: acme", "name: " + "b" * (9 * MIB)), True),
        "huge-single-line-11mb": ("x" * (11 * MIB), False, "larger than"),
        "python-object-apply-tag": (
            HEADER + "x: !!python/object/apply:os.system ['echo pwned']\n" + PROJECT,
            True,
            "not allowed",
        ),
        "python-name-tag": (HEADER + "x: !!python/name:os.system\n" + PROJECT, True),
        "python-module-tag": (HEADER + "x: !!python/module:os\n" + PROJECT, True),
        "custom-local-tag": (HEADER + "x: !shell 'rm -rf /'\n" + PROJECT, True),
        "binary-tag": (HEADER + "x: !!binary aGVsbG8=\n" + PROJECT, True),
        "set-tag": (HEADER + "x: !!set {a, b}\n" + PROJECT, True),
        "dup-key-plain-double-quoted": (labels('team: a\n      "team": b'), True, "duplicate key"),
        "dup-key-hex-int": (labels("1: a\n      0x1: b"), True, "duplicate key"),
        "dup-key-octal-int": (labels("8: a\n      010: b"), True, "duplicate key"),
        "dup-key-float-spelling": (labels("1.0: a\n      1.0e+0: b"), True, "duplicate key"),
        "dup-key-null-spelling": (labels("null: a\n      ~: b"), True, "duplicate key"),
        "dup-key-bool-yaml11": (labels("true: a\n      yes: b"), True, "duplicate key"),
        "dup-key-top-level-version": (HEADER + "'version': 1\n" + PROJECT, True, "duplicate key"),
        "dup-key-in-project": (VALID.replace("    jobs:", "    'name': other\n    jobs:"), True),
        "dup-key-flow-mapping": (
            VALID.replace("    jobs:", "    labels: {a: x, a: y}\n    jobs:"),
            True,
            "duplicate key",
        ),
        "complex-key-mapping": (labels("? {a: 1}\n      : v"), True, "complex key"),
        "secret-in-label": (
            VALID.replace(
                "    jobs:", "    labels: {key: ml_live_" + "A1b2C3d4E5f6G7h8}\n    jobs:"
            ),
            True,
        ),
        "secret-as-env-default": (
            HEADER + "defaults:\n  organisation: ${ORG:-ml_live_" + "Z9y8X7w6V5u4T3s2}\n" + PROJECT,
            True,
        ),
        "missing-variable-in-id": (
            VALID.replace("3f1c2a4e-5b6d", "${PROJECT_PREFIX}-5b6d"),
            True,
            "is not set",
        ),
        "missing-variable-in-organisation": (
            HEADER + "defaults:\n  organisation: ${MLRUN_NO_SUCH_ORG}\n" + PROJECT,
            True,
        ),
        "yaml-2-directive": ("%YAML 2.0\n---\n" + VALID, True),
        "nul-byte": ((VALID + "x: a\x00b\n").encode(), True, "binary"),
        "binary-garbage": (bytes(range(256)) * 64, False),
        "invalid-utf8": (VALID.encode() + b"x: \xff\xfe\xfd\n", True, "UTF-8"),
        "utf16-le-bom": (b"\xff\xfe" + VALID.encode("utf-16-le"), False, "UTF-16"),
        "utf16-be-no-bom": (VALID.encode("utf-16-be"), False),
        "latin1-accent": (VALID.replace("acme", "acmé").encode("latin-1"), True, "UTF-8"),
        "only-comments": ("# nothing here\n# at all\n", False),
        "three-documents": (VALID + "---\n" + VALID + "---\n" + VALID, True),
        "json-unterminated": ('{"version": 1, "projects": [', True),
    }


def build_corpus(directory: Path) -> list[Case]:
    """Write the generated cases under ``directory``; return them and the invalid tree's."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = yaml.safe_load((INVALID / "expected.yaml").read_text(encoding="utf-8"))
    cases = [
        Case(name, INVALID / f"{name}.yaml", entry.get("line") is not None, entry["message"])
        for name, entry in sorted(expected.items())
    ]
    for name, (content, has_line, *expect) in _generated().items():
        path = directory / f"{name}.yaml"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        cases.append(Case(name, path, has_line, "".join(expect)))
    big = directory / "fifty-megabytes.yaml"
    with big.open("wb") as out:
        out.write(VALID.encode())
        chunk = b"# " + b"x" * (MIB - 3) + b"\n"
        for _ in range(50):
            out.write(chunk)
    cases.append(Case("fifty-megabytes", big, has_line=False))
    endless = directory / "dev-zero.yaml"
    endless.symlink_to("/dev/zero")
    cases.append(Case("symlink-to-dev-zero", endless, has_line=False))
    return cases
