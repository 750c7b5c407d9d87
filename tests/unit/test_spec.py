"""greenloop.core.spec: loading, validating and defaulting StagingValidation objects, and the
CRD that is the schema's one source of truth."""

from __future__ import annotations

import copy
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenloop.core import model, spec
from greenloop.core.model import (
    EnvVar,
    FailureClass,
    HeadersFrom,
    Health,
    Policy,
    RedeployPolicy,
    RerunMode,
    Rule,
    StagingValidation,
    Suite,
    Target,
    ValidationSpec,
    Webhook,
    Workload,
)
from greenloop.core.schema import iter_schema, structural_problems, validate
from greenloop.core.spec import FieldError, SpecError
from greenloop.local.specfile import load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "specs"
CRD_FILE = REPO / "crds" / "stagingvalidation.yaml"
PACKAGE_CRD = REPO / "operator" / "greenloop" / "crd" / "stagingvalidation.yaml"

MINIMAL: dict[str, Any] = {
    "apiVersion": "greenloop.dev/v1alpha1",
    "kind": "StagingValidation",
    "metadata": {"name": "checkout"},
    "spec": {"suites": [{"name": "core", "command": ["pytest"]}]},
}
# The smallest valid object for operator mode.
OPERATOR: dict[str, Any] = {
    **MINIMAL,
    "spec": {"suites": [{"name": "core", "command": ["pytest"], "image": "e2e:1"}]},
}


def errors_of(text: str, mode: spec.Mode = "local") -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec.load_text(text, source="validation.yaml", mode=mode)
    assert caught.value.source == "validation.yaml"
    return str(caught.value).splitlines()


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


# ---------------------------------------------------------------------------
# Valid specs


def test_full_local_example_round_trips() -> None:
    loaded = load_spec(EXAMPLES / "full-local.yaml")
    assert loaded.warnings == ()
    assert loaded.objects == (
        StagingValidation(
            name="checkout",
            namespace="staging",
            generation=1,
            uid="",
            source=str(EXAMPLES / "full-local.yaml"),
            annotations={"greenloop.dev/rerun": "1"},
            spec=ValidationSpec(
                expected_tests=466,
                suites=(
                    Suite(
                        name="critical",
                        priority="P1",
                        command=("pytest", "tests/e2e/critical"),
                        image=None,
                        working_dir="../app",
                        env=(EnvVar("BASE_URL", "http://localhost:8000"),),
                        timeout_seconds=600,
                    ),
                    Suite(
                        name="core",
                        priority="P5",
                        command=("pytest", "tests/e2e/core"),
                        working_dir=".",
                        timeout_seconds=900,
                    ),
                ),
                target=Target(
                    workloads=(),
                    command=("./restart.sh",),
                    command_timeout_seconds=120,
                    webhook=Webhook(
                        url="https://ci.example/deploy",
                        method="PUT",
                        headers_from=HeadersFrom(env={"Authorization": "DEPLOY_TOKEN"}),
                        timeout_seconds=30,
                    ),
                    health=Health(
                        url="http://localhost:8000/health", timeout_seconds=120, expect_status=204
                    ),
                ),
                policy=Policy(
                    max_iterations=3,
                    deadline_seconds=3600,
                    rerun=RerunMode.ALL,
                    redeploy_on=(FailureClass.SERVICE_UNAVAILABLE, FailureClass.CONNECTION_ERROR),
                    flake_retries=2,
                    fail_fast=True,
                ),
                classification=(Rule("upstream connect error", FailureClass.SERVICE_UNAVAILABLE),),
                service_account_name=None,
                revalidate_every_seconds=5400,
            ),
        ),
    )


def test_operator_example_loads_in_operator_mode_with_defaults() -> None:
    (sv,) = load_spec(EXAMPLES / "operator.yaml", "operator").objects
    assert sv.spec.service_account_name == "e2e-runner"
    assert sv.spec.target.workloads == (
        Workload("Deployment", "backend"),
        Workload("StatefulSet", "db"),
    )
    assert sv.spec.target.webhook == Webhook(
        url="https://ci.example/deploy",
        method="POST",
        headers_from=HeadersFrom(secret_name="deploy-token"),
        timeout_seconds=60,
    )
    assert sv.spec.target.health == Health("http://backend:8000/health", 300, 200)
    assert [s.image for s in sv.spec.suites] == ["registry.example/e2e:1.4"] * 2
    assert sv.spec.policy == Policy(redeploy=RedeployPolicy.REQUIRE_APPROVAL)
    assert sv.spec.revalidate_every_seconds == 6 * 3600


def test_minimal_spec_gets_every_default() -> None:
    (sv,) = spec.load_text(dump(MINIMAL)).objects
    assert sv == StagingValidation(
        name="checkout",
        namespace="default",
        generation=1,
        uid="",
        source="<string>",
        annotations={},
        spec=ValidationSpec(
            suites=(Suite(name="core", command=("pytest",), priority="P5", timeout_seconds=900),),
            target=Target(command_timeout_seconds=600),
            policy=Policy(
                max_iterations=5,
                deadline_seconds=7200,
                rerun=RerunMode.FAILED,
                redeploy_on=(
                    FailureClass.SERVICE_UNAVAILABLE,
                    FailureClass.CONNECTION_ERROR,
                    FailureClass.TIMEOUT,
                    FailureClass.SERVER_ERROR,
                ),
                flake_retries=1,
                fail_fast=False,
            ),
        ),
    )


# Each model default must be the CRD's default, or local and operator mode would differ
# on what an omitted field means. (model field, CRD schema path)
MODEL_DEFAULTS: list[tuple[type[Any], str, str]] = [
    (Suite, "priority", "spec.suites[*].priority"),
    (Suite, "working_dir", "spec.suites[*].workingDir"),
    (Suite, "timeout_seconds", "spec.suites[*].timeoutSeconds"),
    (Suite, "runner", "spec.suites[*].runner"),
    (Suite, "shards", "spec.suites[*].shards"),
    (Policy, "parallelism", "spec.policy.parallelism"),
    (Target, "command_timeout_seconds", "spec.target.commandTimeoutSeconds"),
    (Webhook, "method", "spec.target.webhook.method"),
    (Webhook, "timeout_seconds", "spec.target.webhook.timeoutSeconds"),
    (Health, "timeout_seconds", "spec.target.health.timeoutSeconds"),
    (Health, "expect_status", "spec.target.health.expectStatus"),
    (Policy, "max_iterations", "spec.policy.maxIterations"),
    (Policy, "deadline_seconds", "spec.policy.deadlineSeconds"),
    (Policy, "rerun", "spec.policy.rerun"),
    (Policy, "redeploy_on", "spec.policy.redeployOn"),
    (Policy, "redeploy", "spec.policy.redeploy"),
    (Policy, "flake_retries", "spec.policy.flakeRetries"),
    (Policy, "fail_fast", "spec.policy.failFast"),
]


