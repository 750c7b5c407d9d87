"""`greenloop operator` as a process on this host, started and stopped by pid, as a
person would run it next to a cluster (tests/integration/test_operator_*.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster import ControlPlane


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

    def start(self) -> None:
        scope = ["-n", self.namespace] if self.namespace else []  # "": every namespace
        cmd = [
            sys.executable, "-m", "greenloop.cli", "operator",
            "--kubeconfig", str(self.cp.kubeconfig), *scope,
            "--results-host", self.host, "--results-port", str(self.port),
            "--results-url", self.url, "--metrics-port", str(self.metrics_port),
            "--log-format", self.log_format,
        ]  # fmt: skip
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
