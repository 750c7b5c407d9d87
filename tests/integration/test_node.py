"""The real node runs real pods: logs, a native sidecar sharing a volume and reaching the
host through a ClusterIP Service, a rollout restart, OOMKilled, DeadlineExceeded,
ErrImageNeverPull, greenloop's own image; and it leaves the host as it was."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from greenloop import __version__
from tests.integration.conftest import NodeManager
from tools.cluster.controlplane import ControlPlane
from tools.cluster.host import host_state
from tools.cluster.node import IMAGES, RealNode
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration

SHELL = "/bin/sh"
PY = "python3"


def container(name: str, image: str = IMAGES["greenloop"], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "Never", **extra}


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": list(containers),
            **spec,
        },
    }


def job(name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, **pod_spec}
            },
            **spec,
        },
    }


def get(cp: ControlPlane, ns: str, *what: str) -> Any:
    return cp.get_json(*what, "-n", ns, check=False) or {}


def wait_pod_phase(cp: ControlPlane, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = get(cp, ns, "pod", name)
        return obj if obj.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    return wait_until(f"pod {ns}/{name} to finish", done, timeout=timeout, interval=0.5)


def wait_job(cp: ControlPlane, ns: str, name: str, timeout: float = 120) -> dict[str, str]:
    """The Job's final condition: {"type": Complete|Failed, "reason": ...}."""

    def finished() -> dict[str, str] | None:
        for c in get(cp, ns, "job", name).get("status", {}).get("conditions", []) or []:
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return {"type": c["type"], "reason": c.get("reason", "")}
        return None

    return wait_until(f"job {ns}/{name} to finish", finished, timeout=timeout, interval=0.5)


