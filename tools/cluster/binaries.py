"""Where the cluster's binaries live and how they are built: the control plane's
(tools/controlplane/build), the real node's (tools/node/build) and the images its pods
run (tools/images/build), all cached under ${GREENLOOP_CACHE:-~/.cache/greenloop}.

Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from tools.cluster.procs import ControlPlaneError, NodeError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / "tools" / "controlplane"
BUILD_SCRIPT = TOOLS_DIR / "build"
KWOK_STAGES = TOOLS_DIR / "kwok-stages.yaml"
NODE_BUILD = REPO_ROOT / "tools" / "node" / "build"
IMAGES_BUILD = REPO_ROOT / "tools" / "images" / "build"
COREDNS_MODULE = REPO_ROOT / "tools" / "node" / "coredns"
CONTAINERD_VERSION = "v2.4.2"  # keep in step with tools/node/build

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)


def pinned_version() -> str:
    """The Kubernetes version pinned by tools/controlplane/go.mod, e.g. 'v1.37.2'."""
    for line in (TOOLS_DIR / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and "=>" not in parts:
            return parts[1]
    raise ControlPlaneError(f"k8s.io/kubernetes is not required in {TOOLS_DIR / 'go.mod'}")


def cache_root() -> Path:
    """Same rule as tools/controlplane/build."""
    if os.environ.get("GREENLOOP_CACHE"):
        return Path(os.environ["GREENLOOP_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "greenloop"


def binary_dir(version: str | None = None) -> Path:
    return cache_root() / "controlplane" / (version or pinned_version())


def missing_binaries(bindir: Path) -> list[str]:
    return [b for b in BINARIES if not os.access(bindir / b, os.X_OK)]


def ensure_binaries(*, build: bool = True, output: IO[str] | None = None) -> Path:
    """Return the directory holding the pinned binaries, building them if missing.

    The build's progress goes to `output` (default: the process's real stderr,
    sys.__stderr__, so a person watching pytest sees why the first run is slow).
    """
    bindir = binary_dir()
    missing = missing_binaries(bindir)
    if not missing:
        return bindir
    if not build:
        raise ControlPlaneError(
            f"control-plane binaries missing in {bindir}: {', '.join(missing)}; "
            f"run {BUILD_SCRIPT.relative_to(REPO_ROOT)}"
        )
    out = output if output is not None else (sys.__stderr__ or sys.stderr)
    print(
        f"[greenloop] control-plane binaries missing in {bindir} ({', '.join(missing)}); "
        f"building them once with {BUILD_SCRIPT.relative_to(REPO_ROOT)} "
        "(a cold build takes a long while) ...",
        file=out,
        flush=True,
    )
    with contextlib.suppress(AttributeError, ValueError):
        out.flush()
    try:
        fd_target: Any = out if hasattr(out, "fileno") and _has_fileno(out) else subprocess.PIPE
        proc = subprocess.Popen(
            [str(BUILD_SCRIPT)],
            stdout=fd_target,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=TOOLS_DIR,
        )
        if fd_target is subprocess.PIPE:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
        rc = proc.wait()
    except OSError as exc:
        raise ControlPlaneError(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    if rc != 0:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT.relative_to(REPO_ROOT)} failed with exit code {rc} (output above)"
        )
    missing = missing_binaries(bindir)
    if missing:
        raise ControlPlaneError(f"build finished but {', '.join(missing)} missing in {bindir}")
    return bindir


def _has_fileno(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


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


def coredns_binary() -> Path:
    """CoreDNS as tools/node/build makes it, for the version tools/node/coredns pins."""
    for line in (COREDNS_MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["require", "github.com/coredns/coredns"] and len(parts) >= 3:
            return cache_root() / "node" / f"coredns-{parts[2]}" / "coredns"
    raise NodeError(f"github.com/coredns/coredns is not required in {COREDNS_MODULE / 'go.mod'}")
