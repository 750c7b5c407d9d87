"""A validator for the subset of OpenAPI v3 *structural* schemas that CRDs use.

greenloop validates local files against the CRD's own schema so that local mode and the
API server accept the same objects. It supports the keywords a structural schema may use:
type, properties, required, additionalProperties, items, enum, pattern, minimum/maximum
(and their exclusive forms), multipleOf, minLength/maxLength, minItems/maxItems,
minProperties/maxProperties, format (int32, int64, date-time), nullable, default,
x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string and
x-kubernetes-list-type (set/map). Logical junctors (allOf, anyOf, oneOf, not) and CEL rules
(x-kubernetes-validations) are not evaluated: greenloop's CRD does not use the former, and
spec_checks.py mirrors each CEL rule in Python.

One deliberate difference: the API server silently prunes unknown fields, while this
validator reports them, because in a hand-written file an unknown field is nearly always a
typo (``comand``) and pruning it would silently change what runs.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from greenloop.core import regex
from greenloop.core.words import plural

Schema = Mapping[str, Any]

__all__ = [
    "FieldError",
    "Schema",
    "apply_defaults",
    "field_path",
    "index_path",
    "iter_schema",
    "key_path",
    "show",
    "structural_problems",
    "type_name",
    "unknown_field_message",
    "validate",
]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# RFC 3339 as the API server reads it (kube-openapi strfmt also takes a space for "T" and
# a missing offset, so this does too: rejecting what the server accepts would be worse).
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
# Keep messages readable when a value is a long string or a big structure.
_SHOW_LIMIT = 80


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: ``path`` is like ``spec.suites[1].priority``; an empty
    path means the whole document."""

    path: str
    message: str
    # The stall reason when it is not InvalidSpec (a limit, not a mistake: RulesTooLarge).
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def field_path(parent: str, name: str) -> str:
    """The path of an object's field: ``spec`` + ``suites`` -> ``spec.suites``."""
    name = _printable(name)
    return f"{parent}.{name}" if parent else name


def _printable(name: str) -> str:
    # A key is outside input: a newline in it must not start a new line of the message.
    return name if name.isprintable() else repr(name)[1:-1]


def index_path(parent: str, index: int) -> str:
    return f"{parent}[{index}]"


def key_path(parent: str, key: str) -> str:
    """The path of a map entry (additionalProperties), written like Kubernetes does."""
    return f"{parent}[{_printable(key)}]"


def type_name(value: Any) -> str:
    """The JSON type name of a decoded YAML/JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def show(value: Any) -> str:
    """A short rendering of a value for an error message, spelled the YAML way."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        # str() of a huge integer is slow, and refused past 4,300 digits.
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"an integer of about {digits:,} digits"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= _SHOW_LIMIT else value[: _SHOW_LIMIT - 3] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:_SHOW_LIMIT]


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> regex.Pattern:
    # RE2, as Go's regexp on the API server: linear in the value, and `$` is the end of
    # the text (Python's re lets "P1\n" match ^P[1-9]$).
    return regex.compile(pattern)


def _has_type(value: Any, expected: str) -> bool:
    # bool is an int in Python but never an integer or number in JSON.
    if expected == "object":
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1`` and ``1`` is not ``"1"``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def validate(value: Any, schema: Schema, path: str = "") -> list[FieldError]:
    """Every way ``value`` breaks ``schema``, in document order. Call
    :func:`apply_defaults` first, as the API server defaults before it validates."""
    errors: list[FieldError] = []
    _validate(value, schema, path, errors)
    return errors


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    if value is None:
        if not schema.get("nullable", False):
            errors.append(FieldError(path, "must not be null"))
        return

    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string", False):
        if not (_has_type(value, "integer") or _has_type(value, "string")):
            errors.append(FieldError(path, f"expected integer or string, got {type_name(value)}"))
            return
    elif expected:
        if not _has_type(value, expected):
            got = type_name(value)
            detail = f" {show(value)}" if got in ("string", "integer", "number", "boolean") else ""
            if expected == "object" and isinstance(value, Mapping):
                detail = " with a non-string key"
            errors.append(FieldError(path, f"expected {expected}, got {got}{detail}"))
            return
    elif not schema.get("x-kubernetes-preserve-unknown-fields", False):
        # Not structural; nothing sound to check against.
        return

    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(o if isinstance(o, str) else show(o) for o in schema["enum"])
        errors.append(
            FieldError(path, f"unsupported value {show(value)} (expected one of: {options})")
        )
        return

    if isinstance(value, str):
        _check_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, errors)
    elif isinstance(value, list):
        _check_array(value, schema, path, errors)
    elif isinstance(value, Mapping):
        _check_object(value, schema, path, errors)


