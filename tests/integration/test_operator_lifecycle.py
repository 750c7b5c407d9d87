"""Deleting or editing a StagingValidation while its round runs (docs/design.md §8).

The kwok cluster of test_operator_loop.py, with the real kube-controller-manager (its
garbage collector is what removes a deleted object's Jobs, pods and ConfigMaps
through their owner references; no Secret is ever made) and the operator on the host. The test plays
the results sidecar (tests/support/sidecar.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from greenloop.core import crd
from tests.support.sidecar import FAIL, PASS, Sidecar, Snapshot, junit, labels_of
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration

#: What a StagingValidation leaves behind, by API path; kube-root-ca.crt is the
#: namespace's own.
KINDS = {
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "secrets": "/api/v1/namespaces/{ns}/secrets",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
}
GC_SECONDS = 90.0  # bound on the garbage collector's work
QUIET_SECONDS = 15.0  # how long nothing may come back after a deletion


def sv(suites: dict[str, list[str]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": "demo"},
        "spec": {
            "suites": [
                {"name": s, "command": cmd, "image": "localhost/e2e:dev", "priority": f"P{i + 1}"}
                for i, (s, cmd) in enumerate(suites.items())
            ],
            "policy": {"maxIterations": 4, "flakeRetries": 0},
            **spec,
        },
    }


def left(cp: ControlPlane, namespace: str) -> dict[str, list[str]]:
    """What is in the namespace of the kinds an object's run makes."""
    out: dict[str, list[str]] = {}
    for kind, path in KINDS.items():
        code, body = cp.get(path.format(ns=namespace), timeout=20.0)
        assert code == 200, body[:300]
        names = [o["metadata"]["name"] for o in json.loads(body)["items"]]
        out[kind] = sorted(n for n in names if n != "kube-root-ca.crt")
    return out


def pending_pods(cp: ControlPlane, namespace: str) -> None:
    """Pods that are created but never scheduled: a Job with a live pod, on kwok, that
    neither completes nor uploads (every container asks for 1000 CPUs by default)."""
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "no-room"},
            "spec": {
                "limits": [
                    {"type": "Container", "default": {"cpu": "1k"}, "defaultRequest": {"cpu": "1k"}}
                ]
            },
        },
        namespace=namespace,
    )


def critical_only(job: dict[str, Any]) -> bytes | None:
    if labels_of(job)["greenloop.dev/suite"] == "critical":
        return junit(PASS.format(c="crit", n="login"), PASS.format(c="crit", n="cart"))
    return None  # core stays running


