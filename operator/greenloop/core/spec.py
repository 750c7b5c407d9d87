"""Load and validate StagingValidation objects (docs/design.md §1) into :mod:`greenloop.core.model`.

The CRD (crds/stagingvalidation.yaml, shipped in the package as crd/stagingvalidation.yaml)
is the one source of truth for the schema: a file is defaulted and validated against the
CRD's own openAPIV3Schema, exactly as the API server would, and then checked for what a
structural schema cannot say. Those semantic checks mirror the CRD's CEL rules (which
describe operator mode, since an object in a cluster is always run by the operator), so
``greenloop run`` and ``kubectl apply`` agree about what is valid.

Every problem is reported, not only the first, as ``<source>: <path>: <message>``.
Pure core: reads the text or file it is given, nothing else.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from greenloop.core.model import (
    EnvVar,
    FailureClass,
    HeadersFrom,
    Health,
    Policy,
    RerunMode,
    Rule,
    StagingValidation,
    Suite,
    Target,
    ValidationSpec,
    Webhook,
    Workload,
)
from greenloop.core.schema import (
    FieldError,
    apply_defaults,
    field_path,
    index_path,
    key_path,
    show,
    type_name,
    unknown_field_message,
    validate,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "FieldError",
    "Loaded",
    "Mode",
    "SpecError",
    "crd",
    "from_object",
    "load_file",
    "load_text",
    "parse_duration",
    "spec_schema",
    "validate_object",
]

GROUP = "greenloop.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "StagingValidation"

Mode = Literal["local", "operator"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION = re.compile(r"^([0-9]+(s|m|h))+$")
_DURATION_PART = re.compile(r"([0-9]+)(s|m|h)")
_DURATION_UNIT = {"s": 1, "m": 60, "h": 3600}
# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Every field of ObjectMeta: anything else under metadata is a typo.
_OBJECT_META = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
# YAML aliases are shared, so a few lines can expand to billions of values; validating
# walks the expansion, so refuse documents far larger than any real spec.
_MAX_VALUES = 100_000

_REDEPLOY_HINT = "no redeploy configured: failures in redeployOn will stop as Stalled"


class SpecError(ValueError):
    """A spec that cannot be used; ``str()`` gives one ``<source>: <path>: <message>``
    line per problem."""

    source: str
    errors: tuple[FieldError, ...]

    def __init__(self, source: str, errors: Sequence[FieldError]) -> None:
        # args are the constructor's arguments so the exception pickles (multiprocessing).
        super().__init__(source, tuple(errors))
        self.source = source
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(_line(self.source, error) for error in self.errors)


@dataclass(frozen=True, slots=True)
class Loaded:
    objects: tuple[StagingValidation, ...]
    warnings: tuple[str, ...]


def _line(source: str, error: FieldError) -> str:
    return f"{source}: {error}"


# ---------------------------------------------------------------------------
# The CRD


@cache
def _crd() -> dict[str, Any]:
    resource = resources.files("greenloop") / "crd" / "stagingvalidation.yaml"
    loaded = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise RuntimeError("greenloop/crd/stagingvalidation.yaml is not a mapping")
    return loaded


@cache
def _schema() -> dict[str, Any]:
    for version in _crd()["spec"]["versions"]:
        if version.get("served") and version.get("storage"):
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise RuntimeError("the StagingValidation CRD has no served storage version")


def crd() -> dict[str, Any]:
    """The parsed CRD (a copy: callers may change it)."""
    return copy.deepcopy(_crd())


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served (storage) version (a copy)."""
    return copy.deepcopy(_schema())


def _subschema(*names: str) -> Mapping[str, Any]:
    node: Mapping[str, Any] = _schema()
    for name in names:
        node = node["properties"][name]
    return node


# ---------------------------------------------------------------------------
# Public API


def validate_object(obj: Any, *, mode: Mode = "local") -> list[FieldError]:
    """Every problem with one decoded object; empty when it is a valid StagingValidation."""
    errors, _, _ = _check(obj, mode)
    return errors


