"""A real StagingValidation to own the objects a test creates.

With controllers running, the garbage collector deletes anything whose owner does not
exist - so a Job owned by a made-up uid vanishes mid-test. Tests that build Jobs get
their owner from here: the CRD applied once, a minimal object created, its real uid.
"""

from __future__ import annotations

import json

from greenloop.core import crd
from greenloop.k8s.jobs import Owner
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd


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


def default_account(cp: ControlPlane, namespace: str) -> None:
    """The namespace's default ServiceAccount, which pods need: made here when no
    controllers run, already there when an earlier test of the session started them (the
    serviceaccount controller makes it), so applied, never created."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    cp.apply(account, namespace=namespace)
