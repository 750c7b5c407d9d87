"""`greenloop operator` reconciling StagingValidations on the kwok cluster.

The operator runs on the host as a user would start it. kwok's node runs no containers,
so the suite Jobs run under a service account that does not exist: the Job controller
cannot create their pods, the Jobs stay active, and this test plays the results sidecar
- it makes the pod the Job controller could not (tests/support/pod_tokens.py `pod_for`,
held Pending) and uploads each Job's JUnit XML with that pod's own bound token through
the real `greenloop report upload`. Everything else is real: the API server, the Job and
Deployment controllers (a redeploy really creates a ReplicaSet), status, Events, the
report ConfigMap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from greenloop.core import crd
from tests.support.pod_tokens import pod_for, pod_token
from tests.support.sidecar import FAIL, PASS, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TARGET = {"workloads": [{"kind": "Deployment", "name": "backend"}]}  # see roll_out


def pods_of(cp: ControlPlane, job: dict[str, Any]) -> list[dict[str, Any]]:
    selector = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"
    items: list[dict[str, Any]] = cp.get_json(
        "pods", "-n", job["metadata"]["namespace"], "-l", selector
    )["items"]
    return items


@dataclass
class Sidecar:
    """Uploads results for each Job once, as the Job's own sidecar would."""

    cp: ControlPlane
    op: Operator
    answer: Callable[[dict[str, Any]], bytes | None]
    tmp: Path
    done: set[str] = field(default_factory=set)

    def jobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cp.get_json("jobs", "-n", self.op.namespace)["items"]
        return items

    def serve_once(self) -> int:
        sent = 0
        for job in self.jobs():
            name = job["metadata"]["name"]
            if name in self.done or job["spec"].get("suspend"):
                continue
            pod = pod_for(self.cp, self.op.namespace, job, pods_of(self.cp, job))
            if pod is None:
                continue
            body = self.answer(job)
            self.done.add(name)
            if body is None:
                continue
            xml = self.tmp / f"{name}.xml"
            xml.write_bytes(body)
            token = self.tmp / f"{name}.token"
            token.write_text(pod_token(self.cp, pod))
            env = {"PATH": os.environ.get("PATH", "")}
            cmd = [sys.executable, "-m", "greenloop.cli", "report", "upload", "--now",
                   "--file", str(xml), "--url", self.op.url, "--namespace", self.op.namespace,
                   "--job", name, "--token-file", str(token), "--deadline", "30"]  # fmt: skip
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, f"{name}: {proc.stderr}"
            sent += 1
        return sent


def sv(name: str, suites: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": "no-such-account",  # no pods on kwok: see the module doc
            "suites": [
                {
                    "name": s,
                    "command": ["pytest"],
                    "image": "localhost/e2e:dev",
                    "priority": f"P{i + 1}",
                }
                for i, s in enumerate(suites)
            ],
            "policy": {"maxIterations": 4, "flakeRetries": 0},
            **spec,
        },
    }


