"""A real Kubernetes node on this machine: containerd + runc + CNI bridge + kubelet +
kube-proxy, joined to a `ControlPlane` (tests/support/cluster.py), running real pods
from the images tools/images/build makes.

    cp = ControlPlane.start(controllers=True)
    node = RealNode(cp).start()        # Ready, images imported; ~5 s warm
    node.use_namespace("my-ns")        # every pod created in my-ns runs on the real node
    ip = node.expose_host_port("my-ns", "operator", 8080)   # ClusterIP -> host:8080
    node.stop()                        # the host is as it was before start()

The API the tests (and the operator's tests) use:

- `host_address`: the address on this host that pods reach (the gateway of the bridge
  this node creates). Bind a test server there (not 127.0.0.1) for pods to reach it.
- `expose_host_port(namespace, name, port)`: a selector-less Service + EndpointSlice
  pointing at `host_address:port`; returns the ClusterIP. Pods reach the server as
  `http://<name>.<namespace>.svc` would resolve (no DNS here: use the ClusterIP, or the
  `<NAME>_SERVICE_HOST` env var pods started after the Service get).
- `use_namespace(ns)`: annotate a namespace so the API server puts every pod created
  in it on this node (PodNodeSelector + PodTolerationRestriction), so code that makes
  Jobs need not know about nodes. `place(pod_spec)` does the same for one pod spec.
- `IMAGES` (short name -> reference; `imagePullPolicy: Never`, nothing is pulled):
  `greenloop` (entrypoint `greenloop`), `demo-app` (examples/demo/app on 127.0.0.1:8080
  inside the pod), `demo-suites` (examples/demo/tests + greenloop's pytest plugin,
  entrypoint `python3 -m pytest`, workdir /suites).
- `host_state()`: sysctls, interfaces, iptables rules, mounts, cgroups and the paths a
  node could write of the host, to compare before and after; `before_state` and
  `after_state` are those of one node's run, taken while it held the machine's node lock.

Placement: the real node is registered with the label `greenloop.dev/node=real` and the
taint `greenloop.dev/real-node=true:NoSchedule`, so pods that do not ask for it keep
landing on the kwok node (which stays for scale tests with many fake nodes).

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
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.support.cluster import (
    REPO_ROOT,
    SERVICE_CIDR,
    ControlPlane,
    ControlPlaneError,
    _set_pdeathsig,
    _tail,
    cache_root,
    free_ports,
    pinned_version,
    stop_process,
    wait_until,
    write_kubeconfig,
)

if TYPE_CHECKING:
    from tests.support.operator_process import Operator

NODE_BUILD = REPO_ROOT / "tools" / "node" / "build"
IMAGES_BUILD = REPO_ROOT / "tools" / "images" / "build"
CONTAINERD_VERSION = "v2.4.2"  # keep in step with tools/node/build
NODE_LABEL = ("greenloop.dev/node", "real")
NODE_TAINT = "greenloop.dev/real-node"
IMAGES = {
    "greenloop": "localhost/greenloop:dev",
    "demo-app": "localhost/greenloop-demo-app:dev",
    "demo-suites": "localhost/greenloop-demo-suites:dev",
}
CNI_BIN = Path("/usr/lib/cni")
#: kernel settings kubelet writes unless they already hold these values (host-wide)
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
#: written by the CNI bridge plugin when it is a gateway; the host keeps not forwarding
MASKED_SYSCTLS = {**KUBELET_SYSCTLS, "net/ipv4/ip_forward": "1"}
#: places containerd, its shims, runc, CNI and kubelet use whatever their configuration
#: says; inside the node's namespace each is a folder of the work directory
HIDDEN_DIRS = (
    "/run/containerd",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/etc/cni",
)
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")
K8S_NS = "k8s.io"


class NodeError(ControlPlaneError):
    """The real node could not be built, started or stopped cleanly."""


# --------------------------------------------------------------------------------------
# binaries and images


def node_dir() -> Path:
    return cache_root() / "node" / f"{pinned_version()}-containerd{CONTAINERD_VERSION}"


def ensure_built(*, output: IO[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Run tools/node/build and tools/images/build (each a no-op when up to date).
    Returns (bin dir, image manifest)."""
    out = output if output is not None else (sys.__stderr__ or sys.stderr)
    for script in (NODE_BUILD, IMAGES_BUILD):
        proc = subprocess.run(
            [str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHON": sys.executable},
            check=False,
        )
        out.write(proc.stdout)
        out.flush()
        if proc.returncode != 0:
            raise NodeError(f"{script.relative_to(REPO_ROOT)} failed (exit {proc.returncode})")
    manifest = json.loads((cache_root() / "images" / "images.json").read_text())
    return node_dir() / "bin", manifest


# --------------------------------------------------------------------------------------
# the host


def _run(*cmd: str, check: bool = True, timeout: float = 60.0) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def node_ip() -> str:
    """This machine's own non-loopback address (kubelet refuses a loopback node IP)."""
    for line in _run("ip", "-o", "-4", "addr", "show", "scope", "global").splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    raise NodeError("no non-loopback IPv4 address on this machine for the node IP")


def _iptables_rules() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for exe in ("iptables", "ip6tables"):
        if not shutil.which(exe):
            continue
        for table in IPTABLES_TABLES:
            out = subprocess.run(
                [exe, "-w", "5", "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            if out.returncode == 0:
                rules[f"{exe}/{table}"] = out.stdout.splitlines()
    return rules


def host_state_links() -> list[str]:
    return sorted(
        line.split(":")[1].strip().split("@")[0]
        for line in _run("ip", "-o", "link", "show").splitlines()
        if ":" in line
    )


def host_state() -> dict[str, Any]:
    """What a node could leave behind on the host: compare before and after."""
    sysctls = {}
    for key in [
        *MASKED_SYSCTLS,
        "net/ipv4/conf/all/route_localnet",
        "net/ipv4/conf/all/forwarding",
    ]:
        with contextlib.suppress(OSError):
            sysctls[key] = Path("/proc/sys", key).read_text().strip()
    links = host_state_links()
    # mounts and cgroups of the whole machine change as other work runs beside the tests;
    # these are the ones a node makes
    node_mounts = ("/proc/sys", "/var/log", "/run", "/var/lib", "/etc/cni", "/sys/fs/cgroup")
    mounts = sorted(
        point
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        for point in [line.split()[4]]
        if point.startswith(node_mounts) or "gln-" in point
    )
    cgroups = sorted(
        str(p.relative_to("/sys/fs/cgroup"))
        for p in Path("/sys/fs/cgroup").glob("*/*")
        if p.is_dir() and p.name.startswith(("greenloop-", "kubepods"))
    )
    paths = sorted(
        str(p) for d in HIDDEN_DIRS if Path(d).exists() for p in [Path(d), *Path(d).rglob("*")]
    )
    return {
        "paths": paths,
        "sysctls": sysctls,
        "links": links,
        "iptables": _iptables_rules(),
        "mounts": mounts,
        "cgroups": cgroups,
    }


def _pick_pod_subnet() -> ipaddress.IPv4Network:
    used = [
        ipaddress.ip_network(line.split()[0], strict=False)
        for line in _run("ip", "-4", "route", "show").splitlines()
        if line and line.split()[0][0].isdigit()
    ]
    service = ipaddress.ip_network(SERVICE_CIDR)
    for _ in range(200):
        net = ipaddress.ip_network(
            f"10.{secrets.randbelow(200) + 40}.{secrets.randbelow(256)}.0/24"
        )
        if not net.overlaps(service) and not any(net.overlaps(u) for u in used):
            return net
    raise NodeError("no free 10.x.y.0/24 for the pod network")


# --------------------------------------------------------------------------------------
# the node


class RealNode:
    """containerd + kubelet + kube-proxy on this machine, registered with `cp`."""

    def __init__(
        self,
        cp: ControlPlane,
        *,
        bindir: Path | None = None,
        images: dict[str, Any] | None = None,
        verbose: bool = False,
        lock_timeout: float = 600.0,
    ) -> None:
        self.cp = cp
        if bindir is None or images is None:
            bindir, images = ensure_built()
        self.bindir = bindir
        self.image_archives = {v["image"]: Path(v["archive"]) for v in images.values()}
        self.pause_image = images["pause"]["image"]
        self.verbose = verbose
        self.lock_timeout = lock_timeout
        self.id = secrets.token_hex(3)
        self.name = f"greenloop-node-{self.id}"
        self.bridge = f"glbr{self.id}"
        self.cgroup_root = f"greenloop-{self.id}"
        self.node_ip = ""
        self.pod_subnet: ipaddress.IPv4Network | None = None
        self.host_address = ""
        self.workdir = Path()
        self.timings: dict[str, float] = {}
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
            self._reap_leftovers()
            self._before = host_state()
            self.before_state = self._before
            self.workdir = Path(tempfile.mkdtemp(prefix=f"gln-{self.id}-"))
            (self.workdir / "logs").mkdir()
            self.node_ip = node_ip()
            self.pod_subnet = _pick_pod_subnet()
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
        return _run(
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
        return self.workdir / "containerd" / "containerd.sock"

    def _acquire_lock(self) -> None:
        path = cache_root() / "node" / ".run.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise NodeError(
                        f"another real node runs on this machine (lock {path}); "
                        "only one at a time, since kube-proxy's iptables chains are host-wide"
                    ) from None
                time.sleep(0.5)
        self._lock_fd = fd

    def _reap_leftovers(self) -> None:
        """Remove what a killed run (SIGKILL: no teardown) left. Holding the machine's node
        lock, any bridge or cgroup root of ours and kubelet's or kube-proxy's canary chain
        belongs to a run that is gone."""
        reaped: list[str] = []
        shims = _shim_pids(f"{tempfile.gettempdir()}/gln-")
        for pid in shims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if shims:
            reaped.append(f"{len(shims)} containerd shim(s)")
        pids: set[int] = set()
        for root in Path("/sys/fs/cgroup").glob("*/greenloop-*"):
            for d in root.rglob("*"):
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if pids:
            reaped.append(f"{len(pids)} container process(es)")
        if shims or pids:
            time.sleep(0.5)  # let the kernel take them out of their cgroups
        for line in _run("ip", "-o", "link", "show", "type", "bridge").splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith("glbr"):
                _run("ip", "link", "del", name, check=False)
                reaped.append(f"bridge {name}")
        for root in Path("/sys/fs/cgroup").glob("*/greenloop-*"):
            dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for d in [*dirs, root]:
                with contextlib.suppress(OSError):
                    d.rmdir()
            if not root.exists():
                reaped.append(f"cgroup {root}")
        rules = _iptables_rules()
        canaries = ("-N KUBE-KUBELET-CANARY", "-N KUBE-PROXY-CANARY")
        if any(r in canaries for lines in rules.values() for r in lines):
            self._clean_iptables(only_kube=True)
            reaped.append("iptables chains KUBE-*")
        made = _made_dirs_record()
        if made.exists():
            for d in made.read_text().split():
                with contextlib.suppress(OSError):
                    Path(d).rmdir()
                    reaped.append(f"mount point {d}")
            made.unlink()
        if reaped:
            print(
                f"[greenloop] removed what an earlier, killed node run left: {', '.join(reaped)}",
                file=sys.__stderr__ or sys.stderr,
            )

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_config(self) -> None:
        w = self.workdir
        assert self.pod_subnet is not None
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "varlog", "sysctl"):
            (w / sub).mkdir(parents=True)
        pki = self.cp.pki
        kubelet_cert, kubelet_key = pki.issue(
            f"kubelet-{self.id}", f"system:node:{self.name}", organizations=["system:nodes"]
        )
        write_kubeconfig(
            w / "kubelet.kubeconfig",
            server=self.cp.server,
            ca=pki.ca_cert,
            cert=kubelet_cert,
            key=kubelet_key,
            user=f"system:node:{self.name}",
            cluster="greenloop-test",
        )
        serving_cert, serving_key = pki.issue(
            f"kubelet-serving-{self.id}",
            self.name,
            server_sans=[f"IP:{self.node_ip}", f"DNS:{self.name}"],
            client=False,
        )
        proxy_cert, proxy_key = pki.issue(f"kube-proxy-{self.id}", "system:kube-proxy")
        write_kubeconfig(
            w / "kube-proxy.kubeconfig",
            server=self.cp.server,
            ca=pki.ca_cert,
            cert=proxy_cert,
            key=proxy_key,
            user="system:kube-proxy",
            cluster="greenloop-test",
        )
        for key, value in MASKED_SYSCTLS.items():
            (w / "sysctl" / key.replace("/", ".")).write_text(value + "\n")
        (w / "resolv.conf").write_text("# no DNS: all traffic stays on this machine\n")
        (w / "containerd" / "config.toml").write_text(
            _containerd_config(w, self.pause_image, self.bindir)
        )
        (w / "cni" / "net.d" / "10-greenloop.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": f"greenloop-{self.id}",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.bridge,
                            "isGateway": True,
                            "ipMasq": False,  # no NAT: nothing leaves this machine
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "dataDir": str(w / "cni" / "ipam"),
                                "ranges": [
                                    [{"subnet": str(self.pod_subnet), "gateway": self.host_address}]
                                ],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        },
                        {"type": "loopback"},
                    ],
                },
                indent=2,
            )
        )
        kport, hport = free_ports(2)
        self.ports = {"kubelet": kport, "kubelet_healthz": hport}
        kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": kport,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": hport,
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            # only holders of a certificate from the test CA (the API server) get in
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "containerRuntimeEndpoint": f"unix://{self._sock}",
            "resolvConf": str(w / "resolv.conf"),
            "clusterDomain": "cluster.local",
            "volumePluginDir": str(w / "kubelet" / "volume-plugins"),
            "registerWithTaints": [{"key": NODE_TAINT, "value": "true", "effect": "NoSchedule"}],
            "nodeStatusUpdateFrequency": "2s",
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "maxPods": 50,
            "shutdownGracePeriod": "0s",
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "containerLogMaxSize": "1Mi",
            "logging": {"format": "text"},
        }
        (w / "kubelet-config.json").write_text(json.dumps(kubelet_config, indent=2))
        proxy_healthz, proxy_metrics = free_ports(2)
        self.ports.update(proxy_healthz=proxy_healthz, proxy_metrics=proxy_metrics)
        proxy_config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(w / "kube-proxy.kubeconfig")},
            "mode": "iptables",
            "hostnameOverride": self.name,
            "clusterCIDR": str(self.pod_subnet),
            "healthzBindAddress": f"127.0.0.1:{proxy_healthz}",
            "metricsBindAddress": f"127.0.0.1:{proxy_metrics}",
            # leave the host's conntrack and route_localnet settings alone
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "syncPeriod": "5s", "minSyncPeriod": "0s"},
            "nodePortAddresses": [f"{self.node_ip}/32"],
        }
        (w / "kube-proxy-config.json").write_text(json.dumps(proxy_config, indent=2))

    def _make_bridge(self) -> None:
        # made here (not by the CNI plugin) so host_address exists before the first pod
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        _run(
            "ip",
            "addr",
            "add",
            f"{self.host_address}/{self.pod_subnet.prefixlen}",
            "dev",
            self.bridge,
        )  # type: ignore[union-attr]
        # A pod reaching another pod through a ClusterIP is routed by this host (DNAT,
        # then out of the same bridge). Forwarding is allowed for packets that arrive on
        # this bridge only: the machine-wide ip_forward stays as it was, and the setting
        # goes with the bridge.
        Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/forwarding").write_text("1\n")
        _run("ip", "link", "set", self.bridge, "up")

    def _remove_bridge(self) -> None:
        if self._bridge_made:
            _run("ip", "link", "del", self.bridge, check=False)
            self._bridge_made = False

    def _wait_links_gone(self) -> None:
        """A pod's veth goes when its network namespace is freed, a moment after its
        last process and mount went."""
        if not self._before:
            return
        before = set(self._before["links"])

        def gone() -> bool:
            now = set(host_state_links())
            return not {n for n in now - before if n.startswith("veth")}

        wait_until("the pods' veth interfaces to go", gone, timeout=15, interval=0.1)

    def _remove_made_dirs(self) -> None:
        while self._made_dirs:
            path = self._made_dirs.pop()
            path.rmdir()  # empty: everything went into the work directory
        _made_dirs_record().unlink(missing_ok=True)

    def _make_cgroups(self) -> None:
        # kubelet wants its cgroup root to exist in every hierarchy
        for hierarchy in sorted(Path("/sys/fs/cgroup").iterdir()):
            if not hierarchy.is_dir() or not (hierarchy / "cgroup.procs").exists():
                continue
            path = hierarchy / self.cgroup_root
            path.mkdir()
            self._made_cgroups.append(path)
            if hierarchy.name == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (path / f).write_text((hierarchy / f).read_text())

    def _cgroup_dirs(self) -> list[Path]:
        found: list[Path] = []
        for root in self._made_cgroups:
            if root.exists():
                found += [p for p in root.rglob("*") if p.is_dir()]
                found.append(root)
        return found

    def _kill_cgroup_procs(self) -> None:
        for _ in range(20):
            pids = set()
            for d in self._cgroup_dirs():
                with contextlib.suppress(OSError):
                    pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        raise NodeError(f"processes left in cgroup {self.cgroup_root}")

    def _remove_cgroups(self) -> None:
        left: list[str] = []
        for d in sorted(self._cgroup_dirs(), key=lambda p: len(p.parts), reverse=True):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                left.append(str(d))
        self._made_cgroups = [p for p in self._made_cgroups if p.exists()]
        if left:
            raise NodeError(f"cgroups still busy: {', '.join(left[:5])}")

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
                preexec_fn=_set_pdeathsig,
            )

    def _alive(self, name: str) -> Any:
        def check() -> None:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                log = self._logs.get(name)
                tail = _tail(log) if log else ""
                raise NodeError(f"{name} exited with code {proc.returncode}:\n{tail}")

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
                preexec_fn=_set_pdeathsig,
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
                with _made_dirs_record().open("a") as record:  # for a run killed meanwhile
                    record.write(f"{d}\n")
            mounts.append((src, Path(d)))
        mounts += [
            (self.workdir / "sysctl" / key.replace("/", "."), Path("/proc/sys", key))
            for key in MASKED_SYSCTLS
            if Path("/proc/sys", key).exists()
        ]
        script = "set -e\n" + "".join(f"mount --bind '{src}' '{dst}'\n" for src, dst in mounts)
        _run("nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", "sh", "-c", script)

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
            return conds.get("Ready") == "True" and taints == {NODE_TAINT}

        def alive() -> None:
            for name in ("containerd", "kubelet", "kube-proxy"):
                self._alive(name)()

        wait_until(f"node {self.name} Ready", ready, timeout=timeout, interval=0.25, alive=alive)

        import urllib.request

        def proxy_healthy() -> bool:
            url = f"http://127.0.0.1:{self.ports['proxy_healthz']}/healthz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)

        wait_until("kube-proxy /healthz", proxy_healthy, timeout=timeout, alive=alive)

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
            with contextlib.suppress(NodeError):
                wait_until(
                    f"task {task} to stop",
                    lambda t=task: "RUNNING" not in self._task_status(t),
                    timeout=10,
                    interval=0.1,
                )
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

    def _kill_shims(self) -> None:
        """Shims reparent themselves to init; find ours by the socket in their command line."""
        if self.workdir == Path():
            return
        for _ in range(20):
            found = _shim_pids(str(self.workdir))
            if not found:
                return
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _clean_iptables(self, *, only_kube: bool = False) -> None:
        """kube-proxy --cleanup, then remove any rule and chain the node added (kubelet's
        canaries); `only_kube`: every KUBE-* chain and the rules that jump to one."""
        if not self._before and not only_kube:
            return
        if (self.workdir / "kube-proxy-config.json").exists():
            _run(
                str(self.bindir / "kube-proxy"),
                f"--config={self.workdir / 'kube-proxy-config.json'}",
                "--cleanup",
                check=False,
            )
        before = {} if only_kube else self._before["iptables"]

        def ours(rule: str) -> bool:
            words = shlex.split(rule)
            return not only_kube or words[1].startswith("KUBE-") or "-j KUBE-" in rule

        for key, rules in _iptables_rules().items():
            exe, table = key.split("/")
            old = set(before.get(key, []))
            for rule in rules:
                if rule.startswith("-A ") and rule not in old and ours(rule):
                    _run(exe, "-w", "5", "-t", table, "-D", *shlex.split(rule)[1:], check=False)
            chains = [
                r.split()[1] for r in rules if r.startswith("-N ") and r not in old and ours(r)
            ]
            for chain in chains:
                _run(exe, "-w", "5", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(exe, "-w", "5", "-t", table, "-X", chain, check=False)


def _shim_pids(address_prefix: str) -> list[int]:
    """containerd shims whose -address starts with `address_prefix`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("containerd-shim-runc-v2") and "-address" in argv:
            address = (
                argv[argv.index("-address") + 1] if argv.index("-address") + 1 < len(argv) else ""
            )
            if address.startswith(address_prefix):
                found.append(int(entry.name))
    return found


def _made_dirs_record() -> Path:
    """Mount points a node created on the host (so a later run can remove them)."""
    return cache_root() / "node" / "made-mount-points"


def _containerd_config(w: Path, pause_image: str, bindir: Path) -> str:
    c = w / "containerd"
    return f"""\
version = 3
root = "{c / "root"}"
state = "{c / "state"}"
temp = "{c / "tmp"}"
# not needed here, and each would leave files or sockets outside the work directory
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{c / "containerd.sock"}"

[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # this machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{w / "cni" / "net.d"}"
    max_conf_num = 1

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{pause_image}"

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


@contextlib.contextmanager
def running_node(cp: ControlPlane, **kwargs: Any) -> Iterator[RealNode]:
    node = RealNode(cp, **kwargs).start()
    try:
        yield node
    finally:
        node.stop(remove_workdir=True)


# --------------------------------------------------------------------------------------
# `tools/controlplane/up --node [--operator]`


def _start_operator(cp: ControlPlane, node: RealNode) -> Operator:
    """The CRD, `greenloop operator` on this host for every namespace, its results
    endpoint behind a Service pods reach, and a namespace `demo` placed on the node —
    wired as tests/integration/test_operator_demo.py wires them."""
    from tests.support.operator_process import Operator
    from tests.support.owners import ensure_crd

    ensure_crd(cp)
    for namespace in ("greenloop-system", "demo"):
        cp.create_namespace(namespace)
    node.use_namespace("demo")
    port, metrics = free_ports(2)
    ip = node.expose_host_port("greenloop-system", "greenloop-results", port, service_port=8081)
    operator = Operator(
        cp, "", cp.workdir / "operator.log", f"http://{ip}:8081", port,
        host=node.host_address, metrics_port=metrics, log_format="json",
    )  # fmt: skip
    operator.start()
    wait_until(
        "the operator's results endpoint",
        lambda: b"results endpoint on" in operator.log.read_bytes()
        or (operator.proc is not None and operator.proc.poll() is not None),
        timeout=60, interval=0.2,
    )  # fmt: skip
    if operator.proc is None or operator.proc.poll() is not None:
        raise ControlPlaneError(f"greenloop operator exited:\n{operator.tail()}")
    return operator


def _cmd_up(argv: list[str]) -> int:
    import argparse
    import textwrap

    parser = argparse.ArgumentParser(
        prog="tools/controlplane/up --node",
        description="The test control plane plus a real node (containerd, kubelet, "
        "kube-proxy) on this machine, in the foreground; Ctrl-C or SIGTERM stops both "
        "and leaves the host as it was.",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("-v", "--verbose", action="store_true", help="verbose component logs")
    parser.add_argument(
        "--operator", action="store_true",
        help="also install the CRD and run `greenloop operator` on this host, wired as the "
        "tests wire it (pods reach its results endpoint through a Service), with a "
        "namespace `demo` whose pods run on the real node",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    cp: ControlPlane | None = None
    node: RealNode | None = None
    operator: Operator | None = None
    t0 = time.monotonic()
    try:
        print("[greenloop] building/checking the node and images ...", flush=True)
        bindir, images = ensure_built(output=sys.stderr)
        print("[greenloop] starting the control plane ...", flush=True)
        cp = ControlPlane.start(controllers=True, build_output=sys.stderr, verbose=args.verbose)
        print("[greenloop] starting the real node ...", flush=True)
        node = RealNode(cp, bindir=bindir, images=images, verbose=args.verbose).start()
        print(f"[greenloop] node {node.name} Ready in {time.monotonic() - t0:.1f}s\n", flush=True)
        if args.operator:
            print("[greenloop] starting greenloop operator ...", flush=True)
            operator = _start_operator(cp, node)
        print(cp.describe())
        print(node.describe())
        print(
            textwrap.dedent(f"""
            Control plane {cp.version} with a real node is up. In another shell:

                export KUBECONFIG={cp.kubeconfig}
                kubectl get nodes

            Pods run on {node.name} when they ask for it (nodeSelector
            {NODE_LABEL[0]}={NODE_LABEL[1]} and a toleration for {NODE_TAINT}), or in a
            namespace annotated for it:

                kubectl annotate namespace NS \\
                  scheduler.alpha.kubernetes.io/node-selector={NODE_LABEL[0]}={NODE_LABEL[1]} \\
                  'scheduler.alpha.kubernetes.io/defaultTolerations=[{{"key":"{NODE_TAINT}","operator":"Exists"}}]'

            Images (imagePullPolicy: Never): {", ".join(IMAGES.values())}
            Servers on the host are reachable from pods at {node.host_address}.
            Ctrl-C stops everything.
            """),
            flush=True,
        )
        if operator is not None:
            print(
                textwrap.dedent(f"""
                greenloop operator (pid {operator.proc.pid if operator.proc else "?"}) watches
                every namespace; its log: {operator.log}
                Results endpoint: {node.host_address}:{operator.port} on this host, reached
                by pods as {operator.url} (Service greenloop-system/greenloop-results).
                Metrics: http://127.0.0.1:{operator.metrics_port}/metrics

                The demo, in the namespace `demo` (its pods run on the real node):

                    export KUBECONFIG={cp.kubeconfig}
                    kubectl apply -n demo -f examples/demo/k8s/demo-shop.yaml
                    kubectl rollout status -n demo deployment/demo-shop
                    kubectl apply -n demo -f examples/demo/k8s/validation.yaml
                    kubectl wait -n demo --for=condition=Ready sv/demo --timeout=300s
                    kubectl get sv -n demo
                """),
                flush=True,
            )
        while True:
            alive = {**cp.running(), **node.running()}
            if operator is not None:
                alive["greenloop operator"] = operator.proc is not None and (
                    operator.proc.poll() is None
                )
            for name, ok in alive.items():
                if not ok:
                    print(f"[greenloop] {name} exited unexpectedly", file=sys.stderr)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\n[greenloop] stopping ...", flush=True)
        return 0
    except ControlPlaneError as exc:
        print(f"[greenloop] ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        if operator is not None:
            operator.kill(signal.SIGTERM)
        if node is not None:
            try:
                node.stop(remove_workdir=not args.keep)
            except NodeError as exc:
                print(f"[greenloop] {exc}", file=sys.stderr)
        if cp is not None:
            cp.stop()
            if not args.keep:
                shutil.rmtree(cp.workdir, ignore_errors=True)
        print("[greenloop] stopped.", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["up"]:
        sys.exit(_cmd_up(sys.argv[2:]))
    print("usage: python -m tests.support.node up [--keep] [-v]", file=sys.stderr)
    sys.exit(2)