def job_pods(cp: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    return list(get(cp, ns, "pods", "-l", f"job-name={name}").get("items", []))


def terminated(pod_obj: dict[str, Any], container_name: str) -> dict[str, Any]:
    for s in pod_obj.get("status", {}).get("containerStatuses", []) or []:
        if s["name"] == container_name:
            return dict(s.get("state", {}).get("terminated") or {})
    return {}


# --------------------------------------------------------------------------------------


def test_a_node_run_leaves_the_host_as_it_was(
    node_manager: NodeManager, cluster: ControlPlane, namespace: str
) -> None:
    """Start a node, run a networked pod behind a Service, stop: nothing is left."""
    bindir, images = node_manager.built()
    with node_manager.stopped():
        node = RealNode(cluster, bindir=bindir, images=images).start()
        try:
            during = host_state()
            node.use_namespace(namespace)
            cluster.apply(
                pod("pinger", container("main", command=[PY, "-c", "print('up')"])),
                namespace=namespace,
            )
            node.expose_host_port(namespace, "host", 9)
            assert wait_pod_phase(cluster, namespace, "pinger")["status"]["phase"] == "Succeeded"
            wait_until(
                "kube-proxy's Service rules",
                lambda: any(
                    "KUBE-SERVICES" in rule
                    for rule in host_state()["iptables"].get("iptables/nat", [])
                ),
                timeout=30,
            )
            during = host_state()
        finally:
            node.stop(remove_workdir=True)
    before, after = node.before_state, node.after_state
    # the run did change the host, so the comparison below can fail
    assert node.bridge in during["links"] and node.bridge not in before["links"]
    assert during["iptables"] != before["iptables"]
    assert "/run/containerd" in during["paths"]
    assert after == before


def test_pod_logs_come_from_the_container(
    node: RealNode, cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    script = "import os; print('hello from', os.uname().nodename, 'uid', os.getuid())"
    cluster.apply(pod("hello", container("main", command=[PY, "-c", script])), namespace=ns)
    obj = wait_pod_phase(cluster, ns, "hello")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["spec"]["nodeName"] == node.name
    logs = cluster.kubectl("logs", "-n", ns, "hello").stdout
    assert logs == "hello from hello uid 10001\n"


def test_greenloop_image_prints_its_version(cluster: ControlPlane, node_namespace: str) -> None:
    ns = node_namespace
    cluster.apply(pod("version", container("greenloop", args=["--version"])), namespace=ns)
    assert wait_pod_phase(cluster, ns, "version")["status"]["phase"] == "Succeeded"
    assert cluster.kubectl("logs", "-n", ns, "version").stdout.strip() == f"greenloop {__version__}"


class _Recorder(BaseHTTPRequestHandler):
    received: list[str]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(self.rfile.read(min(length, 4096)).decode())
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def host_server(node: RealNode) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on the host address pods reach; yields (port, bodies received)."""
    received: list[str] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer((node.host_address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


SIDECAR = """
import os, sys, time, urllib.request
deadline = time.monotonic() + 60
while not os.path.exists('/shared/result') and time.monotonic() < deadline:
    time.sleep(0.2)
body = open('/shared/result').read().encode()
url = 'http://' + os.environ['RESULTS_IP'] + ':8080/'
for attempt in range(30):
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10).read()
        break
    except OSError as exc:
        print('retry', exc, flush=True)
        time.sleep(1)
open('/shared/delivered', 'w').write('yes')
print('delivered', body.decode(), flush=True)
while True:
    time.sleep(1)
"""

MAIN = """
import os, time
open('/shared/result', 'w').write('main says hi from ' + os.uname().nodename)
deadline = time.monotonic() + 60
while not os.path.exists('/shared/delivered') and time.monotonic() < deadline:
    time.sleep(0.2)
print('main done', os.path.exists('/shared/delivered'), flush=True)
"""


def test_job_with_native_sidecar_shares_a_volume_and_reaches_the_host(
    node: RealNode,
    cluster: ControlPlane,
    node_namespace: str,
    host_server: tuple[int, list[str]],
) -> None:
    ns = node_namespace
    port, received = host_server
    ip = node.expose_host_port(ns, "results", port, service_port=8080)
    shared = [{"name": "shared", "mountPath": "/shared"}]
    spec = {
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [
            container(
                "reporter",
                command=[PY, "-c", SIDECAR],
                restartPolicy="Always",
                env=[{"name": "RESULTS_IP", "value": ip}],
                volumeMounts=shared,
            )
        ],
        "containers": [container("main", command=[PY, "-c", MAIN], volumeMounts=shared)],
    }
    cluster.apply(job("sidecar", spec, activeDeadlineSeconds=120), namespace=ns)
    assert wait_job(cluster, ns, "sidecar") == {"type": "Complete", "reason": "CompletionsReached"}
    (pod_obj,) = job_pods(cluster, ns, "sidecar")
    # a retry after a slow answer may deliver twice; what matters is what arrived
    assert set(received) == {f"main says hi from {pod_obj['metadata']['name']}"}
    assert terminated(pod_obj, "main").get("exitCode") == 0
    logs = cluster.kubectl("logs", "-n", ns, pod_obj["metadata"]["name"], "-c", "main").stdout
    assert logs == "main done True\n"


def test_rollout_restart_replaces_the_demo_app_with_a_new_process(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    probe = (
        "import urllib.request;"
        "urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).read()"
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-shop"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "demo-shop"}},
            "template": {
                "metadata": {"labels": {"app": "demo-shop"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        container(
                            "app",
                            IMAGES["demo-app"],
                            readinessProbe={
                                "exec": {"command": [PY, "-c", probe]},
                                "periodSeconds": 1,
                            },
                        )
                    ],
                },
            },
        },
    }
    cluster.apply(deployment, namespace=ns)

    def rolled_out() -> bool:
        proc = cluster.kubectl(
            "rollout", "status", "-n", ns, "deployment/demo-shop", "--timeout=5s", check=False
        )
        return proc.returncode == 0

    def running_pod() -> dict[str, Any]:
        pods = [
            p
            for p in get(cluster, ns, "pods", "-l", "app=demo-shop")["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
        return pods[0]

    wait_until("demo-shop rolled out", rolled_out, timeout=90, interval=1)
    first = running_pod()
    first_container = first["status"]["containerStatuses"][0]["containerID"]
    assert (
        "boot 1 on 127.0.0.1:8080"
        in cluster.kubectl("logs", "-n", ns, first["metadata"]["name"]).stdout
    )

    cluster.kubectl("rollout", "restart", "-n", ns, "deployment/demo-shop")

    def replaced() -> dict[str, Any] | None:
        pods = get(cluster, ns, "pods", "-l", "app=demo-shop")["items"]
        if len(pods) != 1 or pods[0]["metadata"]["uid"] == first["metadata"]["uid"]:
            return None
        return pods[0] if rolled_out() else None

    second = wait_until("the old pod replaced", replaced, timeout=90, interval=1)
    assert second["status"]["containerStatuses"][0]["containerID"] != first_container
    assert second["status"]["containerStatuses"][0]["ready"] is True
    assert (
        "boot 1 on 127.0.0.1:8080"
        in cluster.kubectl("logs", "-n", ns, second["metadata"]["name"]).stdout
    )


def test_memory_limit_kills_the_job_pod_as_oomkilled(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    hog = container(
        "hog",
        command=[PY, "-c", "b = b'x' * (256 * 1024 * 1024); print(len(b))"],
        resources={"limits": {"memory": "48Mi"}, "requests": {"memory": "48Mi"}},
    )
    cluster.apply(job("oom", {"containers": [hog]}), namespace=ns)
    assert wait_job(cluster, ns, "oom") == {"type": "Failed", "reason": "BackoffLimitExceeded"}
    (pod_obj,) = job_pods(cluster, ns, "oom")
    state = terminated(pod_obj, "hog")
    assert (state.get("reason"), state.get("exitCode")) == ("OOMKilled", 137)


def test_active_deadline_fails_the_job_as_deadline_exceeded(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    sleeper = container("sleeper", command=[PY, "-c", "import time; time.sleep(120)"])
    cluster.apply(job("slow", {"containers": [sleeper]}, activeDeadlineSeconds=3), namespace=ns)
    assert wait_job(cluster, ns, "slow") == {"type": "Failed", "reason": "DeadlineExceeded"}


def test_missing_image_is_err_image_never_pull(cluster: ControlPlane, node_namespace: str) -> None:
    ns = node_namespace
    ghost = container("ghost", "localhost/greenloop-no-such-image:dev")
    cluster.apply(job("ghost", {"containers": [ghost]}, activeDeadlineSeconds=120), namespace=ns)

    def waiting_reason() -> str | None:
        for p in job_pods(cluster, ns, "ghost"):
            for s in p.get("status", {}).get("containerStatuses", []) or []:
                reason = (s.get("state", {}).get("waiting") or {}).get("reason")
                if reason and reason != "ContainerCreating":
                    return str(reason)
        return None

    assert wait_until("ghost pod waiting", waiting_reason, timeout=60) == "ErrImageNeverPull"
    status = get(cluster, ns, "job", "ghost")["status"]
    assert (status.get("active"), status.get("succeeded")) == (1, None)
    cluster.kubectl("delete", "job", "ghost", "-n", ns, "--wait=false")


def test_demo_suites_image_runs_pytest_with_greenloops_plugin(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    check = container(
        "suites",
        IMAGES["demo-suites"],
        args=["--co", "tests"],
    )
    cluster.apply(pod("suites", check), namespace=ns)
    obj = wait_pod_phase(cluster, ns, "suites")
    logs = cluster.kubectl("logs", "-n", ns, "suites").stdout
    assert obj["status"]["phase"] == "Succeeded", logs
    assert "41 tests collected" in logs, logs
    assert "greenloop: 41 tests; priority order" in logs, logs  # the plugin's own line


def test_expose_host_port_makes_a_selectorless_service(
    node: RealNode, cluster: ControlPlane, namespace: str
) -> None:
    ip = node.expose_host_port(namespace, "op", 18081, service_port=80)
    svc = cluster.get_json("service", "op", "-n", namespace)
    eps = cluster.get_json("endpointslice", "op-host", "-n", namespace)
    assert "selector" not in svc["spec"]
    assert svc["spec"]["clusterIP"] == ip
    assert eps["endpoints"][0]["addresses"] == [node.host_address]
    assert json.dumps(eps["ports"]) == json.dumps(
        [{"name": "http", "port": 18081, "protocol": "TCP"}]
    )
