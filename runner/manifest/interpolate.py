"""``${VAR}`` and ``${VAR:-default}`` in string values, resolved from the environment at load time.

``$$`` is a literal ``$``; a ``$`` not followed by ``{`` or ``$`` is kept as written. As in the
shell, ``${VAR:-default}`` uses the default when VAR is unset *or empty*, and ``${VAR}`` with VAR
set to the empty string is the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"\$(?:(\$)|\{([^}]*)(\}?))")
_EXPRESSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class InterpolationProblem:
    """Why a ``${...}`` could not be resolved."""

    message: str
    hint: str


@dataclass(frozen=True)
class Interpolated:
    """The resolved text, the variables it read and the problems found."""

    text: str
    variables: tuple[str, ...]
    problems: tuple[InterpolationProblem, ...]


def interpolate(text: str, env: Mapping[str, str]) -> Interpolated:
    """Resolve every ``${...}`` of ``text`` from ``env``."""
    parts: list[str] = []
    variables: list[str] = []
    problems: list[InterpolationProblem] = []
    position = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[position : match.start()])
        position = match.end()
        if match.group(1):
            parts.append("$")
            continue
        resolved = _resolve(match.group(2), bool(match.group(3)), env, variables)
        if isinstance(resolved, InterpolationProblem):
            problems.append(resolved)
        else:
            parts.append(resolved)
    parts.append(text[position:])
    return Interpolated("".join(parts), tuple(variables), tuple(problems))


def _resolve(
    expression: str, closed: bool, env: Mapping[str, str], variables: list[str]
) -> str | InterpolationProblem:
    if not closed:
        return InterpolationProblem(
            f"unterminated '${{{expression}' (no closing brace)",
            "write ${NAME} or ${NAME:-default}; use $$ for a literal $",
        )
    parsed = _EXPRESSION.match(expression)
    if parsed is None:
        return InterpolationProblem(
            f"malformed '${{{expression}}}'",
            "write ${NAME} or ${NAME:-default}, NAME made of letters, digits and _;"
            " use $$ for a literal $",
        )
    name, default = parsed.group(1), parsed.group(2)
    variables.append(name)
    value = env.get(name)
    if default is not None and not value:
        return default
    if value is None:
        return InterpolationProblem(
            f"environment variable {name} is not set",
            f"set {name}, or give a default: ${{{name}:-value}}",
        )
    return value
