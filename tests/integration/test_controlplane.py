"""The test control plane is a real one: real versions, real controllers, real RBAC.

Each test asserts what a user of `kubectl` would see. The fake node is kwok's;
everything else (API server, scheduler, Deployment/ReplicaSet/Job/GC controllers)
is the pinned upstream release built by tools/controlplane/build.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tools.cluster.binaries import TOOLS_DIR, pinned_version
from tools.cluster.controlplane import NODE_NAME, ControlPlane
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration

TIMEOUT = 90.0  # seconds; generous for a loaded 2-core machine


def _gomod_version(module: str) -> str:
    for line in (TOOLS_DIR / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module and "=>" not in parts:
            return parts[1]
    raise AssertionError(f"{module} not in go.mod")


def get(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


# --------------------------------------------------------------------------------------
# versions and the node


@pytest.mark.parametrize(
    ("binary", "args", "expected"),
    [
        ("kube-apiserver", ["--version"], "Kubernetes {kube}"),
        ("kube-controller-manager", ["--version"], "Kubernetes {kube}"),
        ("kube-scheduler", ["--version"], "Kubernetes {kube}"),
        ("kubectl", ["version", "--client"], "Client Version: {kube}"),
        ("etcd", ["--version"], "etcd Version: {etcd}"),
        ("kwok", ["--version"], "{kwok}"),
    ],
)
def test_binaries_print_the_pinned_version(
    apiserver: ControlPlane, binary: str, args: list[str], expected: str
) -> None:
    want = expected.format(
        kube=pinned_version(),
        etcd=_gomod_version("go.etcd.io/etcd/server/v3").removeprefix("v"),
        kwok=_gomod_version("sigs.k8s.io/kwok").removeprefix("v"),
    )
    out = subprocess.run(
        [str(apiserver.bindir / binary), *args], capture_output=True, text=True, check=True
    ).stdout
    assert want in out


def test_kubectl_version_shows_the_pinned_server_version(apiserver: ControlPlane) -> None:
    text = apiserver.kubectl("version").stdout
    assert f"Server Version: {pinned_version()}" in text
    info = json.loads(apiserver.kubectl("version", "-o", "json").stdout)
    assert info["serverVersion"]["gitVersion"] == pinned_version() == apiserver.version
    assert (info["serverVersion"]["major"], info["serverVersion"]["minor"]) == tuple(
        pinned_version().removeprefix("v").split(".")[:2]
    )


def test_api_server_is_loopback_secure_only(apiserver: ControlPlane) -> None:
    assert apiserver.server.startswith("https://127.0.0.1:")
    status, body = apiserver.get("/readyz")
    assert (status, body) == (200, "ok")
    port = int(apiserver.server.rsplit(":", 1)[1])
    # plain HTTP is not served ...
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
    plain.value.close()  # an HTTPError holds its response's socket
    assert plain.value.code == 400
    # ... and TLS without a client certificate is not authenticated (anonymous auth off)
    ctx = ssl.create_default_context(cafile=str(apiserver.workdir / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{apiserver.server}/api", context=ctx, timeout=5)
    anonymous.value.close()
    assert anonymous.value.code == 401
    # RBAC is on: an authenticated user without bindings may not read secrets
    denied = apiserver.kubectl(
        "auth", "can-i", "list", "secrets", "-A",
        kubeconfig=apiserver.kubeconfig_for_user("nobody"), check=False,
    )  # fmt: skip
    assert denied.stdout.strip() == "no"


def test_a_control_plane_serving_pods_advertises_the_machines_address_secure_only() -> None:
    """serve_pods: the `kubernetes` Service's endpoint is the machine's own address (pods
    cannot reach 127.0.0.1), served there with TLS and client authentication only."""
    with ControlPlane.start(build=False, serve_pods=True) as cp:
        address = cp.advertise_address
        assert address and not address.startswith("127.")
        assert cp.server.startswith("https://127.0.0.1:")  # clients keep loopback
        port = int(cp.server.rsplit(":", 1)[1])

        def endpoints() -> tuple[list[str], list[int]] | None:
            found = cp.get_json("endpointslice", "kubernetes", "-n", "default", check=False)
            if not found or not found.get("endpoints"):
                return None
            return found["endpoints"][0]["addresses"], [p["port"] for p in found["ports"]]

        assert wait_until("the kubernetes endpoints", endpoints, timeout=30) == (
            [address],
            [port],
        )
        with pytest.raises(urllib.error.HTTPError) as plain:
            urllib.request.urlopen(f"http://{address}:{port}/readyz", timeout=5)
        plain.value.close()
        assert plain.value.code == 400
        # the serving certificate names the address; without a client certificate: 401
        ctx = ssl.create_default_context(cafile=str(cp.workdir / "pki" / "ca.crt"))
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"https://{address}:{port}/api", context=ctx, timeout=5)
        anonymous.value.close()
        assert anonymous.value.code == 401


def test_kwok_node_is_ready(cluster: ControlPlane) -> None:
    out = cluster.kubectl("get", "nodes", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert NODE_NAME in rows, out
    assert rows[NODE_NAME][1] == "Ready", out
    node = get(cluster, "node", NODE_NAME)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert not [t for t in node["spec"].get("taints", []) if t["effect"] == "NoSchedule"]


# --------------------------------------------------------------------------------------
# Deployments roll out through the real Deployment and ReplicaSet controllers


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]},
            },
        },
    }


def _rollout_done(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    d = get(cp, "deployment", name, "-n", namespace)
    spec, st = d["spec"], d.get("status", {})
    want = spec["replicas"]
    done = (
        st.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and st.get("updatedReplicas") == want
        and st.get("availableReplicas") == want
        and st.get("replicas") == want  # no old pods left
    )
    return d if done else None


def _replicasets(cp: ControlPlane, namespace: str, app: str) -> dict[str, dict[str, Any]]:
    items = get(cp, "replicasets", "-n", namespace, "-l", f"app={app}")["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def test_deployment_reaches_available_and_restart_rolls_out_a_new_replicaset(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.apply(_deployment("web", 2), namespace=namespace)

    out = cluster.kubectl(
        "rollout", "status", "deployment/web", "-n", namespace, f"--timeout={int(TIMEOUT)}s"
    ).stdout
    assert 'deployment "web" successfully rolled out' in out
    d = wait_until(
        "web available", lambda: _rollout_done(cluster, namespace, "web"), timeout=TIMEOUT
    )
    assert d["status"]["availableReplicas"] == 2
    first = _replicasets(cluster, namespace, "web")
    assert len(first) == 1
    generation = d["metadata"]["generation"]

    pods = get(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
    assert {p["status"]["phase"] for p in pods} == {"Running"}

    # what `kubectl rollout restart` does: change a pod-template annotation
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": str(time.time())}}
            }
        }
    }
    cluster.kubectl(
        "patch", "deployment", "web", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    d = wait_until(
        "web restarted", lambda: _rollout_done(cluster, namespace, "web"), timeout=TIMEOUT
    )
    assert d["metadata"]["generation"] == generation + 1
    assert d["status"]["observedGeneration"] == generation + 1
    assert d["status"]["updatedReplicas"] == 2
    assert d["status"]["availableReplicas"] == 2

    after = _replicasets(cluster, namespace, "web")
    new = [rs for name, rs in after.items() if name not in first]
    assert len(new) == 1, "the restart should create exactly one new ReplicaSet"
    assert new[0]["status"].get("readyReplicas") == 2
    (old_name,) = first
    assert after[old_name]["spec"]["replicas"] == 0
    assert (
        cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=10s")
        .stdout.strip()
        .endswith("successfully rolled out")
    )
    history = cluster.kubectl("rollout", "history", "deployment/web", "-n", namespace).stdout
    assert len([ln for ln in history.splitlines() if ln[:1].isdigit()]) == 2


# --------------------------------------------------------------------------------------
# Jobs run to completion through the scheduler, kwok and the real Job controller


def test_job_pod_is_scheduled_to_the_kwok_node_and_job_completes(
    cluster: ControlPlane, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "suite"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "tests", "image": "registry.example/e2e:1", "command": ["true"]}
                    ],
                }
            },
        },
    }
    cluster.apply(job, namespace=namespace)
    waited = cluster.kubectl(
        "wait", "--for=condition=Complete", "job/suite", "-n", namespace,
        f"--timeout={int(TIMEOUT)}s", check=False,
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout

    status = get(cluster, "job", "suite", "-n", namespace)["status"]
    assert status["succeeded"] == 1
    assert status.get("failed", 0) == 0
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "True"

    pods = get(cluster, "pods", "-n", namespace, "-l", "job-name=suite")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeName"] == NODE_NAME
    assert pods[0]["status"]["phase"] == "Succeeded"
    scheduled = [c for c in pods[0]["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"


# --------------------------------------------------------------------------------------
# RBAC


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["get", "pods", "-n", "{ns}"],
            'cannot list resource "pods" in API group "" in the namespace',
        ),
        (["create", "configmap", "c", "-n", "{ns}"], 'cannot create resource "configmaps"'),
        (["get", "nodes"], 'cannot list resource "nodes" in API group "" at the cluster scope'),
        (["delete", "namespace", "{ns}"], 'cannot delete resource "namespaces"'),
        (["get", "secrets", "-A"], 'cannot list resource "secrets"'),
    ],
)
def test_user_without_binding_is_denied(
    apiserver: ControlPlane, namespace: str, args: list[str], message: str
) -> None:
    kc = apiserver.kubeconfig_for_user("alice", groups=["developers"])
    who = apiserver.kubectl("auth", "whoami", "-o", "json", kubeconfig=kc)
    user = json.loads(who.stdout)["status"]["userInfo"]
    assert user["username"] == "alice"  # authenticated by the client certificate ...
    assert "developers" in user["groups"]

    proc = apiserver.kubectl(*(a.format(ns=namespace) for a in args), kubeconfig=kc, check=False)
    assert proc.returncode != 0  # ... but not authorized
    assert "forbidden" in proc.stderr.lower()
    assert f'User "alice" {message}' in proc.stderr


@pytest.mark.parametrize("subject", ["User", "Group"])
def test_a_rolebinding_grants_exactly_its_namespace(
    apiserver: ControlPlane, namespace: str, subject: str
) -> None:
    user, group = f"reader-{subject.lower()}", f"readers-{subject.lower()}"
    kc = apiserver.kubeconfig_for_user(user, groups=[group])
    assert apiserver.kubectl("get", "pods", "-n", namespace, kubeconfig=kc, check=False).returncode
    apiserver.kubectl(
        "create", "rolebinding", "read", "-n", namespace, "--clusterrole=view",
        f"--{subject.lower()}={user if subject == 'User' else group}",
    )  # fmt: skip

    def allowed() -> bool:
        proc = apiserver.kubectl("get", "pods", "-n", namespace, kubeconfig=kc, check=False)
        return proc.returncode == 0

    wait_until("the binding to take effect", allowed, timeout=30)
    other = apiserver.kubectl("get", "pods", "-n", "default", kubeconfig=kc, check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    write = apiserver.kubectl(
        "create", "configmap", "x", "-n", namespace, kubeconfig=kc, check=False
    )
    assert write.returncode != 0 and "forbidden" in write.stderr.lower()


# --------------------------------------------------------------------------------------
# garbage collection through the real garbage collector


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_garbage_collector_follows_owner_references(
    cluster: ControlPlane, namespace: str, cascade: str
) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace, "--from-literal=k=v")
    owner = get(cluster, "configmap", "owner", "-n", namespace)
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"k": "v"},
    }
    cluster.apply(child, namespace=namespace)
    cluster.kubectl(
        "delete", "configmap", "owner", "-n", namespace, f"--cascade={cascade}",
        f"--timeout={int(TIMEOUT)}s",
    )  # fmt: skip

    def child_state() -> str:
        proc = cluster.kubectl(
            "get", "configmap", "child", "-n", namespace, "-o", "json", check=False
        )
        if proc.returncode != 0:
            assert "NotFound" in proc.stderr, proc.stderr
            return "deleted"
        refs = json.loads(proc.stdout)["metadata"].get("ownerReferences")
        return "orphaned" if not refs else "owned"

    if cascade == "orphan":
        wait_until("child orphaned", lambda: child_state() == "orphaned", timeout=TIMEOUT)
        time.sleep(1)
        assert child_state() == "orphaned"
    else:
        wait_until("child deleted", lambda: child_state() == "deleted", timeout=TIMEOUT)


def test_deleting_a_deployment_deletes_its_replicasets_and_pods(
    cluster: ControlPlane, namespace: str
) -> None:
    cluster.apply(_deployment("gone", 1), namespace=namespace)
    wait_until("gone available", lambda: _rollout_done(cluster, namespace, "gone"), timeout=TIMEOUT)
    cluster.kubectl("delete", "deployment", "gone", "-n", namespace)

    def all_gone() -> bool:
        rs = get(cluster, "replicasets", "-n", namespace, "-l", "app=gone")["items"]
        pods = get(cluster, "pods", "-n", namespace, "-l", "app=gone")["items"]
        return not rs and not pods

    wait_until("ReplicaSets and pods collected", all_gone, timeout=TIMEOUT)


def test_workdir_holds_logs_for_every_component(cluster: ControlPlane) -> None:
    names = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert names <= set(cluster.logs)
    for name in names:
        log: Path = cluster.logs[name]
        assert log.parent == cluster.workdir / "logs"
        assert log.read_text().startswith("$ "), f"{log} should start with the command line"
    assert all(cluster.running().values())
