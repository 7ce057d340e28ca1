"""The small parts: interpolation, did-you-mean, JSON paths, source excerpts, rendering."""

from __future__ import annotations

import pytest
from runner.cli.diagnostics import Outcome, render_text, show_value
from runner.errors import Diagnostic
from runner.manifest.document import PosList, PosMap, format_path, locate
from runner.manifest.excerpt import source_excerpt
from runner.manifest.interpolate import interpolate
from runner.manifest.secrets import redact
from runner.manifest.suggest import closest, did_you_mean


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("a${A}b${B:-dflt}c", {"A": "1"}, "a1bdfltc"),
        ("${A:-}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("$$", {}, "$"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("cost $5", {}, "cost $5"),
        ("${A:-a:-b}", {}, "a:-b"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    result = interpolate(text, env)
    assert result.problems == ()
    assert result.text == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${A}", "environment variable A is not set"),
        ("${A", "unterminated '${A' (no closing brace)"),
        ("${}", "malformed '${}'"),
        ("${A-x}", "malformed '${A-x}'"),
        ("${A B}", "malformed '${A B}'"),
    ],
)
def test_interpolation_problems(text: str, message: str) -> None:
    (problem,) = interpolate(text, {}).problems
    assert problem.message == message


def test_did_you_mean() -> None:
    assert closest("exectionCount", ["executionCount", "models"]) == "executionCount"
    assert closest("execution_count", ["executionCount"]) == "executionCount"
    assert closest("zzz", ["executionCount"]) is None
    assert did_you_mean("zzz", ["b", "a"], noun="sets") == "valid sets: a, b"
    assert did_you_mean("zzz", [], noun="model sets") == "no model sets are defined"


def test_paths_and_positions() -> None:
    root = PosMap((1, 1))
    items = PosList((2, 3))
    items.append("x")
    items.item_marks.append((2, 5))
    root["a b"] = items
    root.key_marks["a b"] = (2, 1)
    root.value_marks["a b"] = (2, 3)
    assert format_path(("projects", 0, "a b")) == "$.projects[0]['a b']"
    located = locate(root, ("a b", 0))
    assert (located.value, located.mark) == ("x", (2, 5))
    assert locate(root, ("a b", 7)).mark == (2, 3)
    assert locate(root, ("a b",)).key_mark == (2, 1)


def test_source_excerpt_shows_each_line_once_in_order() -> None:
    text = "a: 1\nb: [x,\r\nc: 3\n\td: 4\n"
    assert source_excerpt(text, [((4, 1), "tab"), ((2, 4), "opened"), ((2, 7), "broke")]) == [
        "    2 | b: [x,",
        "      |    ^ opened",
        "      |       ^ broke",
        "    …",
        "    4 | →d: 4",
        "      | ^ tab",
    ]
    assert source_excerpt(text, [((9, 1), "end")]) == ["    9 |", "      | ^ end"]
    assert source_excerpt(text, []) == []


def test_source_excerpt_cuts_a_long_line_around_its_caret() -> None:
    line = "k: " + "".join(f"{i:03d}," for i in range(300))
    column = line.index("150,") + 1
    shown, caret = source_excerpt(line, [((1, column), "here")])
    assert shown.startswith("    1 | …")
    assert shown.endswith("…")
    assert len(shown) < 120
    assert shown[caret.index("^") : caret.index("^") + 4] == "150,"


def test_redaction() -> None:
    assert redact("key ml_live_abcdefgh1234") == "key ml_live_[REDACTED]"
    assert redact(["ml_live_abcdefgh1234", 3]) == ["ml_live_[REDACTED]", 3]
    assert redact("ml_live_short") == "ml_live_short"


def test_text_rendering() -> None:
    diagnostic = Diagnostic(
        message="bad", file="m.yaml", line=3, column=4, json_path="$.a", value=[1, 2], hint="fix"
    )
    assert render_text(Outcome([diagnostic], ["m.yaml"])) == (
        "m.yaml:3:4: error: bad (at $.a, value [1, 2])\n  hint: fix\ninvalid: 1 error in 1 file"
    )
    assert show_value("x" * 100).endswith("…")
