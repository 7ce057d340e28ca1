"""Hostile input gets a clear ManifestError fast: never a traceback, a hang or a blow-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runner.errors import Diagnostic, ManifestError
from runner.manifest import Limits, load_manifest
from runner.manifest.limits import MIB

Write = Callable[..., Path]
Errors = Callable[..., list[Diagnostic]]


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 8, width: int = 8) -> str:
    """The 455-byte document that takes plain yaml.safe_load over 10 s and 300 MB."""
    lines = ["m0: &m0 {k: v}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*m{level - 1}"] * width)
        lines.append(f"m{level}: &m{level} {{<<: [{refs}]}}")
    return "\n".join(lines) + "\n"


def _fails_fast(errors_of: Errors, path: Path) -> list[Diagnostic]:
    started = time.perf_counter()
    errors = errors_of(path)
    assert time.perf_counter() - started < 1.0
    return errors


@pytest.mark.parametrize("document", [billion_laughs(), merge_bomb(), merge_bomb(12, 8)])
def test_alias_bombs_are_refused_before_expansion(
    write: Write, errors_of: Errors, document: str
) -> None:
    (error,) = _fails_fast(errors_of, write(document))
    assert "aliases expand to more than 100,000 nodes" in error.message
    assert error.code == "yaml-alias"


def test_the_merge_bomb_is_small(write: Write) -> None:
    assert len(merge_bomb().encode()) < 500


def test_deep_nesting_is_refused_without_recursion_error(write: Write, errors_of: Errors) -> None:
    (error,) = _fails_fast(errors_of, write("[" * 100))
    assert error.message == "the document nests deeper than 64 levels"
    (error,) = _fails_fast(errors_of, write("[" * 5000))
    assert "nesting depth" in error.message  # libyaml's own cap (1,000) comes first
    block = "".join(f"{' ' * level}- \n" for level in range(3000))
    (error,) = _fails_fast(errors_of, write(block))
    assert error.message == "the document nests deeper than 64 levels"


def test_files_over_the_byte_cap_are_refused_unread(write: Write, errors_of: Errors) -> None:
    path = write(b"# " + b"x" * (10 * MIB))
    (error,) = _fails_fast(errors_of, path)
    assert error.message == "the file is larger than the 10,485,760-byte limit"
    with pytest.raises(ManifestError, match="larger than the 100-byte limit"):
        load_manifest([write("a: " + "b" * 200)], env={}, limits=Limits(max_bytes=100))


@pytest.mark.parametrize(
    ("content", "message", "position"),
    [
        (b"version: 1\nx: \x00\x01\x02", "binary (it contains a NUL byte)", (2, 4)),
        (b"version: 1\nname: caf\xe9\n", "not valid UTF-8 (byte 0xe9)", (2, 10)),
        ("version: 1\n".encode("utf-16"), "UTF-16", (None, None)),
        (b"version: 1\nx: \x07\n", "control characters are not allowed", (2, 4)),
    ],
)
def test_non_text_files_are_refused(
    write: Write,
    errors_of: Errors,
    content: bytes,
    message: str,
    position: tuple[int | None, int | None],
) -> None:
    (error,) = errors_of(write(content))
    assert message in error.message
    assert (error.line, error.column) == position


def test_a_utf8_bom_is_accepted(write: Write, valid_text: str) -> None:
    path = write(b"\xef\xbb\xbf" + valid_text.encode())
    assert load_manifest([path], env={}).manifest.projects


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['true']",
        "!!python/name:os.system",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [{a: 1}]",
        "!custom value",
    ],
)
def test_object_constructing_tags_are_refused(write: Write, errors_of: Errors, tag: str) -> None:
    (error, *_) = errors_of(write(f"version: 1\nprojects: {tag}\n"))
    assert "is not allowed" in error.message
    assert error.json_path == "$.projects"


@pytest.mark.parametrize(
    ("first", "second", "key"),
    [
        ("a", "'a'", "a"),
        ("1", "0x1", "1"),
        ('"b"', "b", "b"),
        ("true", "yes", "true"),
        ("~", "null", "null"),
    ],
)
def test_duplicate_keys_in_every_spelling(
    write: Write, errors_of: Errors, first: str, second: str, key: str
) -> None:
    errors = errors_of(write(f"version: 1\nx:\n  {first}: 1\n  {second}: 2\n"))
    errors = [e for e in errors if e.code == "duplicate-key"]
    assert errors[0].message.startswith(
        f"duplicate key {key!r} (first written at line 3, column 3)"
    )
    assert (errors[0].line, errors[0].column) == (4, 3)


def test_merge_keys_are_not_duplicates(write: Write, valid_text: str) -> None:
    text = valid_text.replace(
        "      - models: [gpt-5-mini]\n",
        "      - &j {models: [gpt-5-mini], executionCount: 2}\n"
        "      - <<: *j\n        executionCount: 4\n",
    )
    jobs = load_manifest([write(text)], env={}).manifest.projects[0].jobs
    assert [j.execution_count for j in jobs] == [2, 4]


def test_a_secret_is_never_echoed(write: Write, errors_of: Errors, valid_text: str) -> None:
    secret = "ml_live_" + "s3cr3tvalue42"
    text = valid_text.replace(
        "    jobs:", f"    labels: {{{secret}: {secret}}}  # {secret}\n    jobs:"
    )
    errors = errors_of(write(text), env={"KEY": secret})
    assert len(errors) == 3
    assert {e.code for e in errors} == {"secret"}
    assert secret not in repr(errors)


def test_a_secret_on_a_broken_line_is_not_echoed_with_it(write: Write, errors_of: Errors) -> None:
    secret = "ml_live_" + "brokenline12345"
    errors = errors_of(write(f"version: 1\nlabels: {{token: {secret}\nprojects: []\n"))
    syntax = next(e for e in errors if e.code == "yaml-syntax")
    assert "labels: {token: ml_live_[REDACTED]" in syntax.message
    assert secret not in repr(errors)


def test_a_secret_from_the_environment_is_refused(
    write: Write, errors_of: Errors, valid_text: str
) -> None:
    secret = "ml_live_" + "fromtheenv123"
    text = valid_text.replace("    jobs:", "    labels: {key: '${MENTIONLAB_API_KEY}'}\n    jobs:")
    (error,) = errors_of(write(text), env={"MENTIONLAB_API_KEY": secret})
    assert error.code == "secret"
    assert error.json_path == "$.projects[0].labels.key"
    assert secret not in repr(error)


def test_self_referencing_alias(write: Write, errors_of: Errors) -> None:
    (error,) = errors_of(write("version: 1\nprojects: &p [*p]\n"))
    assert "refers to the node that contains it" in error.message


def test_duplicate_anchor(write: Write, errors_of: Errors) -> None:
    (error,) = errors_of(write("version: 1\na: &x 1\nb: &x 2\n"))
    assert error.message == "anchor &x is defined twice"
