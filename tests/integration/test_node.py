"""The real node runs real pods: logs, a native sidecar sharing a volume and reaching the
host through a ClusterIP Service, a rollout restart, OOMKilled, DeadlineExceeded,
ErrImageNeverPull, greenloop's own image; and it leaves the host as it was."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from greenloop import __version__
from tests.integration.conftest import NodeManager
from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import NODE_NAME, ControlPlane
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


# --------------------------------------------------------------------------------------
# the node as a cluster for pods: the API server and cluster DNS

IN_CLUSTER_API = """
import json, os, socket, ssl, urllib.error, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount'
ctx = ssl.create_default_context(cafile=sa + '/ca.crt')
token = open(sa + '/token').read()
api = 'https://kubernetes.default.svc'

def call(path, auth, body=None):
    headers = {'Content-Type': 'application/json'}
    if auth:
        headers['Authorization'] = 'Bearer ' + token
    data = json.dumps(body).encode() if body else None
    req = urllib.request.Request(api + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, None

review = {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}
status, me = call('/apis/authentication.k8s.io/v1/selfsubjectreviews', True, review)
print(json.dumps({
    'resolved': socket.gethostbyname('kubernetes.default.svc'),
    'env': [os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']],
    'version': call('/version', True),
    'anonymous': call('/version', False)[0],
    'me': [status, (me or {}).get('status', {}).get('userInfo', {}).get('username')],
}))
"""


def test_a_pod_reaches_the_api_server_by_the_kubernetes_service_with_its_token(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    cluster.apply(pod("api", container("main", command=[PY, "-c", IN_CLUSTER_API])), namespace=ns)
    obj = wait_pod_phase(cluster, ns, "api")
    logs = cluster.kubectl("logs", "-n", ns, "api").stdout
    assert obj["status"]["phase"] == "Succeeded", logs
    seen = json.loads(logs)
    assert seen["resolved"] == "10.0.0.1"  # cluster DNS
    assert seen["env"] == ["10.0.0.1", "443"]
    status, version = seen["version"]
    assert (status, version["gitVersion"]) == (200, cluster.version)
    assert seen["anonymous"] == 401  # the token is what gets it in
    assert seen["me"] == [201, f"system:serviceaccount:{ns}:default"]


WEB = """
import http.server, socket
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('hello from ' + socket.gethostname()).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(('', 8080), Hello).serve_forever()
"""

RESOLVE = """
import json, socket, sys, time, urllib.request
def fetch(url):
    for _ in range(60):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError as exc:
            last = repr(exc)
            time.sleep(0.5)
    return last
def resolve(name):
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        return type(exc).__name__
ns = sys.argv[1]
print(json.dumps({
    'urls': {u: fetch(u) for u in ['http://web:8081/', f'http://web.{ns}.svc:8081/',
                                   f'http://web.{ns}.svc.cluster.local:8081/']},
    'web': resolve('web'),
    'kube-dns': resolve('kube-dns.kube-system.svc'),
    'outside': resolve('example.com'),
}))
"""


def test_a_pod_resolves_services_by_short_and_fully_qualified_names(
    cluster: ControlPlane, node_namespace: str
) -> None:
    ns = node_namespace
    server = pod("web", container("main", command=[PY, "-c", WEB]))
    server["metadata"]["labels"] = {"app": "web"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8081, "targetPort": 8080}]},
    }
    cluster.apply(server, service, namespace=ns)
    client = pod("client", container("main", command=[PY, "-c", RESOLVE, ns]))
    cluster.apply(client, namespace=ns)
    obj = wait_pod_phase(cluster, ns, "client")
    logs = cluster.kubectl("logs", "-n", ns, "client").stdout
    assert obj["status"]["phase"] == "Succeeded", logs
    seen = json.loads(logs)
    assert set(seen["urls"].values()) == {"hello from web"}, seen
    ip = cluster.get_json("service", "web", "-n", ns)["spec"]["clusterIP"]
    assert (seen["web"], seen["kube-dns"]) == (ip, "10.0.0.10")
    # nothing is forwarded off this machine: a name outside the cluster does not resolve
    assert seen["outside"] == "gaierror"


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output, line by line, read on a thread (so waits have deadlines);
    the thread closes the pipe at its end."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.timeout(600)
def test_up_node_runs_the_pods_of_any_namespace_on_the_real_node(
    node_manager: NodeManager, cluster: ControlPlane
) -> None:
    """A person's cluster (`tools/controlplane/up --node`): a pod in a new namespace,
    placed by nobody, runs for real on the real node; the kwok node takes only pods that
    tolerate it; SIGTERM stops it all."""
    node_manager.built()  # skips without root
    with node_manager.stopped():  # the machine runs one real node at a time
        up = subprocess.Popen(
            [str(REPO_ROOT / "tools" / "controlplane" / "up"), "--node"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHON": sys.executable},
        )
        output: list[str] = []
        try:
            lines = _lines(up)

            def kubeconfig() -> str | None:
                line = lines.get(timeout=1)
                output.append(line)
                return line.split("=", 1)[1].strip() if "export KUBECONFIG=" in line else None

            def running() -> None:
                if up.poll() is not None and lines.empty():
                    raise AssertionError("up exited:\n" + "".join(output))

            path = wait_until(
                "up --node to print KUBECONFIG", kubeconfig, timeout=300, alive=running
            )

            def kubectl(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
                return cluster.kubectl(*args, kubeconfig=Path(path), **kw)

            kubectl("create", "namespace", "anywhere")
            job_pod = pod("hello", container("main", command=[PY, "-c", "print('for real')"]))
            fake = pod("fake", container("main", command=[PY, "-c", "print('never runs')"]))
            fake["spec"]["tolerations"] = [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}]
            wait_until(
                "pods admitted (the namespace's ServiceAccount exists)",
                lambda: kubectl(
                    "apply", "-n", "anywhere", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List",
                                      "items": [job_pod, fake]}),
                    check=False,
                ).returncode == 0,
                timeout=60,
            )  # fmt: skip

            def finished(name: str) -> dict[str, Any] | None:
                got = kubectl("get", "pod", name, "-n", "anywhere", "-o", "json", check=False)
                obj: dict[str, Any] = json.loads(got.stdout) if got.returncode == 0 else {}
                done = obj.get("status", {}).get("phase") in ("Succeeded", "Failed")
                return obj if done else None

            hello = wait_until("pod hello to finish", lambda: finished("hello"), timeout=120)
            assert hello["status"]["phase"] == "Succeeded"
            assert hello["spec"]["nodeName"].startswith("greenloop-node-")
            assert kubectl("logs", "-n", "anywhere", "hello").stdout == "for real\n"
            placed = wait_until(
                "pod fake to be scheduled",
                lambda: (
                    kubectl(
                        "get", "pod", "fake", "-n", "anywhere", "-o", "jsonpath={.spec.nodeName}"
                    ).stdout
                ),
                timeout=60,
            )
            assert placed == NODE_NAME
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        assert up.returncode == 0, "".join(output)
