"""`greenloop operator` with suite Jobs on the real node: real pods, the real results
sidecar (`greenloop report upload` in greenloop's image) reaching the operator on the host
through a selector-less Service, and RunnerErrors that real pods produce."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from greenloop.core import crd
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import IMAGES
from tools.cluster.operator import Operator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

# A real pytest run with greenloop's plugin (in the demo-suites image): it writes the JUnit
# XML to $GREENLOOP_JUNIT_XML in the shared emptyDir, which the sidecar then uploads.
SUITE = (
    "printf 'def test_ok():\\n    pass\\n\\ndef test_two():\\n    assert 1 + 1 == 2\\n' "
    "> /tmp/test_real.py && python3 -m pytest -q -p no:cacheprovider /tmp/test_real.py"
)


@pytest.fixture
def operator(node_operator: Operator) -> Operator:
    return node_operator


def validation(name: str, image: str, command: list[str], timeout: int = 120) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "expectedTests": 2,
            "suites": [
                {"name": "real", "image": image, "command": command, "timeoutSeconds": timeout}
            ],
            "policy": {"maxIterations": 3},
        },
    }


def verdict(cp: ControlPlane, op: Operator, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if op.proc is not None and op.proc.poll() is not None:
            pytest.fail(f"the operator exited:\n{op.tail()}")
        obj = cp.get_json("sv", name, "-n", op.namespace, check=False) or {}
        status = obj.get("status") or {}
        if status.get("phase") in ("Passed", "Stalled"):
            return status
        time.sleep(1)
    pytest.fail(f"no verdict after {timeout}s: {json.dumps(status)[:2000]}\n{op.tail()}")


def stalled(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Stalled")


def test_a_real_suite_pod_uploads_through_the_real_sidecar_and_the_object_passes(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    cluster.apply(validation("real", IMAGES["demo-suites"], ["sh", "-c", SUITE]), namespace=ns)
    status = verdict(cluster, operator, "real", 240)
    assert status["phase"] == "Passed", f"{json.dumps(status)[:3000]}\n{operator.tail()}"
    assert status["summary"]["passed"] == 2
    (job,) = cluster.get_json("jobs", "-n", ns)["items"]
    pods = cluster.get_json("pods", "-n", ns, "-l", f"job-name={job['metadata']['name']}")
    pod = pods["items"][0]["metadata"]["name"]
    sidecar = cluster.kubectl("logs", "-n", ns, pod, "-c", "greenloop-results").stdout
    assert "greenloop: stored" in sidecar, sidecar
    results = cluster.get_json("configmaps", "-n", ns, "-l", "greenloop.dev/results")["items"]
    assert [r["metadata"]["ownerReferences"][0]["uid"] for r in results] == [job["metadata"]["uid"]]


def test_a_suite_that_writes_no_xml_is_a_runner_error_with_its_exit_and_log(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    command = ["sh", "-c", "echo 'cannot reach the database' >&2; exit 3"]
    cluster.apply(validation("noxml", IMAGES["demo-suites"], command), namespace=ns)
    status = verdict(cluster, operator, "noxml", 240)
    condition = stalled(status)
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", ns)
    text = report["data"]["report.md"]
    assert "exit code 3" in text, text
    assert "cannot reach the database" in text, text


def test_a_missing_image_is_a_runner_error_naming_the_pull_failure(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    cluster.apply(
        validation("noimage", "localhost/no-such-image:dev", ["pytest"], timeout=20), namespace=ns
    )
    status = verdict(cluster, operator, "noimage", 240)
    condition = stalled(status)
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", ns)
    text = report["data"]["report.md"]
    assert "ErrImage" in text or "ImagePull" in text, f"{text}\n{operator.tail()}"


def test_a_suite_over_its_memory_limit_is_a_runner_error_saying_oomkilled(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    # The namespace's policy gives containers without limits a small one, as a
    # cluster's LimitRange would; the suite then allocates past it.
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "small"},
            "spec": {"limits": [{"type": "Container", "default": {"memory": "48Mi"}}]},
        },
        namespace=ns,
    )
    hog = ["python3", "-c", "b = b'x' * (256 * 1024 * 1024); print(len(b))"]
    cluster.apply(validation("oom", IMAGES["demo-suites"], hog), namespace=ns)
    status = verdict(cluster, operator, "oom", 240)
    condition = stalled(status)
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", ns)
    text = report["data"]["report.md"]
    assert "OOMKilled" in text, f"{text}\n{operator.tail()}"


def test_a_suite_past_its_timeout_is_a_runner_error_saying_deadline_exceeded(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    sleeper = ["sh", "-c", "echo 'waiting for a queue that never drains'; sleep 300"]
    cluster.apply(validation("slow", IMAGES["demo-suites"], sleeper, timeout=8), namespace=ns)
    status = verdict(cluster, operator, "slow", 240)
    condition = stalled(status)
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", ns)
    text = report["data"]["report.md"]
    assert "DeadlineExceeded" in text, f"{text}\n{operator.tail()}"
