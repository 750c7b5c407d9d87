"""Checks of a decoded StagingValidation (docs/design.md §1): the CRD's structural schema,
applied exactly as the API server would, then what a structural schema cannot say.

The semantic checks mirror the CRD's CEL rules (which describe operator mode, since an
object in a cluster is always run by the operator), so ``greenloop run`` and
``kubectl apply`` agree about what is valid. Pure core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from greenloop.core.capabilities import Mode, capabilities
from greenloop.core.classify import RULES_TOO_LARGE, rule_errors
from greenloop.core.crd import API_VERSION, KIND, schema
from greenloop.core.model import FailureClass, Rule
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

__all__ = ["Mode", "check", "parse_duration"]


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
_RULE_CLASSES = frozenset(c.value for c in FailureClass if c is not FailureClass.RUNNER_ERROR)
_REDEPLOY_HINT = "no redeploy configured: failures in redeployOn will stop as Stalled"


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``30m``, ``6h`` or ``1h30m`` (the revalidateEvery form)."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration like 30m, 6h or 1h30m")
    return sum(int(n) * _DURATION_UNIT[unit] for n, unit in _DURATION_PART.findall(text))


def check(obj: Any, mode: Mode) -> tuple[list[FieldError], list[FieldError], dict[str, Any] | None]:
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
    defaulted: dict[str, Any] = apply_defaults(body, schema())
    errors.extend(validate(defaulted, schema()))
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
    elif len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
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
        elif len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
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
    errors.extend(_check_text(spec, "spec"))
    errors.extend(_check_suites(spec.get("suites"), mode))

    errors.extend(_check_rules(spec.get("classification")))

    every = spec.get("revalidateEvery")
    # CEL: !self.matches('^(0+[smh])+$')
    if isinstance(every, str) and _DURATION.fullmatch(every) and parse_duration(every) == 0:
        errors.append(
            FieldError("spec.revalidateEvery", f"must be greater than zero (got {show(every)})")
        )

    policy = spec.get("policy")
    # The approval gate waits for an annotation on the object; a local run has no object
    # a person could annotate, so it would wait for nothing (docs/design.md §8).
    if (
        mode == "local"
        and isinstance(policy, Mapping)
        and policy.get("redeploy") == ("RequireApproval")
    ):
        errors.append(
            FieldError(
                "spec.policy.redeploy",
                "RequireApproval is for operator mode only: a local run has no object to"
                " annotate with greenloop.dev/approve (use Automatic for local runs)",
            )
        )

    target = spec.get("target")
    if isinstance(target, Mapping):
        errors.extend(_check_target(target, mode))
    return errors


# Fields that become a process's arguments, environment or working directory: the OS
# cannot take a NUL there (the string would end at it, or exec fails).
_PROCESS_FIELDS = re.compile(
    r"spec\.suites\[\d+\]\.(?:command\[\d+\]|env\[\d+\]\.(?:name|value)|workingDir|image)"
    r"|spec\.target\.command\[\d+\]|spec\.target\.webhook\.headersFrom\.env\[.*\]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: Any, path: str) -> list[FieldError]:
    """Strings that cannot reach a process or the API server: lone surrogates (YAML's
    ``"\\ud800"`` escape; not text, so not UTF-8) anywhere, NULs where a process gets them."""
    errors: list[FieldError] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            surrogate = _SURROGATE.search(item)
            if surrogate is not None:
                errors.append(
                    FieldError(
                        where,
                        f"contains U+{ord(surrogate.group()):04X}, a lone surrogate, which is"
                        " not a character and cannot be written as UTF-8",
                    )
                )
            elif "\0" in item and _PROCESS_FIELDS.fullmatch(where):
                errors.append(
                    FieldError(
                        where,
                        f"{show(item)} contains a NUL character, which a process's arguments"
                        " and environment cannot hold",
                    )
                )
        elif isinstance(item, Mapping):
            for key, child in item.items():
                key_text = str(key)
                if isinstance(key, str) and _SURROGATE.search(key):
                    errors.append(
                        FieldError(key_path(where, key_text), "the key contains a lone surrogate")
                    )
                # headersFrom.env is a map: its entries are named like map entries.
                child_path = (
                    key_path(where, key_text)
                    if where.endswith("headersFrom.env")
                    else field_path(where, key_text)
                )
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((index_path(where, i), child) for i, child in enumerate(item))
    return errors


def _url_problem(url: str) -> str | None:
    """What would make the HTTP client refuse the URL at run time, or None."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"{show(url)} contains whitespace or control characters (percent-encode them)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"{show(url)} is not a valid URL ({exc})"
    if not parts.hostname:
        return f"{show(url)} has no host"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"{show(url)}: the host {parts.hostname!r} is not a valid host name"
    return None


