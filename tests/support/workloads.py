"""The target workload the kwok-cluster tests and benches roll out and redeploy."""

from __future__ import annotations

from typing import Any

from tools.cluster.controlplane import ControlPlane


def deployment(
    name: str, *, replicas: int = 1, node_type: str = "kwok", deadline: int | None = None
) -> dict[str, Any]:
    """``replicas`` of the demo app, pinned by node type (kwok's fake node by default: the
    real Deployment controller rolls it out, a real ReplicaSet, and no container runs).
    ``deadline``: its progressDeadlineSeconds."""
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeSelector": {"type": node_type},
                "containers": [{"name": "app", "image": "localhost/demo-app:dev"}],
            },
        },
    }
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def roll_out(cp: ControlPlane, namespace: str, name: str, *, timeout: int = 60) -> None:
    """Apply `deployment(name)` and wait until `kubectl rollout status` says it is done."""
    cp.apply(deployment(name), namespace=namespace)
    cp.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, f"--timeout={timeout}s")
