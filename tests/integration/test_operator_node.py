"""`greenloop operator` with suite Jobs on the real node: real pods, the real results
sidecar (`greenloop report upload` in greenloop's image) reaching the operator on the host
through a selector-less Service, and RunnerErrors that real pods produce."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.node_suite import report_text, runner_error, validation, verdict
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


def real(name: str, command: list[str], image: str = "", timeout: int = 120) -> dict[str, Any]:
    """`name` running `command` in `image` (demo-suites unless given)."""
    suite = {"image": image or IMAGES["demo-suites"], "command": command, "timeoutSeconds": timeout}
    return validation(name, suite)


def test_a_real_suite_pod_uploads_through_the_real_sidecar_and_the_object_passes(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    cluster.apply(real("real", ["sh", "-c", SUITE]), namespace=ns)
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
    cluster.apply(real("noxml", command), namespace=ns)
    status = verdict(cluster, operator, "noxml", 240)
    runner_error(status)
    text = report_text(cluster, ns, status)
    assert "exit code 3" in text, text
    assert "cannot reach the database" in text, text


def test_a_missing_image_is_a_runner_error_naming_the_pull_failure(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    cluster.apply(
        real("noimage", ["pytest"], image="localhost/no-such-image:dev", timeout=20), namespace=ns
    )
    status = verdict(cluster, operator, "noimage", 240)
    runner_error(status)
    text = report_text(cluster, ns, status)
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
    cluster.apply(real("oom", hog), namespace=ns)
    status = verdict(cluster, operator, "oom", 240)
    runner_error(status)
    text = report_text(cluster, ns, status)
    assert "OOMKilled" in text, f"{text}\n{operator.tail()}"


def test_a_suite_past_its_timeout_is_a_runner_error_saying_deadline_exceeded(
    cluster: ControlPlane, operator: Operator
) -> None:
    ns = operator.namespace
    sleeper = ["sh", "-c", "echo 'waiting for a queue that never drains'; sleep 300"]
    cluster.apply(real("slow", sleeper, timeout=8), namespace=ns)
    status = verdict(cluster, operator, "slow", 240)
    runner_error(status)
    text = report_text(cluster, ns, status)
    assert "DeadlineExceeded" in text, f"{text}\n{operator.tail()}"
