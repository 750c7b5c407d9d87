"""charts/greenloop installed as a user installs it, on the real node: the operator runs
as a pod (greenloop's image, ci/node-values.yaml) in a namespace that enforces the
restricted Pod Security Standard, reaches the API server through the `kubernetes`
Service, and the demo's suite Jobs upload to the chart's results Service by its DNS
name (`greenloop-results.greenloop-system.svc`, resolved by the node's CoreDNS).

What a person would check: the operator pod Ready and kopf's liveness endpoint
answering; `kubectl wait --for=condition=Ready sv/demo` returns; `helm upgrade` or
`helm uninstall` + `helm install` in the middle of a round keep every object and its
status, and the round finishes with no twin Job; `watchNamespaces: [a]` leaves an object
in another namespace untouched and the operator's account refused there; a missing
image fails `helm test` with the pod's reason; with two replicas the round finishes
when the active pod is deleted or its process killed. The timings are printed (install
-> operator Ready, apply -> Passed, the failover); they are never asserted (bench/
measures).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.demo import (
    MANAGED,
    apply_validation,
    fresh_state,
    job_keys,
    start_demo_shop,
    suite_jobs,
)
from tests.support.demo import wait_ready as wait_ready_or_fail
from tests.support.helm import CHART, CI_VALUES, Helm
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import RealNode
from tools.cluster.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RELEASE = "greenloop"  # a release named like the chart: objects named `greenloop`
SYSTEM = "greenloop-system"
RESULTS_URL = f"http://greenloop-results.{SYSTEM}.svc:8081"
ACCOUNT = f"system:serviceaccount:{SYSTEM}:{RELEASE}"  # the operator's, as the chart names it
LIVENESS_PORT = 8082  # kopf's liveness endpoint: the chart's liveness.port
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
    # The pods the operator makes here (the helm test's validation) run on the real node
    # too, as on any cluster; kwok's fake node would "complete" them without running.
    node.use_namespace(SYSTEM)
    try:
        yield SYSTEM
    finally:
        helm.run("uninstall", RELEASE, *helm_args(cluster), "--wait", check=False)
        # waited for: the next test installs into a namespace of the same name
        cluster.kubectl("delete", "namespace", SYSTEM, "--timeout=120s", check=False)


@pytest.fixture
def demo_namespace(node_namespace: str) -> Iterator[str]:
    with fresh_state(node_namespace):  # demo-shop's first boot
        yield node_namespace


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


def install(helm: Helm, cp: ControlPlane, *sets: str, rollout: bool = True) -> float:
    """`helm install` with ci/node-values.yaml; seconds until the operator pods are Ready
    (not waited for with `rollout=False`)."""
    started = time.monotonic()
    # The session's cluster may hold the CRD already (the fixtures' kubectl apply, or a
    # kept CRD another test's release owned): adopt it, as docs/install.md says to.
    helm.run(
        "install", RELEASE, str(CHART), *helm_args(cp), "--take-ownership",
        "--values", str(CI_VALUES / "node-values.yaml"), *sets,
    )  # fmt: skip
    if rollout:
        wait_rolled_out(cp)
    return time.monotonic() - started


def wait_rolled_out(cp: ControlPlane) -> None:
    rollout = cp.kubectl(
        "rollout", "status", "-n", SYSTEM, f"deployment/{RELEASE}", "--timeout=180s", check=False
    )
    assert rollout.returncode == 0, f"{rollout.stdout}{rollout.stderr}\n{operator_logs(cp)}"


def wait_ready(cp: ControlPlane, ns: str, name: str, timeout: int) -> float:
    """`kubectl wait --for=condition=Ready` as a person runs it, ended early on Stalled."""
    took, _ = wait_ready_or_fail(cp, ns, name, timeout, diagnose=lambda: operator_logs(cp))
    return took


def wait_mid_round(cp: ControlPlane, ns: str, name: str = "demo") -> dict[str, Any]:
    """Once `name`'s first Jobs exist and it has no verdict yet: its status then."""

    def mid_round() -> dict[str, Any] | None:
        found = cp.get_json("sv", name, "-n", ns, check=False) or {}
        status = found.get("status") or {}
        uid = found.get("metadata", {}).get("uid")
        jobs = [
            j for j in suite_jobs(cp, ns)
            if j["metadata"]["labels"].get("greenloop.dev/validation-uid") == uid
        ]  # fmt: skip
        return status if jobs and status.get("phase") == "Testing" else None

    status: dict[str, Any] = wait_until(
        f"{name}'s first Jobs, mid-round", mid_round, timeout=180, interval=0.5
    )
    return status


