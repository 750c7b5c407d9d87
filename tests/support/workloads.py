"""The target workload the kwok-cluster tests and benches roll out and redeploy."""

from __future__ import annotations

from typing import Any

from tests.support.cluster import ControlPlane


def deployment(name: str) -> dict[str, Any]:
    """One replica of the demo app, pinned to kwok's fake node: the real Deployment
    controller rolls it out (a real ReplicaSet), and no container runs."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"type": "kwok"},
                    "containers": [{"name": "app", "image": "localhost/demo-app:dev"}],
                },
            },
        },
    }


def roll_out(cp: ControlPlane, namespace: str, name: str, *, timeout: int = 60) -> None:
    """Apply `deployment(name)` and wait until `kubectl rollout status` says it is done."""
    cp.apply(deployment(name), namespace=namespace)
    cp.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, f"--timeout={timeout}s")
