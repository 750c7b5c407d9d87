"""The operator's RBAC (config/rbac/) is enough, and no more than the code asks for.

The flow test installs the manifests as README.md and docs/operator.md do (`kubectl apply -f
crds/stagingvalidation.yaml -f config/rbac/`), mints a token for the ServiceAccount
(TokenRequest), and runs `greenloop operator` with a kubeconfig holding only that token
- no client certificate, no admin - with `--peering` so kopf's peering rules are used
too; once as the install's ServiceAccount (ClusterRoleBinding), once as one bound to
the role in the test's namespace only (docs/operator.md's confined install). It then drives
the kwok demo of test_operator_loop.py (two suites, `core` fails with an HTTP 503, one
rollout of Deployment backend, the rerun passes; the test plays the results sidecar,
tests/support/sidecar.py), and deletes an object that still carries the finalizer
older greenloop versions put on, which kopf must patch away.
A missing permission shows as a 403 in the operator's log, a report whose evidence is
"unavailable", or a verdict that never comes.

The can-i test pins the role's edges with `kubectl auth can-i --as=` the ServiceAccount:
what it must be allowed, what it must not (no update/delete of workloads, no listing
Secrets, no exec...), and - honestly - that a ClusterRoleBinding grants the role in
every namespace, where the per-namespace RoleBinding docs/operator.md describes does not.

The RBAC objects are cluster-scoped or in greenloop-system and stay for the session
(applying them again is a no-op); every other object lives in the test's namespace.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenloop.core import crd
from greenloop.k8s.gateway import Gateway
from tests.support.sidecar import (
    Sidecar,
    Snapshot,
    labels_of,
    two_suite_answer,
    two_suite_demo,
)
from tests.support.workloads import roll_out
from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd, ensure_peering
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

CRD = REPO_ROOT / "crds" / "stagingvalidation.yaml"
RBAC = REPO_ROOT / "config" / "rbac"
SYSTEM_NS, ACCOUNT = "greenloop-system", "greenloop"
CONFINED = "greenloop-confined"  # bound per namespace (RoleBinding), not cluster-wide
AS_OPERATOR = f"--as=system:serviceaccount:{SYSTEM_NS}:{ACCOUNT}"
PEERING = "rbac"
FLOW_SECONDS = 240.0


def install(cp: ControlPlane) -> str:
    """The documented install command (README.md, docs/operator.md), run with the admin
    kubeconfig; kubectl's output."""
    out = cp.kubectl("apply", "-f", str(CRD), "-f", str(RBAC)).stdout
    ensure_crd(cp)  # waits until the CRD is Established
    return out


def token_kubeconfig(cp: ControlPlane, account: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount: the admin one's server and CA, a bound token."""
    token = cp.kubectl("create", "token", account, "-n", SYSTEM_NS, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "test", "user": account}}],
        "current-context": account,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def bind_token_reviews(cp: ControlPlane, account: str) -> None:
    """docs/operator.md's confined install: TokenReview is cluster-scoped, so the
    results endpoint's one cluster-wide right is its own ClusterRole's."""
    cp.kubectl("apply", "-f", str(RBAC / "tokenreview_role.yaml"))
    binding = f"greenloop-tokenreview-{account}"
    if cp.get_json("clusterrolebinding", binding, check=False) is None:
        cp.kubectl(
            "create", "clusterrolebinding", binding, "--clusterrole=greenloop-tokenreview",
            f"--serviceaccount={SYSTEM_NS}:{account}",
        )  # fmt: skip