def test_deleting_the_object_mid_run_leaves_nothing_and_nothing_comes_back(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    pending_pods(cluster, namespace)
    cluster.apply(sv({"critical": ["pytest"], "core": ["pytest"]}), namespace=namespace)
    car = Sidecar(namespace, operator.url, critical_only, tmp_path)

    def mid_run() -> bool:
        seen = Snapshot.take(cluster, namespace)
        car.serve(seen)
        now = left(cluster, namespace)
        # Both Jobs with pods, critical's results stored and counted, the report
        # written: every kind of thing a run makes exists (no Secret: the sidecars
        # upload with their pods' own tokens).
        return (
            len(now["jobs"]) == 2
            and len(now["pods"]) >= 2
            and now["secrets"] == []
            and len(now["configmaps"]) == 2
            and (seen.status("demo").get("summary") or {}).get("passed") == 2
        )

    wait_until("a run in the middle", mid_run, timeout=120, interval=0.5)
    car.finish()
    obj = cluster.get_json("sv", "demo", "-n", namespace)
    assert not obj["metadata"].get("finalizers"), "nothing may block a deletion"

    cluster.kubectl("delete", "sv", "demo", "-n", namespace, "--timeout=30s")
    empty = {kind: [] for kind in KINDS}
    wait_until(
        "the garbage collector to remove the run",
        lambda: left(cluster, namespace) == empty,
        timeout=GC_SECONDS,
        interval=1.0,
    )
    # The operator stopped the object's unit: nothing is recreated, and it lives on.
    quiet_until = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < quiet_until:
        assert left(cluster, namespace) == empty, "recreated after the deletion"
        assert operator.exited() is None, operator.tail()
        time.sleep(1.0)


def test_a_stopped_operator_never_blocks_a_deletion(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    pending_pods(cluster, namespace)
    cluster.apply(sv({"critical": ["pytest"], "core": ["pytest"]}), namespace=namespace)
    wait_until(
        "the run's Jobs",
        lambda: len(left(cluster, namespace)["jobs"]) == 2,
        timeout=120,
        interval=0.5,
    )
    operator.kill()  # SIGKILL: nothing of it can clean up
    cluster.kubectl("delete", "sv", "demo", "-n", namespace, "--timeout=20s")
    assert cluster.get_json("sv", "demo", "-n", namespace, check=False) is None
    wait_until(
        "the garbage collector to remove the run",
        lambda: left(cluster, namespace) == {kind: [] for kind in KINDS},
        timeout=GC_SECONDS,
        interval=1.0,
    )


def test_a_spec_change_mid_run_starts_a_new_round_without_waiting_for_a_removed_suite(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    before = {"critical": ["pytest"], "core": ["pytest", "-k", "old"], "extra": ["pytest"]}
    after = {"critical": ["pytest"], "core": ["pytest", "-k", "new"]}
    kwok = {"serviceAccountName": "no-such-account"}  # no pods on kwok: the test uploads
    edited = False

    def answer(job: dict[str, Any]) -> bytes | None:
        labels = labels_of(job)
        suite, round_ = labels["greenloop.dev/suite"], labels["greenloop.dev/round"]
        if suite == "critical":
            return junit(PASS.format(c="crit", n="login"), PASS.format(c="crit", n="cart"))
        if round_ == "1" and suite == "core" and edited:
            # The old round's results, arriving late: stored, never counted.
            return junit(FAIL.format(c="core", n="old", m="HTTP 503 Service Unavailable"))
        if round_ == "2" and suite == "core":
            return junit(PASS.format(c="core", n="new"))
        return None  # round 1's extra never reports: the new round must not wait for it

    cluster.apply(sv(before, **kwok), namespace=namespace)
    car = Sidecar(namespace, operator.url, answer, tmp_path)

    def critical_counted() -> bool:
        seen = Snapshot.take(cluster, namespace)
        car.serve(seen)
        return (seen.status("demo").get("summary") or {}).get("passed") == 2

    wait_until("round 1's critical results counted", critical_counted, timeout=120, interval=0.5)
    cluster.apply(sv(after, **kwok), namespace=namespace)
    edited = True

    def verdict() -> dict[str, Any] | None:
        seen = Snapshot.take(cluster, namespace)
        car.serve(seen)
        status = seen.status("demo")
        return status if status.get("phase") in ("Passed", "Stalled") else None

    status = wait_until("the verdict", verdict, timeout=120, interval=0.5)
    car.finish()
    assert car.failed() == [], car.failed()
    assert status["phase"] == "Passed", json.dumps(status, indent=1)[:3000]
    assert status["observedGeneration"] == 2
    summary = status["summary"]
    assert (summary["total"], summary["passed"], summary["failed"]) == (3, 3, 0), summary

    jobs = Snapshot.take(cluster, namespace).jobs
    runs = sorted(
        (labels_of(j)["greenloop.dev/round"], labels_of(j)["greenloop.dev/suite"]) for j in jobs
    )
    assert [r for r in runs if r[0] == "2"] == [("2", "core"), ("2", "critical")], runs
    core2 = next(j for j in jobs if labels_of(j)["greenloop.dev/round"] == "2"
                 and labels_of(j)["greenloop.dev/suite"] == "core")  # fmt: skip
    suite = next(c for c in core2["spec"]["template"]["spec"]["containers"] if c["name"] == "suite")
    assert suite["command"] + suite.get("args", []) == after["core"]
    reasons = [
        e["reason"]
        for e in cluster.get_json("events", "-n", namespace)["items"]
        if e["involvedObject"]["kind"] == crd.KIND
    ]
    assert "SpecChanged" in reasons, reasons  # the new round's Event names its trigger