@pytest.mark.parametrize(("cls", "name", "path"), MODEL_DEFAULTS)
def test_model_defaults_match_the_crd(cls: type[Any], name: str, path: str) -> None:
    nodes = dict(iter_schema(spec.spec_schema()))
    (field,) = [f for f in fields(cls) if f.name == name]
    default = field.default
    if isinstance(default, tuple):
        default = list(default)
    assert nodes[path]["default"] == default


def test_every_crd_default_is_in_the_model_table() -> None:
    defaulted = {
        path
        for path, node in iter_schema(spec.spec_schema())
        if "default" in node and path.startswith("spec.")
    }
    # policy's {} has no single model field of its own.
    assert defaulted - {p for _, _, p in MODEL_DEFAULTS} == {"spec.policy"}


def test_api_object_with_server_fields() -> None:
    obj = copy.deepcopy(OPERATOR)
    obj["metadata"] = {
        "name": "checkout",
        "namespace": "staging",
        "uid": "1234-abcd",
        "generation": 7,
        "resourceVersion": "99",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
        "annotations": {"greenloop.dev/rerun": "2"},
        "labels": {"team": "checkout"},
    }
    # status is the operator's own output: even an odd one never blocks reading the spec.
    obj["status"] = {"phase": "Whatever", "extra": 1}
    sv = spec.from_object(obj, source="staging/checkout", mode="operator")
    assert (sv.name, sv.namespace, sv.uid, sv.generation, sv.source) == (
        "checkout",
        "staging",
        "1234-abcd",
        7,
        "staging/checkout",
    )
    assert sv.annotations == {"greenloop.dev/rerun": "2"}
    assert obj["status"] == {"phase": "Whatever", "extra": 1}
    assert "priority" not in obj["spec"]["suites"][0], "the input must not change"


def test_from_object_defaults_to_local_mode_and_its_source() -> None:
    assert spec.from_object(MINIMAL).source == "<object>"
    with pytest.raises(SpecError) as caught:
        spec.from_object(MINIMAL, mode="operator")
    assert str(caught.value) == (
        "<object>: spec.suites[0].image: required in operator mode"
        " (each suite runs as a Job from this image)"
    )


def test_null_field_takes_its_default() -> None:
    # `priority:` with no value is null; the API server drops it and applies the default.
    text = dump(MINIMAL).replace("command:", "priority: null\n    command:")
    assert "priority: null" in text
    (sv,) = spec.load_text(text).objects
    assert sv.spec.suites[0].priority == "P5"


def test_timestamps_stay_strings() -> None:
    # sigs.k8s.io/yaml keeps 2026-01-01 a string; PyYAML would make it a date.
    obj = copy.deepcopy(MINIMAL)
    obj["spec"]["suites"][0]["env"] = [{"name": "SINCE", "value": "X"}]
    text = dump(obj).replace("value: X", "value: 2026-01-01")
    (sv,) = spec.load_text(text).objects
    assert sv.spec.suites[0].env == (EnvVar("SINCE", "2026-01-01"),)


def test_revalidate_every() -> None:
    obj = copy.deepcopy(MINIMAL)
    obj["spec"]["revalidateEvery"] = "1h30m15s"
    assert spec.from_object(obj).spec.revalidate_every_seconds == 5415


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30m", 1800), ("6h", 21600), ("1h30m", 5400), ("90m", 5400), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert spec.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "1d", "h", "1.5h", " 1h", "1h "])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        spec.parse_duration(text)


