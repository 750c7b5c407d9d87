"""What `k8s/fingerprint.py` reads from a cluster whose controllers really roll out
Deployments, StatefulSets and DaemonSets (kwok node): the current revision only, its
pods' images and digests, for each kind (docs/design.md §8); and, on the real node, the
digest containerd reports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from greenloop.core.fingerprint import Fingerprint, changes
from greenloop.core.model import Workload
from greenloop.k8s.fingerprint import observe_fingerprint
from greenloop.k8s.gateway import Gateway
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import IMAGES
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration
DIGEST = "localhost/demo-app@sha256:" + "ab" * 32


def observe(cp: ControlPlane, namespace: str, *workloads: Workload) -> Fingerprint:
    async def main() -> Fingerprint | None:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await observe_fingerprint(gw, namespace, workloads)

    found = asyncio.run(main())
    assert found is not None
    return found


def workload(kind: str, name: str, *, replicas: int = 1, node_type: str = "kwok") -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeSelector": {"type": node_type},
                "containers": [
                    {"name": "app", "image": "localhost/demo-app:dev"},
                    {"name": "proxy", "image": "localhost/proxy:1"},
                ],
            },
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def rolled_out(cp: ControlPlane, namespace: str, kind: str, name: str) -> None:
    cp.kubectl("rollout", "status", f"{kind.lower()}/{name}", "-n", namespace, "--timeout=60s")


def pod_labels(cp: ControlPlane, namespace: str, app: str, key: str) -> set[str]:
    items = cp.get_json("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return {p["metadata"]["labels"].get(key, "") for p in items}


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("Deployment", "pod-template-hash"),
        ("StatefulSet", "controller-revision-hash"),
        ("DaemonSet", "controller-revision-hash"),
    ],
)
def test_each_kind_gives_its_current_revision_and_its_containers_images(
    cluster: ControlPlane, namespace: str, kind: str, label: str
) -> None:
    cluster.apply(workload(kind, "web", replicas=2), namespace=namespace)
    rolled_out(cluster, namespace, kind, "web")
    target = Workload(kind, "web")
    first = observe(cluster, namespace, target)
    (revision,) = pod_labels(cluster, namespace, "web", label)
    # kwok's pods report no imageID: the entries say so (""), status shows the image.
    assert [(e.workload, e.revision, e.container, e.image, e.image_id) for e in first.entries] == [
        (f"{kind}/web", revision, "app", "localhost/demo-app:dev", ""),
        (f"{kind}/web", revision, "proxy", "localhost/proxy:1", ""),
    ]
    assert observe(cluster, namespace, target) == first, "nothing changed, nothing differs"

    cluster.kubectl("set", "image", f"{kind.lower()}/web", "app=localhost/demo-app:v2",
                    "-n", namespace)  # fmt: skip
    rolled_out(cluster, namespace, kind, "web")
    second = observe(cluster, namespace, target)
    assert {e.image for e in second.entries} == {"localhost/demo-app:v2", "localhost/proxy:1"}
    assert {e.revision for e in second.entries} != {revision}
    (what,) = changes(first, second)
    assert what.startswith(f"{kind}/web: app=localhost/demo-app:dev, proxy=localhost/proxy:1")


def test_mid_rollout_only_the_new_revision_counts(cluster: ControlPlane, namespace: str) -> None:
    cluster.apply(workload("Deployment", "web", replicas=2), namespace=namespace)
    rolled_out(cluster, namespace, "Deployment", "web")
    # The new revision's pods can never schedule (no such node): the old ones keep
    # serving, and the rollout stays half-way.
    patch = {"spec": {"template": {"spec": {"nodeSelector": {"type": "nowhere"},
             "containers": [{"name": "app", "image": "localhost/demo-app:v2"}]}}}}  # fmt: skip
    cluster.kubectl("patch", "deployment/web", "-n", namespace, "--type=strategic",
                    "-p", json.dumps(patch))  # fmt: skip

    def two_revisions() -> bool:
        return len(pod_labels(cluster, namespace, "web", "pod-template-hash")) == 2

    wait_until("old and new pods side by side", two_revisions, timeout=60)
    found = observe(cluster, namespace, Workload("Deployment", "web"))
    assert {e.image for e in found.entries if e.container == "app"} == {"localhost/demo-app:v2"}


def test_a_digest_the_pod_reports_is_the_one_recorded(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.apply(workload("Deployment", "web"), namespace=namespace)
    rolled_out(cluster, namespace, "Deployment", "web")
    before = observe(cluster, namespace, Workload("Deployment", "web"))
    (pod,) = cluster.get_json("pods", "-n", namespace, "-l", "app=web")["items"]
    statuses = pod["status"]["containerStatuses"]
    index = next(n for n, cs in enumerate(statuses) if cs["name"] == "app")
    # What a real kubelet reports once the image is pulled (kwok reports none).
    op = [{"op": "add", "path": f"/status/containerStatuses/{index}/imageID", "value": DIGEST}]
    cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace,
                    "--subresource=status", "--type=json", "-p", json.dumps(op))  # fmt: skip
    after = observe(cluster, namespace, Workload("Deployment", "web"))
    assert {e.image_id for e in after.entries if e.container == "app"} == {DIGEST}
    assert changes(before, after) == (), "a digest learned is not a change"
    assert after.digest != before.digest


def test_a_missing_workload_gives_no_entries(cluster: ControlPlane, namespace: str) -> None:
    found = observe(cluster, namespace, Workload("Deployment", "nothing-here"))
    assert found.entries == ()
    assert "no workloads found" in found.describe()


@pytest.mark.timeout(400)
def test_on_the_real_node_the_digest_is_the_one_containerd_reports(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    app = {"name": "app", "image": IMAGES["demo-app"], "imagePullPolicy": "Never"}
    body = workload("Deployment", "shop")
    body["spec"]["template"]["spec"] = {"terminationGracePeriodSeconds": 2, "containers": [app]}
    cluster.apply(body, namespace=ns)
    cluster.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=120s")
    found = observe(cluster, ns, Workload("Deployment", "shop"))
    (pod,) = cluster.get_json("pods", "-n", ns, "-l", "app=shop")["items"]
    reported = pod["status"]["containerStatuses"][0]["imageID"]
    assert "sha256:" in reported, reported
    assert [(e.image, e.image_id) for e in found.entries] == [(IMAGES["demo-app"], reported)]

    cluster.kubectl("rollout", "restart", "deployment/shop", "-n", ns)
    cluster.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=120s")
    again = observe(cluster, ns, Workload("Deployment", "shop"))
    assert [e.image_id for e in again.entries] == [reported], "the same image, the same digest"
    (what,) = changes(found, again)
    assert "pod template" in what, "a restart is a new revision: a change"
