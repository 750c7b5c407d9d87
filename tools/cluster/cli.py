"""`python -m tools.cluster` (= tools/controlplane/up): the test cluster in the foreground,
for a person.

    up                      etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
                            kwok with one fake node, on 127.0.0.1
    up --apiserver-only     only etcd and kube-apiserver
    up --node [--operator]  the control plane plus a real node on this machine (root) that
                            runs every pod (the kwok node takes only pods that tolerate
                            its taint), cluster DNS, the API server reachable from pods;
                            and `greenloop operator` on this host wired to it
    up --node --chart       ... and greenloop installed from charts/greenloop (the
                            operator a pod on the real node, the images built here)
    build                   build the control plane's binaries if missing
    bindir                  print the control plane's binary directory

Ctrl-C or SIGTERM stops everything it started and leaves the host as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tools.cluster.binaries import binary_dir, ensure_binaries, ensure_built
from tools.cluster.chart import NODE_VALUES, RELEASE, SYSTEM_NAMESPACE, ChartInstall, helm_binary
from tools.cluster.controlplane import (
    DNS_SERVICE_IP,
    KUBERNETES_SERVICE_IP,
    KWOK_NODE_ANNOTATION,
    NODE_NAME,
    ControlPlane,
)
from tools.cluster.crds import ensure_crd
from tools.cluster.node import IMAGES, RealNode
from tools.cluster.node_config import NODE_LABEL
from tools.cluster.operator import Operator
from tools.cluster.procs import ControlPlaneError, NodeError, free_ports, wait_until

#: tools/controlplane/up runs `python -m tools.cluster up ARGS`
PROG = "python -m tools.cluster"
#: with --node, on the kwok node: only pods that tolerate it land there
KWOK_FAKE_TAINT = "=".join(KWOK_NODE_ANNOTATION)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM stops the cluster as Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def start_operator(cp: ControlPlane, node: RealNode) -> Operator:
    """The CRD, `greenloop operator` on this host for every namespace, its results
    endpoint behind a Service pods reach, and a namespace `demo` placed on the node —
    wired as tests/integration/test_operator_demo.py wires them."""
    ensure_crd(cp)
    for namespace in ("greenloop-system", "demo"):
        cp.create_namespace(namespace)
    node.use_namespace("demo")
    port, metrics = free_ports(2)
    node.expose_host_port("greenloop-system", "greenloop-results", port, service_port=8081)
    url = "http://greenloop-results.greenloop-system.svc:8081"  # cluster DNS, as in a pod
    operator = Operator(
        cp, "", cp.workdir / "operator.log", url, port,
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


def _start(args: argparse.Namespace) -> tuple[ControlPlane, RealNode | None, Operator | None]:
    """Start what `args` asks for, printing progress; the caller stops it."""
    t0 = time.monotonic()
    workdir = Path(args.workdir) if args.workdir else None
    if not args.node:
        print("[greenloop] starting etcd + kube-apiserver ...", flush=True)
        cp = ControlPlane.start(workdir=workdir, build_output=sys.stderr, verbose=args.verbose)
        print(f"[greenloop] API server ready in {time.monotonic() - t0:.1f}s", flush=True)
        if not args.apiserver_only:
            t1 = time.monotonic()
            print(
                "[greenloop] starting kube-controller-manager, kube-scheduler, kwok ...",
                flush=True,
            )
            try:
                cp.start_controllers()
            except BaseException:
                _stop(cp, None, None, keep=args.keep)
                raise
            print(
                f"[greenloop] controllers and node {NODE_NAME} ready in "
                f"{time.monotonic() - t1:.1f}s",
                flush=True,
            )
        return cp, None, None
    print("[greenloop] building/checking the node and images ...", flush=True)
    bindir, images = ensure_built(output=sys.stderr)
    print("[greenloop] starting the control plane ...", flush=True)
    cp = ControlPlane.start(
        controllers=True,
        workdir=workdir,
        build_output=sys.stderr,
        verbose=args.verbose,
        serve_pods=True,
    )
    try:
        # a person's cluster runs pods for real: the fake node takes only those that ask
        cp.kubectl("taint", "node", NODE_NAME, f"{KWOK_FAKE_TAINT}:NoSchedule")
        print("[greenloop] starting the real node ...", flush=True)
        node = RealNode(
            cp, bindir=bindir, images=images, verbose=args.verbose, dedicated=False
        ).start()
    except BaseException:
        _stop(cp, None, None, keep=args.keep)
        raise
    print(f"[greenloop] node {node.name} Ready in {time.monotonic() - t0:.1f}s\n", flush=True)
    operator = None
    if args.operator:
        print("[greenloop] starting greenloop operator ...", flush=True)
        try:
            operator = start_operator(cp, node)
        except BaseException:
            _stop(cp, node, None, keep=args.keep)
            raise
    if args.chart:
        try:
            install_chart(cp, node)
        except BaseException:
            _stop(cp, node, None, keep=args.keep)
            raise
    return cp, node, operator


def install_chart(cp: ControlPlane, node: RealNode) -> None:
    """greenloop from charts/greenloop (tools/cluster/chart.py), its operator pod Ready,
    and a namespace `demo` for the README's demo."""
    t0 = time.monotonic()
    print(f"[greenloop] helm install {RELEASE} charts/greenloop -n {SYSTEM_NAMESPACE} ...")
    ChartInstall(cp, helm_binary()).install()
    cp.create_namespace("demo")
    node.use_namespace("demo")
    print(f"[greenloop] greenloop's operator pod Ready in {time.monotonic() - t0:.1f}s", flush=True)