def from_object(
    obj: Mapping[str, Any], *, source: str = "<object>", mode: Mode = "local"
) -> StagingValidation:
    """Build a StagingValidation from a decoded object (a file's document or an object
    read from the API server). Raises SpecError naming every problem."""
    errors, _, body = _check(obj, mode)
    if errors or body is None:
        raise SpecError(source, errors)
    return _build(obj, body, source)


def load_text(text: str, *, source: str = "<string>", mode: Mode = "local") -> Loaded:
    """Load every StagingValidation in YAML text (one or more documents)."""
    documents = _parse(text, source)
    present = [(index, doc) for index, doc in enumerate(documents) if doc is not None]
    if not present:
        raise SpecError(source, [FieldError("", f"no {KIND} found: the file is empty")])
    # Paths name the document only when there is more than one to tell apart.
    several = len(present) > 1
    errors: list[FieldError] = []
    warnings: list[str] = []
    objects: list[StagingValidation] = []
    first_seen: dict[tuple[str, str], int] = {}
    for index, doc in present:
        prefix = f"documents[{index}]" if several else ""
        doc_errors, doc_warnings, body = _check(doc, mode)
        errors.extend(_prefixed(prefix, error) for error in doc_errors)
        warnings.extend(_line(source, _prefixed(prefix, w)) for w in doc_warnings)
        if doc_errors or body is None:
            continue
        sv = _build(doc, body, source)
        key = (sv.namespace, sv.name)
        if key in first_seen:
            errors.append(
                FieldError(
                    field_path(prefix, "metadata.name"),
                    f"duplicate object {sv.namespace}/{sv.name}"
                    f" (also documents[{first_seen[key]}])",
                )
            )
            continue
        first_seen[key] = index
        objects.append(sv)
    if errors:
        raise SpecError(source, errors)
    return Loaded(objects=tuple(objects), warnings=tuple(warnings))


