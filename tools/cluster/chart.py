"""greenloop installed from charts/greenloop into the test cluster, the operator as a pod
on the real node (`up --node --chart`): helm from tools/helm/build, the values of
charts/greenloop/ci/node-values.yaml (the image tools/images/build made, never pulled),
the release `greenloop` in `greenloop-system`, a namespace enforcing the restricted Pod
Security Standard as a platform team would label it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import ControlPlaneError

__all__ = ["CHART", "NODE_VALUES", "RELEASE", "SYSTEM_NAMESPACE", "ChartInstall", "helm_binary"]

CHART = REPO_ROOT / "charts" / "greenloop"
NODE_VALUES = CHART / "ci" / "node-values.yaml"
HELM_BUILD = REPO_ROOT / "tools" / "helm" / "build"
RELEASE = "greenloop"
SYSTEM_NAMESPACE = "greenloop-system"


def helm_binary() -> Path:
    """The pinned helm; built by tools/helm/build when missing (minutes, once)."""
    subprocess.run([str(HELM_BUILD)], check=True)
    dest = subprocess.run(
        [str(HELM_BUILD), "--print-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(dest) / "helm"


@dataclass
class ChartInstall:
    """The release on `cp`; helm's cache and config kept out of the user's home."""

    cp: ControlPlane
    helm: Path
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="greenloop-helm-")))

    def helm_run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        cmd = [str(self.helm), *args, "--namespace", SYSTEM_NAMESPACE]
        cmd += ["--kubeconfig", str(self.cp.kubeconfig)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr}")
        return proc

    def install(self, *sets: str, timeout: int = 180) -> None:
        """The namespace (restricted), `helm install`, the operator's rollout done."""
        self.cp.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": SYSTEM_NAMESPACE,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        )
        args = ["install", RELEASE, str(CHART), "--values", str(NODE_VALUES)]
        for s in sets:
            args += ["--set", s]
        self.helm_run(*args)
        rollout = self.cp.kubectl(
            "rollout", "status", "-n", SYSTEM_NAMESPACE, f"deployment/{RELEASE}",
            f"--timeout={timeout}s", check=False,
        )  # fmt: skip
        if rollout.returncode != 0:
            pods = self.cp.kubectl("get", "pods,events", "-n", SYSTEM_NAMESPACE, check=False)
            raise ControlPlaneError(
                f"the operator's Deployment did not roll out:\n{rollout.stderr}\n{pods.stdout}"
            )

    def uninstall(self) -> None:
        self.helm_run("uninstall", RELEASE, "--wait")
