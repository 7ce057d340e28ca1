"""A yes/no validator compiled from the manifest schema, for the common case: a valid manifest.

jsonschema explains errors well but walks a 5,000-project manifest in about two seconds. This
module compiles the schema (the same file, still the single source of truth) into Python source:
a function per ``$defs`` entry and per object, every other keyword inlined as an expression. A
document that passes needs no jsonschema at all; one that fails is explained by jsonschema,
project by project. The generated source holds nothing from the schema but property names (as
``repr`` literals): constants, patterns and enums are passed in by name. A keyword this compiler
does not know makes :func:`compile_schema` return None, so jsonschema is used for everything: a
schema change can make validation slower, never wrong. The test suite checks both agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "$defs"}
)
_OBJECT_KEYWORDS = frozenset({"properties", "additionalProperties", "required", "propertyNames"})


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not implement."""


def compile_schema(root: dict[str, Any]) -> Check | None:
    """A predicate equivalent to validating against ``root``, or None if it cannot be built."""
    try:
        return _Compiler(root).compile(root)
    except Unsupported:
        return None


def is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON Schema defines it: true is not 1, 1 is 1.0, containers compare deeply."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if is_number(left) and is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def all_unique(items: list[Any]) -> bool:
    return not any(json_equal(items[i], items[j]) for i in range(len(items)) for j in range(i))


_TYPES: dict[str, str] = {  # "{v}" stands for the value checked
    "string": "isinstance({v}, str)",
    "integer": "_is_integer({v})",
    "number": "_is_number({v})",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "array": "isinstance({v}, list)",
    "object": "isinstance({v}, dict)",
}
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


class _Compiler:
    """Writes the predicate's source; :meth:`compile` runs it."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.namespace: dict[str, Any] = {
            "_is_integer": is_integer,
            "_is_number": is_number,
            "_json_equal": json_equal,
            "_all_unique": all_unique,
        }
        self.functions: list[str] = []  # the source of each generated function
        self.refs: dict[str, str] = {}  # $defs name -> its function's name

    def compile(self, schema: dict[str, Any]) -> Check:
        entry = self._define(lambda: self.expression(schema, "v"))
        code = compile("\n".join(self.functions), "<manifest schema>", "exec")
        exec(code, self.namespace)  # noqa: S102 - our own source; schema values come in by name
        check: Check = self.namespace[entry]
        return check

    def expression(self, schema: dict[str, Any], v: str) -> str:
        """A boolean expression: whether the value named ``v`` is valid against ``schema``."""
        parts = [
            self._keyword(keyword, value, v)
            for keyword, value in schema.items()
            if keyword not in _ANNOTATIONS and keyword not in _OBJECT_KEYWORDS
        ]
        if _OBJECT_KEYWORDS.intersection(schema):
            parts.append(f"{self._object(schema)}({v})")
        return "(" + " and ".join(parts) + ")" if parts else "True"

    def _keyword(self, keyword: str, value: Any, v: str) -> str:  # noqa: C901, PLR0911 - a dispatch table
        if keyword == "type":
            names = [value] if isinstance(value, str) else value
            return "(" + " or ".join(_TYPES[t].format(v=v) for t in names) + ")"
        if keyword == "const":
            return f"_json_equal({v}, {self._constant(value)})"
        if keyword == "enum":
            return f"any(_json_equal({v}, o) for o in {self._constant(tuple(value))})"
        if keyword in _BOUNDS:
            return f"(not _is_number({v}) or {v} {_BOUNDS[keyword]} {self._constant(value)})"
        if keyword in ("minLength", "maxLength"):
            compare = "<=" if keyword == "maxLength" else ">="
            return f"(not isinstance({v}, str) or len({v}) {compare} {self._constant(value)})"
        if keyword == "pattern":
            search = self._constant(re.compile(value).search)
            return f"(not isinstance({v}, str) or {search}({v}) is not None)"
        if keyword == "items":
            return f"(not isinstance({v}, list) or all(map({self._function(value)}, {v})))"
        if keyword == "minItems":
            return f"(not isinstance({v}, list) or len({v}) >= {self._constant(value)})"
        if keyword == "uniqueItems":
            return f"(not isinstance({v}, list) or _all_unique({v}))" if value else "True"
        if keyword == "anyOf":
            return "(" + " or ".join(self.expression(branch, v) for branch in value) + ")"
        if keyword == "$ref":
            return f"{self._ref(value)}({v})"
        raise Unsupported(keyword)

    def _constant(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def _define(self, body: Callable[[], str], name: str | None = None) -> str:
        """Add ``def name(v): return <body()>``; the name is taken before the body is written."""
        name = name or f"_f{len(self.functions)}"
        index = len(self.functions)
        self.functions.append("")
        self.functions[index] = f"def {name}(v):\n    return {body()}\n"
        return name

    def _function(self, schema: dict[str, Any]) -> str:
        """The name of a function checking ``schema`` (a ``$ref``'s own, when that is all)."""
        if set(schema) - _ANNOTATIONS == {"$ref"}:
            return self._ref(schema["$ref"])
        return self._define(lambda: self.expression(schema, "v"))

    def _ref(self, ref: str) -> str:
        if not ref.startswith("#/$defs/"):
            raise Unsupported(ref)
        name = ref.removeprefix("#/$defs/")
        if name not in self.refs:
            # Named before its body is written, so a definition may refer to itself.
            self.refs[name] = f"_f{len(self.functions)}"
            self._define(lambda: self.expression(self.root["$defs"][name], "v"), self.refs[name])
        return self.refs[name]

    def _object(self, schema: dict[str, Any]) -> str:
        """A function for the object keywords: required, properties, additional, names."""
        name = f"_f{len(self.functions)}"
        index = len(self.functions)
        self.functions.append("")
        lines = [f"def {name}(v):", "    if not isinstance(v, dict):", "        return True"]
        required = schema.get("required", ())
        if required:
            missing = " or ".join(f"{key!r} not in v" for key in required)
            lines += [f"    if {missing}:", "        return False"]
        properties = schema.get("properties", {})
        additional = self._additional(schema.get("additionalProperties", True))
        names = schema.get("propertyNames")
        if properties or additional or names is not None:
            lines.append("    for k, x in v.items():")
            branch = "if"
            for key, sub in properties.items():
                lines += [f"        {branch} k == {key!r}:", *self._require(sub, "x", 12)]
                branch = "elif"
            if additional:
                lines += ["        else:" if properties else "        if True:", *additional]
            if names is not None:
                lines += self._require(names, "k", 8)
        lines.append("    return True")
        self.functions[index] = "\n".join(lines) + "\n"
        return name

    def _additional(self, additional: Any) -> list[str]:
        """The lines checking a key that is not a property (none: any value will do)."""
        if additional is True:
            return []
        if additional is False:
            return ["            return False"]
        if isinstance(additional, dict):
            return self._require(additional, "x", 12)
        raise Unsupported("additionalProperties")

    def _require(self, schema: dict[str, Any], v: str, indent: int) -> list[str]:
        pad = " " * indent
        return [f"{pad}if not {self.expression(schema, v)}:", f"{pad}    return False"]
