"""What GitOps tools say about a StagingValidation, computed by their own code.

- `argocd_health(obj)`: config/argocd/health.lua run by gopher-lua the way Argo CD's
  controller runs it (tools/gitops/luahealth) -> {"status", "message"}.
- `kstatus(obj)`: sigs.k8s.io/cli-utils' status.Compute, what Flux and Helm 4 wait on
  (tools/gitops/kstatus) -> {"status", "message", "conditions"}.
- `flux_health(obj, entry)`: one Flux healthCheckExprs entry evaluated by
  kustomize-controller's evaluator (tools/gitops/fluxhealth) -> {"status", "message"}.

Both programs come from tools/gitops/build, run here when they are missing (its output
goes to the real stderr, as tools/cluster/controlplane.py does for the control plane).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "gitops" / "build"
HEALTH_LUA = REPO_ROOT / "config" / "argocd" / "health.lua"
PROGRAMS = ("luahealth", "kstatus", "fluxhealth")


class GitOpsToolError(RuntimeError):
    pass


@functools.cache
def bindir() -> Path:
    """The directory holding luahealth and kstatus, built once if missing."""
    where = subprocess.run(
        [str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True, timeout=30
    )
    path = Path(where.stdout.strip())
    if all((path / p).is_file() for p in PROGRAMS):
        return path
    print(
        f"[greenloop] building {', '.join(PROGRAMS)} with {BUILD_SCRIPT.relative_to(REPO_ROOT)} "
        "(cold: a few minutes) ...",
        file=sys.__stderr__,
        flush=True,
    )
    built = subprocess.run([str(BUILD_SCRIPT)], stdout=sys.__stderr__, stderr=sys.__stderr__)
    if built.returncode != 0:
        raise GitOpsToolError(f"{BUILD_SCRIPT} failed with exit code {built.returncode}")
    return path


def _run(args: list[str], obj: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(args, input=json.dumps(obj), capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise GitOpsToolError(f"{Path(args[0]).name} exited {proc.returncode}: {proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def argocd_health(obj: dict[str, Any], script: Path = HEALTH_LUA) -> dict[str, Any]:
    """Argo CD's health of `obj` by `script`: {"status": ..., "message": ...} (keys
    omitted when empty, as Argo CD's HealthStatus JSON omits them)."""
    return _run([str(bindir() / "luahealth"), str(script)], obj)


def kstatus(obj: dict[str, Any]) -> dict[str, Any]:
    """kstatus of `obj`: {"status": "Current|InProgress|Failed|...", "message", "conditions"}."""
    return _run([str(bindir() / "kstatus")], obj)


def flux_health(obj: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What kustomize-controller makes of `obj` with the healthCheckExprs `entry`:
    {"status": "Current|InProgress|Failed|Unknown", "message"} (Unknown: an expression
    failed to evaluate, the message says why; Flux goes on waiting)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as exprs:
        json.dump(entry, exprs)
        exprs.flush()
        return _run([str(bindir() / "fluxhealth"), exprs.name], obj)


DOCS = REPO_ROOT / "docs" / "gitops.md"


def docs_objects() -> list[dict[str, Any]]:
    """Every object of the ```yaml blocks of docs/gitops.md, so what the page shows is
    what the tests run."""
    import yaml

    text = DOCS.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    return [d for b in blocks for d in yaml.safe_load_all(b) if isinstance(d, dict)]


def docs_flux_exprs() -> dict[str, Any]:
    """The StagingValidation healthCheckExprs entry of docs/gitops.md's Kustomization."""
    kustomization = next(o for o in docs_objects() if o.get("kind") == "Kustomization")
    entries: list[dict[str, Any]] = kustomization["spec"]["healthCheckExprs"]
    return next(e for e in entries if e["kind"] == "StagingValidation")
