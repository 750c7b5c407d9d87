"""How the harness talks to a control plane's API server as its admin: kubectl (with the
admin kubeconfig unless told otherwise) and plain HTTPS GETs with the admin certificate."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools.cluster.pki import PKI
from tools.cluster.procs import ControlPlaneError


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; str() includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        err = (self.stderr or "").strip() or (self.output or "").strip()
        return f"kubectl failed (exit {self.returncode}): {cmd}\n{err}"


class Client:
    """kubectl and HTTPS as admin; ControlPlane sets the attributes below when it starts."""

    kubectl_path: str
    kubeconfig: Path
    server: str
    workdir: Path
    pki: PKI
    _admin_cert: Path
    _admin_key: Path
    _ssl: ssl.SSLContext | None

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane (admin unless `kubeconfig` is given)."""
        cmd = [
            self.kubectl_path,
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",  # not the user's ~/.kube/cache
            *args,
        ]
        try:
            proc = subprocess.run(
                cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ControlPlaneError(f"kubectl timed out after {timeout}s: {' '.join(cmd)}") from exc
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def get_json(self, *args: str, check: bool = True) -> Any:
        """`kubectl get ARGS -o json` parsed; None when not found and check=False."""
        proc = self.kubectl("get", *args, "-o", "json", check=check)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)

    def apply(self, *objects: dict[str, Any] | str, namespace: str | None = None) -> str:
        """`kubectl apply` objects (dicts or YAML text); returns kubectl's output."""
        docs = [o if isinstance(o, str) else json.dumps(o) for o in objects]
        text = "\n---\n".join(docs)
        ns = [f"--namespace={namespace}"] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=text).stdout

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """GET a path on the API server as admin; returns (status, body)."""
        req = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:  # closes the response's socket
                return exc.code, exc.read().decode(errors="replace")

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
            ctx.load_cert_chain(str(self._admin_cert), str(self._admin_key))
            self._ssl = ctx
        return self._ssl