@pytest.fixture(params=["ClusterRoleBinding", "RoleBinding"])
def sa_operator(
    request: pytest.FixtureRequest, cluster: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[Operator]:
    """`greenloop operator -n namespace --peering` with only a ServiceAccount's token: the
    install's `greenloop` (ClusterRoleBinding), or one bound to the role in this
    namespace alone, as docs/operator.md's confined install does (RoleBinding)."""
    install(cluster)
    ensure_peering(cluster, namespace, PEERING)
    account = ACCOUNT
    if request.param == "RoleBinding":
        account = CONFINED
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": CONFINED}}
        cluster.apply(sa, namespace=SYSTEM_NS)
        cluster.kubectl(
            "create", "rolebinding", CONFINED, "-n", namespace,
            "--clusterrole=greenloop-operator", f"--serviceaccount={SYSTEM_NS}:{CONFINED}",
        )  # fmt: skip
        bind_token_reviews(cluster, CONFINED)
    kubeconfig = token_kubeconfig(cluster, account, tmp_path / "greenloop.kubeconfig")
    assert "client-key" not in kubeconfig.read_text()
    # Operator runs `--kubeconfig cp.kubeconfig`: the same control plane, seen through
    # the ServiceAccount's kubeconfig.
    as_account = copy.copy(cluster)
    as_account.kubeconfig = kubeconfig
    port = free_ports(1)[0]
    op = Operator(
        as_account, namespace, tmp_path / "operator.log", f"http://127.0.0.1:{port}", port,
        args=("--peering", PEERING),
    )  # fmt: skip
    op.start()
    assert op.proc is not None
    argv = [str(a) for a in op.proc.args]
    assert str(cluster.kubeconfig) not in argv and str(kubeconfig) in argv, argv
    try:
        yield op
    finally:
        op.kill(signal.SIGTERM)


REFUSED = re.compile(
    r"forbidden|not enough permissions|unauthorized|\bHTTP 403\b|\b403 [A-Z]|code\W{1,3}403\b",
    re.IGNORECASE,
)


def refusals(log: str) -> list[str]:
    """The log lines that say the API server refused something (greenloop's ApiError
    reads "403 Forbidden: ...", kopf's APIForbiddenError or "Not enough permissions")."""
    return [line for line in log.splitlines() if REFUSED.search(line)]


def test_the_operator_converges_with_only_its_service_account(
    cluster: ControlPlane, namespace: str, sa_operator: Operator, tmp_path: Path
) -> None:
    op = sa_operator
    roll_out(cluster, namespace, "backend")
    cluster.apply(two_suite_demo("demo"), namespace=namespace)

    car = Sidecar(namespace, op.url, two_suite_answer, tmp_path)
    deadline = time.monotonic() + FLOW_SECONDS
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if op.exited() is not None:
            pytest.fail(f"the operator exited ({op.exits}):\n{op.tail()}")
        seen = Snapshot.take(cluster, namespace)
        car.serve(seen)
        status = seen.status("demo")
        if status.get("phase") in ("Passed", "Stalled"):
            break
        time.sleep(0.5)
    car.finish()
    assert status.get("phase") == "Passed", f"{json.dumps(status)[:2000]}\n{op.tail()}"
    assert car.failed() == []

    # What a user checks: the verdict, the Events, the Jobs, the rollout, the report.
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], status["iteration"]) == ("True", 2)
    events = cluster.get_json("events", "-n", namespace)["items"]
    reasons = [e["reason"] for e in events if e["involvedObject"]["kind"] == crd.KIND]
    for reason in ("IterationStarted", "Redeploying", "Passed"):
        assert reason in reasons, reasons
    jobs = sorted(
        (labels_of(j)["greenloop.dev/iteration"], labels_of(j)["greenloop.dev/suite"])
        for j in cluster.get_json("jobs", "-n", namespace)["items"]
    )
    assert jobs == [("1", "core"), ("1", "critical"), ("2", "core")]
    replicasets = cluster.get_json("replicasets", "-n", namespace, "-l", "app=backend")
    assert len(replicasets["items"]) == 2, "one rollout"
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", namespace)
    text = report["data"]["report.md"]
    assert "Deployment backend: 1/1 available" in text, text  # evidence read (pods, events)
    assert "cluster evidence unavailable" not in text, text
    peering = cluster.get_json("kopfpeering", PEERING, "-n", namespace)
    assert peering.get("status"), "kopf wrote its keep-alive into the peering object"

    # An object carrying the finalizer of older greenloop versions: kopf removes it
    # (a patch of the object) so the deletion completes.
    cluster.apply(
        two_suite_demo("legacy", finalizers=["greenloop.dev/finalizer"]), namespace=namespace
    )
    cluster.kubectl("delete", "sv", "legacy", "-n", namespace, "--wait=false")
    wait_until(
        "sv/legacy deleted (its leftover finalizer removed by the operator)",
        lambda: cluster.get_json("sv", "legacy", "-n", namespace, check=False) is None,
        timeout=60,
        interval=0.5,
    )

    assert refusals(op.log.read_text(errors="replace")) == []


