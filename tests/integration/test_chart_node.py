"""charts/greenloop installed as a user installs it, on the real node: the operator runs
as a pod (greenloop's image, ci/node-values.yaml) in a namespace that enforces the
restricted Pod Security Standard, reaches the API server through the `kubernetes`
Service, and the demo's suite Jobs upload to the chart's results Service by its DNS
name (`greenloop-results.greenloop-system.svc`, resolved by the node's CoreDNS).

What a person would check: the operator pod Ready; `kubectl wait --for=condition=Ready
sv/demo` returns; `helm uninstall` keeps the CRD and the object. The timings are printed
(install -> operator Ready, apply -> Passed); they are never asserted (bench/ measures).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.helm import CHART, CI_VALUES, Helm
from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import RealNode
from tools.cluster.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RELEASE = "greenloop"  # a release named like the chart: objects named `greenloop`
SYSTEM = "greenloop-system"
RESULTS_URL = f"http://greenloop-results.{SYSTEM}.svc:8081"
K8S = REPO_ROOT / "examples" / "demo" / "k8s"
STATE = Path("/tmp/greenloop-demo-shop")  # demo-shop.yaml's hostPath
OPERATOR_PODS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm.ensure()


def helm_args(cp: ControlPlane) -> list[str]:
    return ["--namespace", SYSTEM, "--kubeconfig", str(cp.kubeconfig)]


@pytest.fixture
def system(cluster: ControlPlane, node: RealNode, helm: Helm) -> Iterator[str]:
    """greenloop-system, enforcing `restricted` (as a platform team labels it); the
    release and the namespace removed afterwards (the CRD stays, as the chart keeps it)."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": SYSTEM,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    try:
        yield SYSTEM
    finally:
        helm.run("uninstall", RELEASE, *helm_args(cluster), "--wait", check=False)
        # waited for: the next test installs into a namespace of the same name
        cluster.kubectl("delete", "namespace", SYSTEM, "--timeout=120s", check=False)


@pytest.fixture
def demo_namespace(node_namespace: str) -> Iterator[str]:
    shutil.rmtree(STATE / node_namespace, ignore_errors=True)  # demo-shop's first boot
    try:
        yield node_namespace
    finally:
        shutil.rmtree(STATE / node_namespace, ignore_errors=True)
        with contextlib.suppress(OSError):
            STATE.rmdir()  # only when no other namespace's state is left


def operator_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cp.get_json("pods", "-n", SYSTEM, "-l", OPERATOR_PODS)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def operator_logs(cp: ControlPlane) -> str:
    out = []
    for pod in operator_pods(cp):
        name = pod["metadata"]["name"]
        log = cp.kubectl("logs", "-n", SYSTEM, name, "--tail=60", check=False)
        out.append(f"--- {name}\n{log.stdout}{log.stderr}")
    events = cp.kubectl("get", "events", "-n", SYSTEM, check=False).stdout
    return "\n".join(out) + f"\n--- events in {SYSTEM}\n{events}"


def install(helm: Helm, cp: ControlPlane, *sets: str) -> float:
    """`helm install` with ci/node-values.yaml; seconds until the operator pods are Ready."""
    started = time.monotonic()
    # The session's cluster may hold the CRD already (the fixtures' kubectl apply, or a
    # kept CRD another test's release owned): adopt it, as docs/install.md says to.
    helm.run(
        "install", RELEASE, str(CHART), *helm_args(cp), "--take-ownership",
        "--values", str(CI_VALUES / "node-values.yaml"), *sets,
    )  # fmt: skip
    rollout = cp.kubectl(
        "rollout", "status", "-n", SYSTEM, f"deployment/{RELEASE}", "--timeout=180s", check=False
    )
    assert rollout.returncode == 0, f"{rollout.stdout}{rollout.stderr}\n{operator_logs(cp)}"
    return time.monotonic() - started


def wait_ready(cp: ControlPlane, ns: str, name: str, timeout: int) -> float:
    """`kubectl wait --for=condition=Ready` as a person runs it, ended early on Stalled."""
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
                pytest.fail(f"Stalled: {json.dumps(found['status'])[:3000]}\n{operator_logs(cp)}")
            time.sleep(2)
        out, err = wait.communicate(timeout=30)
    finally:
        if wait.poll() is None:
            wait.kill()
            wait.wait()
    took = time.monotonic() - started
    status = (cp.get_json("sv", name, "-n", ns, check=False) or {}).get("status")
    assert wait.returncode == 0, f"{err}\n{json.dumps(status)[:3000]}\n{operator_logs(cp)}"
    assert out.strip() == f"stagingvalidation.greenloop.dev/{name} condition met"
    return took


def start_demo_shop(cp: ControlPlane, ns: str) -> None:
    cp.kubectl("apply", "-n", ns, "-f", str(K8S / "demo-shop.yaml"))
    cp.kubectl("rollout", "status", "-n", ns, "deployment/demo-shop", "--timeout=180s")


def sidecar_logs(cp: ControlPlane, ns: str) -> str:
    pods = cp.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/managed-by=greenloop")
    out = []
    for pod in pods["items"]:
        name = pod["metadata"]["name"]
        out.append(cp.kubectl("logs", "-n", ns, name, "-c", "greenloop-results").stdout)
    return "\n".join(out)


