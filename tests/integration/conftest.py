"""Integration fixtures: a real Kubernetes control plane on 127.0.0.1.

- `apiserver` (session): etcd + kube-apiserver only; starts in a few seconds.
- `cluster` (session): the same API server plus kube-controller-manager,
  kube-scheduler and kwok with one Ready fake node, so Deployments roll out,
  Jobs complete and garbage collection runs through the real controllers.
  Ask for `cluster` only when a test needs controllers; `apiserver` is faster.
- `namespace` (function): a fresh namespace, deleted afterwards.
- `node` (function, backed by one node per session): a real node — containerd, runc,
  CNI bridge, kubelet, kube-proxy and CoreDNS on this machine — joined to `cluster`,
  Ready, with the images of tools/images/build imported. Tainted and labelled so only
  pods that ask for it land there (kwok keeps the rest). Its pods reach the API server
  through the `kubernetes` Service and resolve Services by name (cluster DNS). Needs
  root; see tools/cluster/node.py.
- `node_namespace` (function): a fresh namespace whose pods all run on the real node.

Binaries come from tools/controlplane/build (run automatically when missing;
its output goes to the terminal). When a test fails, or when
GREENLOOP_KEEP_CONTROLPLANE=1, the work directory with every component's log
is kept and its path printed. See tools/cluster/controlplane.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.cluster.binaries import ensure_binaries, ensure_built  # noqa: E402
from tools.cluster.controlplane import ControlPlane  # noqa: E402
from tools.cluster.crds import ensure_crd  # noqa: E402
from tools.cluster.node import RealNode  # noqa: E402
from tools.cluster.operator import Operator, on_loopback  # noqa: E402
from tools.cluster.procs import free_ports  # noqa: E402

_KEPT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs against the real control plane on loopback "
        "(binaries from tools/controlplane/build)",
    )


# The first test to ask for a control plane includes its start (etcd, kube-apiserver, the
# controllers and a kwok node) in its time, on a shared machine: integration tests get more
# than pyproject.toml's default timeout, still bounded so a hang fails the run.
INTEGRATION_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT))


def _terminal(config: pytest.Config) -> contextlib.AbstractContextManager[object]:
    """Let output reach the real terminal even while pytest captures."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return contextlib.nullcontext()
    return capman.global_and_fixture_disabled()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def apiserver(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver (RBAC, secure port only) with an admin kubeconfig."""
    config = request.config
    with _terminal(config):
        bindir = ensure_binaries(output=sys.__stderr__)
    # as root a real node may join (the `node` fixture): its pods then reach the API server
    # through the `kubernetes` Service, which needs it on the machine's address too
    cp = ControlPlane.start(workdir=None, build=False, serve_pods=os.geteuid() == 0)
    assert cp.bindir == bindir
    try:
        yield cp
    finally:
        cp.stop()
        keep = request.session.testsfailed > 0 or os.environ.get("GREENLOOP_KEEP_CONTROLPLANE")
        if keep:
            msg = f"control-plane work directory and logs kept in {cp.workdir} (logs/ inside)"
            _KEPT.append(msg)
            with _terminal(config):
                print(f"\n[greenloop] {msg}", file=sys.__stderr__, flush=True)
        else:
            shutil.rmtree(cp.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(apiserver: ControlPlane) -> ControlPlane:
    """The same API server with kube-controller-manager, kube-scheduler, kwok and a Ready node."""
    apiserver.start_controllers()
    return apiserver


@pytest.fixture
def namespace(request: pytest.FixtureRequest, apiserver: ControlPlane) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount when controllers run)."""
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster")
    name = f"t-{request.node.name.split('[')[0][:30].lower().replace('_', '-')}-"
    name = name + uuid.uuid4().hex[:6]
    apiserver.create_namespace(name)
    yield name
    apiserver.kubectl("delete", "namespace", name, "--wait=false", check=False)


class NodeManager:
    """One real node for the session, started on first use; `stopped()` lets a test
    run with no node at all (the host-cleanliness test starts and stops its own)."""

    def __init__(self, cp: ControlPlane, config: pytest.Config) -> None:
        self.cp = cp
        self.config = config
        self.node: RealNode | None = None
        self.failed = False
        self._built: tuple[Path, dict[str, object]] | None = None

    def built(self) -> tuple[Path, dict[str, object]]:
        if os.geteuid() != 0:
            pytest.skip("a real node needs root (mounts, cgroups, iptables, bridges)")
        if self._built is None:
            with _terminal(self.config):
                self._built = ensure_built(output=sys.__stderr__)
        return self._built

    def get(self) -> RealNode:
        if self.node is None:
            bindir, images = self.built()
            self.node = RealNode(self.cp, bindir=bindir, images=images).start()
        return self.node

    def stop(self) -> None:
        node, self.node = self.node, None
        if node is not None:
            keep = self.failed or bool(os.environ.get("GREENLOOP_KEEP_CONTROLPLANE"))
            node.stop(remove_workdir=not keep)
            if keep:
                msg = f"real-node work directory and logs kept in {node.workdir} (logs/ inside)"
                _KEPT.append(msg)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        had = self.node is not None
        self.stop()
        try:
            yield
        finally:
            if had:
                self.get()


@pytest.fixture(scope="session")
def node_manager(request: pytest.FixtureRequest, cluster: ControlPlane) -> Iterator[NodeManager]:
    manager = NodeManager(cluster, request.config)
    try:
        yield manager
    finally:
        manager.failed = request.session.testsfailed > 0
        manager.stop()


@pytest.fixture
def node(node_manager: NodeManager) -> RealNode:
    """The session's real node, Ready (started on first use)."""
    return node_manager.get()


@pytest.fixture
def node_namespace(node: RealNode, namespace: str) -> str:
    """A fresh namespace whose pods all run on the real node."""
    node.use_namespace(namespace)
    return namespace


@pytest.fixture
def operator(cluster: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    """`greenloop operator` on this host for `namespace`, its results endpoint on loopback
    (the kwok node runs no pods: the test plays each Job's sidecar)."""
    with on_loopback(cluster, namespace, tmp_path / "operator.log") as op:
        yield op


@pytest.fixture
def node_operator(
    cluster: ControlPlane, node: RealNode, node_namespace: str, tmp_path: Path
) -> Iterator[Operator]:
    """`greenloop operator` for `node_namespace`, its results endpoint on the node's host
    address behind a Service, so the real sidecar in Job pods reaches it."""
    ensure_crd(cluster)
    port = free_ports(1)[0]
    ip = node.expose_host_port(node_namespace, "greenloop-results", port, service_port=8081)
    op = Operator(
        cluster, node_namespace, tmp_path / "operator.log", f"http://{ip}:8081", port,
        host=node.host_address,
    )  # fmt: skip
    op.start()
    try:
        yield op
    finally:
        op.kill(signal.SIGTERM)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for msg in _KEPT:
        terminalreporter.write_line(f"[greenloop] {msg}")