def _check_rules(rules: Any) -> list[FieldError]:
    """Each rule compiled exactly as ``run`` compiles it (CEL: the pattern is RE2 that
    does not match an empty line), so a rule that would fail a run fails here instead.
    Through the compiled-rule cache (``classify.rule_errors``): a spec is checked on
    every tick, and compiling 100 rules anew each time took seconds."""
    if not isinstance(rules, list):
        return []
    usable: list[Rule] = []
    where: list[int] = []  # usable[i] is rules[where[i]]
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            continue
        pattern, name = rule.get("pattern"), rule.get("class")
        if not isinstance(pattern, str):
            continue  # the schema has said what is wrong
        # A class the schema refuses is reported once, by the schema.
        failure_class = FailureClass(name) if name in _RULE_CLASSES else FailureClass.UNKNOWN
        usable.append(Rule(pattern=pattern, failure_class=failure_class))
        where.append(index)
    errors: list[FieldError] = []
    for exc in rule_errors(usable):
        reason = RULES_TOO_LARGE if exc.too_large else ""
        if exc.index is None:
            errors.append(FieldError("spec.classification", str(exc), reason))
        else:
            path = f"spec.classification[{where[exc.index]}].{exc.field}"
            errors.append(FieldError(path, str(exc), reason))
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
        errors.extend(_check_pod_settings(suite, path, mode))
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


#: Fields of a suite that configure its pod (docs/design.md §8): a local run starts a
#: process, which has no pod to put them on.
_POD_FIELDS = (
    "serviceAccountName",
    "envFrom",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "imagePullSecrets",
    "volumes",
)
_OPERATOR_ONLY = "only in operator mode: a local run starts a process, not a pod"
# The volumes of greenloop's own Job pod (k8s/jobs.py): a suite volume of the same name
# would make a Job the API server refuses.
RESERVED_VOLUMES = ("results", "results-token", "select")


def _one_of(value: Any, keys: tuple[str, ...]) -> bool:
    return sum(key in value for key in keys) == 1


def _check_pod_settings(suite: Mapping[str, Any], path: str, mode: Mode) -> list[FieldError]:
    """Local mode refuses the pod's fields, naming each; operator mode mirrors the CEL
    rules on them."""
    env = suite.get("env")
    env_items = (
        [(i, e) for i, e in enumerate(env) if isinstance(e, Mapping)]
        if (isinstance(env, list))
        else []
    )
    if mode == "local":
        errors = [FieldError(f"{path}.{f}", _OPERATOR_ONLY) for f in _POD_FIELDS if f in suite]
        errors += [
            FieldError(f"{path}.env[{i}].valueFrom", _OPERATOR_ONLY)
            for i, e in env_items
            if "valueFrom" in e
        ]
        return errors
    errors = []
    for i, e in env_items:
        where = f"{path}.env[{i}]"
        # CEL: !(has(self.value) && has(self.valueFrom))
        if "value" in e and "valueFrom" in e:
            errors.append(FieldError(where, "give value or valueFrom, not both"))
        source = e.get("valueFrom")
        # CEL: exactly one of secretKeyRef, configMapKeyRef, fieldRef
        if isinstance(source, Mapping) and not _one_of(
            source, ("secretKeyRef", "configMapKeyRef", "fieldRef")
        ):
            errors.append(
                FieldError(
                    f"{where}.valueFrom",
                    "give exactly one of secretKeyRef, configMapKeyRef and fieldRef",
                )
            )
    for i, item in enumerate(suite.get("envFrom") or ()):
        # CEL: has(self.secretRef) != has(self.configMapRef)
        if isinstance(item, Mapping) and not _one_of(item, ("secretRef", "configMapRef")):
            errors.append(
                FieldError(f"{path}.envFrom[{i}]", "give exactly one of secretRef and configMapRef")
            )
    volumes = suite.get("volumes")
    if isinstance(volumes, list):
        errors.extend(_check_volumes(volumes, f"{path}.volumes"))
    return errors