def test_the_chart_installs_an_operator_pod_that_runs_the_demo_to_passed(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str
) -> None:
    ns = demo_namespace
    to_ready = install(helm, cluster)
    (pod,) = operator_pods(cluster)
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True  # admitted under `restricted`
    args = spec["containers"][0]["args"]
    assert f"--results-url={RESULTS_URL}" in args
    print(f"\n[chart-node] helm install -> operator pod Ready in {to_ready:.1f} s")

    start_demo_shop(cluster, ns)
    cluster.kubectl("apply", "-n", ns, "-f", str(K8S / "validation.yaml"))
    took = wait_ready(cluster, ns, "demo", 420)
    print(f"[chart-node] apply validation -> Ready (Passed) in {took:.1f} s")

    status = cluster.get_json("sv", "demo", "-n", ns)["status"]
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 41
    # the suite pods' sidecars uploaded to the chart's Service, by its DNS name
    jobs = cluster.get_json("jobs", "-n", ns, "-l", "app.kubernetes.io/managed-by=greenloop")
    assert jobs["items"]
    for job in jobs["items"]:
        pod_spec = job["spec"]["template"]["spec"]
        (sidecar,) = [c for c in pod_spec["initContainers"] if c["name"] == "greenloop-results"]
        command = sidecar["command"]
        assert command[command.index("--url") + 1] == RESULTS_URL, command
    assert "greenloop: stored" in sidecar_logs(cluster, ns)
    # the operator that did it is the chart's pod: no restart on the way
    (after,) = operator_pods(cluster)
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0, operator_logs(cluster)

    out = helm.run("uninstall", RELEASE, *helm_args(cluster), "--wait").stdout
    assert "stagingvalidations.greenloop.dev" in out, out  # kept by the resource policy
    cluster.kubectl("get", "crd", "stagingvalidations.greenloop.dev")
    kept = cluster.get_json("sv", "demo", "-n", ns)
    assert kept["status"]["phase"] == "Passed"
    assert operator_pods(cluster) == []


def peers(cp: ControlPlane) -> list[str]:
    """The peers kopf counts alive - a record in the chart's ClusterKopfPeering seen within
    its lifetime (identities are pod names: the chart's POD_ID) - highest priority, the
    one kopf's rule makes active, first. A pod killed at once leaves its record behind,
    alive until its lifetime has passed: a standby waits for that, and so does this."""
    peering = cp.get_json("clusterkopfpeering", RELEASE, check=False) or {}
    now = datetime.now(UTC)
    ranked = []
    for name, record in (peering.get("status") or {}).items():
        if not isinstance(record, dict):
            continue
        seen = datetime.fromisoformat(str(record["lastseen"]))
        seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
        if seen + timedelta(seconds=int(record.get("lifetime", 60))) > now:
            ranked.append((int(record["priority"]), name))
    return [name for _, name in sorted(ranked, reverse=True)]


# how the active pod goes: `kubectl delete pod` (SIGTERM, its grace period: kopf drops its
# peering record on the way out), or `--force --grace-period=0` (the pod object is gone at
# once and the Deployment's replacement starts at once; the kubelet still stops the
# container with SIGTERM first). A process killed without warning - its record left alive
# until `peering.lifetime` passes - is not covered here.
DEATHS = {
    "deleted": ["--wait=false"],
    "force-deleted": ["--grace-period=0", "--force", "--wait=false"],
}


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_two_replicas_the_round_finishes_when_the_active_pod_dies(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str, death: str
) -> None:
    ns = demo_namespace
    to_ready = install(helm, cluster, "--set", "replicas=2", "--set", "peering.lifetime=10")
    print(
        f"\n[chart-node] helm install (replicas: 2) -> both operator pods Ready in {to_ready:.1f} s"
    )
    wait_until("both peers in the peering object", lambda: len(peers(cluster)) == 2, timeout=60)
    start_demo_shop(cluster, ns)
    cluster.kubectl("apply", "-n", ns, "-f", str(K8S / "validation.yaml"))

    # mid-round: the first iteration's Jobs exist and no verdict yet
    def mid_round() -> bool:
        jobs = cluster.get_json("jobs", "-n", ns, "-l", "app.kubernetes.io/managed-by=greenloop")
        return bool(jobs["items"])

    wait_until("the first iteration's Jobs", mid_round, timeout=120, interval=0.5)
    active, standby = peers(cluster)
    deleted_at = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", SYSTEM, active, *DEATHS[death])

    def taken_over() -> str | None:
        ranked = peers(cluster)
        return ranked[0] if ranked and ranked[0] != active else None

    successor = wait_until("another peer active", taken_over, timeout=120, interval=0.2)
    failover = time.monotonic() - deleted_at
    # kopf's rule ranks the newest pod first, so the Deployment's replacement for the
    # deleted pod, once up, outranks the standby: say which one took the round over
    role = "the standby" if successor == standby else "the replacement pod"
    print(
        f"[chart-node] active pod {active} {death} -> {successor} ({role}) active "
        f"in {failover:.1f} s"
    )

    took = wait_ready(cluster, ns, "demo", 420)
    print(f"[chart-node] {death} -> Ready (Passed) {took + failover:.1f} s")
    status = cluster.get_json("sv", "demo", "-n", ns)["status"]
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 41
    # no twin Job: one per (iteration, suite)
    jobs = cluster.get_json("jobs", "-n", ns, "-l", "app.kubernetes.io/managed-by=greenloop")
    keys = [
        (j["metadata"]["labels"]["greenloop.dev/iteration"],
         j["metadata"]["labels"]["greenloop.dev/suite"])
        for j in jobs["items"]
    ]  # fmt: skip
    assert len(keys) == len(set(keys)), sorted(keys)
    # at most one rollout per iteration: the first ReplicaSet plus one per redeploy
    replica_sets = cluster.get_json("replicasets", "-n", ns, "-l", "app=demo-shop")["items"]
    assert len(replica_sets) <= status["iteration"], len(replica_sets)
