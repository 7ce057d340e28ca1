"""Checking a document against the manifest schema: the one module calling (fast)jsonschema.

The document is checked after interpolation, against the strict form of
``schemas/manifest.schema.json`` (:mod:`runner.manifest.strictschema`). A valid document is
recognised by a validator that fastjsonschema compiles from that schema, so validating a valid
manifest does not even import jsonschema; an invalid one is explained by jsonschema.

jsonschema's errors are turned into findings here, each at the position of the offending key or
value, with a message in the manifest's words and a hint (did-you-mean for unknown keys and enum
values, the schema's own description otherwise). ``anyOf`` failures are reduced with
``best_match`` so the branch the author meant is the one explained.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

from runner.manifest.document import Document, JsonPath, PathItem
from runner.manifest.findings import Findings
from runner.manifest.strictschema import strict_manifest_schema
from runner.manifest.suggest import closest, did_you_mean

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

Check: TypeAlias = "Callable[[Any], bool]"

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


@dataclass(frozen=True)
class SchemaFinding:
    """One schema problem, ready for :meth:`Findings.add`."""

    path: JsonPath
    message: str
    hint: str | None
    value: Any = None
    at_key: bool = False
    covers: bool = True
    code: str = "schema"


@cache
def manifest_validator() -> Draft202012Validator:
    """The manifest schema's validator; the schema is checked against its metaschema once."""
    import jsonschema  # noqa: PLC0415 - only an invalid manifest needs jsonschema

    schema = strict_manifest_schema()
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:  # a packaging bug, not the author's: say so plainly
        raise RuntimeError(f"the shipped manifest schema is invalid: {exc.message}") from exc
    return jsonschema.Draft202012Validator(schema)