def start_round(cp: ControlPlane, ns: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """demo-shop and sv/demo applied, once the round is under way (`wait_mid_round`):
    the namespace's objects then (`objects`), for `assert_kept`."""
    start_demo_shop(cp, ns)
    apply_validation(cp, ns)
    wait_mid_round(cp, ns)
    return objects(cp, ns)


def passed_once(cp: ControlPlane, ns: str) -> float:
    """Seconds until sv/demo is Ready (`wait_ready`), once it is: Passed with all 41
    tests, no twin Job, and at most one rollout per iteration (the first ReplicaSet plus
    one per redeploy)."""
    took = wait_ready(cp, ns, "demo", 420)
    status = cp.get_json("sv", "demo", "-n", ns)["status"]
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 41
    assert_no_twin_job(cp, ns)
    replica_sets = cp.get_json("replicasets", "-n", ns, "-l", "app=demo-shop")["items"]
    assert len(replica_sets) <= status["iteration"], len(replica_sets)
    return took


def uninstall_keeping_the_crd(helm: Helm, cp: ControlPlane) -> None:
    """`helm uninstall --wait`: the CRD (and so every object) kept by its resource policy."""
    out = helm.run("uninstall", RELEASE, *helm_args(cp), "--wait").stdout
    assert "stagingvalidations.greenloop.dev" in out, out
    cp.kubectl("get", "crd", "stagingvalidations.greenloop.dev")


def objects(cp: ControlPlane, ns: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every StagingValidation of `ns`: name -> (uid, status)."""
    items = cp.get_json("sv", "-n", ns)["items"]
    return {o["metadata"]["name"]: (o["metadata"]["uid"], o.get("status") or {}) for o in items}


def assert_kept(before: dict[str, tuple[str, dict[str, Any]]], cp: ControlPlane, ns: str) -> None:
    """Every object still there - the same one (uid) - and its status not reset."""
    after = objects(cp, ns)
    for name, (uid, status) in before.items():
        assert name in after, f"{name} is gone"
        assert after[name][0] == uid, f"{name} was recreated"
        now = after[name][1]
        assert now.get("phase"), f"{name} lost its status: {now}"
        assert now.get("iteration", 0) >= status.get("iteration", 0), (status, now)
        assert now.get("observedGeneration") == status.get("observedGeneration"), (status, now)


def assert_no_twin_job(cp: ControlPlane, ns: str) -> None:
    keys = job_keys(suite_jobs(cp, ns))
    assert keys, "no Job at all"
    assert len(keys) == len(set(keys)), keys


def sidecar_logs(cp: ControlPlane, ns: str) -> str:
    pods = cp.get_json("pods", "-n", ns, "-l", MANAGED)
    out = []
    for pod in pods["items"]:
        name = pod["metadata"]["name"]
        out.append(cp.kubectl("logs", "-n", ns, name, "-c", "greenloop-results").stdout)
    return "\n".join(out)


def liveness_answer(pod: dict[str, Any]) -> str:
    """kopf's liveness endpoint, asked as the kubelet asks it: the pod's IP, from the node
    (this host). Its status and body."""
    url = f"http://{pod['status']['podIP']}:{LIVENESS_PORT}/healthz"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return f"{answer.status} {answer.read().decode()}"


def test_the_chart_installs_an_operator_pod_that_runs_the_demo_to_passed(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str
) -> None:
    ns = demo_namespace
    to_ready = install(helm, cluster)
    (pod,) = operator_pods(cluster)
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True  # admitted under `restricted`
    container = spec["containers"][0]
    assert f"--results-url={RESULTS_URL}" in container["args"]
    print(f"\n[chart-node] helm install -> operator pod Ready in {to_ready:.1f} s")
    # liveness: kopf's endpoint; it answers, and the kubelet probes it (below: no restart)
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz", "port": "liveness", "scheme": "HTTP",
    }  # fmt: skip
    answer = liveness_answer(pod)
    assert answer.startswith("200 "), answer
    print(f"[chart-node] GET <operator pod>:{LIVENESS_PORT}/healthz: {answer}")

    start_demo_shop(cluster, ns)
    apply_validation(cluster, ns)
    took = wait_ready(cluster, ns, "demo", 420)
    print(f"[chart-node] apply validation -> Ready (Passed) in {took:.1f} s")

    status = cluster.get_json("sv", "demo", "-n", ns)["status"]
    assert status["phase"] == "Passed"
    assert status["summary"]["passed"] == 41
    # the suite pods' sidecars uploaded to the chart's Service, by its DNS name
    jobs = suite_jobs(cluster, ns)
    assert jobs
    for job in jobs:
        pod_spec = job["spec"]["template"]["spec"]
        (sidecar,) = [c for c in pod_spec["initContainers"] if c["name"] == "greenloop-results"]
        command = sidecar["command"]
        assert command[command.index("--url") + 1] == RESULTS_URL, command
    assert "greenloop: stored" in sidecar_logs(cluster, ns)
    # the chart's own proof, as a platform team runs it after an install: a tiny
    # validation in greenloop's image reaches Ready, then is removed
    started = time.monotonic()
    proc = helm.run("test", RELEASE, *helm_args(cluster), "--logs", "--timeout", "300s",
                    check=False, timeout=360)  # fmt: skip
    out = f"{proc.stdout}{proc.stderr}"
    print(f"[chart-node] helm test: exit {proc.returncode} in {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, out
    assert "Succeeded" in out, out  # helm prints the test pod's phase
    # the operator that did it is the chart's pod: no restart on the way, though the
    # kubelet probed its liveness all along (every 20 s after 10 s), and Ready
    (after,) = operator_pods(cluster)
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    (state,) = after["status"]["containerStatuses"]
    assert state["restartCount"] == 0, operator_logs(cluster)
    assert state["ready"] is True
    events = cluster.get_json(
        "events", "-n", SYSTEM, "--field-selector", f"involvedObject.name={pod['metadata']['name']}"
    )["items"]
    # a readiness probe may fail while the pod starts (Ready came later, above); a failed
    # liveness probe would mean kopf's endpoint stopped answering
    assert not [
        e for e in events
        if e["reason"] == "Unhealthy" and "Liveness" in str(e.get("message"))
    ], events  # fmt: skip

    uninstall_keeping_the_crd(helm, cluster)
    kept = cluster.get_json("sv", "demo", "-n", ns)
    assert kept["status"]["phase"] == "Passed"
    assert operator_pods(cluster) == []


def test_helm_upgrade_mid_round_rolls_the_operator_and_the_round_finishes(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str
) -> None:
    ns = demo_namespace
    install(helm, cluster)
    (old,) = operator_pods(cluster)
    before = start_round(cluster, ns)

    # a changed value (the log format: a new pod template), as a platform team upgrades
    started = time.monotonic()
    helm.run(
        "upgrade", RELEASE, str(CHART), *helm_args(cluster),
        "--values", str(CI_VALUES / "node-values.yaml"), "--set", "logFormat=json",
    )  # fmt: skip
    wait_rolled_out(cluster)
    (new,) = operator_pods(cluster)
    rolled = time.monotonic() - started
    assert new["metadata"]["uid"] != old["metadata"]["uid"], "the operator pod did not roll"
    assert "--log-format=json" in new["spec"]["containers"][0]["args"]
    print(f"\n[chart-node] helm upgrade mid-round -> new operator pod Ready in {rolled:.1f} s")
    assert_kept(before, cluster, ns)

    took = passed_once(cluster, ns)
    print(f"[chart-node] after the upgrade: demo Passed {took:.1f} s later")


def test_uninstall_mid_round_keeps_the_object_and_a_reinstall_finishes_its_round(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str
) -> None:
    ns = demo_namespace
    install(helm, cluster)
    before = start_round(cluster, ns)

    uninstall_keeping_the_crd(helm, cluster)
    assert operator_pods(cluster) == []
    assert_kept(before, cluster, ns)
    (_, left) = objects(cluster, ns)["demo"]
    assert left["phase"] in ("Testing", "Redeploying"), left["phase"]  # no verdict yet

    to_ready = install(helm, cluster)
    print(f"\n[chart-node] uninstall mid-round, reinstall -> operator Ready in {to_ready:.1f} s")
    took = passed_once(cluster, ns)
    print(f"[chart-node] the object left mid-round Passed {took:.1f} s after the reinstall")


# (verb, resource) rows a person checks with `kubectl auth can-i --as=<the operator>`
# What the operator's own account does (its Jobs and rollouts are the tenant's, done by
# impersonation: docs/design.md §8 "Tenancy").
CAN_I = [
    ("list", "stagingvalidations.greenloop.dev"),
    ("patch", "stagingvalidations.greenloop.dev/status"),
    ("watch", "jobs.batch"),
    ("create", "configmaps"),
    ("impersonate", "serviceaccounts"),
]


def can_i(cp: ControlPlane, verb: str, resource: str, ns: str) -> str:
    what, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl("auth", "can-i", verb, what, *extra, "-n", ns, f"--as={ACCOUNT}",
                      check=False)  # fmt: skip
    return proc.stdout.strip()


def test_a_namespaced_install_leaves_other_namespaces_untouched(
    cluster: ControlPlane, helm: Helm, system: str, demo_namespace: str
) -> None:
    a = demo_namespace
    b = cluster.create_namespace(f"{a[:50]}-other")
    try:
        install(helm, cluster, "--set", f"watchNamespaces={{{a}}}")
        (pod,) = operator_pods(cluster)
        assert pod["spec"]["containers"][0]["args"].count(f"--namespace={a}") == 1
        # the same validation in both; b's first, so it has had longer to be picked up
        apply_validation(cluster, b)
        start_demo_shop(cluster, a)
        apply_validation(cluster, a)
        took = wait_ready(cluster, a, "demo", 420)
        print(f"\n[chart-node] watchNamespaces [a]: a's object Passed in {took:.1f} s")
        assert cluster.get_json("sv", "demo", "-n", a)["status"]["phase"] == "Passed"
        # b's object: no status, no Job, no Event
        other = cluster.get_json("sv", "demo", "-n", b)
        assert "status" not in other, other["status"]
        assert cluster.get_json("jobs", "-n", b)["items"] == []
        assert cluster.get_json("events", "-n", b)["items"] == []
        rows = {(verb, res): (can_i(cluster, verb, res, a), can_i(cluster, verb, res, b))
                for verb, res in CAN_I}  # fmt: skip
        for (verb, res), (in_a, in_b) in rows.items():
            print(f"[chart-node] kubectl auth can-i {verb} {res} --as=<operator>: "
                  f"{in_a} in a, {in_b} in b")  # fmt: skip
        assert {row[1] for row in rows.values()} == {"no"}, rows
        assert {row[0] for row in rows.values()} == {"yes"}, rows
    finally:
        cluster.kubectl("delete", "namespace", b, "--wait=false", check=False)


def test_a_missing_image_fails_helm_test_with_the_pod_s_reason(
    cluster: ControlPlane, helm: Helm, system: str
) -> None:
    # an image tag that exists nowhere, pulled as a real cluster would (not `Never`)
    missing = ["--set", "image.tag=does-not-exist", "--set", "image.pullPolicy=IfNotPresent"]
    install(helm, cluster, *missing, rollout=False)
    started = time.monotonic()
    proc = helm.run("test", RELEASE, *helm_args(cluster), "--timeout", "90s", check=False,
                    timeout=180)  # fmt: skip
    took = time.monotonic() - started
    out = f"{proc.stdout}{proc.stderr}"
    print(f"\n[chart-node] helm test with a missing image: exit {proc.returncode} after "
          f"{took:.0f} s:\n{out.strip()}")  # fmt: skip
    assert proc.returncode != 0, out

    def reason(name: str) -> str | None:
        pod = cluster.get_json("pod", name, "-n", SYSTEM, check=False) or {}
        for state in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = state.get("state", {}).get("waiting") or {}
            return waiting.get("reason")
        return None

    pull_errors = {"ErrImagePull", "ImagePullBackOff"}
    test_pod = f"{RELEASE}-test"
    assert reason(test_pod) in pull_errors, cluster.kubectl(
        "describe", "pod", test_pod, "-n", SYSTEM, check=False
    ).stdout
    (operator,) = operator_pods(cluster)
    assert reason(operator["metadata"]["name"]) in pull_errors
    row = cluster.kubectl("get", "pod", test_pod, "-n", SYSTEM).stdout
    print(f"[chart-node] kubectl get pod {test_pod}:\n{row.strip()}")
    assert any(r in row for r in pull_errors), row


def peers(cp: ControlPlane) -> list[tuple[str, int]]:
    """The peers kopf counts alive - a record in the chart's ClusterKopfPeering seen within
    its lifetime (identities are pod names: the chart's POD_ID) - with their priorities,
    highest, the one kopf's rule makes active, first. A process killed at once leaves its
    record behind, alive until its lifetime has passed: a standby waits for that, and so
    does this."""
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
    return [(name, priority) for priority, name in sorted(ranked, reverse=True)]


def kill_process(node: RealNode, cp: ControlPlane, pod: str) -> None:
    """SIGKILL the operator's process from the host (containerd's task): no SIGTERM, no
    grace period, kopf's peering record left behind - a crash, not a pod deletion."""
    found = cp.get_json("pod", pod, "-n", SYSTEM)
    (state,) = found["status"]["containerStatuses"]
    container = state["containerID"].removeprefix("containerd://")
    node.ctr("tasks", "kill", "--signal", "SIGKILL", container)


# how the active operator goes: `kubectl delete pod` (SIGTERM, its grace period: kopf
# drops its peering record on the way out); `--force --grace-period=0` (the pod object is
# gone at once and the Deployment's replacement starts at once; the kubelet still stops
# the container with SIGTERM first); or its process SIGKILLed on the node (a crash: the
# record stays alive until `peering.lifetime` passes, and the kubelet restarts the
# container in the same pod).
DEATHS: dict[str, list[str] | None] = {
    "deleted": ["--wait=false"],
    "force-deleted": ["--grace-period=0", "--force", "--wait=false"],
    "killed": None,
}


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_two_replicas_the_round_finishes_when_the_active_operator_dies(
    cluster: ControlPlane, node: RealNode, helm: Helm, system: str, demo_namespace: str,
    death: str,
) -> None:  # fmt: skip
    ns = demo_namespace
    to_ready = install(helm, cluster, "--set", "replicas=2", "--set", "peering.lifetime=10")
    print(
        f"\n[chart-node] helm install (replicas: 2) -> both operator pods Ready in {to_ready:.1f} s"
    )
    wait_until("both peers in the peering object", lambda: len(peers(cluster)) == 2, timeout=60)
    start_round(cluster, ns)
    (active, priority), (standby, _) = peers(cluster)
    died_at = time.monotonic()
    how = DEATHS[death]
    if how is None:
        kill_process(node, cluster, active)
    else:
        cluster.kubectl("delete", "pod", "-n", SYSTEM, active, *how)

    def taken_over() -> tuple[str, int] | None:
        ranked = peers(cluster)
        if not ranked or ranked[0] == (active, priority):
            return None
        return ranked[0]

    successor, _ = wait_until("another peer active", taken_over, timeout=120, interval=0.2)
    failover = time.monotonic() - died_at
    # kopf's rule ranks the newest process first: the Deployment's replacement for a
    # deleted pod, or the killed container restarted by the kubelet in its pod (same
    # name, a new priority), once up, outranks the standby - say which took the round
    role = {standby: "the standby", active: "the killed pod, restarted"}.get(
        successor, "the replacement pod"
    )
    print(
        f"[chart-node] active operator {active} {death} -> {successor} ({role}) active "
        f"in {failover:.1f} s"
    )

    took = passed_once(cluster, ns)
    print(f"[chart-node] {death} -> Ready (Passed) {took + failover:.1f} s")
