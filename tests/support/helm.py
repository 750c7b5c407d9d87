"""helm, built by tools/helm/build, run on charts/greenloop for the chart tests.

    helm = Helm.ensure()                          # builds it once when missing
    docs = helm.template("rel", "ns", values=[CI / "ha-values.yaml"])
    proc = helm.run("lint", "--strict", str(CHART), check=False)

Every run gets its own HELM_* cache/config/data directories (under the pytest tmp dir
or a temporary one), so nothing is read from or written to the user's ~/.config/helm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.cluster.binaries import REPO_ROOT

__all__ = ["CHART", "CI_VALUES", "HELM_BUILD", "Helm", "HelmError", "by_kind"]

CHART = REPO_ROOT / "charts" / "greenloop"
CI_VALUES = CHART / "ci"
HELM_BUILD = REPO_ROOT / "tools" / "helm" / "build"


class HelmError(RuntimeError):
    """helm (or its build) failed; the message holds the command and its output."""


@dataclass
class Helm:
    path: Path
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="greenloop-helm-")))

    @classmethod
    def ensure(cls) -> Helm:
        """The pinned helm, built with tools/helm/build when missing (its progress on
        the real stderr: a cold build takes minutes)."""
        dest = subprocess.run(
            [str(HELM_BUILD), "--print-dir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        binary = Path(dest) / "helm"
        if not os.access(binary, os.X_OK):
            out = sys.__stderr__ or sys.stderr
            print(f"[greenloop] building helm once with {HELM_BUILD} ...", file=out, flush=True)
            rc = subprocess.run([str(HELM_BUILD)], stdout=out, stderr=out, check=False).returncode
            if rc != 0 or not os.access(binary, os.X_OK):
                raise HelmError(f"{HELM_BUILD} failed with exit code {rc} (output above)")
        return cls(binary)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.path), *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise HelmError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def template(
        self,
        release: str,
        namespace: str,
        *,
        values: Iterable[Path] = (),
        sets: Sequence[str] = (),
        include_crds: bool = False,
        show_only: str | None = None,
    ) -> list[dict[str, Any]]:
        """`helm template` parsed: one dict per manifest, empty documents dropped."""
        args = ["template", release, str(CHART), "--namespace", namespace]
        for v in values:
            args += ["--values", str(v)]
        for s in sets:
            args += ["--set", s]
        if include_crds:
            args.append("--include-crds")
        if show_only:
            args += ["--show-only", show_only]
        text = self.run(*args).stdout
        return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]
