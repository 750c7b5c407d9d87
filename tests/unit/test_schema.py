"""greenloop.core.schema: the structural-schema validator, on tables of schema/value cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from greenloop.core.schema import (
    FieldError,
    apply_defaults,
    iter_schema,
    structural_problems,
    unknown_field_message,
    validate,
)

INT = {"type": "integer"}
STR = {"type": "string"}

# (id, schema, value, expected errors as "path: message")
VALIDATE_CASES: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    # --- types
    ("string ok", STR, "x", []),
    ("string got int", STR, 5, [": expected string, got integer 5"]),
    ("integer ok", INT, 5, []),
    ("integer got bool", INT, True, [": expected integer, got boolean true"]),
    ("integer got float", INT, 5.0, [": expected integer, got number 5.0"]),
    ("integer got string", INT, "5", [": expected integer, got string '5'"]),
    ("number takes int", {"type": "number"}, 5, []),
    ("number takes float", {"type": "number"}, 0.5, []),
    ("number got bool", {"type": "number"}, False, [": expected number, got boolean false"]),
    (
        "number not finite",
        {"type": "number"},
        float("inf"),
        [": must be a finite number (got inf)"],
    ),
    ("boolean ok", {"type": "boolean"}, False, []),
    ("boolean got string", {"type": "boolean"}, "true", [": expected boolean, got string 'true'"]),
    ("object got list", {"type": "object"}, [], [": expected object, got array"]),
    (
        "array got string",
        {"type": "array", "items": STR},
        "a",
        [": expected array, got string 'a'"],
    ),
    (
        "object non-string key",
        {"type": "object"},
        {1: "a"},
        [": expected object, got object with a non-string key"],
    ),
    ("other python type", STR, object, [": expected string, got type"]),
    ("null", STR, None, [": must not be null"]),
    ("null nullable", {"type": "string", "nullable": True}, None, []),
    ("int-or-string int", {"x-kubernetes-int-or-string": True}, 3, []),
    ("int-or-string str", {"x-kubernetes-int-or-string": True}, "50%", []),
    (
        "int-or-string float",
        {"x-kubernetes-int-or-string": True},
        0.5,
        [": expected integer or string, got number"],
    ),
    (
        "untyped preserve takes anything",
        {"x-kubernetes-preserve-unknown-fields": True},
        [1, {"a": None}],
        [],
    ),
    # --- enum
    ("enum ok", {"type": "string", "enum": ["Failed", "All"]}, "All", []),
    (
        "enum bad",
        {"type": "string", "enum": ["Failed", "All"]},
        "Some",
        [": unsupported value 'Some' (expected one of: Failed, All)"],
    ),
    (
        "enum is case sensitive",
        {"type": "string", "enum": ["POST"]},
        "post",
        [": unsupported value 'post' (expected one of: POST)"],
    ),
    (
        "enum true is not 1",
        {"type": "integer", "enum": [1]},
        True,
        [": expected integer, got boolean true"],
    ),
    (
        "enum of integers",
        {"type": "integer", "enum": [1, 2]},
        3,
        [": unsupported value 3 (expected one of: 1, 2)"],
    ),
    # --- strings
    ("pattern ok", {"type": "string", "pattern": "^P[1-9]$"}, "P1", []),
    (
        "pattern bad",
        {"type": "string", "pattern": "^P[1-9]$"},
        "P0",
        [": 'P0' does not match ^P[1-9]$"],
    ),
    ("pattern searches", {"type": "string", "pattern": "b"}, "abc", []),
    (
        "minLength",
        {"type": "string", "minLength": 1},
        "",
        [": must be at least 1 character long (got 0)"],
    ),
    (
        "maxLength",
        {"type": "string", "maxLength": 2},
        "abc",
        [": must be at most 2 characters long (got 3)"],
    ),
    ("length counts characters", {"type": "string", "maxLength": 2}, "éé", []),
    (
        "long value is cut",
        {"type": "string", "pattern": "^a$"},
        "b" * 100,
        [f": '{'b' * 77}...' does not match ^a$"],
    ),
    ("date-time ok", {"type": "string", "format": "date-time"}, "2026-01-02T03:04:05Z", []),
    (
        "date-time fraction and offset",
        {"type": "string", "format": "date-time"},
        "2026-01-02T03:04:05.123+02:00",
        [],
    ),
    (
        "date-time bad day",
        {"type": "string", "format": "date-time"},
        "2026-02-30T00:00:00Z",
        [": '2026-02-30T00:00:00Z' is not a date-time (RFC 3339)"],
    ),
    (
        "date-time no time",
        {"type": "string", "format": "date-time"},
        "2026-02-01",
        [": '2026-02-01' is not a date-time (RFC 3339)"],
    ),
    # --- numbers
    ("minimum ok", {"type": "integer", "minimum": 1}, 1, []),
    ("minimum", {"type": "integer", "minimum": 1}, 0, [": must be at least 1 (got 0)"]),
    ("maximum", {"type": "integer", "maximum": 10}, 11, [": must be at most 10 (got 11)"]),
    (
        "exclusive minimum",
        {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
        1,
        [": must be greater than 1 (got 1)"],
    ),
    (
        "exclusive maximum",
        {"type": "number", "maximum": 1, "exclusiveMaximum": True},
        1.0,
        [": must be less than 1 (got 1.0)"],
    ),
    ("multipleOf", {"type": "integer", "multipleOf": 5}, 7, [": must be a multiple of 5 (got 7)"]),
    (
        "int32",
        {"type": "integer", "format": "int32"},
        2**31,
        [": 2147483648 is out of range for int32"],
    ),
    ("int64 ok", {"type": "integer", "format": "int64"}, 2**40, []),
    # --- arrays
    (
        "minItems",
        {"type": "array", "items": STR, "minItems": 1},
        [],
        [": must have at least 1 item (got 0)"],
    ),
    (
        "maxItems",
        {"type": "array", "items": STR, "maxItems": 2},
        ["a", "b", "c"],
        [": must have at most 2 items (got 3)"],
    ),
    (
        "item paths",
        {"type": "array", "items": INT},
        [1, "x", 3, None],
        ["[1]: expected integer, got string 'x'", "[3]: must not be null"],
    ),
    (
        "set duplicates",
        {"type": "array", "items": STR, "x-kubernetes-list-type": "set"},
        ["a", "b", "a", "a"],
        ["[2]: duplicate 'a' (also [0])", "[3]: duplicate 'a' (also [0])"],
    ),
    (
        "set true is not 1",
        {
            "type": "array",
            "items": {"x-kubernetes-int-or-string": True},
            "x-kubernetes-list-type": "set",
        },
        [1, "1"],
        [],
    ),
    (
        "map duplicates",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["kind", "name"],
            "items": {
                "type": "object",
                "required": ["kind", "name"],
                "properties": {"kind": STR, "name": STR},
            },
        },
        [{"kind": "A", "name": "x"}, {"kind": "B", "name": "x"}, {"kind": "A", "name": "x"}],
        ["[2]: duplicate entry with kind 'A', name 'x' (also [0])"],
    ),
    # --- objects
    (
        "required",
        {"type": "object", "required": ["a"], "properties": {"a": INT}},
        {},
        ["a: required field is missing"],
    ),
    (
        "unknown with suggestion",
        {"type": "object", "properties": {"command": STR}},
        {"comand": "x"},
        ["comand: unknown field (did you mean 'command'?)"],
    ),
    (
        "unknown differs in case",
        {"type": "object", "properties": {"workingDir": STR}},
        {"WORKINGDIR": "x"},
        ["WORKINGDIR: unknown field (did you mean 'workingDir'?)"],
    ),
    (
        "unknown lists fields",
        {"type": "object", "properties": {"alpha": STR, "beta": STR}},
        {"zzz": 1},
        ["zzz: unknown field (expected one of: alpha, beta)"],
    ),
    ("unknown without properties", {"type": "object"}, {"zzz": 1}, ["zzz: unknown field"]),
    (
        "additionalProperties false",
        {"type": "object", "additionalProperties": False},
        {"a": 1},
        ["a: unknown field"],
    ),
    ("additionalProperties true", {"type": "object", "additionalProperties": True}, {"a": 1}, []),
    (
        "map values",
        {"type": "object", "additionalProperties": INT},
        {"a": 1, "b c": "x"},
        ["[b c]: expected integer, got string 'x'"],
    ),
    (
        "preserve unknown fields",
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": INT}},
        {"a": "x", "b": 1},
        ["a: expected integer, got string 'x'"],
    ),
    (
        "minProperties",
        {"type": "object", "minProperties": 1, "additionalProperties": INT},
        {},
        [": must have at least 1 field (got 0)"],
    ),
    (
        "maxProperties",
        {"type": "object", "maxProperties": 1, "additionalProperties": INT},
        {"a": 1, "b": 2},
        [": must have at most 1 field (got 2)"],
    ),
    (
        "every error, nested paths",
        {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["suites"],
                    "properties": {
                        "suites": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": STR,
                                    "priority": {"type": "string", "pattern": "^P[1-9]$"},
                                },
                            },
                        },
                        "x": INT,
                    },
                }
            },
        },
        {"spec": {"x": "y", "suites": [{"name": "a"}, {"priority": "P0", "nmae": "b"}]}},
        [
            "spec.x: expected integer, got string 'y'",
            "spec.suites[1].priority: 'P0' does not match ^P[1-9]$",
            "spec.suites[1].nmae: unknown field (did you mean 'name'?)",
            "spec.suites[1].name: required field is missing",
        ],
    ),
]


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [case[1:] for case in VALIDATE_CASES],
    ids=[case[0] for case in VALIDATE_CASES],
)
def test_validate(schema: dict[str, Any], value: Any, expected: list[str]) -> None:
    assert [f"{e.path}: {e.message}" for e in validate(value, schema)] == expected


def test_validate_prefixes_the_given_path() -> None:
    assert validate("x", INT, "spec.n") == [
        FieldError("spec.n", "expected integer, got string 'x'")
    ]


def test_field_error_str() -> None:
    assert str(FieldError("spec.a", "bad")) == "spec.a: bad"
    assert str(FieldError("", "bad")) == "bad"


POLICY = {
    "type": "object",
    "default": {},
    "properties": {
        "n": {"type": "integer", "default": 5},
        "on": {"type": "array", "items": STR, "default": ["a", "b"]},
        "inner": {"type": "object", "properties": {"m": {"type": "integer", "default": 1}}},
        "maybe": {"type": "string", "nullable": True, "default": "d"},
    },
}
ROOT = {
    "type": "object",
    "properties": {
        "policy": POLICY,
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"p": {"type": "string", "default": "P5"}}},
        },
        "map": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"t": {"type": "integer", "default": 60}},
            },
        },
        "plain": STR,
    },
}

# (id, value, expected after defaulting)
DEFAULT_CASES: list[tuple[str, Any, Any]] = [
    (
        "empty object default is defaulted in turn",
        {},
        {"policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "given values stay",
        {"policy": {"n": 2, "on": []}},
        {"policy": {"n": 2, "on": [], "maybe": "d"}},
    ),
    (
        "non-nullable null takes the default",
        {"policy": {"n": None}},
        {"policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "nullable null stays",
        {"policy": {"maybe": None}},
        {"policy": {"n": 5, "on": ["a", "b"], "maybe": None}},
    ),
    (
        "null without default is dropped",
        {"plain": None},
        {"policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "nested default only under a present parent",
        {"policy": {"inner": {}}},
        {"policy": {"inner": {"m": 1}, "n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "list items",
        {"items": [{}, {"p": "P1"}]},
        {"items": [{"p": "P5"}, {"p": "P1"}], "policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "map values",
        {"map": {"x": {}}},
        {"map": {"x": {"t": 60}}, "policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "wrong types are left for validate",
        {"policy": "x", "items": "y"},
        {"policy": "x", "items": "y"},
    ),
    (
        "unknown nulls stay for validate",
        {"bogus": None},
        {"bogus": None, "policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
    (
        "null list item stays",
        {"items": [None]},
        {"items": [None], "policy": {"n": 5, "on": ["a", "b"], "maybe": "d"}},
    ),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in DEFAULT_CASES], ids=[c[0] for c in DEFAULT_CASES]
)
def test_apply_defaults(value: Any, expected: Any) -> None:
    before = copy.deepcopy(value)
    assert apply_defaults(value, ROOT) == expected
    assert value == before, "the input must not change"


def test_defaults_are_copies() -> None:
    first = apply_defaults({}, ROOT)
    first["policy"]["on"].append("c")
    assert apply_defaults({}, ROOT)["policy"]["on"] == ["a", "b"]
    assert POLICY["properties"]["on"]["default"] == ["a", "b"]  # type: ignore[index]


# (id, schema, expected problems)
STRUCTURAL_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("fine", ROOT, []),
    ("no type", {"type": "object", "properties": {"a": {"description": "x"}}}, ["a: no type"]),
    (
        "preserve without type is fine",
        {"type": "object", "properties": {"a": {"x-kubernetes-preserve-unknown-fields": True}}},
        [],
    ),
    (
        "int-or-string without type is fine",
        {"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True}}},
        [],
    ),
    ("unknown type", {"type": "thing"}, ["<root>: unknown type 'thing'"]),
    ("array without items", {"type": "array"}, ["<root>: an array needs items"]),
    (
        "uniqueItems",
        {"type": "array", "items": STR, "uniqueItems": True},
        ["<root>: uniqueItems is forbidden (use x-kubernetes-list-type)"],
    ),
    (
        "junctor",
        {"type": "string", "anyOf": [{"pattern": "a"}]},
        ["<root>: anyOf is not supported by greenloop.core.schema"],
    ),
    (
        "both properties and additionalProperties",
        {"type": "object", "properties": {}, "additionalProperties": STR},
        ["<root>: properties and additionalProperties are exclusive"],
    ),
    (
        "required without schema",
        {"type": "object", "required": ["a"]},
        ["<root>: required field 'a' has no schema"],
    ),
    (
        "bad default",
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "default": 0}}},
        ["n: invalid default: n: must be at least 1 (got 0)"],
    ),
    (
        "bad nested default",
        {
            "type": "object",
            "default": {},
            "properties": {"n": {"type": "integer", "enum": [1], "default": 2}},
        },
        [
            "<root>: invalid default: n: unsupported value 2 (expected one of: 1)",
            "n: invalid default: n: unsupported value 2 (expected one of: 1)",
        ],
    ),
    (
        "set of objects",
        {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object"}},
        ["<root>: a set list needs scalar items"],
    ),
    (
        "map key optional",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["k"],
            "items": {"type": "object", "properties": {"k": STR}},
        },
        ["<root>: map key 'k' must be required or defaulted"],
    ),
    (
        "map without keys",
        {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}},
        ["<root>: a map list needs x-kubernetes-list-map-keys"],
    ),
    (
        "unknown list type",
        {"type": "array", "x-kubernetes-list-type": "bag", "items": STR},
        ["<root>: unknown x-kubernetes-list-type 'bag'"],
    ),
]


@pytest.mark.parametrize(
    ("schema", "expected"), [c[1:] for c in STRUCTURAL_CASES], ids=[c[0] for c in STRUCTURAL_CASES]
)
def test_structural_problems(schema: dict[str, Any], expected: list[str]) -> None:
    assert structural_problems(schema) == expected


def test_iter_schema_paths() -> None:
    paths = [path for path, _ in iter_schema(ROOT)]
    assert paths == [
        "",
        "policy",
        "policy.n",
        "policy.on",
        "policy.on[*]",
        "policy.inner",
        "policy.inner.m",
        "policy.maybe",
        "items",
        "items[*]",
        "items[*].p",
        "map",
        "map[*]",
        "map[*].t",
        "plain",
    ]


@pytest.mark.parametrize(
    ("name", "known", "expected"),
    [
        ("comand", ["command", "image"], "unknown field (did you mean 'command'?)"),
        ("Image", ["command", "image"], "unknown field (did you mean 'image'?)"),
        ("zzz", ["command", "image"], "unknown field (expected one of: command, image)"),
        ("zzz", [], "unknown field"),
    ],
)
def test_unknown_field_message(name: str, known: list[str], expected: str) -> None:
    assert unknown_field_message(name, dict.fromkeys(known)) == expected