# ---------------------------------------------------------------------------
# Invalid specs: each case changes MINIMAL (or OPERATOR) and lists every error line.


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``path`` (``spec.suites[0].name``) to ``value``."""

    def change(obj: dict[str, Any]) -> None:
        *parents, last = _parts(path)
        node: Any = obj
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(value)

    return change


def removing(path: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        *parents, last = _parts(path)
        node: Any = obj
        for part in parents:
            node = node[part]
        del node[last]

    return change


def _parts(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", path) if p != ""]


SUITE_B = {"name": "b", "command": ["x"]}

# (id, base, changes, mode, expected lines)
INVALID: list[
    tuple[str, dict[str, Any], list[Callable[[dict[str, Any]], None]], spec.Mode, list[str]]
] = [
    (
        "wrong type",
        MINIMAL,
        [setting("spec.suites[0].timeoutSeconds", "900")],
        "local",
        ["validation.yaml: spec.suites[0].timeoutSeconds: expected integer, got string '900'"],
    ),
    (
        "command not a list",
        MINIMAL,
        [setting("spec.suites[0].command", "pytest -x")],
        "local",
        ["validation.yaml: spec.suites[0].command: expected array, got string 'pytest -x'"],
    ),
    (
        "bool is not an integer",
        MINIMAL,
        [setting("spec.expectedTests", True)],
        "local",
        ["validation.yaml: spec.expectedTests: expected integer, got boolean true"],
    ),
    (
        "bad enum",
        MINIMAL,
        [setting("spec.policy", {"rerun": "Sometimes"})],
        "local",
        [
            "validation.yaml: spec.policy.rerun: unsupported value 'Sometimes' (expected one of:"
            " Failed, All)"
        ],
    ),
    (
        "RunnerError is no rule class",
        MINIMAL,
        [setting("spec.classification", [{"pattern": "x", "class": "RunnerError"}])],
        "local",
        [
            "validation.yaml: spec.classification[0].class: unsupported value 'RunnerError'"
            " (expected one of: "
            "Dependent, TestCodeError, AuthError, ServiceUnavailable, ConnectionError, Timeout,"
            " ServerError, Assertion, Unknown)"
        ],
    ),
    (
        "bad workload kind",
        MINIMAL,
        [setting("spec.target", {"workloads": [{"kind": "Pod", "name": "x"}]})],
        "local",
        [
            "validation.yaml: spec.target.workloads[0].kind: unsupported value 'Pod' (expected"
            " one of: Deployment, StatefulSet, DaemonSet)"
        ],
    ),
    (
        "bad priority",
        MINIMAL,
        [setting("spec.suites", [SUITE_B, {"name": "c", "command": ["x"], "priority": "P0"}])],
        "local",
        ["validation.yaml: spec.suites[1].priority: 'P0' does not match ^P[1-9]$"],
    ),
    (
        "suite name not a DNS label",
        MINIMAL,
        [setting("spec.suites[0].name", "Core_Tests")],
        "local",
        [
            "validation.yaml: spec.suites[0].name: 'Core_Tests' does not match"
            " ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
        ],
    ),
    (
        "suite name too long",
        MINIMAL,
        [setting("spec.suites[0].name", "a" * 64)],
        "local",
        ["validation.yaml: spec.suites[0].name: must be at most 63 characters long (got 64)"],
    ),
    (
        "webhook url scheme",
        MINIMAL,
        [setting("spec.target", {"webhook": {"url": "ftp://x"}})],
        "local",
        ["validation.yaml: spec.target.webhook.url: 'ftp://x' does not match ^https?://"],
    ),
    (
        "webhook without url",
        MINIMAL,
        [setting("spec.target", {"webhook": {"method": "PUT"}})],
        "local",
        ["validation.yaml: spec.target.webhook.url: required field is missing"],
    ),
    (
        "empty headersFrom",
        MINIMAL,
        [setting("spec.target", {"webhook": {"url": "http://x", "headersFrom": {}}})],
        "local",
        ["validation.yaml: spec.target.webhook.headersFrom: must have at least 1 field (got 0)"],
    ),
    (
        "bad header env var",
        MINIMAL,
        [
            setting(
                "spec.target",
                {"webhook": {"url": "http://x", "headersFrom": {"env": {"X-Token": "1TOKEN"}}}},
            )
        ],
        "local",
        [
            "validation.yaml: spec.target.webhook.headersFrom.env[X-Token]: '1TOKEN' does not"
            " match ^[A-Za-z_][A-Za-z0-9_]*$"
        ],
    ),
    (
        "bad header name",
        MINIMAL,
        [
            setting(
                "spec.target",
                {"webhook": {"url": "http://x", "headersFrom": {"env": {"X Token": "T"}}}},
            )
        ],
        "local",
        [
            "validation.yaml: spec.target.webhook.headersFrom.env[X Token]: 'X Token' is not a"
            " valid HTTP header name"
        ],
    ),
    (
        "expectedTests below 1",
        MINIMAL,
        [setting("spec.expectedTests", 0)],
        "local",
        ["validation.yaml: spec.expectedTests: must be at least 1 (got 0)"],
    ),
    (
        "policy bounds",
        MINIMAL,
        [setting("spec.policy", {"maxIterations": 0, "flakeRetries": 11})],
        "local",
        [
            "validation.yaml: spec.policy.maxIterations: must be at least 1 (got 0)",
            "validation.yaml: spec.policy.flakeRetries: must be at most 10 (got 11)",
        ],
    ),
    (
        "no suites",
        MINIMAL,
        [setting("spec.suites", [])],
        "local",
        ["validation.yaml: spec.suites: must have at least 1 item (got 0)"],
    ),
    (
        "51 suites",
        MINIMAL,
        [setting("spec.suites", [{"name": f"s{i}", "command": ["x"]} for i in range(51)])],
        "local",
        ["validation.yaml: spec.suites: must have at most 50 items (got 51)"],
    ),
    (
        "empty command",
        MINIMAL,
        [setting("spec.suites[0].command", [])],
        "local",
        ["validation.yaml: spec.suites[0].command: must have at least 1 item (got 0)"],
    ),
    (
        "redeployOn duplicates",
        MINIMAL,
        [setting("spec.policy", {"redeployOn": ["Timeout", "Timeout"]})],
        "local",
        [
            "validation.yaml: spec.policy.redeployOn[1]: duplicate 'Timeout' (also"
            " spec.policy.redeployOn[0])"
        ],
    ),
    (
        "redeployOn Dependent",
        MINIMAL,
        [setting("spec.policy", {"redeployOn": ["Dependent"]})],
        "local",
        [
            "validation.yaml: spec.policy.redeployOn[0]: unsupported value 'Dependent' (expected"
            " one of: "
            "ServiceUnavailable, ConnectionError, Timeout, ServerError, AuthError, Assertion,"
            " Unknown, TestCodeError)"
        ],
    ),
    (
        "revalidateEvery format",
        MINIMAL,
        [setting("spec.revalidateEvery", "1d")],
        "local",
        ["validation.yaml: spec.revalidateEvery: '1d' does not match ^([0-9]+(s|m|h))+$"],
    ),
    (
        "revalidateEvery zero",
        MINIMAL,
        [setting("spec.revalidateEvery", "0h00m")],
        "local",
        ["validation.yaml: spec.revalidateEvery: must be greater than zero (got '0h00m')"],
    ),
    (
        "duplicate suite names",
        MINIMAL,
        [
            setting(
                "spec.suites",
                [{"name": "core", "command": ["a"]}, SUITE_B, {"name": "core", "command": ["c"]}],
            )
        ],
        "local",
        ["validation.yaml: spec.suites[2].name: duplicate suite name 'core' (also spec.suites[0])"],
    ),
    (
        "missing spec",
        MINIMAL,
        [removing("spec")],
        "local",
        ["validation.yaml: spec: required field is missing"],
    ),
    (
        "missing suites",
        MINIMAL,
        [setting("spec", {"expectedTests": 3})],
        "local",
        ["validation.yaml: spec.suites: required field is missing"],
    ),
    (
        "missing suite fields",
        MINIMAL,
        [setting("spec.suites", [{}])],
        "local",
        [
            "validation.yaml: spec.suites[0].name: required field is missing",
            "validation.yaml: spec.suites[0].command: required field is missing",
        ],
    ),
    (
        "unknown field with suggestion",
        MINIMAL,
        [setting("spec.suites[0]", {"name": "core", "comand": ["pytest"]})],
        "local",
        [
            "validation.yaml: spec.suites[0].comand: unknown field (did you mean 'command'?)",
            "validation.yaml: spec.suites[0].command: required field is missing",
        ],
    ),
    (
        "unknown top-level spec field",
        MINIMAL,
        [setting("spec.polcy", {})],
        "local",
        ["validation.yaml: spec.polcy: unknown field (did you mean 'policy'?)"],
    ),
    (
        "unknown root field",
        MINIMAL,
        [setting("sepc", {})],
        "local",
        ["validation.yaml: sepc: unknown field (did you mean 'spec'?)"],
    ),
    (
        "bad regex",
        MINIMAL,
        [
            setting(
                "spec.classification",
                [
                    {"pattern": "ok", "class": "Timeout"},
                    {"pattern": "(unclosed", "class": "Timeout"},
                ],
            )
        ],
        "local",
        [
            "validation.yaml: spec.classification[1].pattern: '(unclosed' is not a regular"
            " expression RE2 accepts (missing ): (unclosed); RE2 has no backreferences or"
            " lookarounds (syntax: https://github.com/google/re2/wiki/Syntax)"
        ],
    ),
    (
        "regex with a backreference (RE2 has none)",
        MINIMAL,
        [setting("spec.classification", [{"pattern": "(a)\\1", "class": "Timeout"}])],
        "local",
        [
            "validation.yaml: spec.classification[0].pattern: '(a)\\\\1' is not a regular"
            " expression RE2 accepts (invalid escape sequence: \\1); RE2 has no backreferences"
            " or lookarounds (syntax: https://github.com/google/re2/wiki/Syntax)"
        ],
    ),
    (
        "regex with a lookbehind (RE2 has none)",
        MINIMAL,
        [setting("spec.classification", [{"pattern": "(?<!x)503", "class": "Timeout"}])],
        "local",
        [
            "validation.yaml: spec.classification[0].pattern: '(?<!x)503' is not a regular"
            " expression RE2 accepts (invalid perl operator: (?<!); RE2 has no backreferences"
            " or lookarounds (syntax: https://github.com/google/re2/wiki/Syntax)"
        ],
    ),
    (
        # Issue 10: validate said valid, then run died with a RuleError after the suites ran.
        "regex that matches an empty line",
        MINIMAL,
        [setting("spec.classification", [{"pattern": "(upstream)?", "class": "Timeout"}])],
        "local",
        [
            "validation.yaml: spec.classification[0].pattern: pattern '(upstream)?' matches an"
            " empty line, so it would match every failure"
        ],
    ),
    (
        "missing apiVersion",
        MINIMAL,
        [removing("apiVersion")],
        "local",
        [
            "validation.yaml: apiVersion: required field is missing (expected"
            " 'greenloop.dev/v1alpha1')"
        ],
    ),
    (
        "wrong apiVersion",
        MINIMAL,
        [setting("apiVersion", "greenloop.dev/v1")],
        "local",
        ["validation.yaml: apiVersion: expected 'greenloop.dev/v1alpha1', got 'greenloop.dev/v1'"],
    ),
    (
        "missing kind",
        MINIMAL,
        [removing("kind")],
        "local",
        ["validation.yaml: kind: required field is missing (expected 'StagingValidation')"],
    ),
    (
        "another kind: nothing else is checked",
        MINIMAL,
        [setting("kind", "ConfigMap"), removing("spec")],
        "local",
        ["validation.yaml: kind: expected 'StagingValidation', got 'ConfigMap'"],
    ),
    (
        "missing metadata",
        MINIMAL,
        [removing("metadata")],
        "local",
        ["validation.yaml: metadata.name: required field is missing"],
    ),
    (
        "missing metadata.name",
        MINIMAL,
        [setting("metadata", {"namespace": "staging"})],
        "local",
        ["validation.yaml: metadata.name: required field is missing"],
    ),
    (
        "metadata not a mapping",
        MINIMAL,
        [setting("metadata", "checkout")],
        "local",
        ["validation.yaml: metadata: expected object, got string"],
    ),
    (
        "metadata.name invalid",
        MINIMAL,
        [setting("metadata.name", "Check_Out")],
        "local",
        [
            "validation.yaml: metadata.name: 'Check_Out' is not a DNS subdomain (lower-case"
            " letters, digits, '-' and '.', at most 253 characters)"
        ],
    ),
    (
        "metadata.namespace invalid",
        MINIMAL,
        [setting("metadata.namespace", "a.b")],
        "local",
        [
            "validation.yaml: metadata.namespace: 'a.b' is not a DNS label (lower-case letters,"
            " digits and '-', at most 63 characters)"
        ],
    ),
    (
        "metadata unknown field",
        MINIMAL,
        [setting("metadata.namspace", "x")],
        "local",
        ["validation.yaml: metadata.namspace: unknown field (did you mean 'namespace'?)"],
    ),
    (
        "annotation not a string",
        MINIMAL,
        [setting("metadata.annotations", {"greenloop.dev/rerun": 1})],
        "local",
        [
            "validation.yaml: metadata.annotations[greenloop.dev/rerun]: expected string, got"
            " integer 1"
        ],
    ),
    (
        "several errors in document order",
        MINIMAL,
        [
            setting("spec.policy", {"rerun": "x"}),
            setting("spec.suites[0].priority", "high"),
            setting("metadata.name", 5),
        ],
        "local",
        [
            "validation.yaml: metadata.name: expected string, got integer",
            "validation.yaml: spec.suites[0].priority: 'high' does not match ^P[1-9]$",
            "validation.yaml: spec.policy.rerun: unsupported value 'x' (expected one of: Failed,"
            " All)",
        ],
    ),
    # --- mode-dependent rules
    (
        "operator: image required",
        MINIMAL,
        [setting("spec.suites", [SUITE_B, {**SUITE_B, "name": "c", "image": "i"}])],
        "operator",
        [
            "validation.yaml: spec.suites[0].image: required in operator mode (each suite runs"
            " as a Job from this image)"
        ],
    ),
    (
        "operator: workingDir",
        OPERATOR,
        [setting("spec.suites[0].workingDir", "tests")],
        "operator",
        [
            "validation.yaml: spec.suites[0].workingDir: 'tests': only '.' in operator mode (the"
            " image sets the working directory)"
        ],
    ),
    (
        "operator: target.command",
        OPERATOR,
        [setting("spec.target", {"command": ["./restart.sh"]})],
        "operator",
        [
            "validation.yaml: spec.target.command: not allowed in operator mode (use"
            " target.workloads or target.webhook)"
        ],
    ),
    (
        "operator: headersFrom.env",
        OPERATOR,
        [
            setting(
                "spec.target", {"webhook": {"url": "https://x", "headersFrom": {"env": {"A": "B"}}}}
            )
        ],
        "operator",
        [
            "validation.yaml: spec.target.webhook.headersFrom.env: only in local mode (in"
            " operator mode use secretName)"
        ],
    ),
    (
        "local: headersFrom.secretName",
        MINIMAL,
        [
            setting(
                "spec.target", {"webhook": {"url": "https://x", "headersFrom": {"secretName": "s"}}}
            )
        ],
        "local",
        [
            "validation.yaml: spec.target.webhook.headersFrom.secretName: only in operator mode"
            " (in local mode use env)"
        ],
    ),
    (
        "local: policy.redeploy RequireApproval",
        MINIMAL,
        [setting("spec.policy", {"redeploy": "RequireApproval"})],
        "local",
        [
            "validation.yaml: spec.policy.redeploy: RequireApproval is for operator mode only:"
            " a local run has no object to annotate with greenloop.dev/approve (use Automatic"
            " for local runs)"
        ],
    ),
    (
        "policy.redeploy unknown",
        OPERATOR,
        [setting("spec.policy", {"redeploy": "Manual"})],
        "operator",
        [
            "validation.yaml: spec.policy.redeploy: unsupported value 'Manual' (expected one"
            " of: Automatic, RequireApproval)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("base", "changes", "mode", "expected"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_spec(
    base: dict[str, Any],
    changes: list[Callable[[dict[str, Any]], None]],
    mode: spec.Mode,
    expected: list[str],
) -> None:
    obj = copy.deepcopy(base)
    for change in changes:
        change(obj)
    assert errors_of(dump(obj), mode) == expected
    # The same errors, without a source, from the object API.
    assert [f"validation.yaml: {e}" for e in spec.validate_object(obj, mode=mode)] == expected


@pytest.mark.parametrize("mode", ["local", "operator"])
def test_valid_in_both_modes(mode: spec.Mode) -> None:
    assert spec.validate_object(OPERATOR, mode=mode) == []


def test_local_only_fields_pass_in_local_mode() -> None:
    obj = copy.deepcopy(MINIMAL)
    obj["spec"]["suites"][0]["workingDir"] = "tests"
    obj["spec"]["target"] = {
        "command": ["./restart.sh"],
        "webhook": {"url": "https://x", "headersFrom": {"env": {"Authorization": "TOKEN"}}},
    }
    assert spec.validate_object(obj) == []


def test_invalid_example_file() -> None:
    path = EXAMPLES / "invalid.yaml"
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).splitlines() == [
        f"{path}: spec.suites[0].priority: 'P0' does not match ^P[1-9]$",
        f"{path}: spec.suites[0].comand: unknown field (did you mean 'command'?)",
        f"{path}: spec.suites[0].command: required field is missing",
        f"{path}: spec.suites[1].name: duplicate suite name 'core' (also spec.suites[0])",
        f"{path}: spec.suites[1].command: expected array, got string 'pytest'",
        f"{path}: spec.policy.rerun: unsupported value 'Sometimes' (expected one of: Failed, All)",
        f"{path}: spec.policy.maxIterations: must be at least 1 (got 0)",
        f"{path}: spec.classification[0].pattern: '(unclosed' is not a regular expression RE2"
        " accepts (missing ): (unclosed); RE2 has no backreferences or lookarounds"
        " (syntax: https://github.com/google/re2/wiki/Syntax)",
        f"{path}: spec.classification[0].class: unsupported value 'RunnerError' (expected one of:"
        " Dependent, TestCodeError, AuthError, ServiceUnavailable, ConnectionError, Timeout,"
        " ServerError, Assertion, Unknown)",
    ]
    assert len(caught.value.errors) == 9


# ---------------------------------------------------------------------------
# Text and files

HEAD = "apiVersion: greenloop.dev/v1alpha1\nkind: StagingValidation\n"
DOC_A = HEAD + "metadata: {name: a}\nspec: {suites: [{name: s, command: [x]}]}\n"
DOC_B = HEAD + "metadata: {name: b}\nspec: {suites: [{name: s, command: [x]}]}\n"

# (id, text, expected lines)
TEXT_ERRORS: list[tuple[str, str, list[str]]] = [
    ("empty file", "", ["validation.yaml: no StagingValidation found: the file is empty"]),
    (
        "only comments",
        "# nothing\n---\n# here\n",
        ["validation.yaml: no StagingValidation found: the file is empty"],
    ),
    (
        "syntax error",
        HEAD + "metadata: {name: a\nspec: {}\n",
        [
            "validation.yaml: invalid YAML at line 4, column 5: expected ',' or '}', but got ':'"
            " (while parsing a flow mapping at line 3)"
        ],
    ),
    (
        "bad indentation",
        HEAD + "spec:\n  suites:\n - name: a\n",
        [
            "validation.yaml: invalid YAML at line 5, column 2: expected <block end>, but found"
            " '<block sequence start>'"
            " (while parsing a block mapping at line 1)"
        ],
    ),
    (
        "tab",
        HEAD + "spec:\n\tsuites: []\n",
        [
            "validation.yaml: invalid YAML at line 4, column 1: found character '\\t' that"
            " cannot start any token"
            " (while scanning for the next token)"
        ],
    ),
    (
        "duplicate key",
        DOC_A + "metadata: {name: c}\n",
        [
            "validation.yaml: invalid YAML at line 5, column 1: found duplicate key 'metadata'"
            " (while constructing a mapping at line 1)"
        ],
    ),
    (
        "python tag",
        HEAD + "spec: !!python/object:os.system {}\n",
        [
            "validation.yaml: invalid YAML at line 3, column 7: could not determine a"
            " constructor for the tag"
            " 'tag:yaml.org,2002:python/object:os.system'"
        ],
    ),
    (
        "control character",
        "a: \x00\n",
        ["validation.yaml: invalid YAML: special characters are not allowed (U+0000 at offset 3)"],
    ),
    (
        "a list",
        "- a\n- b\n",
        ["validation.yaml: expected a StagingValidation object, got an array"],
    ),
    ("a scalar", "hello\n", ["validation.yaml: expected a StagingValidation object, got a string"]),
    (
        "second document another kind",
        DOC_A + "---\napiVersion: v1\nkind: ConfigMap\n",
        ["validation.yaml: documents[1].kind: expected 'StagingValidation', got 'ConfigMap'"],
    ),
    (
        "errors name their document",
        DOC_A + "---\n" + DOC_B.replace("name: s", "name: S"),
        [
            "validation.yaml: documents[1].spec.suites[0].name: 'S' does not match"
            " ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
        ],
    ),
    (
        "non-mapping document among others",
        DOC_A + "---\n- x\n",
        ["validation.yaml: documents[1]: expected a StagingValidation object, got an array"],
    ),
    (
        "same object twice",
        DOC_A + "---\n" + DOC_A,
        [
            "validation.yaml: documents[1].metadata.name: duplicate object default/a (also"
            " documents[0])"
        ],
    ),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, n in zip("abcdef", "bcdefg", strict=True)
        ),
        ["validation.yaml: is too large: over 100000 values once aliases are expanded"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in TEXT_ERRORS], ids=[c[0] for c in TEXT_ERRORS]
)
def test_text_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_several_documents() -> None:
    loaded = spec.load_text("---\n" + DOC_A + "---\n---\n" + DOC_B + "...\n")
    assert [sv.name for sv in loaded.objects] == ["a", "b"]


def test_same_name_in_two_namespaces_is_fine() -> None:
    loaded = spec.load_text(DOC_A + "---\n" + DOC_A.replace("{name: a}", "{name: a, namespace: x}"))
    assert [(sv.namespace, sv.name) for sv in loaded.objects] == [("default", "a"), ("x", "a")]


def test_anchors_and_merge_keys_work() -> None:
    text = HEAD + (
        "metadata: {name: a}\n"
        "spec:\n"
        "  suites:\n"
        "  - &base {name: one, command: [x], timeoutSeconds: 60}\n"
        "  - {<<: *base, name: two}\n"
    )
    (sv,) = spec.load_text(text).objects
    assert [(s.name, s.timeout_seconds) for s in sv.spec.suites] == [("one", 60), ("two", 60)]


# (id, mode, target, expected warning or None)
WARNINGS: list[tuple[str, spec.Mode, dict[str, Any] | None, str | None]] = [
    (
        "local: no target",
        "local",
        None,
        "spec.target: " + "no redeploy configured: failures in redeployOn will stop as Stalled",
    ),
    (
        "local: workloads only",
        "local",
        {"workloads": [{"kind": "Deployment", "name": "x"}]},
        "spec.target: no redeploy configured: failures in redeployOn will stop as Stalled"
        " (target.workloads are redeployed only in operator mode)",
    ),
    ("local: command", "local", {"command": ["./r"]}, None),
    ("local: webhook", "local", {"webhook": {"url": "http://x"}}, None),
    (
        "operator: no target",
        "operator",
        None,
        "spec.target: no redeploy configured: failures in redeployOn will stop as Stalled",
    ),
    ("operator: workloads", "operator", {"workloads": [{"kind": "Deployment", "name": "x"}]}, None),
    ("operator: webhook", "operator", {"webhook": {"url": "http://x"}}, None),
]


@pytest.mark.parametrize(
    ("mode", "target", "expected"), [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS]
)
def test_redeploy_warning(
    mode: spec.Mode, target: dict[str, Any] | None, expected: str | None
) -> None:
    obj = copy.deepcopy(OPERATOR)
    if target is not None:
        obj["spec"]["target"] = target
    loaded = spec.load_text(dump(obj), source="v.yaml", mode=mode)
    assert loaded.warnings == (() if expected is None else (f"v.yaml: {expected}",))


def test_no_warning_when_nothing_is_redeployable() -> None:
    obj = copy.deepcopy(MINIMAL)
    obj["spec"]["policy"] = {"redeployOn": []}
    assert spec.load_text(dump(obj)).warnings == ()


def test_warnings_name_their_document() -> None:
    loaded = spec.load_text(DOC_A + "---\n" + DOC_B, source="v.yaml")
    assert [w.split(": ")[1] for w in loaded.warnings] == [
        "documents[0].spec.target",
        "documents[1].spec.target",
    ]


def test_unknown_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        spec.validate_object(MINIMAL, mode="cluster")  # type: ignore[arg-type]


def test_spec_error() -> None:
    error = SpecError("v.yaml", [FieldError("spec.a", "bad"), FieldError("", "worse")])
    assert str(error) == "v.yaml: spec.a: bad\nv.yaml: worse"
    assert isinstance(error, ValueError)
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.source, copied.errors, str(copied)) == (error.source, error.errors, str(error))


# ---------------------------------------------------------------------------
# The CRD


def test_crd_identity() -> None:
    crd = spec.crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "stagingvalidations.greenloop.dev"
    assert crd["spec"]["group"] == "greenloop.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "StagingValidation",
        "listKind": "StagingValidationList",
        "plural": "stagingvalidations",
        "singular": "stagingvalidation",
        "shortNames": ["sv"],
        "categories": ["greenloop"],
    }
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert f"{crd['spec']['group']}/{version['name']}" == spec.API_VERSION


def test_printer_columns() -> None:
    (version,) = spec.crd()["spec"]["versions"]
    columns = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Phase", "string", ".status.phase"),
        ("Passed", "integer", ".status.summary.passed"),
        ("Failed", "integer", ".status.summary.failed"),
        ("Expected", "integer", ".status.summary.expected"),
        ("Iteration", "integer", ".status.iteration"),
        ("Age", "date", ".metadata.creationTimestamp"),
        ("Fingerprint", "string", ".status.fingerprint.digest"),  # kubectl get -o wide
    ]


def test_printer_columns_point_at_status_fields() -> None:
    (version,) = spec.crd()["spec"]["versions"]
    nodes = dict(iter_schema(spec.spec_schema()))
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".")
        if path.startswith("metadata."):
            continue
        assert nodes[path]["type"] == column["type"], column["name"]


def test_crd_schema_is_structural_with_valid_defaults() -> None:
    assert structural_problems(spec.spec_schema()) == []


def test_every_spec_list_is_bounded() -> None:
    # CEL cost estimates grow with unbounded lists; a bound also stops runaway objects.
    unbounded = [
        path
        for path, node in iter_schema(spec.spec_schema())
        if path.startswith("spec") and node.get("type") == "array" and "maxItems" not in node
    ]
    assert unbounded == []


def test_status_schema_accepts_the_design_example() -> None:
    status: dict[str, Any] = {
        "observedGeneration": 3,
        "phase": "Testing",
        "iteration": 2,
        "summary": {
            "expected": None,
            "total": 156,
            "passed": 153,
            "failed": 3,
            "skipped": 0,
            "notRun": 310,
            "passRate": "98.1%",
        },
        "priorities": [{"priority": "P1", "passed": 25, "total": 25}],
        "failingTests": [
            {
                "id": "tests/e2e/test_conn.py::test_002",
                "suite": "core",
                "class": "ServiceUnavailable",
                "evidence": "HTTP 503",
                "rootCause": None,
                "priority": "P1",
            }
        ],
        "flakyTests": [{"id": "t", "suite": "core", "attempts": 2}],
        "history": [
            {
                "iteration": 1,
                "started": "2026-01-01T00:00:00Z",
                "finished": "2026-01-01T00:05:00Z",
                "passed": 153,
                "failed": 3,
                "action": "Redeploy",
            }
        ],
        "report": {"configMap": "checkout-report"},
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Testing",
                "message": "2 of 3",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    schema = spec.spec_schema()["properties"]["status"]
    assert validate(status, schema, "status") == []
    status["conditions"].append({"type": "Ready", "status": "Maybe"})
    assert [str(e) for e in validate(status, schema, "status")] == [
        "status.conditions[1].status: unsupported value 'Maybe' (expected one of: True, False,"
        " Unknown)",
        "status.conditions[1]: duplicate entry with type 'Ready' (also status.conditions[0])",
    ]


def test_status_phases_and_failure_classes_match_the_model() -> None:
    nodes = dict(iter_schema(spec.spec_schema()))
    # RunnerError and NotRerun are what greenloop saw of the runner, never a rule's class.
    not_a_rule = {FailureClass.RUNNER_ERROR, FailureClass.NOT_RERUN}
    classes = [c.value for c in model.FailureClass if c not in not_a_rule]
    assert nodes["spec.classification[*].class"]["enum"] == classes
    assert set(nodes["spec.policy.redeployOn[*]"]["enum"]) == set(classes) - {"Dependent"}
    assert [f"P{n}" for n in range(1, 10)] == list(model.PRIORITIES)
    assert all(
        re.fullmatch(nodes["spec.suites[*].priority"]["pattern"], p) for p in model.PRIORITIES
    )


# Every CEL rule in the CRD, where it sits, and a change that breaks it in operator mode
# (the API server's view) with the error spec.py reports for it: adding a rule to the CRD
# without a Python mirror fails here.
CEL_MIRRORS: list[tuple[str, str, dict[str, Any], Callable[[dict[str, Any]], None], str]] = [
    (
        "spec.suites",
        "self.all(s, self.exists_one(t, t.name == s.name))",
        OPERATOR,
        setting("spec.suites", [OPERATOR["spec"]["suites"][0]] * 2),
        "spec.suites[1].name: duplicate suite name 'core' (also spec.suites[0])",
    ),
    (
        "spec.suites[*]",
        "has(self.image)",
        OPERATOR,
        removing("spec.suites[0].image"),
        "spec.suites[0].image: required in operator mode (each suite runs as a Job from this"
        " image)",
    ),
    (
        "spec.suites[*]",
        "!has(self.workingDir) || self.workingDir == '.'",
        OPERATOR,
        setting("spec.suites[0].workingDir", "/src"),
        "spec.suites[0].workingDir: '/src': only '.' in operator mode (the image sets the"
        " working directory)",
    ),
    (
        "spec.suites[*].env[*]",
        "!(has(self.value) && has(self.valueFrom))",
        OPERATOR,
        setting(
            "spec.suites[0].env",
            [
                {
                    "name": "T",
                    "value": "x",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ],
        ),
        "spec.suites[0].env[0]: give value or valueFrom, not both",
    ),
    (
        "spec.suites[*].env[*].valueFrom",
        "(has(self.secretKeyRef) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0)"
        " + (has(self.fieldRef) ? 1 : 0) == 1",
        OPERATOR,
        setting(
            "spec.suites[0].env",
            [
                {
                    "name": "T",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ],
        ),
        "spec.suites[0].env[0].valueFrom: give exactly one of secretKeyRef, configMapKeyRef"
        " and fieldRef",
    ),
    (
        "spec.suites[*].envFrom[*]",
        "has(self.secretRef) != has(self.configMapRef)",
        OPERATOR,
        setting("spec.suites[0].envFrom", [{"prefix": "X_"}]),
        "spec.suites[0].envFrom[0]: give exactly one of secretRef and configMapRef",
    ),
    (
        "spec.suites[*].volumes",
        "self.all(v, self.exists_one(w, w.name == v.name))",
        OPERATOR,
        setting(
            "spec.suites[0].volumes",
            [{"name": "a", "mountPath": f"/{p}", "emptyDir": {}} for p in ("x", "y")],
        ),
        "spec.suites[0].volumes[1].name: duplicate volume name 'a' (also"
        " spec.suites[0].volumes[0])",
    ),
    (
        "spec.suites[*].volumes[*]",
        "(has(self.secret) ? 1 : 0) + (has(self.configMap) ? 1 : 0)"
        " + (has(self.emptyDir) ? 1 : 0) == 1",
        OPERATOR,
        setting("spec.suites[0].volumes", [{"name": "a", "mountPath": "/x"}]),
        "spec.suites[0].volumes[0]: give exactly one of secret, configMap and emptyDir",
    ),
    (
        "spec.suites[*].volumes[*]",
        "!(self.name in ['results', 'results-token', 'select'])",
        OPERATOR,
        setting(
            "spec.suites[0].volumes", [{"name": "results-token", "mountPath": "/x", "emptyDir": {}}]
        ),
        "spec.suites[0].volumes[0].name: results, results-token and select are greenloop's own"
        " volumes",
    ),
    (
        "spec.suites[*].volumes[*]",
        "self.mountPath != '/greenloop' && !self.mountPath.startsWith('/greenloop/')",
        OPERATOR,
        setting(
            "spec.suites[0].volumes",
            [{"name": "a", "mountPath": "/greenloop/results", "emptyDir": {}}],
        ),
        "spec.suites[0].volumes[0].mountPath: /greenloop is greenloop's own folder",
    ),
    (
        "spec.target",
        "!has(self.command)",
        OPERATOR,
        setting("spec.target", {"command": ["x"]}),
        "spec.target.command: not allowed in operator mode (use target.workloads or"
        " target.webhook)",
    ),
    (
        "spec.target.webhook.headersFrom",
        "!has(self.env)",
        OPERATOR,
        setting(
            "spec.target", {"webhook": {"url": "http://x", "headersFrom": {"env": {"A": "B"}}}}
        ),
        "spec.target.webhook.headersFrom.env: only in local mode (in operator mode use secretName)",
    ),
    (
        "spec.classification[*].pattern",
        "!''.matches(self)",
        OPERATOR,
        setting("spec.classification", [{"pattern": "(upstream)?", "class": "Timeout"}]),
        "spec.classification[0].pattern: pattern '(upstream)?' matches an empty line, so it"
        " would match every failure",
    ),
    (
        "spec.revalidateEvery",
        "!self.matches('^(0+[smh])+$')",
        OPERATOR,
        setting("spec.revalidateEvery", "0s"),
        "spec.revalidateEvery: must be greater than zero (got '0s')",
    ),
]


def test_every_cel_rule_is_mirrored() -> None:
    rules = [
        (path, rule["rule"])
        for path, node in iter_schema(spec.spec_schema())
        for rule in node.get("x-kubernetes-validations", ())
    ]
    assert rules == [(path, rule) for path, rule, *_ in CEL_MIRRORS]


@pytest.mark.parametrize(
    ("base", "change", "expected"),
    [c[2:] for c in CEL_MIRRORS],
    ids=[c[1] for c in CEL_MIRRORS],
)
def test_cel_mirror(
    base: dict[str, Any], change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    obj = copy.deepcopy(base)
    change(obj)
    assert [str(e) for e in spec.validate_object(obj, mode="operator")] == [expected]


def test_cel_rules_have_one_line_messages() -> None:
    for _, node in iter_schema(spec.spec_schema()):
        for rule in node.get("x-kubernetes-validations", ()):
            assert rule["message"] and "\n" not in rule["message"], rule


def test_package_copy_is_a_symlink_to_the_crd() -> None:
    assert PACKAGE_CRD.is_symlink()
    # Relative, so it works in any checkout and git stores it as a link.
    assert os.readlink(PACKAGE_CRD) == "../../../crds/stagingvalidation.yaml"
    assert PACKAGE_CRD.resolve() == CRD_FILE.resolve()
    assert spec.crd() == yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))


def test_crd_returns_copies() -> None:
    spec.crd()["spec"]["group"] = "changed"
    spec.spec_schema()["properties"].clear()
    assert spec.crd()["spec"]["group"] == "greenloop.dev"
    assert "spec" in spec.spec_schema()["properties"]


# ---------------------------------------------------------------------------
# Hostile input (issue 8): each said "valid" (or crashed) at validate, then failed at run.

HOSTILE_HEAD = "apiVersion: greenloop.dev/v1alpha1\nkind: StagingValidation\nmetadata: {name: x}\n"
SUITE = "  suites:\n  - {name: a, command: [x]}\n"
NUL = "contains a NUL character, which a process's arguments and environment cannot hold"
SURROGATE = "a lone surrogate, which is not a character and cannot be written as UTF-8"
HOSTILE_SPECS = [
    (
        "NUL in command",
        '  suites:\n  - {name: a, command: ["py\\0thon"]}\n',
        f"spec.suites[0].command[0]: 'py\\x00thon' {NUL}",
    ),
    (
        "lone surrogate in command",
        '  suites:\n  - {name: a, command: ["\\ud800"]}\n',
        f"spec.suites[0].command[0]: contains U+D800, {SURROGATE}",
    ),
    (
        "NUL in an env value",
        '  suites:\n  - {name: a, command: [x], env: [{name: A, value: "b\\0"}]}\n',
        f"spec.suites[0].env[0].value: 'b\\x00' {NUL}",
    ),
    (
        "lone surrogate in an env value",
        '  suites:\n  - {name: a, command: [x], env: [{name: A, value: "\\udc80x"}]}\n',
        f"spec.suites[0].env[0].value: contains U+DC80, {SURROGATE}",
    ),
    (
        "NUL in workingDir",
        '  suites:\n  - {name: a, command: [x], workingDir: "a\\0b"}\n',
        f"spec.suites[0].workingDir: 'a\\x00b' {NUL}",
    ),
    (
        "an env name ending in a newline",
        '  suites:\n  - {name: a, command: [x], env: [{name: "A\\n", value: b}]}\n',
        "spec.suites[0].env[0].name: 'A\\n' does not match ^[-._a-zA-Z][-._a-zA-Z0-9]*$",
    ),
    (
        "expectedTests of 5,000 digits",
        "  expectedTests: " + "9" * 5000 + "\n" + SUITE,
        "invalid YAML at line 5, column 18: integer with too many digits",
    ),
    (
        "expectedTests of 0x and 20,000 hex digits",
        "  expectedTests: 0x" + "f" * 20000 + "\n" + SUITE,
        "spec.expectedTests: an integer of about 24,083 digits is out of range for a 64-bit"
        " integer",
    ),
    (
        "a webhook URL with an unclosed IPv6 bracket",
        SUITE + '  target: {webhook: {url: "http://[::1/deploy"}}\n',
        "spec.target.webhook.url: 'http://[::1/deploy' is not a valid URL (Invalid IPv6 URL)",
    ),
    (
        "a health URL with a port out of range",
        SUITE + '  target: {health: {url: "http://localhost:99999/health"}}\n',
        "spec.target.health.url: 'http://localhost:99999/health' is not a valid URL (Port out"
        " of range 0-65535)",
    ),
    (
        "a webhook URL with a space",
        SUITE + '  target: {webhook: {url: "http://ci.example/de ploy"}}\n',
        "spec.target.webhook.url: 'http://ci.example/de ploy' contains whitespace or control"
        " characters (percent-encode them)",
    ),
    (
        "a header name with a trailing newline",
        SUITE + '  target: {webhook: {url: "http://x/d", headersFrom: {env: {"X-T\\n": TOK}}}}\n',
        "spec.target.webhook.headersFrom.env[X-T\\n]: 'X-T\\n' is not a valid HTTP header name",
    ),
    (
        "a non-ASCII header name",
        SUITE + '  target: {webhook: {url: "http://x/d", headersFrom: {env: {"Tökén": TOK}}}}\n',
        "spec.target.webhook.headersFrom.env[Tökén]: 'Tökén' is not a valid HTTP header name",
    ),
    (
        "an env var name that cannot be one",
        SUITE + '  target: {webhook: {url: "http://x/d", headersFrom: {env: {X-T: "A=B"}}}}\n',
        "spec.target.webhook.headersFrom.env[X-T]: 'A=B' does not match ^[A-Za-z_][A-Za-z0-9_]*$",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in HOSTILE_SPECS], ids=[c[0] for c in HOSTILE_SPECS]
)
def test_hostile_spec_values_fail_validate_naming_the_field(body: str, expected: str) -> None:
    assert errors_of(HOSTILE_HEAD + "spec:\n" + body) == [f"validation.yaml: {expected}"]


def test_a_flood_of_errors_is_capped_with_a_count_of_the_rest() -> None:
    # 10,000 bad suites gave 30,001 lines.
    suites = "".join(f"  - {{name: S{i}, command: x}}\n" for i in range(10_000))
    lines = errors_of(HOSTILE_HEAD + "spec:\n  suites:\n" + suites)
    assert len(lines) == spec.MAX_SHOWN + 1
    assert re.fullmatch(
        r"validation\.yaml: … and [\d,]+ more problems \(fix these first\)", lines[-1]
    )


def test_crd_file_has_no_duplicate_keys() -> None:
    # YAML keeps the last of two equal keys silently: an edit to the first is lost.
    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: Strict, node: yaml.MappingNode) -> dict[Any, Any]:
        keys = [loader.construct_object(k) for k, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        assert not twice, f"line {node.start_mark.line + 1}: keys {twice} appear twice"
        return dict(loader.construct_pairs(node))

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    crd = Path(__file__).resolve().parents[2] / "crds" / "stagingvalidation.yaml"
    assert yaml.load(crd.read_text(encoding="utf-8"), Loader=Strict)["kind"] == (
        "CustomResourceDefinition"
    )