def load_file(path: str | os.PathLike[str], *, mode: Mode = "local") -> Loaded:
    """Load every StagingValidation in a YAML file; messages name the path as given."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise SpecError(source, [FieldError("", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError(source, [FieldError("", "is a directory, not a file")]) from None
    except OSError as exc:
        raise SpecError(source, [FieldError("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            source, [FieldError("", f"not UTF-8 text (invalid byte at offset {exc.start})")]
        ) from None
    return load_text(text, source=source, mode=mode)


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``30m``, ``6h`` or ``1h30m`` (the revalidateEvery form)."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like 30m, 6h or 1h30m")
    return sum(int(n) * _DURATION_UNIT[unit] for n, unit in _DURATION_PART.findall(text))


# ---------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """A SafeLoader that reads YAML the way the API server does (sigs.k8s.io/yaml):
    timestamps stay strings, and a key given twice is an error rather than the last
    value silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse(text: str, source: str) -> list[Any]:
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        raise SpecError(source, [FieldError("", _yaml_message(exc))]) from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        message = f"invalid YAML: {exc.reason} (U+{char:04X} at offset {exc.position})"
        raise SpecError(source, [FieldError("", message)]) from None
    except yaml.YAMLError as exc:
        raise SpecError(source, [FieldError("", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise SpecError(source, [FieldError("", "invalid YAML: nested too deeply")]) from None
    for index, doc in enumerate(documents):
        if _too_big(doc):
            where = f"document {index} " if len(documents) > 1 else ""
            message = f"{where}is too large: over {_MAX_VALUES} values once aliases are expanded"
            raise SpecError(source, [FieldError("", message)])
    return documents


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    message = f"invalid YAML{where}: {problem}"
    if exc.problem and exc.context:
        context = exc.context
        if exc.context_mark is not None and (mark is None or exc.context_mark.line != mark.line):
            context += f" at line {exc.context_mark.line + 1}"
        message += f" ({context})"
    return message


def _too_big(doc: Any) -> bool:
    count = 0
    stack = [doc]
    while stack:
        value = stack.pop()
        count += 1
        if count > _MAX_VALUES:
            return True
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _prefixed(prefix: str, error: FieldError) -> FieldError:
    if not prefix:
        return error
    return FieldError(field_path(prefix, error.path) if error.path else prefix, error.message)


# ---------------------------------------------------------------------------
# Checks


def _check(
    obj: Any, mode: Mode
) -> tuple[list[FieldError], list[FieldError], dict[str, Any] | None]:
    """(errors, warnings, the defaulted object without metadata and status)."""
    if mode not in ("local", "operator"):
        raise ValueError(f"mode must be 'local' or 'operator', not {mode!r}")
    if not isinstance(obj, Mapping):
        return [FieldError("", f"expected a {KIND} object, got {_a(type_name(obj))}")], [], None
    kind = obj.get("kind")
    if kind is not None and kind != KIND:
        # Another kind of object: its other fields mean nothing to us.
        return [FieldError("kind", f"expected {KIND!r}, got {show(kind)}")], [], None
    errors: list[FieldError] = []
    if kind is None:
        errors.append(FieldError("kind", f"required field is missing (expected {KIND!r})"))
    api_version = obj.get("apiVersion")
    if api_version is None:
        errors.append(
            FieldError("apiVersion", f"required field is missing (expected {API_VERSION!r})")
        )
    elif api_version != API_VERSION:
        errors.append(
            FieldError("apiVersion", f"expected {API_VERSION!r}, got {show(api_version)}")
        )
    errors.extend(_check_metadata(obj.get("metadata")))

    # metadata is ObjectMeta (checked above), and status is the operator's output, which
    # says nothing about whether the spec is usable: validate the rest against the CRD.
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    defaulted: dict[str, Any] = apply_defaults(body, _schema())
    errors.extend(validate(defaulted, _schema()))
    errors.extend(_semantic(defaulted, mode))
    return _in_document_order(errors, obj), _warnings(defaulted, mode), defaulted


def _in_document_order(errors: list[FieldError], obj: Mapping[str, Any]) -> list[FieldError]:
    """Sort errors the way the fields appear in the document, so that a reader can go
    through the file once; a missing field sorts after what its parent holds."""
    first: dict[str, int] = {}  # path -> its place in a depth-first walk
    last: dict[str, int] = {}  # path -> the place of its last descendant

    def walk(path: str, value: Any) -> None:
        first.setdefault(path, len(first))
        if isinstance(value, Mapping):
            for key, item in value.items():
                # A field of an object or an entry of a map: the walk cannot tell which.
                first.setdefault(key_path(path, str(key)), len(first))
                walk(field_path(path, str(key)), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(index_path(path, index), item)
        last[path] = len(first)

    walk("", obj)

    def position(error: FieldError) -> tuple[int, int]:
        if error.path in first:
            return first[error.path], 0
        path = error.path
        while path not in last:
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return 0, 0
            path = path[:cut]
        return last[path], 1

    return sorted(errors, key=position)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _check_metadata(meta: Any) -> list[FieldError]:
    if meta is None:
        return [FieldError("metadata.name", "required field is missing")]
    if not isinstance(meta, Mapping):
        return [FieldError("metadata", f"expected object, got {type_name(meta)}")]
    errors: list[FieldError] = []
    for key in meta:
        if key not in _OBJECT_META:
            known = dict.fromkeys(_OBJECT_META)
            errors.append(FieldError(f"metadata.{key}", unknown_field_message(str(key), known)))
    name = meta.get("name")
    if name is None:
        errors.append(FieldError("metadata.name", "required field is missing"))
    elif not isinstance(name, str):
        errors.append(FieldError("metadata.name", f"expected string, got {type_name(name)}"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        errors.append(
            FieldError(
                "metadata.name",
                f"{show(name)} is not a DNS subdomain (lower-case letters, digits, '-' and"
                " '.', at most 253 characters)",
            )
        )
    namespace = meta.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str):
            errors.append(
                FieldError("metadata.namespace", f"expected string, got {type_name(namespace)}")
            )
        elif len(namespace) > 63 or not _DNS_LABEL.match(namespace):
            errors.append(
                FieldError(
                    "metadata.namespace",
                    f"{show(namespace)} is not a DNS label (lower-case letters, digits and '-',"
                    " at most 63 characters)",
                )
            )
    for field in ("labels", "annotations"):
        errors.extend(_string_map(meta.get(field), f"metadata.{field}"))
    generation = meta.get("generation")
    if generation is not None and (
        not isinstance(generation, int) or isinstance(generation, bool) or generation < 1
    ):
        errors.append(
            FieldError(
                "metadata.generation", f"expected a positive integer, got {show(generation)}"
            )
        )
    uid = meta.get("uid")
    if uid is not None and not isinstance(uid, str):
        errors.append(FieldError("metadata.uid", f"expected string, got {type_name(uid)}"))
    return errors


def _string_map(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [FieldError(path, f"expected object, got {type_name(value)}")]
    # A frequent slip: `greenloop.dev/rerun: 1` is an integer, and annotations are strings.
    return [
        FieldError(key_path(path, str(key)), f"expected string, got {type_name(item)} {show(item)}")
        for key, item in value.items()
        if not isinstance(item, str)
    ]


def _semantic(body: Mapping[str, Any], mode: Mode) -> list[FieldError]:
    """What the structural schema cannot say. Each check that mirrors a CEL rule of the
    CRD says so; the others (regex syntax, header names) the API server cannot check."""
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return []
    errors: list[FieldError] = []
    errors.extend(_check_suites(spec.get("suites"), mode))

    rules = spec.get("classification")
    if isinstance(rules, list):
        for index, rule in enumerate(rules):
            pattern = rule.get("pattern") if isinstance(rule, Mapping) else None
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    path = f"spec.classification[{index}].pattern"
                    errors.append(FieldError(path, f"invalid regular expression: {exc}"))

    every = spec.get("revalidateEvery")
    # CEL: !self.matches('^(0+[smh])+$')
    if isinstance(every, str) and _DURATION.match(every) and parse_duration(every) == 0:
        errors.append(
            FieldError("spec.revalidateEvery", f"must be greater than zero (got {show(every)})")
        )

    target = spec.get("target")
    if isinstance(target, Mapping):
        errors.extend(_check_target(target, mode))
    return errors


def _check_suites(suites: Any, mode: Mode) -> list[FieldError]:
    if not isinstance(suites, list):
        return []
    errors: list[FieldError] = []
    first: dict[str, int] = {}
    for index, suite in enumerate(suites):
        if not isinstance(suite, Mapping):
            continue
        path = index_path("spec.suites", index)
        # CEL: self.all(s, self.exists_one(t, t.name == s.name))
        name = suite.get("name")
        if isinstance(name, str):
            if name in first:
                errors.append(
                    FieldError(
                        f"{path}.name",
                        f"duplicate suite name {name!r} (also spec.suites[{first[name]}])",
                    )
                )
            else:
                first[name] = index
        if mode == "operator":
            # CEL: has(self.image)
            if "image" not in suite:
                errors.append(
                    FieldError(
                        f"{path}.image",
                        "required in operator mode (each suite runs as a Job from this image)",
                    )
                )
            # CEL: !has(self.workingDir) || self.workingDir == '.'
            working_dir = suite.get("workingDir", ".")
            if isinstance(working_dir, str) and working_dir != ".":
                errors.append(
                    FieldError(
                        f"{path}.workingDir",
                        f"{show(working_dir)}: only '.' in operator mode"
                        " (the image sets the working directory)",
                    )
                )
    return errors


def _check_target(target: Mapping[str, Any], mode: Mode) -> list[FieldError]:
    errors: list[FieldError] = []
    # CEL: !has(self.command). The operator runs no commands from objects: that would
    # let anyone who may create a StagingValidation run code in the operator's pod.
    if mode == "operator" and "command" in target:
        errors.append(
            FieldError(
                "spec.target.command",
                "not allowed in operator mode (use target.workloads or target.webhook)",
            )
        )
    webhook = target.get("webhook")
    headers = webhook.get("headersFrom") if isinstance(webhook, Mapping) else None
    if not isinstance(headers, Mapping):
        return errors
    path = "spec.target.webhook.headersFrom"
    # CEL: !has(self.env)
    if mode == "operator" and "env" in headers:
        errors.append(
            FieldError(f"{path}.env", "only in local mode (in operator mode use secretName)")
        )
    # Local mode has no Secrets to read.
    if mode == "local" and "secretName" in headers:
        errors.append(
            FieldError(f"{path}.secretName", "only in operator mode (in local mode use env)")
        )
    env = headers.get("env")
    if isinstance(env, Mapping):
        for header in env:
            if not _HEADER_NAME.match(str(header)):
                errors.append(
                    FieldError(
                        key_path(f"{path}.env", str(header)),
                        f"{show(header)} is not a valid HTTP header name",
                    )
                )
    return errors


def _warnings(body: Mapping[str, Any], mode: Mode) -> list[FieldError]:
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return []
    policy = spec.get("policy")
    redeploy_on = policy.get("redeployOn") if isinstance(policy, Mapping) else None
    if not redeploy_on:
        return []
    target = spec.get("target")
    if not isinstance(target, Mapping):
        target = {}
    if mode == "local":
        can_redeploy = bool(target.get("command")) or "webhook" in target
    else:
        can_redeploy = bool(target.get("workloads")) or "webhook" in target
    if can_redeploy:
        return []
    message = _REDEPLOY_HINT
    if mode == "local" and target.get("workloads"):
        message += " (target.workloads are redeployed only in operator mode)"
    return [FieldError("spec.target", message)]


# ---------------------------------------------------------------------------
# Building the model from a valid, defaulted object


def _build(obj: Mapping[str, Any], body: Mapping[str, Any], source: str) -> StagingValidation:
    meta: Mapping[str, Any] = obj["metadata"]
    spec: Mapping[str, Any] = body["spec"]
    # An absent target still gets the CRD's defaults, so the schema stays the only
    # place defaults are written down.
    target = spec.get("target")
    if target is None:
        target = apply_defaults({}, _subschema("spec", "target"))
    every = spec.get("revalidateEvery")
    validation_spec = ValidationSpec(
        suites=tuple(_suite(suite) for suite in spec["suites"]),
        target=_target(target),
        policy=_policy(spec["policy"]),
        classification=tuple(
            Rule(pattern=rule["pattern"], failure_class=FailureClass(rule["class"]))
            for rule in spec.get("classification", ())
        ),
        expected_tests=spec.get("expectedTests"),
        service_account_name=spec.get("serviceAccountName"),
        revalidate_every_seconds=None if every is None else parse_duration(every),
    )
    return StagingValidation(
        name=meta["name"],
        spec=validation_spec,
        namespace=meta.get("namespace") or "default",
        generation=meta.get("generation") or 1,
        uid=meta.get("uid") or "",
        source=source,
        annotations=dict(meta.get("annotations") or {}),
    )


def _suite(suite: Mapping[str, Any]) -> Suite:
    return Suite(
        name=suite["name"],
        command=tuple(suite["command"]),
        priority=suite["priority"],
        image=suite.get("image"),
        working_dir=suite["workingDir"],
        env=tuple(EnvVar(name=e["name"], value=e["value"]) for e in suite.get("env", ())),
        timeout_seconds=suite["timeoutSeconds"],
    )


def _target(target: Mapping[str, Any]) -> Target:
    webhook = target.get("webhook")
    health = target.get("health")
    return Target(
        workloads=tuple(
            Workload(kind=w["kind"], name=w["name"]) for w in target.get("workloads", ())
        ),
        command=tuple(target.get("command", ())),
        webhook=None if webhook is None else _webhook(webhook),
        health=None
        if health is None
        else Health(
            url=health["url"],
            timeout_seconds=health["timeoutSeconds"],
            expect_status=health["expectStatus"],
        ),
        command_timeout_seconds=target["commandTimeoutSeconds"],
    )


def _webhook(webhook: Mapping[str, Any]) -> Webhook:
    headers = webhook.get("headersFrom")
    return Webhook(
        url=webhook["url"],
        method=webhook["method"],
        headers_from=None
        if headers is None
        else HeadersFrom(secret_name=headers.get("secretName"), env=dict(headers.get("env", {}))),
        timeout_seconds=webhook["timeoutSeconds"],
    )


def _policy(policy: Mapping[str, Any]) -> Policy:
    return Policy(
        max_iterations=policy["maxIterations"],
        deadline_seconds=policy["deadlineSeconds"],
        rerun=RerunMode(policy["rerun"]),
        redeploy_on=tuple(FailureClass(c) for c in policy["redeployOn"]),
        flake_retries=policy["flakeRetries"],
        fail_fast=policy["failFast"],
    )