def status_of(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    obj = cp.get_json("sv", name, "-n", namespace, check=False) or {}
    status: dict[str, Any] = obj.get("status") or {}
    return status


def serve_until(
    op: Operator,
    car: Sidecar | None,
    name: str,
    done: Callable[[dict[str, Any]], object],
    *,
    what: str,
    timeout: float = 90,
) -> dict[str, Any]:
    """Play the sidecar (if any) until the status of object `name` satisfies `done`,
    and return that status (bounded; fails at once if the operator exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if op.proc is not None and op.proc.poll() is not None:
            pytest.fail(f"the operator exited ({op.proc.returncode}):\n{op.tail()}")
        if car is not None:
            car.serve_once()
        status = status_of(op.cp, op.namespace, name)
        if done(status):
            return status
        time.sleep(0.3)
    pytest.fail(f"{what}: not after {timeout}s: {status_of(op.cp, op.namespace, name)}\n"
                f"{op.tail()}")  # fmt: skip


def run_until_done(
    cp: ControlPlane, op: Operator, car: Sidecar, name: str, *, timeout: float = 150
) -> dict[str, Any]:
    return serve_until(
        op, car, name, lambda s: s.get("phase") in ("Passed", "Stalled"), what="a verdict",
        timeout=timeout,
    )  # fmt: skip


def replicasets(cp: ControlPlane, namespace: str, app: str) -> int:
    return len(cp.get_json("replicasets", "-n", namespace, "-l", f"app={app}")["items"])


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def events(cp: ControlPlane, namespace: str) -> list[tuple[str, str]]:
    items = cp.get_json("events", "-n", namespace)["items"]
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["kind"] == crd.KIND]


def scrape(operator: Operator, namespace: str) -> dict[str, float]:
    """The operator's greenloop_* samples, the test's namespace written as NS."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("greenloop_"):
            key, _, value = line.rpartition(" ")
            samples[key.replace(f'"{namespace}"', '"NS"')] = float(value)
    return samples


def selection_of(cp: ControlPlane, namespace: str, job: dict[str, Any]) -> str | None:
    for vol in job["spec"]["template"]["spec"].get("volumes", []):
        if "configMap" in vol:
            cm = cp.get_json("configmap", vol["configMap"]["name"], "-n", namespace)
            return str(cm["data"]["tests.txt"])
    return None


def test_demo_converges_with_one_rollout_rerunning_only_what_failed(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    roll_out(cluster, namespace, "backend")
    assert replicasets(cluster, namespace, "backend") == 1

    def answer(job: dict[str, Any]) -> bytes:
        iteration = job["metadata"]["labels"]["greenloop.dev/iteration"]
        suite = job["metadata"]["labels"]["greenloop.dev/suite"]
        if suite == "critical":
            return junit(PASS.format(c="crit", n="login"), PASS.format(c="crit", n="cart"))
        if iteration == "1":
            return junit(
                PASS.format(c="core", n="health"),
                FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"),
            )
        return junit(PASS.format(c="core", n="websocket"))

    cluster.apply(
        sv("demo", ["critical", "core"], expectedTests=4,
           target=TARGET),
        namespace=namespace,
    )  # fmt: skip
    car = Sidecar(cluster, operator, answer, tmp_path)
    status = run_until_done(cluster, operator, car, "demo")

    assert status["phase"] == "Passed", json.dumps(status, indent=1)[:3000]
    assert status["iteration"] == 2
    assert condition(status, "Ready")["status"] == "True"
    cluster.kubectl("wait", "--for=condition=Ready", "sv/demo", "-n", namespace, "--timeout=5s")
    assert replicasets(cluster, namespace, "backend") == 2, "exactly one rollout"

    jobs = car.jobs()
    labels = [j["metadata"]["labels"] for j in jobs]
    by_iteration = sorted((x["greenloop.dev/iteration"], x["greenloop.dev/suite"]) for x in labels)
    assert by_iteration == [("1", "core"), ("1", "critical"), ("2", "core")], "only what failed"
    rerun = next(j for j in jobs if j["metadata"]["labels"]["greenloop.dev/iteration"] == "2")
    assert selection_of(cluster, namespace, rerun) == "core::websocket\n"

    row = cluster.kubectl("get", "sv", "demo", "-n", namespace).stdout.splitlines()
    assert row[1].split()[1:5] == ["Passed", "4", "0", "4"], row
    reasons = [r for r, _ in events(cluster, namespace)]
    for reason in ("IterationStarted", "Redeploying", "Passed"):
        assert reason in reasons, reasons
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", namespace)
    text = report["data"]["report.md"]
    assert "websocket" in text
    # The why-chain says what the cluster showed when the test failed.
    assert "Deployment backend: 1/1 available" in text, text

    # What a platform team's dashboard shows of this round (docs/metrics.md).
    seen = scrape(operator, namespace)
    assert seen['greenloop_validations{namespace="NS",phase="Passed"}'] == 1
    assert seen['greenloop_iterations_total{namespace="NS",outcome="failed"}'] == 1
    assert seen['greenloop_iterations_total{namespace="NS",outcome="passed"}'] == 1
    assert seen['greenloop_redeploys_total{namespace="NS",outcome="ok"}'] == 1
    assert seen['greenloop_failures_total{class="ServiceUnavailable",namespace="NS"}'] == 1
    assert seen['greenloop_iteration_duration_seconds_count{namespace="NS"}'] == 2
    assert seen['greenloop_suite_duration_seconds_count{namespace="NS"}'] == 3
    assert seen['greenloop_uploads_total{code="200"}'] == 3


def test_a_missing_target_stalls_naming_it_without_a_retry_storm(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    def answer(job: dict[str, Any]) -> bytes:
        return junit(FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"))

    cluster.apply(
        sv("missing", ["core"], target=TARGET),
        namespace=namespace,
    )
    status = run_until_done(
        cluster, operator, Sidecar(cluster, operator, answer, tmp_path), "missing"
    )
    assert status["phase"] == "Stalled"
    stalled = condition(status, "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert f"Deployment {namespace}/backend not found" in stalled["message"]
    assert len(cluster.get_json("jobs", "-n", namespace)["items"]) == 1


def test_auth_errors_stall_without_a_rollout(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    roll_out(cluster, namespace, "backend")

    def answer(job: dict[str, Any]) -> bytes:
        return junit(FAIL.format(c="core", n="login", m="HTTP 403 Forbidden"))

    cluster.apply(
        sv("auth", ["core"], target=TARGET),
        namespace=namespace,
    )
    status = run_until_done(cluster, operator, Sidecar(cluster, operator, answer, tmp_path), "auth")
    assert (status["phase"], condition(status, "Stalled")["reason"]) == ("Stalled", "AuthError")
    assert replicasets(cluster, namespace, "backend") == 1, "no rollout for an auth error"


# SIGKILL and restart at each step: test_operator_restart.py (failpoints, no polling).


@dataclass
class Healthz:
    """Polls the operator's /healthz (served by the same event loop as every object's
    tick) every 100 ms in a thread; keeps each answer's latency or why there was none."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        wait_until("the results endpoint listens", self.answers, timeout=60, interval=0.1)
        while not self.stop.wait(0.1):
            began = time.monotonic()
            try:
                self.answers()
                self.latencies.append(time.monotonic() - began)
            except OSError as err:
                self.failures.append(f"{type(err).__name__}: {err}")

    def answers(self) -> bool:
        with urllib.request.urlopen(self.url, timeout=HEALTHZ_TIMEOUT) as answer:
            answer.read()
        return True


HEALTHZ_TIMEOUT = 10.0  # what a kubelet's liveness probe might allow; never reached here
BIG = 100_000


def test_a_100k_test_result_is_read_while_the_operator_keeps_answering(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    """Issue 17: the JUnit parse, the engine's merge and the report of a 100k-test suite
    run off the event loop (k8s/offload.py): /healthz, served by that loop, answers all
    along. The latencies are printed (-s), not asserted."""
    body = junit(*(PASS.format(c="shop.api", n=f"t{i}") for i in range(BIG)))
    cluster.apply(sv("big", ["api"], expectedTests=BIG), namespace=namespace)
    healthz = Healthz(f"{operator.url}/healthz")
    poller = threading.Thread(target=healthz.run, daemon=True)
    poller.start()
    try:
        car = Sidecar(cluster, operator, lambda job: body, tmp_path)
        status = run_until_done(cluster, operator, car, "big", timeout=300)
    finally:
        healthz.stop.set()
        poller.join(HEALTHZ_TIMEOUT + 5)
    assert status["phase"] == "Passed", json.dumps(status, indent=1)[:3000]
    row = cluster.kubectl("get", "sv", "big", "-n", namespace).stdout.splitlines()
    assert row[1].split()[1:5] == ["Passed", str(BIG), "0", str(BIG)], row
    assert healthz.failures == [], healthz.failures[:5]
    assert healthz.latencies
    ordered = sorted(healthz.latencies)
    p95 = ordered[int(len(ordered) * 0.95)]
    print(
        f"\n/healthz during a {BIG}-test round: {len(ordered)} answers, "
        f"p50 {ordered[len(ordered) // 2] * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )
