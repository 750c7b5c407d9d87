"""Redeploy on a cluster whose controllers really roll Deployments out (kwok node).

What a user checks: a redeploy creates exactly one new ReplicaSet; doing the same
redeploy again (same rollout token: a restarted operator) creates none; a target that
does not exist is named in the error; a rollout that cannot progress fails with the
Deployment's own condition message instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from greenloop.core.model import Workload
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.redeploy import Outcome, redeploy
from tests.support import workloads
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration
T = TypeVar("T")


def on(cp: ControlPlane, body: Callable[[Gateway], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await body(gw)

    return asyncio.run(main())


def deployment(name: str, *, deadline: int = 600) -> dict[str, Any]:
    """Two replicas, so a rollout is seen replacing pods, with a progress deadline."""
    return workloads.deployment(name, replicas=2, deadline=deadline)


def replicasets(cp: ControlPlane, namespace: str, app: str) -> list[str]:
    items = cp.get_json("replicasets", "-n", namespace, "-l", f"app={app}")["items"]
    return sorted(rs["metadata"]["name"] for rs in items)


def rolled_out(cp: ControlPlane, namespace: str, name: str) -> None:
    cp.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=60s")


def test_redeploy_rolls_out_once_and_a_repeat_with_the_same_token_is_a_no_op(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.apply(deployment("web"), namespace=namespace)
    rolled_out(cluster, namespace, "web")
    before = replicasets(cluster, namespace, "web")
    assert len(before) == 1

    target = [Workload("Deployment", "web")]

    def go(token: str) -> Outcome:
        return on(cluster, lambda gw: redeploy(gw, namespace, target, token, timeout=60))

    first = go("sv-uid-r1-i1-redeploy")
    assert first.ok, first.message
    after = replicasets(cluster, namespace, "web")
    assert len(after) == 2 and set(before) < set(after), after
    dep = cluster.get_json("deployment", "web", "-n", namespace)
    generation = dep["metadata"]["generation"]
    assert dep["status"]["updatedReplicas"] == dep["status"]["availableReplicas"] == 2

    again = go("sv-uid-r1-i1-redeploy")
    assert again.ok, again.message
    assert replicasets(cluster, namespace, "web") == after, "a repeat started a second rollout"
    dep = cluster.get_json("deployment", "web", "-n", namespace)
    assert dep["metadata"]["generation"] == generation


def test_a_missing_target_is_named_and_nothing_is_created(
    cluster: ControlPlane, namespace: str
) -> None:
    target = [Workload("Deployment", "backend")]
    out = on(cluster, lambda gw: redeploy(gw, namespace, target, "t", timeout=30))
    assert not out.ok
    assert out.missing == target[0]
    assert f"Deployment {namespace}/backend not found" in out.message
    assert cluster.get_json("deployments", "-n", namespace)["items"] == []


def test_a_rollout_past_its_progress_deadline_fails_with_the_condition_message(
    cluster: ControlPlane, namespace: str
) -> None:
    dep = deployment("stuck", deadline=600)
    cluster.apply(dep, namespace=namespace)
    rolled_out(cluster, namespace, "stuck")
    # The new pods can never be scheduled, and the deadline is short: the controller
    # itself marks the rollout ProgressDeadlineExceeded.
    patch = {"spec": {"progressDeadlineSeconds": 2,
                      "template": {"spec": {"nodeSelector": {"type": "none"}}}}}  # fmt: skip
    cluster.kubectl(
        "patch", "deployment", "stuck", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    wait_until(
        "ProgressDeadlineExceeded",
        lambda: any(
            c.get("reason") == "ProgressDeadlineExceeded"
            for c in cluster.get_json("deployment", "stuck", "-n", namespace)["status"].get(
                "conditions", []
            )
        ),
        timeout=60,
        interval=0.5,
    )
    target = [Workload("Deployment", "stuck")]
    out = on(cluster, lambda gw: redeploy(gw, namespace, target, "t2", timeout=60))
    assert not out.ok
    assert 'deployment "stuck" exceeded its progress deadline' in out.message
    assert "has timed out progressing" in out.message
