"""A real Kubernetes control plane on 127.0.0.1 for tests and for people.

    cp = ControlPlane.start()          # etcd + kube-apiserver (RBAC on, secure port only)
    cp.start_controllers()             # + controller-manager, scheduler, kwok, one Ready node
    cp.kubectl("get", "nodes")
    cp.stop()

Clients (kubeconfigs, kubectl, the operator on the host) use https://127.0.0.1:<port>.
`ControlPlane.start(serve_pods=True)` is for a control plane a real node joins (the
node fixtures, `up --node`): the API server then also listens on the machine's own
address and advertises it, so pods reach it through the `kubernetes` Service
(https://kubernetes.default.svc, 10.0.0.1:443) with their ServiceAccount token, as on any
cluster; traffic stays on this machine. Without it, it listens on loopback only.

The binaries come from tools/controlplane/build, which builds them once from the
Go module proxy into ~/.cache/greenloop/controlplane/<version>/; `ControlPlane.start`
runs it when they are missing. Every start uses a fresh temporary work directory
(certificates, data, logs, kubeconfigs) and fresh free loopback ports, so parallel
sessions do not collide. `stop` ends only the processes this object started, by pid.

For a person: `tools/controlplane/up` (= `python -m tools.cluster up`).

Standard library only (plus PyYAML when a caller passes objects to `apply`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from tools.cluster.binaries import KWOK_STAGES, REPO_ROOT, ensure_binaries, missing_binaries
from tools.cluster.client import Client, KubectlError
from tools.cluster.host import node_ip
from tools.cluster.pki import PKI, write_kubeconfig
from tools.cluster.procs import (
    ControlPlaneError,
    free_ports,
    set_pdeathsig,
    stop_process,
    tail,
    wait_until,
)

NODE_NAME = "kwok-node-0"
#: config/rbac/tenant-role.yaml (ClusterRole greenloop-tenant) and the RoleBinding
#: `create_namespace` makes of it in each namespace.
TENANT_ROLE = REPO_ROOT / "config" / "rbac" / "tenant-role.yaml"
TENANT_BINDING = "greenloop-tenant-all"
#: Annotation that tells our kwok controller which nodes are its fake ones.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SERVICE_CIDR = "10.0.0.0/24"
#: the `kubernetes` Service (the first address of SERVICE_CIDR) and cluster DNS (kube-dns)
KUBERNETES_SERVICE_IP = "10.0.0.1"
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"


# --------------------------------------------------------------------------------------
# the control plane


class ControlPlane(Client):
    """etcd + kube-apiserver on loopback, optionally with the controllers and a kwok node.

    Attributes other code relies on: `kubeconfig` (admin, group system:masters),
    `server` (https://127.0.0.1:<port>), `version` (the API server's gitVersion,
    e.g. "v1.37.2"), `workdir` (certs, logs, data) and `advertise_address` (the address
    pods reach the API server at through the `kubernetes` Service; "" unless serve_pods).
    """

    kubeconfig: Path
    server: str
    version: str
    workdir: Path

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bindir: Path | None = None,
        build: bool = True,
        build_output: IO[str] | None = None,
        verbose: bool = False,
        serve_pods: bool = False,
        audit: bool = False,
    ) -> None:
        self.bindir = bindir or ensure_binaries(build=build, output=build_output)
        missing = missing_binaries(self.bindir)
        if missing and set(missing) != {"kubectl"}:
            raise ControlPlaneError(f"missing in {self.bindir}: {', '.join(missing)}")
        kubectl = self.bindir / "kubectl"
        found = str(kubectl) if os.access(kubectl, os.X_OK) else shutil.which("kubectl")
        if not found:
            raise ControlPlaneError("no kubectl: neither in the binary cache nor on PATH")
        self.kubectl_path = found
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="greenloop-cp-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.pki = PKI(self.workdir / "pki")
        pki_dir = self.pki.dir
        self._serving_cert = pki_dir / "kube-apiserver.crt"
        self._serving_key = pki_dir / "kube-apiserver.key"
        self._admin_cert, self._admin_key = pki_dir / "admin.crt", pki_dir / "admin.key"
        self._sa_key = pki_dir / "service-account.key"
        self._sa_pub = pki_dir / "service-account.pub"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.version = ""
        self.ports: dict[str, int] = {}
        self.verbose = verbose
        # An audit log of every request (metadata level): who asked what, for tests and
        # benches that count a client's requests (`audit_events`).
        self.audit_log = self.workdir / "logs" / "audit.log" if audit else None
        # kubelet refuses a loopback node IP, and the `kubernetes` Service's endpoints may
        # not be one either: pods reach the API server at the machine's own address
        self.advertise_address = node_ip() if serve_pods else ""
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._user_kubeconfigs: dict[tuple[str, tuple[str, ...]], Path] = {}
        self._controllers_started = False
        self._tenant_role_applied = False
        self._lock = threading.RLock()
        self._ssl: ssl.SSLContext | None = None

    # ---- lifecycle ----------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        controllers: bool = False,
        workdir: Path | None = None,
        build: bool = True,
        build_output: IO[str] | None = None,
        verbose: bool = False,
        serve_pods: bool = False,
        audit: bool = False,
    ) -> ControlPlane:
        """Start etcd and kube-apiserver (and the controllers if asked); ready on return.
        `serve_pods`: reachable from a real node's pods too (see the module docstring).
        `audit`: the API server writes an audit log (`audit_events` reads it)."""
        cp = cls(
            workdir,
            build=build,
            build_output=build_output,
            verbose=verbose,
            serve_pods=serve_pods,
            audit=audit,
        )
        try:
            cp.start_apiserver()
            if controllers:
                cp.start_controllers()
        except ControlPlaneError as exc:
            cp.stop()
            raise ControlPlaneError(f"{exc}\n(logs kept in {cp.logdir})") from exc
        except BaseException:
            cp.stop()
            raise
        return cp

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Stop; remove a work directory this object created, unless an error is leaving."""
        self.stop()
        if exc_type is None and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            print(f"[greenloop] control-plane logs kept in {self.logdir}", file=sys.stderr)

    def start_apiserver(self, *, timeout: float = 90.0) -> None:
        """Certificates, etcd, kube-apiserver; returns when /readyz says ok."""
        with self._lock:
            if "kube-apiserver" in self._procs:
                return
            t0 = time.monotonic()
            self._make_pki()
            for attempt in range(3):
                etcd_client, etcd_peer, api = free_ports(3)
                self.ports.update(etcd=etcd_client, etcd_peer=etcd_peer, apiserver=api)
                self.server = f"https://127.0.0.1:{api}"
                try:
                    self._start_etcd(timeout=timeout)
                    self._start_kube_apiserver(timeout=timeout)
                    break
                except ControlPlaneError as exc:
                    if attempt < 2 and "address already in use" in str(exc):
                        self._stop_procs(["kube-apiserver", "etcd"])
                        continue
                    raise
            self.timings["apiserver"] = time.monotonic() - t0

    def restart_apiserver(self, *, timeout: float = 90.0) -> None:
        """Stop kube-apiserver and start it again on the same port (etcd keeps the data):
        every client's connections and watches break, as in an API server upgrade."""
        with self._lock:
            self._stop_procs(["kube-apiserver"])
            self._start_kube_apiserver(timeout=timeout)

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit log's events so far (one per request, when it completed); [] when
        the control plane was started without `audit`."""
        if self.audit_log is None or not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    def start_controllers(self, *, timeout: float = 90.0) -> None:
        """kube-controller-manager, kube-scheduler, kwok and one Ready fake node. Idempotent."""
        with self._lock:
            if self._controllers_started and all(
                self._procs[n].poll() is None
                for n in ("kube-controller-manager", "kube-scheduler", "kwok")
            ):
                return
            if "kube-apiserver" not in self._procs:
                self.start_apiserver()
            t0 = time.monotonic()
            kcm_port, sched_port, kwok_port = free_ports(3)
            self.ports.update(
                kube_controller_manager=kcm_port, kube_scheduler=sched_port, kwok=kwok_port
            )
            pki = self.pki
            if "kube-controller-manager" not in self._procs:
                kcm_dir = self.workdir / "kube-controller-manager"
                kcm_dir.mkdir(exist_ok=True)
                kc = self._component_kubeconfig(
                    "kube-controller-manager", "system:kube-controller-manager"
                )
                self._spawn(
                    "kube-controller-manager",
                    f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}",
                    f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    f"--cert-dir={kcm_dir}",
                    # kcm creates this directory; keep it out of /usr/libexec
                    f"--flex-volume-plugin-dir={kcm_dir / 'flexvolume'}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--root-ca-file={pki.ca_cert}",
                    f"--service-account-private-key-file={self._sa_key}",
                    f"--cluster-signing-cert-file={pki.ca_cert}",
                    f"--cluster-signing-key-file={pki.ca_key}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    # react quickly in tests: node and namespace housekeeping
                    "--node-monitor-period=2s",
                    "--concurrent-gc-syncs=10",
                    f"--v={2 if self.verbose else 0}",
                )
            if "kube-scheduler" not in self._procs:
                sched_dir = self.workdir / "kube-scheduler"
                sched_dir.mkdir(exist_ok=True)
                kc = self._component_kubeconfig("kube-scheduler", "system:kube-scheduler")
                self._spawn(
                    "kube-scheduler",
                    f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}",
                    f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={sched_port}",
                    f"--cert-dir={sched_dir}",
                    "--leader-elect=false",
                    f"--v={2 if self.verbose else 0}",
                )
            if "kwok" not in self._procs:
                kwok_home = self.workdir / "kwok"
                kwok_home.mkdir(exist_ok=True)
                self._spawn(
                    "kwok",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={KWOK_STAGES}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=" + "=".join(KWOK_NODE_ANNOTATION),
                    "--node-ip=127.0.0.1",
                    "--node-name=127.0.0.1",
                    f"--node-port={kwok_port}",
                    f"--server-address=127.0.0.1:{kwok_port}",
                    f"--tls-cert-file={self._admin_cert}",
                    f"--tls-private-key-file={self._admin_key}",
                    "--node-lease-duration-seconds=40",
                    env={"HOME": str(kwok_home)},
                )
            self._wait_healthz("kube-controller-manager", kcm_port, timeout)
            self._wait_healthz("kube-scheduler", sched_port, timeout)
            self.kubectl("apply", "-f", "-", input=json.dumps(_fake_node(NODE_NAME)))
            self._wait_node_ready(NODE_NAME, timeout)
            self.wait_for_service_account("default", timeout=timeout)
            self._controllers_started = True
            self.timings["controllers"] = time.monotonic() - t0

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the processes this object started (by pid), newest first. Idempotent."""
        with self._lock:
            self._stop_procs(list(reversed(self._procs)), timeout=timeout)
            self._controllers_started = False

    def cleanup(self) -> None:
        """Remove the work directory (stop first)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}

    @property
    def logs(self) -> dict[str, Path]:
        return dict(self._logs)

    def running(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self._procs.items()}

    # ---- clients ------------------------------------------------------------------

    def kubeconfig_for_user(self, name: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for a client-certificate user `name` in `groups`; no RBAC bindings."""
        key = (name, tuple(groups))
        with self._lock:
            if key in self._user_kubeconfigs:
                return self._user_kubeconfigs[key]
            if not self.server:
                raise ControlPlaneError("start the API server before asking for user kubeconfigs")
            stem = f"user-{len(self._user_kubeconfigs)}-" + "".join(
                c if c.isalnum() or c in "-_." else "_" for c in name
            )
            path = self._component_kubeconfig(stem, name, groups)
            self._user_kubeconfigs[key] = path
            return path

    def create_namespace(
        self, name: str, *, timeout: float = 60.0, tenant_role: bool = True
    ) -> str:
        """Create a namespace; with controllers running, wait for its default ServiceAccount
        (pods are rejected until the serviceaccount controller has made it). With
        `tenant_role`, its accounts may do what greenloop does for its objects."""
        self.kubectl("create", "namespace", name)
        if tenant_role:
            self.grant_tenant_role(name)
        if self._controllers_started:
            self.wait_for_service_account(name, timeout=timeout)
        return name

    def grant_tenant_role(self, namespace: str) -> None:
        """Bind config/rbac/tenant-role.yaml's ClusterRole (applied once) in `namespace` to
        all its ServiceAccounts - the group `system:serviceaccounts:<ns>`, which the API
        server gives an impersonated account - so greenloop may act for the objects
        there whatever account they name (docs/design.md §8 "Tenancy").
        tests/integration/test_tenancy.py revokes it (`revoke_tenant_role`)."""
        with self._lock:  # two threads' first namespaces: one apply, not two racing
            if not self._tenant_role_applied:
                try:
                    self.kubectl("apply", "-f", str(TENANT_ROLE))
                except KubectlError as err:
                    if "AlreadyExists" not in str(err):  # another client created it first
                        raise
                    self.kubectl("apply", "-f", str(TENANT_ROLE))
                self._tenant_role_applied = True
        self.kubectl(
            "create", "rolebinding", TENANT_BINDING, "-n", namespace,
            "--clusterrole=greenloop-tenant", f"--group=system:serviceaccounts:{namespace}",
        )  # fmt: skip

    def revoke_tenant_role(self, namespace: str) -> None:
        self.kubectl("delete", "rolebinding", TENANT_BINDING, "-n", namespace, "--ignore-not-found")

    def wait_for_service_account(
        self, namespace: str, name: str = "default", *, timeout: float = 60.0
    ) -> None:
        wait_until(
            f"serviceaccount {namespace}/{name}",
            lambda: (
                self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False).returncode
                == 0
            ),
            timeout=timeout,
            interval=0.2,
        )

    # ---- internals ----------------------------------------------------------------

    def _make_pki(self) -> None:
        if self.pki.ca_cert.exists():
            return
        t0 = time.monotonic()
        self.pki.make_ca()
        sans = [
            "IP:127.0.0.1",
            f"IP:{KUBERNETES_SERVICE_IP}",  # the in-cluster `kubernetes` Service
            *([f"IP:{self.advertise_address}"] if self.advertise_address else []),
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
        self.pki.issue("kube-apiserver", "kube-apiserver", server_sans=sans, client=False)
        self.pki.issue("admin", "greenloop-admin", organizations=["system:masters"])
        self.pki.make_keypair("service-account")
        # aggregation layer (front proxy), as kubeadm sets it up
        self.pki.issue("front-proxy-client", "front-proxy-client")
        self.pki.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=["system:masters"],
        )
        self.timings["pki"] = time.monotonic() - t0

    def _component_kubeconfig(self, name: str, user: str, groups: Sequence[str] = ()) -> Path:
        """A client certificate for `user` (in `groups`) and a kubeconfig that uses it."""
        cert, key = self.pki.issue(name, user, organizations=groups)
        return write_kubeconfig(
            self.workdir / f"{name}.kubeconfig",
            server=self.server,
            ca=self.pki.ca_cert,
            cert=cert,
            key=key,
            user=user,
            cluster="greenloop-test",
        )

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = self.logdir / f"{name}.log"
        self._logs[name] = log
        cmd = [str(self.bindir / name), *args]
        with log.open("ab") as fh:
            fh.write(("$ " + " ".join(cmd) + "\n").encode())
            fh.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not them
                preexec_fn=set_pdeathsig if sys.platform.startswith("linux") else None,
            )
        self._procs[name] = proc

    def _check_alive(self, name: str) -> Callable[[], None]:
        def check() -> None:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode} during start-up; "
                    f"last lines of {self._logs[name]}:\n{tail(self._logs[name])}"
                )

        return check

    def _start_etcd(self, *, timeout: float) -> None:
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._spawn(
            "etcd",
            "--name=greenloop",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=greenloop={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",  # throwaway test data: skip fsync
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        )

        def healthy() -> bool:
            with urllib.request.urlopen(client + "/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")

        wait_until(
            "etcd /health", healthy, timeout=timeout, interval=0.05, alive=self._check_alive("etcd")
        )

    def _start_kube_apiserver(self, *, timeout: float) -> None:
        pki = self.pki
        api_dir = self.workdir / "kube-apiserver"
        api_dir.mkdir(exist_ok=True)
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca=pki.ca_cert,
            cert=self._admin_cert,
            key=self._admin_key,
            user="greenloop-admin",
            cluster="greenloop-test",
        )
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            *self._listen_flags(),
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={api_dir}",
            f"--tls-cert-file={self._serving_cert}",
            f"--tls-private-key-file={self._serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.dir / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki.dir / 'front-proxy-client.key'}",
            "--anonymous-auth=false",
            f"--service-account-key-file={self._sa_pub}",
            f"--service-account-signing-key-file={self._sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # a real node (tools/cluster/node.py): logs/exec reach its kubelet by
            # InternalIP with this client certificate; a namespace annotation can steer
            # every pod in it onto that node (node selector + default toleration)
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={pki.dir / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki.dir / 'apiserver-kubelet-client.key'}",
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            "--profiling=false",
            f"--v={2 if self.verbose else 0}",
            *self._audit_flags(),
        )

        def ready() -> bool:
            status, body = self.get("/readyz", timeout=2)
            return status == 200 and body.strip() == "ok"

        wait_until(
            "kube-apiserver /readyz",
            ready,
            timeout=timeout,
            interval=0.1,
            alive=self._check_alive("kube-apiserver"),
        )
        status, body = self.get("/version")
        if status != 200:
            raise ControlPlaneError(f"GET /version returned {status}: {body}")
        self.version = json.loads(body)["gitVersion"]

    def _audit_flags(self) -> list[str]:
        if self.audit_log is None:
            return []
        policy = self.workdir / "audit-policy.yaml"
        # One event per request, when its answer is complete (a watch: when it ends).
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
            "omitStages: [RequestReceived, ResponseStarted]\n"
            "rules:\n- level: Metadata\n"
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # never rotated: the caller reads it whole
        ]

    def _listen_flags(self) -> list[str]:
        if self.advertise_address:
            # every address of the machine (clients keep 127.0.0.1), and the default
            # (lease) endpoint reconciler puts the machine's address behind `kubernetes`
            return ["--bind-address=0.0.0.0", f"--advertise-address={self.advertise_address}"]
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the `kubernetes` Service's Endpoints may not hold a loopback address, so the
            # API server refuses to start with the default (lease) endpoint reconciler
            "--endpoint-reconciler-type=none",
        ]

    def _wait_healthz(self, name: str, port: int, timeout: float) -> None:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # self-signed serving cert in its --cert-dir

        def healthy() -> bool:
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, context=insecure, timeout=2) as r:
                return bool(r.status == 200)

        wait_until(
            f"{name} /healthz",
            healthy,
            timeout=timeout,
            interval=0.1,
            alive=self._check_alive(name),
        )

    def _wait_node_ready(self, node: str, timeout: float) -> None:
        def ready() -> bool:
            obj = self.get_json("node", node, check=False)
            if not obj:
                return False
            conds = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in obj.get("spec", {}).get("taints", []) or []}
            return conds.get("Ready") == "True" and not taints & {
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            }

        def alive() -> None:
            for name in ("kwok", "kube-controller-manager", "kube-scheduler"):
                self._check_alive(name)()

        wait_until(f"node {node} Ready", ready, timeout=timeout, interval=0.2, alive=alive)

    def _stop_procs(self, names: list[str], timeout: float = 10.0) -> None:
        for name in names:
            stop_process(self._procs.pop(name, None), timeout)

    def describe(self) -> str:
        lines = [
            f"server      {self.server}  ({self.version})",
            f"kubeconfig  {self.kubeconfig}",
            f"workdir     {self.workdir}",
        ]
        for name, proc in self._procs.items():
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            lines.append(f"  {name:<24} pid {proc.pid:<8} {state:<10} log {self._logs[name]}")
        return "\n".join(lines)


def _fake_node(name: str) -> dict[str, Any]:
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
    }