def _how_to_use(
    cp: ControlPlane, node: RealNode | None, operator: Operator | None, *, chart: bool = False
) -> str:
    if node is None:
        return textwrap.dedent(f"""
            Control plane {cp.version} is up. In another shell:

                export KUBECONFIG={cp.kubeconfig}
                export PATH={Path(cp.kubectl_path).parent}:$PATH  # its kubectl
                kubectl get nodes
            """)
    text = textwrap.dedent(f"""
        Control plane {cp.version} with a real node is up. In another shell:

            export KUBECONFIG={cp.kubeconfig}
            export PATH={Path(cp.kubectl_path).parent}:$PATH  # its kubectl
            kubectl get nodes

        Pods of every namespace run on {node.name} (label {NODE_LABEL[0]}={NODE_LABEL[1]});
        the fake node {NODE_NAME} takes only pods that tolerate {KWOK_FAKE_TAINT}:NoSchedule.
        In pods: the API server at https://kubernetes.default.svc ({KUBERNETES_SERVICE_IP}:443,
        ServiceAccount tokens as on any cluster), cluster DNS at {DNS_SERVICE_IP}
        (SERVICE, SERVICE.NAMESPACE.svc, SERVICE.NAMESPACE.svc.cluster.local; names
        outside the cluster do not resolve, nothing leaves this machine).

        Images (imagePullPolicy: Never): {", ".join(IMAGES.values())}
        Servers on the host are reachable from pods at {node.host_address}.
        """)
    if operator is not None:
        text += textwrap.dedent(f"""
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
            """)
    if chart:
        text += textwrap.dedent(f"""
            greenloop is installed from charts/greenloop (release {RELEASE} in namespace
            {SYSTEM_NAMESPACE}, values {NODE_VALUES.relative_to(NODE_VALUES.parents[3])}):
            the operator runs as a pod; suite pods upload to
            http://{RELEASE}-results.{SYSTEM_NAMESPACE}.svc:8081.

                kubectl -n {SYSTEM_NAMESPACE} logs deployment/{RELEASE} -f

            The demo, in the namespace `demo` (its pods run on the real node):

                export KUBECONFIG={cp.kubeconfig}
                kubectl apply -n demo -f examples/demo/k8s/demo-shop.yaml
                kubectl rollout status -n demo deployment/demo-shop
                kubectl apply -n demo -f examples/demo/k8s/validation.yaml
                kubectl wait -n demo --for=condition=Ready sv/demo --timeout=300s
                kubectl get sv -n demo -o wide
            """)
    return text