def _check_string(value: str, schema: Schema, path: str, errors: list[FieldError]) -> None:
    # Lengths count characters (code points), as the API server does.
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            FieldError(
                path,
                f"must be at least {plural(schema['minLength'], 'character')} long"
                f" (got {len(value)})",
            )
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            FieldError(
                path,
                f"must be at most {plural(schema['maxLength'], 'character')} long"
                f" (got {len(value)})",
            )
        )
    pattern = schema.get("pattern")
    # The API server searches (Go regexp.MatchString); anchors are in the pattern.
    if pattern is not None and not _compiled(pattern).search(value):
        errors.append(FieldError(path, f"{show(value)} does not match {pattern}"))
    if schema.get("format") == "date-time" and not _is_date_time(value):
        errors.append(FieldError(path, f"{show(value)} is not a date-time (RFC 3339)"))


def _is_date_time(value: str) -> bool:
    match = _DATE_TIME.match(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # 60: a leap second
    except ValueError:
        return False
    return second <= 60


def _check_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(FieldError(path, f"must be a finite number (got {show(value)})"))
        return
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum", False):
            if value <= low:
                errors.append(FieldError(path, f"must be greater than {low} (got {show(value)})"))
        elif value < low:
            errors.append(FieldError(path, f"must be at least {low} (got {show(value)})"))
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum", False):
            if value >= high:
                errors.append(FieldError(path, f"must be less than {high} (got {show(value)})"))
        elif value > high:
            errors.append(FieldError(path, f"must be at most {high} (got {show(value)})"))
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        errors.append(FieldError(path, f"must be a multiple of {step} (got {show(value)})"))
    fmt = schema.get("format")
    if isinstance(value, int) and (fmt in ("int32", "int64") or schema.get("type") == "integer"):
        # The API server holds every integer in 64 bits, format or not.
        low_i, high_i = _INT32 if fmt == "int32" else _INT64
        if not low_i <= value <= high_i:
            errors.append(
                FieldError(path, f"{show(value)} is out of range for {fmt or 'a 64-bit integer'}")
            )


def _check_array(value: list[Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(
            FieldError(
                path, f"must have at least {plural(schema['minItems'], 'item')} (got {len(value)})"
            )
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(
            FieldError(
                path, f"must have at most {plural(schema['maxItems'], 'item')} (got {len(value)})"
            )
        )
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _validate(item, items, index_path(path, index), errors)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        _check_unique(value, path, errors, key=lambda item: item, describe=show)
    elif list_type == "map":
        keys = list(schema.get("x-kubernetes-list-map-keys", ()))
        _check_unique(
            value,
            path,
            errors,
            key=lambda item: (
                tuple(item.get(k) for k in keys) if isinstance(item, Mapping) else None
            ),
            describe=lambda key: (
                "entry with " + ", ".join(f"{k} {show(v)}" for k, v in zip(keys, key, strict=True))
            ),
        )


def _check_unique(
    value: list[Any],
    path: str,
    errors: list[FieldError],
    *,
    key: Callable[[Any], Any],
    describe: Callable[[Any], str],
) -> None:
    """Duplicates in a set or map list, which the API server rejects."""
    seen: list[tuple[Any, int]] = []
    for index, item in enumerate(value):
        item_key = key(item)
        if item_key is None or isinstance(item_key, Mapping | list):
            continue
        for other_key, other_index in seen:
            if _same_key(item_key, other_key):
                where = index_path(path, other_index)
                errors.append(
                    FieldError(
                        index_path(path, index), f"duplicate {describe(item_key)} (also {where})"
                    )
                )
                break
        else:
            seen.append((item_key, index))


def _same_key(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


def _check_object(
    value: Mapping[str, Any], schema: Schema, path: str, errors: list[FieldError]
) -> None:
    properties: Mapping[str, Schema] = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(
            FieldError(
                path,
                f"must have at least {plural(schema['minProperties'], 'field')} (got {len(value)})",
            )
        )
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            FieldError(
                path,
                f"must have at most {plural(schema['maxProperties'], 'field')} (got {len(value)})",
            )
        )
    for name, item in value.items():
        if name in properties:
            _validate(item, properties[name], field_path(path, name), errors)
        elif isinstance(additional, Mapping):
            _validate(item, additional, key_path(path, name), errors)
        elif additional is True or preserve:
            continue
        else:
            errors.append(
                FieldError(field_path(path, name), unknown_field_message(name, properties))
            )
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(FieldError(field_path(path, name), "required field is missing"))


def unknown_field_message(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if not close:
        # Case slips (``Command``) are common and difflib scores them low.
        close = [k for k in known if k.lower() == name.lower()]
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    if known:
        return f"unknown field (expected one of: {', '.join(known)})"
    return "unknown field"


def apply_defaults(value: Any, schema: Schema) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, the API server's way:
    a property that is null but not nullable is dropped first (so its default applies),
    defaults apply only where the parent exists, and defaulted values are themselves
    defaulted. Parts of the wrong type are left for :func:`validate` to report."""
    if isinstance(value, Mapping):
        properties: Mapping[str, Schema] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        result: dict[Any, Any] = {}
        for name, item in value.items():
            prop = properties.get(name)
            if item is None and prop is not None and not prop.get("nullable", False):
                continue
            result[name] = item
        for name, prop in properties.items():
            if name not in result and "default" in prop:
                result[name] = copy.deepcopy(prop["default"])
        for name, item in result.items():
            sub = properties.get(name)
            if sub is None and isinstance(additional, Mapping):
                sub = additional
            if sub is not None:
                result[name] = apply_defaults(item, sub)
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [apply_defaults(item, items) for item in value]
        return list(value)
    return value


def iter_schema(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every node of a schema with its path (``spec.suites[*].name``; map values
    ``[*]`` too), parents first."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from iter_schema(prop, field_path(path, name))
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        yield from iter_schema(additional, f"{path}[*]")
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from iter_schema(items, f"{path}[*]")


_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")


def structural_problems(schema: Schema) -> list[str]:
    """Why ``schema`` is not a structural schema this module can check, or a default in
    it is invalid; empty when all is well. A subset of the API server's own checks,
    enough to catch a CRD edit that would be rejected."""
    problems: list[str] = []
    for path, node in iter_schema(schema):
        where = path or "<root>"
        exempt = node.get("x-kubernetes-preserve-unknown-fields", False) or node.get(
            "x-kubernetes-int-or-string", False
        )
        node_type = node.get("type")
        if not node_type and not exempt:
            problems.append(f"{where}: no type")
        if node_type not in (None, "object", "array", "string", "integer", "number", "boolean"):
            problems.append(f"{where}: unknown type {node_type!r}")
        if node_type == "array" and not isinstance(node.get("items"), Mapping):
            problems.append(f"{where}: an array needs items")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties are exclusive")
        if node.get("uniqueItems", False):
            problems.append(f"{where}: uniqueItems is forbidden (use x-kubernetes-list-type)")
        for junctor in _JUNCTORS:
            if junctor in node:
                problems.append(f"{where}: {junctor} is not supported by greenloop.core.schema")
        for name in node.get("required", ()):
            if name not in node.get("properties", {}):
                problems.append(f"{where}: required field {name!r} has no schema")
        problems.extend(_list_type_problems(where, node))
        if "default" in node:
            defaulted = apply_defaults(node["default"], node)
            for error in validate(defaulted, node, path):
                problems.append(f"{where}: invalid default: {error}")
    return problems


def _list_type_problems(where: str, node: Schema) -> list[str]:
    list_type = node.get("x-kubernetes-list-type")
    if list_type is None:
        return []
    items = node.get("items", {})
    if list_type == "set":
        if items.get("type") not in ("string", "integer", "number", "boolean"):
            return [f"{where}: a set list needs scalar items"]
        return []
    if list_type == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        problems = [] if keys else [f"{where}: a map list needs x-kubernetes-list-map-keys"]
        for key in keys:
            prop = items.get("properties", {}).get(key)
            if prop is None:
                problems.append(f"{where}: map key {key!r} has no schema")
            elif key not in items.get("required", ()) and "default" not in prop:
                problems.append(f"{where}: map key {key!r} must be required or defaulted")
        return problems
    if list_type != "atomic":
        return [f"{where}: unknown x-kubernetes-list-type {list_type!r}"]
    return []
