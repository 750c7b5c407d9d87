"""A StagingValidation of one suite, run on the real node by `greenloop operator` (the
`node_operator` fixture, tests/integration/conftest.py), and its verdict as the tests of
real suite pods read it (test_operator_node.py, test_operator_pods.py).

    cluster.apply(validation("real", {"image": ..., "command": [...]}), namespace=ns)
    status = verdict(cluster, op, "real", 240)      # Passed or Stalled, else the test fails
    condition = runner_error(status)                # its Stalled condition, a RunnerError
    text = report_text(cluster, ns, status)         # the report a person reads
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from greenloop.core import crd
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator


def validation(
    name: str,
    suite: dict[str, Any],
    tests: int = 2,
    *,
    suite_name: str = "real",
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`name` expecting `tests` tests from one suite named `suite_name` (`suite` its
    fields; timeoutSeconds 900 unless given); `policy` (at most 3 iterations unless
    given)."""
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "expectedTests": tests,
            "suites": [{"name": suite_name, "timeoutSeconds": 900, **suite}],
            "policy": {"maxIterations": 3, **(policy or {})},
        },
    }


def verdict(cp: ControlPlane, op: Operator, name: str, timeout: float) -> dict[str, Any]:
    """`name`'s status once Passed or Stalled; the test fails with the operator's log tail
    when the operator exits or no verdict comes within `timeout` seconds."""
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


def runner_error(status: dict[str, Any]) -> dict[str, Any]:
    """The Stalled condition of a status that must be a RunnerError stall."""
    condition = stalled(status)
    assert (status["phase"], condition["reason"]) == ("Stalled", "RunnerError"), condition
    return condition


def report_text(cp: ControlPlane, namespace: str, status: dict[str, Any]) -> str:
    """The report (report.md of the ConfigMap the status names)."""
    report = cp.get_json("configmap", status["report"]["configMap"], "-n", namespace)
    text: str = report["data"]["report.md"]
    return text