def _watch(cp: ControlPlane, node: RealNode | None, operator: Operator | None) -> int:
    """Until a process of the cluster exits (1) or Ctrl-C/SIGTERM (KeyboardInterrupt)."""
    while True:
        alive = {**cp.running(), **(node.running() if node else {})}
        if operator is not None:
            alive["greenloop operator"] = operator.proc is not None and (
                operator.proc.poll() is None
            )
        logs = {**cp.logs, **(node.logs if node else {})}
        for name, ok in alive.items():
            if not ok:
                where = f"; see {logs[name]}" if name in logs else ""
                print(f"[greenloop] {name} exited unexpectedly{where}", file=sys.stderr)
                return 1
        time.sleep(1)


def _stop(
    cp: ControlPlane, node: RealNode | None, operator: Operator | None, *, keep: bool
) -> None:
    if operator is not None:
        operator.kill(signal.SIGTERM)
    if node is not None:
        try:
            node.stop(remove_workdir=not keep)
        except NodeError as exc:
            print(f"[greenloop] {exc}", file=sys.stderr)
        if keep:
            print(f"[greenloop] kept {node.workdir}")
    cp.stop()
    if keep:
        print(f"[greenloop] kept {cp.workdir}")
    else:
        shutil.rmtree(cp.workdir, ignore_errors=True)


def up(args: argparse.Namespace) -> int:
    try:
        with _signals_raise():
            cp, node, operator = _start(args)
            try:
                print()
                print(cp.describe())
                if node is not None:
                    print(node.describe())
                print(_how_to_use(cp, node, operator, chart=args.chart), flush=True)
                print(
                    "Ctrl-C stops everything"
                    + ("" if args.keep else " and deletes the work directories")
                    + ".\n",
                    flush=True,
                )
                return _watch(cp, node, operator)
            except KeyboardInterrupt:
                print("\n[greenloop] stopping ...", flush=True)
                return 0
            finally:
                _stop(cp, node, operator, keep=args.keep)
                print("[greenloop] stopped.", flush=True)
    except KeyboardInterrupt:
        print("\n[greenloop] stopped.", flush=True)
        return 0
    except ControlPlaneError as exc:
        print(f"[greenloop] ERROR: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run greenloop's test cluster in the foreground: etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler and kwok with one fake node on 127.0.0.1, "
        "and with --node a real node (containerd, kubelet, kube-proxy) on this machine.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_ = sub.add_parser("up", help="start it in the foreground; Ctrl-C stops it")
    what = up_.add_mutually_exclusive_group()
    what.add_argument(
        "--apiserver-only",
        action="store_true",
        help="only etcd and kube-apiserver (no controllers, no node)",
    )
    what.add_argument(
        "--node",
        action="store_true",
        help="also a real node on this machine (needs root); the host is left as it was",
    )
    up_.add_argument(
        "--operator", action="store_true",
        help="with --node: also install the CRD and run `greenloop operator` on this host, "
        "wired as the tests wire it (pods reach its results endpoint through a Service), "
        "with a namespace `demo` whose pods run on the real node",
    )  # fmt: skip
    up_.add_argument(
        "--chart", action="store_true",
        help="with --node: also install greenloop from charts/greenloop (helm, "
        "ci/node-values.yaml): the operator as a pod on the real node, in the namespace "
        "greenloop-system, and a namespace `demo` whose pods run on the real node",
    )  # fmt: skip
    up_.add_argument("--workdir", help="directory for certs, data, logs (default: a new temp dir)")
    up_.add_argument("--keep", action="store_true", help="keep the work directories on exit")
    up_.add_argument("-v", "--verbose", action="store_true", help="verbose component logs")
    sub.add_parser("build", help="build the binaries if missing (tools/controlplane/build)")
    sub.add_parser("bindir", help="print the binary cache directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.operator and not args.node:
            parser.error("up: --operator needs --node")
        if args.chart and not args.node:
            parser.error("up: --chart needs --node")
        if args.chart and args.operator:
            parser.error("up: --chart (operator in a pod) or --operator (on this host), not both")
        return up(args)
    if args.command == "build":
        ensure_binaries(output=sys.stderr)
        return 0
    if args.command == "bindir":
        print(binary_dir())
        return 0
    return 2
