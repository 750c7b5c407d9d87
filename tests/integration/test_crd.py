"""crds/stagingvalidation.yaml as the real API server sees it.

The CRD is applied to a real kube-apiserver; the example object from docs/design.md §1 is
accepted (minus `target.command`, which is local-mode only and refused in a cluster)
and invalid objects are refused with a message that names the offending field -
exactly what a user sees from `kubectl apply`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration

CRD_FILE = REPO_ROOT / "crds" / "stagingvalidation.yaml"
CRD_NAME = "stagingvalidations.greenloop.dev"


def example(name: str = "checkout") -> dict[str, Any]:
    """The object from docs/design.md §1, as it would be applied in a cluster."""
    return {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": name},
        "spec": {
            "expectedTests": 466,
            "suites": [
                {
                    "name": "critical",
                    "priority": "P1",
                    "command": ["pytest", "tests/e2e/critical"],
                    "image": "registry.example/e2e:1.4",
                    "workingDir": ".",
                    "env": [{"name": "BASE_URL", "value": "http://backend:8000"}],
                    "timeoutSeconds": 900,
                },
                {
                    "name": "core",
                    "priority": "P2",
                    "command": ["pytest", "tests/e2e/core"],
                    "image": "registry.example/e2e:1.4",
                },
            ],
            "target": {
                "workloads": [{"kind": "Deployment", "name": "backend"}],
                "webhook": {
                    "url": "https://ci.example/deploy",
                    "headersFrom": {"secretName": "deploy-token"},
                },
                "health": {"url": "http://backend:8000/health", "timeoutSeconds": 300},
            },
            "policy": {
                "maxIterations": 5,
                "deadlineSeconds": 7200,
                "rerun": "Failed",
                "redeployOn": ["ServiceUnavailable", "ConnectionError", "Timeout", "ServerError"],
                "flakeRetries": 1,
                "failFast": False,
            },
            "classification": [
                {"pattern": "upstream connect error", "class": "ServiceUnavailable"}
            ],
        },
    }


@pytest.fixture(scope="module")
def crd(apiserver: ControlPlane) -> dict[str, Any]:
    assert CRD_FILE.exists(), f"{CRD_FILE.relative_to(REPO_ROOT)} is missing"
    out = apiserver.kubectl("apply", "-f", str(CRD_FILE)).stdout
    assert f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME}" in out
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return yaml.safe_load(CRD_FILE.read_text())  # type: ignore[no-any-return]


def _create(cp: ControlPlane, namespace: str, obj: dict[str, Any]) -> Any:
    return cp.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


def _subset(want: Any, got: Any, path: str = "spec") -> list[str]:
    """Paths where `got` lacks or changes what `want` has (server defaults may add more)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [path]
        return [p for k, v in want.items() for p in _subset(v, got.get(k), f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [path]
        pairs = enumerate(zip(want, got, strict=True))
        return [p for i, (w, g) in pairs for p in _subset(w, g, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: {want!r} != {got!r}"]


def test_crd_is_established_with_short_name_and_category(
    apiserver: ControlPlane, crd: dict[str, Any]
) -> None:
    got = json.loads(apiserver.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    resources = apiserver.kubectl("api-resources", "--api-group=greenloop.dev").stdout
    row = next(line.split() for line in resources.splitlines() if "StagingValidation" in line)
    assert row[:2] == ["stagingvalidations", "sv"]
    assert "greenloop.dev/v1alpha1" in row


def test_design_example_is_accepted_and_kept_intact(
    apiserver: ControlPlane, crd: dict[str, Any], namespace: str
) -> None:
    obj = example()
    proc = _create(apiserver, namespace, obj)
    assert proc.returncode == 0, proc.stderr
    assert "stagingvalidation.greenloop.dev/checkout created" in proc.stdout

    stored = json.loads(apiserver.kubectl("get", "sv", "checkout", "-n", namespace,
                                          "-o", "json").stdout)  # fmt: skip
    assert _subset(obj["spec"], stored["spec"]) == [], "fields were pruned or changed"
    # defaults the API server fills in
    assert stored["spec"]["suites"][1]["timeoutSeconds"] == 900
    assert stored["spec"]["target"]["webhook"]["method"] == "POST"


def test_defaults_are_filled_in_for_a_minimal_object(
    apiserver: ControlPlane, crd: dict[str, Any], namespace: str
) -> None:
    minimal = {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": "minimal"},
        "spec": {"suites": [{"name": "all", "command": ["pytest"], "image": "e2e:1"}]},
    }
    proc = _create(apiserver, namespace, minimal)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(apiserver.kubectl("get", "sv", "minimal", "-n", namespace,
                                        "-o", "json").stdout)["spec"]  # fmt: skip
    assert spec["suites"][0]["priority"] == "P5"
    assert spec["suites"][0]["shards"] == 1
    assert spec["policy"]["maxIterations"] == 5
    assert spec["policy"]["rerun"] == "Failed"
    assert spec["policy"]["flakeRetries"] == 1


def test_kubectl_get_shows_the_printer_columns(
    apiserver: ControlPlane, crd: dict[str, Any], namespace: str
) -> None:
    assert _create(apiserver, namespace, example("columns")).returncode == 0
    out = apiserver.kubectl("get", "sv", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "PASSED", "FAILED", "EXPECTED", "ITERATION", "AGE"]
    assert out.splitlines()[1].split()[0] == "columns"


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets spec.<path> (dots and [i]) to value."""

    def apply(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[parts[-1]]

    return apply


def _duplicate_suite(spec: dict[str, Any]) -> None:
    spec["suites"][1]["name"] = spec["suites"][0]["name"]


def _too_many_suites(spec: dict[str, Any]) -> None:
    base = spec["suites"][1]
    spec["suites"] = [{**base, "name": f"s{i}"} for i in range(51)]


INVALID = [
    # (id, mutation, field named in the message, phrase in the message)
    ("expectedTests-string", _set("expectedTests", "many"), "spec.expectedTests",
     "must be of type integer"),
    ("expectedTests-zero", _set("expectedTests", 0), "spec.expectedTests",
     "should be greater than or equal to 1"),
    ("command-string", _set("suites[0].command", "pytest tests"), "spec.suites[0].command",
     "must be of type array"),
    ("failFast-string", _set("policy.failFast", "yes"), "spec.policy.failFast",
     "must be of type boolean"),
    ("rerun-enum", _set("policy.rerun", "Sometimes"), "spec.policy.rerun",
     'Unsupported value: "Sometimes"'),
    ("workload-kind-enum", _set("target.workloads[0].kind", "Pod"),
     "spec.target.workloads[0].kind", 'Unsupported value: "Pod"'),
    ("class-enum", _set("classification[0].class", "Flaky"), "spec.classification[0].class",
     'Unsupported value: "Flaky"'),
    ("redeployOn-enum", _set("policy.redeployOn", ["Sometimes"]), "spec.policy.redeployOn[0]",
     'Unsupported value: "Sometimes"'),
    ("suite-name-pattern", _set("suites[0].name", "Critical_Suite"), "spec.suites[0].name",
     "should match"),
    ("priority-pattern", _set("suites[0].priority", "P0"), "spec.suites[0].priority",
     "should match"),
    ("shards-zero", _set("suites[0].shards", 0), "spec.suites[0].shards",
     "should be greater than or equal to 1"),
    ("shards-over-64", _set("suites[0].shards", 65), "spec.suites[0].shards",
     "should be less than or equal to 64"),
    ("webhook-url-pattern", _set("target.webhook.url", "ftp://ci.example/deploy"),
     "spec.target.webhook.url", "should match"),
    ("duplicate-suite-names", _duplicate_suite, "spec.suites", "suite names must be unique"),
    ("too-many-suites", _too_many_suites, "spec.suites", "must have at most 50 items"),
    ("no-suites", _set("suites", []), "spec.suites", "should have at least 1 items"),
    ("missing-suites", _delete("suites"), "spec.suites", "Required value"),
    ("missing-command", _delete("suites[0].command"), "spec.suites[0].command",
     "Required value"),
    ("missing-suite-name", _delete("suites[1].name"), "spec.suites[1].name", "Required value"),
    ("missing-webhook-url", _delete("target.webhook.url"), "spec.target.webhook.url",
     "Required value"),
    ("missing-image-in-cluster", _delete("suites[1].image"), "spec.suites[1]",
     "image is required in a cluster"),
    ("local-redeploy-command-in-cluster", _set("target.command", ["./restart.sh"]),
     "spec.target", "command is for local mode"),
    # RE2, as greenloop runs them: CEL's matches() compiles with RE2 (issue 8).
    ("pattern-backreference", _set("classification[0].pattern", r"(\w+) again \1"),
     "spec.classification[0].pattern", "must be RE2 syntax"),
    ("pattern-lookahead", _set("classification[0].pattern", "upstream(?= connect)"),
     "spec.classification[0].pattern", "must be RE2 syntax"),
    ("pattern-lookbehind", _set("classification[0].pattern", "(?<!x)503"),
     "spec.classification[0].pattern", "must be RE2 syntax"),
    # Issue 10: matches every failure; greenloop refuses it, so the API server does too.
    ("pattern-matches-empty-line", _set("classification[0].pattern", "(upstream)?"),
     "spec.classification[0].pattern", "must not match an empty line"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field", "phrase"),
    [pytest.param(m, f, p, id=i) for i, m, f, p in INVALID],
)
def test_invalid_object_is_rejected_naming_the_field(
    apiserver: ControlPlane,
    crd: dict[str, Any],
    namespace: str,
    mutate: Mutation,
    field: str,
    phrase: str,
) -> None:
    obj = example("invalid")
    obj["spec"] = copy.deepcopy(obj["spec"])
    mutate(obj["spec"])
    proc = _create(apiserver, namespace, obj)
    assert proc.returncode != 0, f"accepted an invalid object: {proc.stdout}"
    err = proc.stderr
    assert re.search(r'StagingValidation(\.greenloop\.dev)? "invalid" is invalid', err), err
    assert f"{field}:" in err, err
    assert phrase in err, err
    gone = apiserver.kubectl("get", "sv", "invalid", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
