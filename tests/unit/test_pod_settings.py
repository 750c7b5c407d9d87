"""Test pods as teams configure them (docs/design.md §8): the CRD's pod fields, refused
in local mode naming the field, checked by the schema, and put on the Job's pod."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from greenloop.core import spec
from greenloop.core.pod_start import RETRY_GRACE_SECONDS, never_starts
from greenloop.k8s.jobs import TOKEN_VOLUME, Owner, SuiteJob, build_job

SUITE: dict[str, Any] = {"name": "core", "command": ["pytest"], "image": "e2e:1"}
POD_FIELDS: dict[str, Any] = {
    "serviceAccountName": "tester",
    "envFrom": [
        {"secretRef": {"name": "creds"}},
        {"configMapRef": {"name": "cfg"}, "prefix": "C_"},
    ],
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": 1073741824}},
    "nodeSelector": {"pool": "e2e"},
    "tolerations": [{"key": "e2e", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
    "imagePullSecrets": [{"name": "registry"}],
    "volumes": [
        {"name": "certs", "mountPath": "/certs", "secret": {"secretName": "tls"}},
        {"name": "conf", "mountPath": "/conf", "configMap": {"name": "cfg"}},
        {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
}
VALUE_FROM = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}


def document(**suite: Any) -> dict[str, Any]:
    return {
        "apiVersion": spec.API_VERSION,
        "kind": spec.KIND,
        "metadata": {"name": "demo", "namespace": "team"},
        "spec": {"suites": [{**SUITE, **copy.deepcopy(suite)}]},
    }


def errors(obj: dict[str, Any], mode: spec.Mode) -> list[str]:
    return [str(e) for e in spec.validate_object(obj, mode=mode)]


@pytest.mark.parametrize("field", sorted(POD_FIELDS))
def test_local_mode_refuses_each_pod_field_naming_it(field: str) -> None:
    obj = document(**{field: POD_FIELDS[field]})
    assert errors(obj, "operator") == []
    assert errors(obj, "local") == [
        f"spec.suites[0].{field}: only in operator mode: a local run starts a process, not a pod"
    ]


def test_local_mode_refuses_value_from_naming_the_variable() -> None:
    obj = document(env=[{"name": "A", "value": "1"}, VALUE_FROM])
    assert errors(obj, "operator") == []
    assert errors(obj, "local") == [
        "spec.suites[0].env[1].valueFrom: only in operator mode: a local run starts a process,"
        " not a pod"
    ]


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        # Only the three sources the issue allows: resourceFieldRef is not one of them.
        (
            {"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "x"}}}]},
            "spec.suites[0].env[0].valueFrom.resourceFieldRef: unknown field",
        ),
        (
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
            "spec.suites[0].env[0].valueFrom.secretKeyRef.key: required field is missing",
        ),
        # No hostPath, no projected tokens: only secret, configMap, emptyDir.
        (
            {"volumes": [{"name": "h", "mountPath": "/h", "hostPath": {"path": "/"}}]},
            "spec.suites[0].volumes[0].hostPath: unknown field",
        ),
        (
            {"volumes": [{"name": "h", "mountPath": "relative", "emptyDir": {}}]},
            "spec.suites[0].volumes[0].mountPath: 'relative' does not match",
        ),
        (
            {"tolerations": [{"operator": "Maybe"}]},
            "spec.suites[0].tolerations[0].operator: unsupported value 'Maybe'",
        ),
        (
            {"resources": {"limits": {"memory": "lots"}}},
            "spec.suites[0].resources.limits[memory]: 'lots' does not match",
        ),
        (
            {"serviceAccountName": "Not_A_Name"},
            "spec.suites[0].serviceAccountName: 'Not_A_Name' does not match",
        ),
    ],
)
def test_schema_refuses(suite: dict[str, Any], expected: str) -> None:
    found = errors(document(**suite), "operator")
    assert any(e.startswith(expected) for e in found), found


def _pod(**suite: Any) -> dict[str, Any]:
    loaded = spec.from_object(document(**suite), mode="operator")
    run = SuiteJob(
        owner=Owner(name="demo", namespace="team", uid="u1"),
        iteration=1,
        suite=loaded.spec.suites[0],
        reporter_image="greenloop:1",
        results_url="http://greenloop:8080",
        service_account="object-account",
    )
    pod: dict[str, Any] = build_job(run)["spec"]["template"]["spec"]
    return pod


def test_builder_puts_every_pod_setting_on_the_pod() -> None:
    pod = _pod(env=[VALUE_FROM], **POD_FIELDS)
    suite = pod["containers"][0]
    assert pod["serviceAccountName"] == "tester"
    assert pod["nodeSelector"] == {"pool": "e2e"}
    assert pod["tolerations"] == POD_FIELDS["tolerations"]
    assert pod["affinity"] == POD_FIELDS["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert suite["env"][0] == VALUE_FROM
    assert suite["envFrom"] == POD_FIELDS["envFrom"]
    assert suite["resources"] == POD_FIELDS["resources"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["certs"] == {"name": "certs", "secret": {"secretName": "tls"}}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
    mounts = {m["name"]: (m["mountPath"], m["readOnly"]) for m in suite["volumeMounts"][1:]}
    # Credentials and configuration are mounted read-only; scratch space is writable.
    assert mounts == {
        "certs": ("/certs", True),
        "conf": ("/conf", True),
        "scratch": ("/scratch", False),
    }


def test_builder_leaves_out_what_was_not_given() -> None:
    pod = _pod(env=[{"name": "A"}])
    assert pod["serviceAccountName"] == "object-account"
    for field in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert field not in pod
    suite = pod["containers"][0]
    assert "envFrom" not in suite and "resources" not in suite
    assert suite["env"][0] == {"name": "A", "value": ""}
    assert [v["name"] for v in pod["volumes"]] == ["results", TOKEN_VOLUME]


def test_pod_settings_keep_the_pod_restricted() -> None:
    # The restricted Pod Security Standard's fields stay whatever the team configures.
    pod = _pod(**POD_FIELDS)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    # The team's volumes add only these sources; greenloop's own token volume is the one
    # projected source, mounted into the sidecar alone.
    team = [v for v in pod["volumes"] if v["name"] != TOKEN_VOLUME]
    assert {k for v in team for k in v} <= {"name", "secret", "configMap", "emptyDir"}


@pytest.mark.parametrize(
    ("reason", "waited", "expected"),
    [
        ("InvalidImageName", 0.0, True),
        ("ErrImageNeverPull", 0.0, True),
        # A registry hiccup or a Secret made a moment late: the kubelet's first retries.
        ("ErrImagePull", 5.0, False),
        ("ImagePullBackOff", RETRY_GRACE_SECONDS - 1, False),
        ("ImagePullBackOff", RETRY_GRACE_SECONDS, True),
        ("ErrImagePull", 45.0, True),
        ("CreateContainerConfigError", 5.0, False),
        ("CreateContainerConfigError", RETRY_GRACE_SECONDS + 1, True),
        # A pod starting, or a crash the Job's own failure reports: not this rule's.
        ("ContainerCreating", 600.0, False),
        ("CrashLoopBackOff", 600.0, False),
        (None, 600.0, False),
    ],
)
def test_never_starts(reason: str | None, waited: float, expected: bool) -> None:
    assert never_starts(reason, waited) is expected
