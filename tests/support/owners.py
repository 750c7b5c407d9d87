"""A real StagingValidation to own the objects a test creates.

With controllers running, the garbage collector deletes anything whose owner does not
exist - so a Job owned by a made-up uid vanishes mid-test. Tests that build Jobs get
their owner from here: the CRD applied once, a minimal object created, its real uid.
"""

from __future__ import annotations

import json
import threading

from greenloop.core import crd
from greenloop.k8s.jobs import Owner
from tests.support.cluster import REPO_ROOT, ControlPlane, wait_until

CRD = REPO_ROOT / "crds" / "stagingvalidation.yaml"
_applied: set[str] = set()
_lock = threading.Lock()


def ensure_crd(cp: ControlPlane) -> None:
    with _lock:
        if cp.server in _applied:
            return
        cp.kubectl("apply", "-f", str(CRD))

        def established() -> bool:
            # not `kubectl wait`: it errors out when the CRD has no conditions yet
            found = cp.get_json("crd", crd.NAME)
            conditions = (found.get("status") or {}).get("conditions") or []
            return any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )

        wait_until("the StagingValidation CRD Established", established, timeout=60, interval=0.2)
        _applied.add(cp.server)


def make_owner(cp: ControlPlane, namespace: str, name: str = "checkout") -> Owner:
    ensure_crd(cp)
    obj = {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"suites": [{"name": "core", "command": ["pytest"], "image": "e2e:1"}]},
    }
    made = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj))
    return Owner(name=name, namespace=namespace, uid=json.loads(made.stdout)["metadata"]["uid"])


PEERING_CRDS = REPO_ROOT / "crds" / "kopf-peering.yaml"


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