def _check_volumes(volumes: list[Any], path: str) -> list[FieldError]:
    """The CEL rules of suites[].volumes: one source each, unique names, none of
    greenloop's own names or folder."""
    errors: list[FieldError] = []
    first: dict[str, int] = {}
    for i, volume in enumerate(volumes):
        if not isinstance(volume, Mapping):
            continue
        where = index_path(path, i)
        if not _one_of(volume, ("secret", "configMap", "emptyDir")):
            errors.append(FieldError(where, "give exactly one of secret, configMap and emptyDir"))
        name, mount = volume.get("name"), volume.get("mountPath")
        if name in RESERVED_VOLUMES:
            errors.append(
                FieldError(
                    f"{where}.name", "results, results-token and select are greenloop's own volumes"
                )
            )
        elif isinstance(name, str):
            if name in first:
                errors.append(
                    FieldError(
                        f"{where}.name",
                        f"duplicate volume name {name!r} (also {path}[{first[name]}])",
                    )
                )
            first.setdefault(name, i)
        if isinstance(mount, str) and (mount == "/greenloop" or mount.startswith("/greenloop/")):
            errors.append(FieldError(f"{where}.mountPath", "/greenloop is greenloop's own folder"))
    return errors


def _check_target(target: Mapping[str, Any], mode: Mode) -> list[FieldError]:
    errors: list[FieldError] = []
    for field in ("webhook", "health"):
        endpoint = target.get(field)
        url = endpoint.get("url") if isinstance(endpoint, Mapping) else None
        problem = _url_problem(url) if isinstance(url, str) else None
        if problem is not None:
            errors.append(FieldError(f"spec.target.{field}.url", problem))
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
            if not _HEADER_NAME.fullmatch(str(header)):
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
    return [*_shard_width_warnings(spec), *_redeploy_warnings(spec, mode)]


def _shard_width_warnings(spec: Mapping[str, Any]) -> list[FieldError]:
    """A suite with more shards than ``policy.parallelism`` (which counts processes and
    pods) runs some of its shards after others: said, not refused."""
    policy = spec.get("policy")
    width = policy.get("parallelism", 1) if isinstance(policy, Mapping) else 1
    suites = spec.get("suites")
    if not isinstance(width, int) or not isinstance(suites, list):
        return []
    out: list[FieldError] = []
    for index, suite in enumerate(suites):
        shards = suite.get("shards", 1) if isinstance(suite, Mapping) else 1
        if isinstance(shards, int) and shards > max(1, width):
            out.append(
                FieldError(
                    f"spec.suites[{index}].shards",
                    f"{shards} shards, but spec.policy.parallelism is {width}: at most {width}"
                    " run at once (it counts processes and pods); raise it to run them together",
                )
            )
    return out


def _redeploy_warnings(spec: Mapping[str, Any], mode: Mode) -> list[FieldError]:
    policy = spec.get("policy")
    redeploy_on = policy.get("redeployOn") if isinstance(policy, Mapping) else None
    if not redeploy_on:
        return []
    target = spec.get("target")
    if not isinstance(target, Mapping):
        target = {}
    caps = capabilities(
        mode,
        workloads=bool(target.get("workloads")),
        command=bool(target.get("command")),
        webhook="webhook" in target,
    )
    if caps.can_redeploy:
        return []
    message = _REDEPLOY_HINT
    if mode == "local" and target.get("workloads"):
        message += " (target.workloads are redeployed only in operator mode)"
    return [FieldError("spec.target", message)]
