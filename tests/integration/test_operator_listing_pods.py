"""Operator mode's in-pod split of a sharded Go or Maven suite (core/pod_listing.py) and
the gathering of Surefire's reports (core/pod_reports.py), through a real kubelet: each
index's pod lists the tests with its own /bin/sh, awk and find (Debian's, as in the
golang and maven images), runs its share, and its sidecar uploads what it reported.

The fake-runners image (tools/images/fake-runners.Dockerfile) has a fake ``go`` (9 tests
in 2 packages, ``go test -v`` writing gotestsum's JUnit to $GREENLOOP_JUNIT_XML) and a
fake ``mvn`` (9 tests in 6 classes of a two-module tree, its workdir, one
``target/surefire-reports/TEST-<class>.xml`` per class, plus a failing report of an old
build shipped in the image, which the fresh-reports rule must not count). The shell
steps themselves are tested case by case in tests/e2e/test_pod_listing.py and
test_pod_reports.py; here: the same on a real node, Passed with every test counted once,
each shard with its share, and no container of the run still running afterwards."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.support.node_suite import report_text, validation, verdict
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import IMAGES, RealNode
from tools.cluster.operator import Operator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TESTS = 9  # in each fake suite (tools/images/fake-runners)
SHARD_LINE = re.compile(r"shard (\d+)/(\d+) \(([^)]*)\): (\d+) tests? in ")

CASES = {
    "go": (3, ["go", "test", "-v", "{greenloop:select|./...}"]),
    "maven": (2, ["mvn", "-B", "-q", "test", "{greenloop:select}"]),
}


def sharded(runner: str) -> dict[str, Any]:
    shards, command = CASES[runner]
    suite = {"image": IMAGES["fake-runners"], "runner": runner, "command": command}
    obj = validation(runner, {**suite, "shards": shards, "timeoutSeconds": 240}, tests=TESTS)
    obj["spec"]["policy"]["parallelism"] = shards
    return obj


def shard_counts(text: str, shards: int) -> dict[int, int]:
    """Each shard's reported test count, from the report's shard lines."""
    counts: dict[int, int] = {}
    for index, count, _pod, tests in SHARD_LINE.findall(text):
        assert int(count) == shards, text
        counts[int(index)] = int(tests)
    return counts


def containers_still_running(cluster: ControlPlane, node: RealNode, ns: str) -> list[str]:
    """The run's pods' containers (the sidecar's too) that containerd still runs, and
    the pods not yet Succeeded."""
    left: list[str] = []
    running = {
        line.split()[0]
        for line in node.ctr("tasks", "ls").splitlines()[1:]
        if line.split()[-1:] == ["RUNNING"]
    }
    for pod in cluster.get_json("pods", "-n", ns)["items"]:
        status = pod.get("status", {})
        if status.get("phase") != "Succeeded":
            left.append(f"pod {pod['metadata']['name']} {status.get('phase')}")
        for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            if c.get("containerID", "").removeprefix("containerd://") in running:
                left.append(f"{pod['metadata']['name']}/{c['name']}")
    return left


@pytest.mark.parametrize("runner", sorted(CASES))
def test_a_sharded_suite_split_in_its_pods_passes_with_each_test_counted_once(
    cluster: ControlPlane, node: RealNode, node_operator: Operator, runner: str
) -> None:
    op, ns = node_operator, node_operator.namespace
    shards = CASES[runner][0]
    cluster.apply(sharded(runner), namespace=ns)
    status = verdict(cluster, op, runner, 400)
    assert status["phase"] == "Passed", f"{json.dumps(status)[:3000]}\n{op.tail()}"
    # Every test once, in one iteration: Maven's old failing report was not gathered.
    assert status["summary"]["total"] == status["summary"]["passed"] == TESTS, status
    assert [h["iteration"] for h in status["history"]] == [1], status["history"]
    text = report_text(cluster, ns, status)
    counts = shard_counts(text, shards)
    assert sorted(counts) == list(range(1, shards + 1)), text
    assert all(n > 0 for n in counts.values()) and sum(counts.values()) == TESTS, text
    assert "not its own" not in text and "not split" not in text, text
    # Each index's sidecar uploaded its own results (Maven's: the gathered reports).
    stored = cluster.get_json("configmaps", "-n", ns, "-l", "greenloop.dev/results")["items"]
    assert len(stored) == shards
    deadline = time.monotonic() + 60
    while (left := containers_still_running(cluster, node, ns)) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == []
