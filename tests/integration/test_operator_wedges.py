"""Nothing a tenant does to its own objects wedges the operator (docs/design.md §8):
a name deleted and recreated in a burst, a status the API server refuses, a tampered
`status.engine`, a deadline that passes mid-round. Each ends in a status within a
bounded time. The kwok cluster of test_operator_lifecycle.py, the operator on the host;
no pods run (the Jobs name an account that does not exist), nobody uploads."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from greenloop.core import crd
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration

#: Bound on a fresh object's first status; a tick takes about a second here.
FIRST_STATUS_SECONDS = 30.0


def sv(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "suites": [{"name": "core", "command": ["pytest"], "image": "localhost/e2e:dev"}],
            "serviceAccountName": "no-such-account",  # no pods on kwok
            **spec,
        },
    }


def send(cp: ControlPlane, method: str, path: str, body: str | None = None) -> int:
    """One request as admin, without kubectl's start-up time between requests."""
    req = urllib.request.Request(
        cp.server + path, data=body.encode() if body else None, method=method,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, context=cp._ssl_context(), timeout=10.0) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def test_a_name_deleted_and_recreated_in_a_burst_gets_a_status_at_once(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    text = json.dumps(sv())
    path = f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/{crd.PLURAL}"
    assert send(cluster, "POST", path, text) == 201
    wait_until(  # the operator is up and serving the name
        "the first object's status",
        lambda: (cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}).get("phase"),
        timeout=60.0,
        interval=0.5,
    )
    for _ in range(20):  # 20 times in about 4 s, as the finding measured
        time.sleep(0.1)
        assert send(cluster, "DELETE", f"{path}/demo") == 200
        assert send(cluster, "POST", path, text) == 201
    created = time.monotonic()
    uid = cluster.get_json("sv", "demo", "-n", namespace)["metadata"]["uid"]

    def status() -> dict[str, Any] | None:
        obj = cluster.get_json("sv", "demo", "-n", namespace)
        assert obj["metadata"]["uid"] == uid
        return obj.get("status", {}).get("phase") and obj["status"]

    wait_until("the last object's first status", status, timeout=FIRST_STATUS_SECONDS, interval=0.5)
    print(f"first status of the recreated object after {time.monotonic() - created:.1f} s")
    assert operator.exited() is None, operator.tail()


def test_the_deadline_ends_a_running_round_and_stops_its_jobs(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    # Issue 19 item 8: deadlineSeconds 1 ended Passed after 31 s; a Job that never
    # reports (no pod runs here) kept the round Testing for good.
    cluster.apply(sv(policy={"deadlineSeconds": 1}), namespace=namespace)
    created = time.monotonic()

    def stalled() -> dict[str, Any] | None:
        status = cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}
        return status if status.get("phase") == "Stalled" else None

    status = wait_until("the deadline to end the round", stalled, timeout=30.0, interval=0.5)
    print(f"deadlineSeconds 1: Stalled after {time.monotonic() - created:.1f} s")
    ready = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert ready["reason"] == "BudgetExhausted", status["conditions"]
    assert "deadlineSeconds (1) passed while suites ran (core)" in ready["message"], ready
    wait_until(
        "the round's Job to be deleted",
        lambda: not cluster.get_json("jobs", "-n", namespace)["items"],
        timeout=30.0,
        interval=0.5,
    )
    assert operator.exited() is None, operator.tail()


def test_a_tampered_engine_state_stalls_naming_the_field_and_a_rerun_recovers(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    # Issue 19 item 5: a hand-edited status.engine naming a suite that does not exist
    # waited "for Jobs" forever.
    cluster.apply(sv(), namespace=namespace)

    def status() -> dict[str, Any]:
        return cluster.get_json("sv", "demo", "-n", namespace).get("status") or {}

    wait_until("the round", lambda: status().get("engine"), timeout=60.0, interval=0.5)
    patch = {"status": {"engine": {"running": [{"suite": "nope"}]}}}
    cluster.kubectl(
        "patch", "sv", "demo", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    edited = time.monotonic()
    stalled = wait_until(
        "the tampered state to stall",
        lambda: status() if status().get("phase") == "Stalled" else None,
        timeout=30.0,
        interval=0.5,
    )
    print(f"tampered status.engine: Stalled after {time.monotonic() - edited:.1f} s")
    cond = next(c for c in stalled["conditions"] if c["type"] == "Stalled")
    assert cond["reason"] == "InvalidState", cond
    assert cond["message"].startswith("status.engine.running[0].suite: 'nope'"), cond
    cluster.kubectl("annotate", "sv", "demo", "-n", namespace, "greenloop.dev/rerun=1")
    wait_until(
        "a rerun to start a new round",
        lambda: status().get("phase") == "Testing",
        timeout=30.0,
        interval=0.5,
    )
    assert operator.exited() is None, operator.tail()
