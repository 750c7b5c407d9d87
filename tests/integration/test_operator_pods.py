"""Test pods as teams configure them (docs/operator.md): a suite pod that reads a Secret
through valueFrom and envFrom on the real node, whose value greenloop then writes
nowhere; pods that can never start stop the round at once with the kubelet's reason;
and the configured pod stays under the restricted Pod Security Standard."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from greenloop.core import spec
from greenloop.k8s.jobs import Owner, SuiteJob, build_job
from tests.support.node_suite import runner_error, validation, verdict
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.node import IMAGES
from tools.cluster.operator import Operator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

# One test checks the two ways in agree; the other fails quoting the value, so its
# message, details and output all carry it - unless greenloop masks them.
SUITE = (
    "printf '%s' \"$TESTS\" > /tmp/test_secret.py"
    " && python3 -m pytest -q -p no:cacheprovider /tmp/test_secret.py"
)
TESTS = """import os

def test_both_ways_in_agree():
    assert os.environ["TOKEN"] == os.environ["ALL_token"] != ""

def test_quotes_the_token():
    print("the token is", os.environ["TOKEN"])
    assert os.environ["TOKEN"] == "something else"
"""


def test_a_secret_read_through_value_from_and_env_from_is_written_nowhere(
    cluster: ControlPlane, node_operator: Operator
) -> None:
    op, ns = node_operator, node_operator.namespace
    value = f"s3cr3t-{secrets.token_hex(8)}"
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
         "stringData": {"token": value}},
        validation(
            "masked",
            {
                "image": IMAGES["demo-suites"],
                "command": ["sh", "-c", SUITE],
                "env": [
                    {"name": "TESTS", "value": TESTS},
                    {"name": "TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                ],
                "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "ALL_"}],
            },
        ),
        namespace=ns,
    )  # fmt: skip
    status = verdict(cluster, op, "masked", 300)
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", ns)
    text = report["data"]["report.md"]
    # The pod got the value both ways (one test passed), and the failing test's text,
    # which quoted it, reached the report masked.
    assert status["summary"]["passed"] == 1, json.dumps(status)[:3000]
    assert "***" in text, text
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    obj = cluster.kubectl("get", "sv", "masked", "-n", ns, "-o", "json").stdout
    written = {
        "status": obj,
        "events": events,
        "report": json.dumps(report),
        "operator log": op.log.read_text(errors="replace"),
    }
    assert [where for where, text in written.items() if value in text] == []


def test_an_image_that_does_not_exist_stops_the_round_within_a_minute(
    cluster: ControlPlane, node_operator: Operator
) -> None:
    op, ns = node_operator, node_operator.namespace
    suite = {"image": "localhost/no-such-image:dev", "command": ["pytest"]}
    began = time.monotonic()
    cluster.apply(validation("noimage", suite), namespace=ns)
    # timeoutSeconds is 900: before the rule, the verdict took 2 x 900 s.
    status = verdict(cluster, op, "noimage", 90)
    took = time.monotonic() - began
    condition = runner_error(status)
    assert "ErrImagePull" in condition["message"] or "ImagePullBackOff" in condition["message"]
    print(f"[greenloop] a missing image: Stalled after {took:.0f} s")


def test_a_missing_secret_key_stops_the_round_with_create_container_config_error(
    cluster: ControlPlane, node_operator: Operator
) -> None:
    op, ns = node_operator, node_operator.namespace
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
         "stringData": {"token": "t"}},
        validation(
            "nokey",
            {
                "image": IMAGES["demo-suites"],
                "command": ["true"],
                "env": [{"name": "TOKEN",
                         "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent"}}}],
            },
        ),
        namespace=ns,
    )  # fmt: skip
    status = verdict(cluster, op, "nokey", 90)
    condition = runner_error(status)
    assert "CreateContainerConfigError" in condition["message"], condition


# -- the restricted Pod Security Standard (no node needed: the API server decides) ----------

POD_SETTINGS: dict[str, Any] = {
    "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
    "envFrom": [{"configMapRef": {"name": "cfg"}}],
    "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "128Mi"}},
    "nodeSelector": {"pool": "e2e"},
    "tolerations": [{"key": "e2e", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["e2e"]}]}
                ]
            }
        }
    },
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccountName": "tester",
    "volumes": [
        {"name": "certs", "mountPath": "/certs", "secret": {"secretName": "tls"}},
        {"name": "conf", "mountPath": "/conf", "configMap": {"name": "cfg"}},
        {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
}


def _pod(namespace: str) -> dict[str, Any]:
    obj = validation("pss", {"image": "e2e:1", "command": ["pytest"], **POD_SETTINGS})
    loaded = spec.from_object(obj, mode="operator")
    run = SuiteJob(
        owner=Owner(name="pss", namespace=namespace, uid="0f0f"),
        iteration=1,
        suite=loaded.spec.suites[0],
        reporter_image="greenloop:dev",
        results_url="http://greenloop:8081",
    )
    template = build_job(run)["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "suite", "namespace": namespace},
        "spec": template["spec"],
    }


def _dry_run(cp: ControlPlane, pod: dict[str, Any]) -> tuple[int, str]:
    proc = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_configured_suite_pod_passes_the_restricted_standard(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    cluster.kubectl("create", "serviceaccount", "tester", "-n", namespace)
    pod = _pod(namespace)
    code, out = _dry_run(cluster, pod)
    assert code == 0, out
    # The check can fail: the same pod with one privileged setting is refused.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    code, out = _dry_run(cluster, pod)
    assert code != 0 and "restricted" in out, out


def test_the_api_server_takes_the_crd_s_pod_fields_and_their_cel_rules(
    cluster: ControlPlane, namespace: str
) -> None:
    ensure_crd(cluster)
    good = validation("pods", {"image": "e2e:1", "command": ["pytest"], **POD_SETTINGS})
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(good),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    bad = validation(
        "pods",
        {
            "image": "e2e:1",
            "command": ["pytest"],
            "env": [{"name": "T", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}],
            "volumes": [{"name": "results", "mountPath": "/greenloop/x", "emptyDir": {}}],
        },
    )
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(bad),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    for message in (
        "give value or valueFrom, not both",
        "results, results-token and select are greenloop's own volumes",
        "/greenloop is greenloop's own folder",
    ):
        assert message in proc.stderr, proc.stderr
