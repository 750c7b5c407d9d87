"""A real Kubernetes node on this machine: containerd + runc + CNI bridge + kubelet +
kube-proxy + CoreDNS, joined to a `ControlPlane` (tools/cluster/controlplane.py), running
real pods from the images tools/images/build makes.

    cp = ControlPlane.start(controllers=True, serve_pods=True)
    node = RealNode(cp).start()        # Ready, images imported; ~5 s warm
    node.use_namespace("my-ns")        # every pod created in my-ns runs on the real node
    ip = node.expose_host_port("my-ns", "operator", 8080)   # ClusterIP -> host:8080
    node.stop()                        # the host is as it was before start()

The API the tests (and the operator's tests) use:

- `host_address`: the address on this host that pods reach (the gateway of the bridge
  this node creates). Bind a test server there (not 127.0.0.1) for pods to reach it.
- `expose_host_port(namespace, name, port)`: a selector-less Service + EndpointSlice
  pointing at `host_address:port`; returns the ClusterIP. Pods reach the server as
  `http://<name>.<namespace>.svc:<port>` (or the ClusterIP).
- In pods, as on any cluster: the API server at https://kubernetes.default.svc (the
  `kubernetes` Service; the control plane must be started with serve_pods=True) with
  the pod's ServiceAccount token, and cluster DNS (kubelet's clusterDNS, the kube-dns
  Service at 10.0.0.10): `SERVICE`, `SERVICE.NAMESPACE.svc`,
  `SERVICE.NAMESPACE.svc.cluster.local`. CoreDNS runs as a process of the node (like
  kube-proxy, not a pod: up before the first pod, no image, gone with the node) and
  forwards nothing: a name outside the cluster does not resolve.
- `use_namespace(ns)`: annotate a namespace so the API server puts every pod created
  in it on this node (PodNodeSelector + PodTolerationRestriction), so code that makes
  Jobs need not know about nodes. `place(pod_spec)` does the same for one pod spec.
- `IMAGES` (short name -> reference; `imagePullPolicy: Never`, nothing is pulled):
  `greenloop` (entrypoint `greenloop`), `demo-app` (examples/demo/app on 127.0.0.1:8080
  inside the pod), `demo-suites` (examples/demo/tests + greenloop's pytest plugin,
  entrypoint `python3 -m pytest`, workdir /suites), `fake-runners` (test-only: a fake
  `go` and `mvn`, workdir /maven-suite, a Maven-shaped tree; tools/images/fake-runners).
- `host_state()`: sysctls, interfaces, iptables rules, mounts, cgroups and the paths a
  node could write of the host, to compare before and after; `before_state` and
  `after_state` are those of one node's run, taken while it held the machine's node lock.

Placement: the real node is registered with the label `greenloop.dev/node=real` and the
taint `greenloop.dev/real-node=true:NoSchedule`, so pods that do not ask for it keep
landing on the kwok node (which stays for scale tests with many fake nodes).
`RealNode(cp, dedicated=False)` registers it untainted, for a cluster where every pod
runs for real (`tools/controlplane/up --node` also taints the kwok node).

How the host stays clean: containerd, kubelet and kube-proxy run in a private mount
namespace (a `unshare --mount` holder process) where the kernel settings kubelet would
write (vm.overcommit_memory, kernel.panic, ...) and ip_forward (the CNI bridge plugin)
are files bind-mounted over /proc/sys, and /var/log is private; all of it vanishes with
the namespace. Everything else has a name unique to the run (bridge, cgroup root, work
dir with sockets, state and CNI data) and is removed by `stop`: containers and shims
first (so none survive containerd), then kube-proxy's and kubelet's iptables chains,
the bridge and the cgroups. Only one node runs on the machine at a time (a lock file),
because kube-proxy's chains are host-wide; the lock dies with its process, so a failed
run never blocks the next. Needs root and the binaries of tools/node/build.

For a person: `tools/controlplane/up --node`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.cluster import host
from tools.cluster.binaries import coredns_binary, ensure_built
from tools.cluster.controlplane import DNS_SERVICE_IP, SERVICE_CIDR, ControlPlane
from tools.cluster.host import HIDDEN_DIRS, MASKED_SYSCTLS, host_state, made_dirs_record, run
from tools.cluster.node_config import (
    DNS_ENDPOINTS,
    NODE_LABEL,
    NODE_TAINT,
    containerd_socket,
    dns_objects,
    write_config,
)
from tools.cluster.procs import (
    ControlPlaneError,
    NodeError,
    set_pdeathsig,
    stop_process,
    tail,
    wait_until,
)

IMAGES = {
    "greenloop": "localhost/greenloop:dev",
    "demo-app": "localhost/greenloop-demo-app:dev",
    "demo-suites": "localhost/greenloop-demo-suites:dev",
    "fake-runners": "localhost/greenloop-fake-runners:dev",  # test-only: a fake go and mvn
}
K8S_NS = "k8s.io"


class RealNode:
    """containerd + kubelet + kube-proxy + CoreDNS on this machine, registered with `cp`."""

    def __init__(
        self,
        cp: ControlPlane,
        *,
        bindir: Path | None = None,
        images: dict[str, Any] | None = None,
        verbose: bool = False,
        lock_timeout: float | None = None,
        dedicated: bool = True,
        coredns: Path | None = None,
    ) -> None:
        self.cp = cp
        if bindir is None or images is None:
            bindir, images = ensure_built()
        self.bindir = bindir
        self.image_archives = {v["image"]: Path(v["archive"]) for v in images.values()}
        self.pause_image = images["pause"]["image"]
        self.verbose = verbose
        # Parallel sessions on one machine queue for the one node; they may wait longer.
        self.lock_timeout = (
            lock_timeout
            if lock_timeout is not None
            else float(os.environ.get("GREENLOOP_NODE_LOCK_SECONDS", "600"))
        )
        #: tainted NODE_TAINT (only pods that ask for it land here), else every pod's node
        self.dedicated = dedicated
        self.coredns = coredns or coredns_binary()
        self.id = secrets.token_hex(3)
        self.name = f"greenloop-node-{self.id}"
        self.bridge = f"glbr{self.id}"
        self.cgroup_root = f"greenloop-{self.id}"
        self.node_ip = ""
        self.pod_subnet: ipaddress.IPv4Network | None = None
        self.host_address = ""
        self.workdir = Path()
        self.timings: dict[str, float] = {}
        self.ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._lock_fd: int | None = None
        self._before: dict[str, Any] = {}
        self._made_cgroups: list[Path] = []
        self._bridge_made = False
        self._made_dirs: list[Path] = []
        #: host_state() just after start() took the machine's node lock / before stop()
        #: released it
        self.before_state: dict[str, Any] = {}
        self.after_state: dict[str, Any] = {}

    # ---- lifecycle ----------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> RealNode:
        """Start everything; returns once the node is Ready and the images imported."""
        if os.geteuid() != 0:
            raise NodeError("a real node needs root (mounts, cgroups, iptables, bridges)")
        t0 = time.monotonic()
        self._acquire_lock()
        try:
            host.reap_leftovers()
            self._before = host_state()
            self.before_state = self._before
            self.workdir = Path(tempfile.mkdtemp(prefix=f"gln-{self.id}-"))
            (self.workdir / "logs").mkdir()
            self.node_ip = host.node_ip()
            self.pod_subnet = host.pick_pod_subnet(SERVICE_CIDR)
            self.host_address = str(next(self.pod_subnet.hosts()))
            self._write_config()
            self._make_bridge()
            self._make_cgroups()
            self._start_namespace()
            self._start_containerd(timeout)
            self._import_images()
            self.timings["containerd+images"] = time.monotonic() - t0
            self._start_kubelet(timeout)
            self._start_kube_proxy(timeout)
            self._start_dns(timeout)
            self._wait_ready(timeout)
        except BaseException as exc:
            logs = self.workdir / "logs"
            self.stop()
            if isinstance(exc, ControlPlaneError):
                raise NodeError(f"{exc}\n(node logs in {logs})") from exc
            raise
        self.timings["ready"] = time.monotonic() - t0
        return self

    def stop(self, *, remove_workdir: bool = False) -> None:
        """Stop and remove everything start() made, in the order that leaves nothing."""
        errors: list[str] = []

        def step(what: str, fn: Any) -> None:
            try:
                fn()
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        step("kubelet", lambda: self._stop_proc("kubelet", 20))
        # a stopped node's object would stay "Ready" until the node monitor notices,
        # and the scheduler would keep binding pods to it
        step("node object", self._delete_node_object)
        step("cluster DNS", self._stop_dns)
        step("containers", self._kill_containers)
        step("kube-proxy", lambda: self._stop_proc("kube-proxy", 10))
        step("containerd", lambda: self._stop_proc("containerd", 15))
        step("shims", self._kill_shims)
        step("cgroup processes", self._kill_cgroup_procs)
        step("namespace", lambda: self._stop_proc("namespace", 5))
        step("pod interfaces", self._wait_links_gone)
        step("iptables", self._clean_iptables)
        step("bridge", self._remove_bridge)
        step("cgroups", self._remove_cgroups)
        step("mount points", self._remove_made_dirs)
        if self._lock_fd is not None and self._before:
            # taken under the lock, so no other node on the machine changes it meanwhile
            self.after_state = host_state()
        self._release_lock()
        if remove_workdir and self.workdir != Path() and not errors:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise NodeError("node teardown incomplete: " + "; ".join(errors))

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(remove_workdir=exc[0] is None)

    # ---- API for tests --------------------------------------------------------------

    def place(self, pod_spec: dict[str, Any]) -> dict[str, Any]:
        """`pod_spec` with the node selector and toleration that put it on this node."""
        spec = dict(pod_spec)
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), NODE_LABEL[0]: NODE_LABEL[1]}
        spec["tolerations"] = [*spec.get("tolerations", []), self._toleration()]
        return spec

    def use_namespace(self, namespace: str) -> None:
        """Every pod created in `namespace` from now on runs on this node."""
        self.cp.kubectl(
            "annotate",
            "--overwrite",
            "namespace",
            namespace,
            f"scheduler.alpha.kubernetes.io/node-selector={NODE_LABEL[0]}={NODE_LABEL[1]}",
            "scheduler.alpha.kubernetes.io/defaultTolerations=" + json.dumps([self._toleration()]),
        )

    def expose_host_port(
        self, namespace: str, name: str, port: int, *, service_port: int | None = None
    ) -> str:
        """A ClusterIP Service `name` whose only endpoint is host_address:port; its IP."""
        sport = service_port or port
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": sport, "targetPort": port}]},
        }
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [self.host_address], "conditions": {"ready": True}}],
        }
        self.cp.apply(service, slice_)
        ip = self.cp.get_json("service", name, "-n", namespace)["spec"]["clusterIP"]
        return str(ip)

    def ctr(self, *args: str, timeout: float = 120.0) -> str:
        """Run `ctr` against this node's containerd (namespace k8s.io)."""
        return run(
            str(self.bindir / "ctr"),
            f"--address={self._sock}",
            f"--namespace={K8S_NS}",
            *args,
            timeout=timeout,
        )

    @property
    def logs(self) -> dict[str, Path]:
        return dict(self._logs)

    def running(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self._procs.items()}

    def describe(self) -> str:
        lines = [
            f"node        {self.name}  ({self.node_ip}, pods {self.pod_subnet} on {self.bridge})",
            f"host addr   {self.host_address}  (pods reach host servers bound here)",
            f"dns         {DNS_SERVICE_IP}:53 (kube-dns) -> CoreDNS on "
            f"{self.host_address}:{self.ports.get('dns')}",
            f"workdir     {self.workdir}",
        ]
        for name, proc in self._procs.items():
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            log = self._logs.get(name, "")
            lines.append(f"  {name:<24} pid {proc.pid:<8} {state:<10} log {log}")
        return "\n".join(lines)

    # ---- internals ----------------------------------------------------------------

    def _toleration(self) -> dict[str, str]:
        return {"key": NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}

    @property
    def _sock(self) -> Path:
        return containerd_socket(self.workdir)

    def _acquire_lock(self) -> None:
        self._lock_fd = host.acquire_node_lock(self.lock_timeout)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_config(self) -> None:
        assert self.pod_subnet is not None
        self.ports = write_config(
            self.cp,
            self.workdir,
            node_id=self.id,
            name=self.name,
            node_ip=self.node_ip,
            pod_subnet=self.pod_subnet,
            host_address=self.host_address,
            bridge=self.bridge,
            cgroup_root=self.cgroup_root,
            pause_image=self.pause_image,
            dedicated=self.dedicated,
            verbose=self.verbose,
        )

    def _make_bridge(self) -> None:
        assert self.pod_subnet is not None
        host.add_bridge(self.bridge)
        self._bridge_made = True
        host.configure_bridge(self.bridge, self.host_address, self.pod_subnet.prefixlen)

    def _remove_bridge(self) -> None:
        if self._bridge_made:
            run("ip", "link", "del", self.bridge, check=False)
            self._bridge_made = False

    def _wait_links_gone(self) -> None:
        if self._before:
            host.wait_links_gone(self._before["links"])

    def _remove_made_dirs(self) -> None:
        while self._made_dirs:
            path = self._made_dirs.pop()
            path.rmdir()  # empty: everything went into the work directory
        made_dirs_record().unlink(missing_ok=True)

    def _make_cgroups(self) -> None:
        host.make_cgroups(self.cgroup_root, self._made_cgroups)

    def _kill_cgroup_procs(self) -> None:
        host.kill_cgroup_procs(self._made_cgroups, self.cgroup_root)

    def _remove_cgroups(self) -> None:
        left = host.remove_cgroups(self._made_cgroups)
        self._made_cgroups = [p for p in self._made_cgroups if p.exists()]
        if left:
            raise NodeError(f"cgroups still busy: {', '.join(left[:5])}")

    def _kill_shims(self) -> None:
        if self.workdir != Path():
            host.kill_shims(self.workdir)

    def _clean_iptables(self) -> None:
        """kube-proxy --cleanup, then remove any rule and chain the node added (kubelet's
        canaries)."""
        if self._before:
            host.clean_iptables(
                self._before["iptables"],
                kube_proxy=self.bindir / "kube-proxy",
                proxy_config=self.workdir / "kube-proxy-config.json",
            )

    def _spawn(self, name: str, cmd: list[str], *, in_namespace: bool = True) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        self._logs[name] = log
        if in_namespace:
            cmd = ["nsenter", f"--mount=/proc/{self._procs['namespace'].pid}/ns/mnt", "--", *cmd]
        env = {
            **os.environ,
            # containerd v2's shim first: Debian may have containerd 1.6's on PATH
            "PATH": f"{self.bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
        }
        with log.open("ab") as fh:
            fh.write(("$ " + " ".join(cmd) + "\n").encode())
            fh.flush()
            self._procs[name] = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=set_pdeathsig,
            )

    def _alive(self, name: str) -> Any:
        def check() -> None:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                log = self._logs.get(name)
                last = tail(log) if log else ""
                raise NodeError(f"{name} exited with code {proc.returncode}:\n{last}")

        return check

    def _stop_proc(self, name: str, timeout: float) -> None:
        stop_process(self._procs.pop(name, None), timeout)

    def _start_namespace(self) -> None:
        """A process holding a private mount namespace; the node's processes join it."""
        self._logs["namespace"] = self.workdir / "logs" / "namespace.log"
        with self._logs["namespace"].open("ab") as log:
            self._procs["namespace"] = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sleep", "infinity"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                preexec_fn=set_pdeathsig,
            )
        pid = self._procs["namespace"].pid
        own = os.readlink("/proc/self/ns/mnt")

        def entered() -> bool:
            return os.readlink(f"/proc/{pid}/ns/mnt") != own

        wait_until("private mount namespace", entered, timeout=10, interval=0.02)
        mounts = [(self.workdir / "varlog", Path("/var/log"))]
        for d in HIDDEN_DIRS:
            src = self.workdir / "hidden" / d.strip("/").replace("/", "_")
            src.mkdir(parents=True)
            if not Path(d).exists():
                Path(d).mkdir(parents=True)  # a mount point; removed again by stop()
                self._made_dirs.append(Path(d))
                with made_dirs_record().open("a") as record:  # for a run killed meanwhile
                    record.write(f"{d}\n")
            mounts.append((src, Path(d)))
        mounts += [
            (self.workdir / "sysctl" / key.replace("/", "."), Path("/proc/sys", key))
            for key in MASKED_SYSCTLS
            if Path("/proc/sys", key).exists()
        ]
        script = "set -e\n" + "".join(f"mount --bind '{src}' '{dst}'\n" for src, dst in mounts)
        run("nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", "sh", "-c", script)

    def _start_containerd(self, timeout: float) -> None:
        self._spawn(
            "containerd",
            [
                str(self.bindir / "containerd"),
                f"--config={self.workdir / 'containerd' / 'config.toml'}",
                f"--log-level={'debug' if self.verbose else 'info'}",
            ],
        )

        def up() -> bool:
            self.ctr("version", timeout=5)
            return True

        wait_until("containerd", up, timeout=timeout, interval=0.1, alive=self._alive("containerd"))

    def _import_images(self) -> None:
        for ref, archive in self.image_archives.items():
            if not archive.exists():
                raise NodeError(f"image archive {archive} missing: run tools/images/build")
            self.ctr("images", "import", str(archive), timeout=300)
            names = self.ctr("images", "ls", "-q").split()
            if ref not in names:
                raise NodeError(f"{archive} imported, but {ref} is not among {names}")

    def _start_kubelet(self, timeout: float) -> None:
        self._spawn(
            "kubelet",
            [
                str(self.bindir / "kubelet"),
                f"--config={self.workdir / 'kubelet-config.json'}",
                f"--kubeconfig={self.workdir / 'kubelet.kubeconfig'}",
                f"--root-dir={self.workdir / 'kubelet'}",
                # defaults to /var/lib/kubelet/pki whatever --root-dir says
                f"--cert-dir={self.workdir / 'kubelet' / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}",
                f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
                f"--v={4 if self.verbose else 1}",
            ],
        )

    def _start_kube_proxy(self, timeout: float) -> None:
        self._spawn(
            "kube-proxy",
            [
                str(self.bindir / "kube-proxy"),
                f"--config={self.workdir / 'kube-proxy-config.json'}",
                f"--v={4 if self.verbose else 1}",
            ],
        )

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            obj = self.cp.get_json("node", self.name, check=False)
            if not obj:
                return False
            conds = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in obj.get("spec", {}).get("taints", []) or []}
            return conds.get("Ready") == "True" and taints == (
                {NODE_TAINT} if self.dedicated else set()
            )

        def alive() -> None:
            for name in ("containerd", "kubelet", "kube-proxy", "coredns"):
                self._alive(name)()

        wait_until(f"node {self.name} Ready", ready, timeout=timeout, interval=0.25, alive=alive)

        def proxy_healthy() -> bool:
            url = f"http://127.0.0.1:{self.ports['proxy_healthz']}/healthz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)

        wait_until("kube-proxy /healthz", proxy_healthy, timeout=timeout, alive=alive)

    def _start_dns(self, timeout: float) -> None:
        """CoreDNS for the cluster's names, on host_address behind the kube-dns Service
        (kubelet's clusterDNS). A process of the node like kube-proxy, not a pod: it is up
        before the first pod, needs no image, and goes with the node."""
        if not os.access(self.coredns, os.X_OK):
            raise NodeError(f"{self.coredns} missing: run tools/node/build")
        self._spawn("coredns", [str(self.coredns), "-conf", str(self.workdir / "Corefile")])
        objects = dns_objects(self.host_address, self.ports["dns"])
        self.cp.apply(*objects[:2])  # its read access first: it lists and watches at start

        def ready() -> bool:
            url = f"http://127.0.0.1:{self.ports['dns_ready']}/ready"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)

        wait_until("CoreDNS /ready", ready, timeout=timeout, alive=self._alive("coredns"))
        self.cp.apply(*objects[2:])

    def _stop_dns(self) -> None:
        self._stop_proc("coredns", 10)
        if self.node_ip and self.cp.running().get("kube-apiserver"):
            # the endpoint goes with this node; the Service stays for the next one
            self.cp.kubectl(
                "delete", "endpointslice", DNS_ENDPOINTS, "-n", "kube-system",
                "--wait=false", "--ignore-not-found", check=False, timeout=30,
            )  # fmt: skip

    def _delete_node_object(self) -> None:
        if self.node_ip and self.cp.running().get("kube-apiserver"):
            self.cp.kubectl("delete", "node", self.name, "--wait=false", check=False, timeout=30)

    def _kill_containers(self) -> None:
        if "containerd" not in self._procs or self._procs["containerd"].poll() is not None:
            return
        tasks = [line.split()[0] for line in self.ctr("tasks", "ls", "-q").split("\n") if line]
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, timeout=20)
        for task in tasks:

            def stopped(task: str = task) -> bool:
                return "RUNNING" not in self._task_status(task)

            # wait_until times out with a ControlPlaneError, not a NodeError
            with contextlib.suppress(ControlPlaneError):
                wait_until(f"task {task} to stop", stopped, timeout=10, interval=0.1)
            with contextlib.suppress(NodeError):
                self.ctr("tasks", "delete", "--force", task, timeout=20)
        for container in self.ctr("containers", "ls", "-q").split():
            with contextlib.suppress(NodeError):
                self.ctr("containers", "delete", container, timeout=20)

    def _task_status(self, task: str) -> str:
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == task:
                return parts[-1]
        return "GONE"


@contextlib.contextmanager
def running_node(cp: ControlPlane, **kwargs: Any) -> Iterator[RealNode]:
    node = RealNode(cp, **kwargs).start()
    try:
        yield node
    finally:
        node.stop(remove_workdir=True)