#: (verb, resource, namespace) -> allowed; "NS" is the test's namespace.
CAN_I = {
    ("patch", f"{crd.NAME}/status", "NS"): True,
    ("watch", crd.NAME, "NS"): True,
    ("watch", "jobs.batch", "NS"): True,
    ("get", "jobs.batch", "NS"): True,
    ("create", "configmaps", "NS"): True,  # the results endpoint stores an upload
    ("watch", "configmaps", "NS"): True,  # the store: results ConfigMaps, by label
    ("get", "pods", "NS"): True,  # the pod an upload's token is bound to
    ("create", "tokenreviews.authentication.k8s.io", ""): True,  # who an upload's token is
    ("create", "events", "NS"): True,
    ("watch", "deployments.apps", "NS"): True,
    ("list", "controllerrevisions.apps", "NS"): True,
    ("patch", "kopfpeerings.kopf.dev", "NS"): True,
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", ""): True,
    # acting for an object is done as its account (issue 19, docs/design.md §8 "Tenancy")
    ("impersonate", "serviceaccounts", "NS"): True,
    ("impersonate", "groups", ""): False,  # a group would be any group: system:masters
    ("impersonate", "users", ""): False,
    # ...so what is done for an object the operator itself may not do
    ("create", "jobs.batch", "NS"): False,
    ("patch", "jobs.batch", "NS"): False,
    ("patch", "configmaps", "NS"): False,
    ("get", "pods/log", "NS"): False,
    ("list", "events", "NS"): False,
    ("patch", "deployments.apps", "NS"): False,
    ("patch", "statefulsets.apps", "NS"): False,
    # what nothing in the operator asks for
    ("update", crd.NAME, "NS"): False,
    ("delete", crd.NAME, "NS"): False,
    ("create", crd.NAME, "NS"): False,
    ("delete", "jobs.batch", "NS"): False,
    ("create", "secrets", "NS"): False,  # no upload token Secret exists any more
    ("delete", "secrets", "NS"): False,
    ("list", "secrets", "NS"): False,
    ("watch", "secrets", "NS"): False,
    ("update", "secrets", "NS"): False,
    ("delete", "configmaps", "NS"): False,
    ("create", "pods", "NS"): False,
    ("create", "pods/exec", "NS"): False,
    ("create", "deployments.apps", "NS"): False,
    ("update", "deployments.apps", "NS"): False,
    ("delete", "deployments.apps", "NS"): False,
    ("patch", "replicasets.apps", "NS"): False,
    ("delete", "events", "NS"): False,
    ("create", "serviceaccounts/token", "NS"): False,
    ("create", "rolebindings.rbac.authorization.k8s.io", "NS"): False,
    ("list", "namespaces", ""): False,  # kopf is given them by name (-n)
    ("get", "namespaces", ""): False,
    ("delete", "namespaces", ""): False,
    ("update", "customresourcedefinitions.apiextensions.k8s.io", ""): False,
    # No Secret at all: a webhook's or a suite's Secrets are read as the object's
    # account, and no upload token Secret exists (suite pods prove themselves).
    ("get", "secrets", "NS"): False,
    ("get", "secrets", "kube-system"): False,
}


def can_i(cp: ControlPlane, who: str, verb: str, resource: str, namespace: str) -> bool:
    where = ["-n", namespace] if namespace else []
    resource, _, sub = resource.partition("/")  # can-i reads "pods/log" as a URL path
    subresource = [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl("auth", "can-i", verb, resource, *subresource, *where, who, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i: {proc.stdout}{proc.stderr}"
    return answer == "yes"


def test_the_role_grants_what_the_operator_uses_and_nothing_else(
    apiserver: ControlPlane, namespace: str
) -> None:
    install(apiserver)
    ensure_peering(apiserver, namespace, PEERING)  # can-i resolves kopfpeerings.kopf.dev
    got = {
        (verb, res, ns): can_i(apiserver, AS_OPERATOR, verb, res, ns.replace("NS", namespace))
        for verb, res, ns in CAN_I
    }
    assert got == CAN_I

    # docs/operator.md's confined install: the same ClusterRole bound in one namespace only.
    confined = f"{SYSTEM_NS}:{CONFINED}"
    apiserver.kubectl(
        "create", "rolebinding", CONFINED, "-n", namespace,
        "--clusterrole=greenloop-operator", f"--serviceaccount={confined}",
    )  # fmt: skip
    who = f"--as=system:serviceaccount:{confined}"
    bind_token_reviews(apiserver, CONFINED)
    assert can_i(apiserver, who, "create", "tokenreviews.authentication.k8s.io", "")
    assert not can_i(apiserver, who, "get", "pods", "kube-system")
    assert can_i(apiserver, who, "patch", f"{crd.NAME}/status", namespace)
    assert can_i(apiserver, who, "impersonate", "serviceaccounts", namespace)
    assert not can_i(apiserver, who, "impersonate", "serviceaccounts", "kube-system")
    assert not can_i(apiserver, who, "get", "secrets", namespace)  # none, anywhere
    assert not can_i(apiserver, who, "list", "namespaces", "")


def test_a_log_the_role_does_not_let_it_read_is_named_in_the_operator_log(
    apiserver: ControlPlane, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A suite's last log lines are evidence, not a verdict: a pod log the operator may
    not read leaves them out, and the operator's log says which permission is missing
    instead of leaving it silently out (here: an account bound nowhere)."""
    install(apiserver)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "greenloop-unbound"}}
    apiserver.apply(sa, namespace=SYSTEM_NS)
    kubeconfig = token_kubeconfig(apiserver, "greenloop-unbound", tmp_path / "unbound.kubeconfig")

    async def read(config: Path) -> str:
        async with await Gateway.connect(str(config)) as gw:
            return await gw.pod_log(namespace, "suite-pod", "suite")

    with caplog.at_level(logging.WARNING, logger="greenloop"):
        assert asyncio.run(read(apiserver.kubeconfig)) == ""  # 404: no such pod, no warning
        assert caplog.messages == []
        assert asyncio.run(read(kubeconfig)) == ""  # 403
    assert len(caplog.messages) == 1, caplog.messages
    message = caplog.messages[0]
    assert f"pod {namespace}/suite-pod" in message and "403" in message, message
    assert "pods/log" in message and "config/rbac/tenant-role.yaml" in message, message