def _validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a part of the manifest schema (checked once with the whole)."""
    manifest_validator()
    return type(manifest_validator())(schema)


@cache
def key_homes() -> dict[str, tuple[str, ...]]:
    """Every key the schema knows, with the places ("settings.rateLimits") where it belongs."""
    homes: dict[str, list[str]] = {}
    root = strict_manifest_schema()
    pending: list[tuple[dict[str, Any], str]] = [(root, "")]
    seen: set[str] = set()
    while pending:
        schema, place = pending.pop()
        schema = _deref(root, schema)
        for key, sub in schema.get("properties", {}).items():
            homes.setdefault(key, []).append(place or "the top level")
            child = f"{place}.{key}" if place else key
            target = _deref(root, sub.get("items", sub))
            if child not in seen and "properties" in target:
                seen.add(child)
                pending.append((target, child + ("[]" if "items" in sub else "")))
    return {key: tuple(sorted(set(places))) for key, places in homes.items()}


def _deref(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        target: dict[str, Any] = root["$defs"][ref.removeprefix("#/$defs/")]
        return target
    return schema


@cache
def _manifest_check() -> Check:
    """The compiled yes/no check of a whole manifest."""
    return _compiled(strict_manifest_schema())


@cache
def _project_check() -> Check:
    """The compiled yes/no check of one project (compiled when a manifest fails)."""
    return _compiled(_project_schema())


def _compiled(schema: dict[str, Any]) -> Check:
    import fastjsonschema  # noqa: PLC0415 - only validation needs it

    # fastjsonschema rewrites the $refs of the schema it compiles: give it a copy. And the
    # document is only checked, never filled in with the schema's defaults.
    try:
        validate = fastjsonschema.compile(
            copy.deepcopy(schema), handlers=_NO_REMOTE_REFS, use_default=False
        )
    except fastjsonschema.JsonSchemaDefinitionException as exc:  # a packaging bug, as above
        raise RuntimeError(f"the shipped manifest schema cannot be compiled: {exc}") from exc

    def check(document: Any) -> bool:
        try:
            validate(document)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check


def _refuse_remote_ref(uri: str) -> Any:
    raise RuntimeError(f"the manifest schema refers to {uri}; it must be self-contained")


_NO_REMOTE_REFS = dict.fromkeys(("http", "https", "file", "ftp", "data"), _refuse_remote_ref)


def _project_schema() -> dict[str, Any]:
    root = strict_manifest_schema()
    return {"$defs": root["$defs"], **root["properties"]["projects"]["items"]}


@cache
def _shallow_validator() -> Draft202012Validator:
    """The manifest schema without the schema of each project (projects are checked one by one)."""
    shallow = copy.deepcopy(strict_manifest_schema())
    del shallow["properties"]["projects"]["items"]
    return _validator_for(shallow)


@cache
def _project_validator() -> Draft202012Validator:
    return _validator_for(_project_schema())


def _errors(root: Any) -> Iterator[tuple[ValidationError, JsonPath]]:
    """The schema errors of ``root``, each with the path prefix its ``absolute_path`` lacks.

    A valid document costs one pass of the compiled check; an invalid one is explained by
    jsonschema, which only walks the projects the compiled check refused.
    """
    if _manifest_check()(root):
        return
    projects = root.get("projects") if isinstance(root, dict) else None
    if not isinstance(projects, list):
        yield from ((error, ()) for error in manifest_validator().iter_errors(root))
        return
    yield from ((error, ()) for error in _shallow_validator().iter_errors(root))
    for index, project in enumerate(projects):
        if not _project_check()(project):
            for error in _project_validator().iter_errors(project):
                yield error, ("projects", index)


def check_document(document: Document, findings: Findings) -> None:
    """Add a finding for every schema violation of ``document``."""
    done: set[tuple[JsonPath, str]] = set()
    for error, prefix in _errors(document.root):
        for finding in translate(error, prefix):
            if (finding.path, finding.message) in done:
                continue
            done.add((finding.path, finding.message))
            findings.add(
                document.file,
                finding.path,
                finding.message,
                root=document.root,
                mark=None if finding.path else document.mark,
                hint=finding.hint,
                value=finding.value,
                at_key=finding.at_key,
                covers=finding.covers,
                code=finding.code,
            )


def translate(error: ValidationError, prefix: JsonPath = ()) -> Iterator[SchemaFinding]:
    """The findings that explain one jsonschema error (found at ``prefix`` of the document)."""
    path: JsonPath = (*prefix, *error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:
        yield _bad_key_name(error, path)
        return
    handler = _HANDLERS.get(str(error.validator), _generic)
    yield from handler(error, path)


def _place(path: JsonPath) -> str:
    """Where ``path`` is, in words: "in projects[0]", "in settings", "at the top level"."""
    if not path:
        return "at the top level"
    last = path[-1]
    if isinstance(last, int) and len(path) > 1:
        return f"in {path[-2]}[{last}]"
    return f"in {last}"


def _unknown_keys(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    allowed = tuple(_schema_of(error).get("properties", {}))
    for key in _instance(error):
        if key not in allowed:
            yield SchemaFinding(
                (*path, key),
                f"unknown key {key!r} {_place(path)}",
                _unknown_key_hint(key, allowed),
                value=key,
                at_key=True,
                code="unknown-key",
            )


def _unknown_key_hint(key: str, allowed: tuple[str, ...]) -> str:
    match = closest(key, allowed)
    if match is not None:
        return f"did you mean {match!r}?"
    homes = key_homes().get(key)
    if homes:
        return f"{key!r} belongs under {' or '.join(homes)}"
    return f"valid keys here: {', '.join(allowed)}"


def _missing_keys(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    properties = _schema_of(error).get("properties", {})
    for key in _expected(error):
        if key not in _instance(error):
            description = properties.get(key, {}).get("description")
            yield SchemaFinding(
                path,
                f"missing required key {key!r} {_place(path)}",
                description or f"add '{key}:'",
                covers=False,
                code="missing-key",
            )


def _wrong_type(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    expected = _expected(error)
    types = [expected] if isinstance(expected, str) else list(expected)
    if path:
        hint = _type_hint(types, _instance(error)) or _schema_of(error).get("description")
    else:
        hint = "a manifest is a mapping of keys, starting with 'version: 1'"
    yield SchemaFinding(
        path,
        f"expected {_or(types)}, got {_describe(_instance(error))}",
        hint,
        value=_instance(error),
    )


def _type_hint(expected: list[str], value: Any) -> str | None:
    if value is None:
        return "the key has no value; write one, or remove the key"
    if "string" in expected and isinstance(value, bool):
        return "YAML reads yes/no/on/off/true/false as booleans; quote the value, e.g. 'no'"
    wants_number = "integer" in expected or "number" in expected
    if isinstance(value, str) and wants_number and _is_number(value):
        return f"remove the quotes: {value}"
    if isinstance(value, str) and "boolean" in expected:
        return "write true or false, without quotes"
    if "array" in expected and isinstance(value, str):
        return f"write a list: [{value}]"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _const(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    title = _schema_of(error).get("title", "value")
    expected = _expected(error)
    yield SchemaFinding(
        path,
        f"unsupported {title} {_describe(_instance(error))}; expected {expected!r}",
        _schema_of(error).get("description"),
        value=_instance(error),
    )


def _enum(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    title = _schema_of(error).get("title", "value")
    options = [str(option) for option in _expected(error)]
    instance = _instance(error)
    hint = did_you_mean(instance, options) if isinstance(instance, str) else None
    yield SchemaFinding(
        path,
        f"{_describe(instance)} is not a valid {title}",
        hint or f"valid values: {', '.join(options)}",
        value=instance,
    )


def _bound(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    words = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    title = _schema_of(error).get("title") or _name_of(path)
    yield SchemaFinding(
        path,
        f"{title} must be {words[str(error.validator)]} {_expected(error)}, got {_instance(error)}",
        _schema_of(error).get("description"),
        value=_instance(error),
    )


def _pattern(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    title = _schema_of(error).get("title", "value")
    yield SchemaFinding(
        path,
        f"{_describe(_instance(error))} is not a valid {title}",
        _schema_of(error).get("description"),
        value=_instance(error),
    )


def _length(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    title = _schema_of(error).get("title") or _name_of(path)
    if error.validator == "minLength":
        message = f"{title} must not be empty"
    else:
        message = f"{title} is longer than {_expected(error)} characters"
    yield SchemaFinding(path, message, _schema_of(error).get("description"), value=_instance(error))


def _too_few(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    title = _schema_of(error).get("title") or _name_of(path)
    yield SchemaFinding(
        path,
        f"{_name_of(path)} is an empty list",
        _schema_of(error).get("description") or f"give at least one {title}",
        value=_instance(error),
    )


def _repeated(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    seen: set[str] = set()
    for index, item in enumerate(_instance(error)):
        marker = repr(item)
        if marker in seen:
            yield SchemaFinding(
                (*path, index),
                f"{_describe(item)} is listed twice in {_name_of(path)}",
                "remove the repeat",
                value=item,
            )
        seen.add(marker)


def _any_of(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    context = error.context or []
    if context and all(sub.validator == "required" for sub in context):
        names = [name for sub in context for name in _expected(sub)]
        yield SchemaFinding(
            path,
            f"{_place(path).removeprefix('in ')} needs at least one of {_or(names, quote=True)}",
            _schema_of(error).get("description"),
            covers=False,
            code="missing-key",
        )
        return
    own_type_errors = [s for s in context if s.validator == "type" and not s.relative_path]
    if context and len(own_type_errors) == len(context):
        types = [t for s in own_type_errors for t in _as_list(s.validator_value)]
        yield SchemaFinding(
            path,
            f"expected {_or(types)}, got {_describe(_instance(error))}",
            _type_hint(types, _instance(error)) or _schema_of(error).get("description"),
            value=_instance(error),
        )
        return
    from jsonschema.exceptions import best_match  # noqa: PLC0415 - see manifest_validator

    # A branch that refused the value's type outright is not the one the author meant.
    meant = [s for s in context if not (s.validator == "type" and not s.relative_path)]
    best = best_match(meant or context)
    prefix = path[: len(path) - len(error.absolute_path)]
    yield from (translate(best, prefix) if best is not None else _generic(error, path))


def _generic(error: ValidationError, path: JsonPath) -> Iterator[SchemaFinding]:
    yield SchemaFinding(
        path, error.message, _schema_of(error).get("description"), value=_instance(error)
    )


def _bad_key_name(error: ValidationError, path: JsonPath) -> SchemaFinding:
    key = str(_instance(error))
    schema = _schema_of(error)
    return SchemaFinding(
        (*path, key),
        f"{key!r} is not a valid {schema.get('title', 'key')} {_place(path)}",
        schema.get("description"),
        value=key,
        at_key=True,
    )


_Handler: TypeAlias = "Callable[[ValidationError, JsonPath], Iterator[SchemaFinding]]"
_HANDLERS: dict[str, _Handler] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "type": _wrong_type,
    "const": _const,
    "enum": _enum,
    "minimum": _bound,
    "maximum": _bound,
    "exclusiveMinimum": _bound,
    "exclusiveMaximum": _bound,
    "pattern": _pattern,
    "minLength": _length,
    "maxLength": _length,
    "minItems": _too_few,
    "uniqueItems": _repeated,
    "anyOf": _any_of,
}


def _name_of(path: JsonPath) -> str:
    names: list[PathItem] = [item for item in path if isinstance(item, str)]
    return str(names[-1]) if names else "the value"


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _or(items: list[str], *, quote: bool = False) -> str:
    words = [repr(i) if quote else _JSON_TYPES.get(i, i) for i in dict.fromkeys(items)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe(value: Any) -> str:
    """A value as the author wrote it, briefly: 'anthropic', 3, true, null, a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:59] + "…"
        return repr(text)
    if isinstance(value, int | float):
        return str(value)
    return "a list" if isinstance(value, list) else "a mapping"


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    """The (sub)schema an error is about; jsonschema types it loosely."""
    schema = error.schema
    return schema if isinstance(schema, Mapping) else {}


def _expected(error: ValidationError) -> Any:
    """What the failing keyword asked for (its value in the schema)."""
    return error.validator_value


def _instance(error: ValidationError) -> Any:
    """The offending value."""
    return error.instance
