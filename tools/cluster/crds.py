"""The repository's CustomResourceDefinitions, applied once per control plane: greenloop's
StagingValidation (crds/stagingvalidation.yaml) and kopf's peering (crds/kopf-peering.yaml)."""

from __future__ import annotations

import json
import threading

from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import wait_until

CRD = REPO_ROOT / "crds" / "stagingvalidation.yaml"
PEERING_CRDS = REPO_ROOT / "crds" / "kopf-peering.yaml"
_applied: set[str] = set()
_lock = threading.Lock()


def ensure_crd(cp: ControlPlane) -> None:
    with _lock:
        if cp.server in _applied:
            return
        cp.kubectl("apply", "-f", str(CRD))

        def established() -> bool:
            # not `kubectl wait`: it errors out when the CRD has no conditions yet
            crd = cp.get_json("crd", "stagingvalidations.greenloop.dev")
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )

        wait_until("the StagingValidation CRD Established", established, timeout=60, interval=0.2)
        _applied.add(cp.server)


def ensure_peering(cp: ControlPlane, namespace: str, name: str) -> None:
    """kopf's peering CRDs (once per control plane) and the KopfPeering object `name`
    in `namespace`, where namespaced operators started with `--peering name` meet."""
    with _lock:
        key = f"{cp.server}#peering"
        if key not in _applied:
            cp.kubectl("apply", "-f", str(PEERING_CRDS))
            cp.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
            _applied.add(key)
    obj = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": name, "namespace": namespace},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(obj))
