"""The demo (examples/demo/k8s) applied as a person applies it, for the real-node tests
that run it: with the operator on the host (test_operator_demo.py) or installed by the
chart (test_chart_node.py).

    with fresh_state(ns):                       # demo-shop boots for the first time
        start_demo_shop(cp, ns)                 # its Deployment rolled out
        apply_validation(cp, ns)                # sv/demo
        took, status = wait_ready(cp, ns, "demo", 420, diagnose=operator.tail)

`wait_ready` runs `kubectl wait --for=condition=Ready` and ends early, failing with the
status and `diagnose()`, when the object stalls; `suite_jobs`/`job_keys` are what a
"no twin Job" check reads.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane

__all__ = [
    "K8S",
    "MANAGED",
    "STATE",
    "apply_validation",
    "fresh_state",
    "job_keys",
    "start_demo_shop",
    "suite_jobs",
    "wait_ready",
]

K8S = REPO_ROOT / "examples" / "demo" / "k8s"
STATE = Path("/tmp/greenloop-demo-shop")  # demo-shop.yaml's hostPath
MANAGED = "app.kubernetes.io/managed-by=greenloop"  # the label on greenloop's Jobs


@contextlib.contextmanager
def fresh_state(namespace: str) -> Iterator[None]:
    """demo-shop's state for `namespace` removed before (its first boot) and after."""
    shutil.rmtree(STATE / namespace, ignore_errors=True)
    try:
        yield
    finally:
        shutil.rmtree(STATE / namespace, ignore_errors=True)
        with contextlib.suppress(OSError):
            STATE.rmdir()  # only when no other namespace's state is left


def start_demo_shop(cp: ControlPlane, ns: str) -> None:
    cp.kubectl("apply", "-n", ns, "-f", str(K8S / "demo-shop.yaml"))
    cp.kubectl("rollout", "status", "-n", ns, "deployment/demo-shop", "--timeout=180s")


def apply_validation(cp: ControlPlane, ns: str) -> None:
    """examples/demo/k8s/validation.yaml: sv/demo, the demo's three suites."""
    cp.kubectl("apply", "-n", ns, "-f", str(K8S / "validation.yaml"))


def wait_ready(
    cp: ControlPlane, ns: str, name: str, timeout: int, *, diagnose: Callable[[], str]
) -> tuple[float, dict[str, Any]]:
    """`kubectl wait --for=condition=Ready sv/<name>` as a person runs it, failing at once
    on Stalled; the seconds it took and the status it ended with."""
    started = time.monotonic()
    wait = subprocess.Popen(
        [cp.kubectl_path, f"--kubeconfig={cp.kubeconfig}", "wait", "-n", ns,
         "--for=condition=Ready", f"sv/{name}", f"--timeout={timeout}s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while wait.poll() is None and time.monotonic() < started + timeout + 30:
            found = cp.get_json("sv", name, "-n", ns, check=False) or {}
            if (found.get("status") or {}).get("phase") == "Stalled":
                pytest.fail(f"Stalled: {json.dumps(found['status'])[:3000]}\n{diagnose()}")
            time.sleep(2)
        out, err = wait.communicate(timeout=30)
    finally:
        if wait.poll() is None:
            wait.kill()
            wait.wait()
    took = time.monotonic() - started
    status = (cp.get_json("sv", name, "-n", ns, check=False) or {}).get("status") or {}
    assert wait.returncode == 0, f"{err}\n{json.dumps(status)[:3000]}\n{diagnose()}"
    assert out.strip() == f"stagingvalidation.greenloop.dev/{name} condition met"
    return took, status


def suite_jobs(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = cp.get_json("jobs", "-n", ns, "-l", MANAGED)["items"]
    return jobs


def job_keys(jobs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(validation uid, round, iteration, suite) of each Job: a key twice is a twin."""
    labels = ("greenloop.dev/validation-uid", "greenloop.dev/round",
              "greenloop.dev/iteration", "greenloop.dev/suite")  # fmt: skip
    return sorted(tuple(j["metadata"]["labels"].get(k, "") for k in labels) for j in jobs)
