"""`greenloop operator` as a process on this host, started and stopped by pid, as a
person would run it next to a cluster (tests/integration/test_operator_*.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.procs import free_ports


@dataclass
class Operator:
    cp: ControlPlane
    namespace: str
    log: Path
    url: str  # how Job pods (or the test, playing their sidecar) reach the results endpoint
    port: int
    host: str = "127.0.0.1"
    metrics_port: int = 0
    log_format: str = "text"
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    args: Sequence[str] = ()  # extra command-line arguments (e.g. --peering)
    # The tests' targets answer health probes on this machine's loopback, which the
    # operator's outbound policy denies by default; a test of the policy passes ().
    outbound: Sequence[str] = ("--allow-outbound", "127.0.0.0/8")
    exits: list[int] = field(default_factory=list)  # exit codes of the runs that ended
    # The account objects without spec.serviceAccountName act as: the namespace's
    # `default`, which the namespace fixture binds to the tenant role
    # (tools/cluster/tenancy.py); () for none (such objects stall NoServiceAccount).
    tenancy: Sequence[str] = ("--default-service-account", "default")

    def start(self, env: Mapping[str, str] | None = None) -> None:
        """Start it; `env` adds variables (e.g. GREENLOOP_FAILPOINTS) for this run only."""
        scope = ["-n", self.namespace] if self.namespace else []  # "": every namespace
        cmd = [
            sys.executable, "-m", "greenloop.cli", "operator",
            "--kubeconfig", str(self.cp.kubeconfig), *scope,
            "--results-host", self.host, "--results-port", str(self.port),
            "--results-url", self.url, "--metrics-port", str(self.metrics_port),
            "--log-format", self.log_format, *self.outbound, *self.tenancy, *self.args,
        ]  # fmt: skip
        self.starts += 1
        environ = {k: v for k, v in os.environ.items() if k != "GREENLOOP_FAILPOINTS"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**environ, **(env or {})}
            )

    def exited(self) -> int | None:
        """The exit code if this run has ended (kept in `exits`), else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        self.exits.append(code)
        self.proc = None
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def on_loopback(cp: ControlPlane, namespace: str, log: Path) -> Iterator[Operator]:
    """`greenloop operator` for `namespace` (the CRD applied first), its results endpoint
    on a free loopback port - for the kwok node, which runs no pods: the caller plays
    each Job's sidecar; its metrics on another. SIGTERMed afterwards."""
    ensure_crd(cp)
    port, metrics_port = free_ports(2)
    op = Operator(cp, namespace, log, f"http://127.0.0.1:{port}", port, metrics_port=metrics_port)
    op.start()
    try:
        yield op
    finally:
        op.kill(signal.SIGTERM)
