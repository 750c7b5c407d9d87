"""A cluster many teams share (issue 19): greenloop acts for an object with the rights of
the object's own ServiceAccount, never with the operator's (docs/design.md §8 "Tenancy").

The matrix, on the real API server with RBAC: a user `alice` who may only create and
get StagingValidations in the test's namespace (no Secrets, no Deployments) creates
every object; the accounts the objects name are

- `tests`: bound to config/rbac/tenant-role.yaml - the demo converges as it;
- `nobody`: bound to nothing - Stalled/Forbidden naming it, no Job created;
- `narrow`: the tenant Role cut as config/rbac/tenant-role.yaml says one may (no
  `patch` on deployments, no `get` on secrets) - probe 3 (`target.workloads` naming
  `victim-app`) and probe 1 (`headersFrom` naming `db-creds`) each end
  Stalled/Forbidden naming account, verb and resource, `victim-app` not rolled and the
  listener called by no one;
- none, and no --default-service-account - Stalled/NoServiceAccount.

Probe 4 (a webhook to an internal address) is the outbound policy's refusal, as the
tenant account. Then `kubectl auth can-i` rows for alice and for the operator's own
account (config/rbac/role.yaml). The namespace fixture's blanket tenant binding is
revoked first, so only the bindings made here count.

kwok's node runs no pods: the test plays each Job's sidecar (test_operator_loop.py);
impersonation is the API server's, so it is the same here as on a real node. The one
real-node test runs a real suite pod, created by the tenant account, to Passed.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from greenloop.core import crd
from tests.integration.test_operator_loop import TARGET, Sidecar, condition, run_until_done, sv
from tests.support.sidecar import FAIL, PASS, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.node import IMAGES, RealNode
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RBAC = Path(__file__).resolve().parents[2] / "config" / "rbac"
AS_OPERATOR = "--as=system:serviceaccount:greenloop-system:greenloop"
SECRET_VALUE = "hunter2-0123456789abcdef"


# ---- the cast --------------------------------------------------------------------------


def narrow_rules() -> list[dict[str, Any]]:
    """tenant-role.yaml's rules without `patch` on workloads and `get` on secrets."""
    import yaml

    rules: list[dict[str, Any]] = yaml.safe_load((RBAC / "tenant-role.yaml").read_text())["rules"]
    narrowed = []
    for rule in rules:
        rule = dict(rule)
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
        if "secrets" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "get"]
        if rule["verbs"]:  # a rule left with no verb is no rule (the API refuses it)
            narrowed.append(rule)
    return narrowed


def cast_in(cp: ControlPlane, ns: str, *, pods: bool = False) -> Path:
    """The accounts and the user of the module doc in `ns`; alice's kubeconfig. The
    accounts' ServiceAccount objects are made only with `pods`: impersonation needs none
    (the bindings name the account), and without one kwok's fake node gets no pod of
    a Job to "complete", so the test plays the sidecar (test_operator_loop.py)."""
    cp.revoke_tenant_role(ns)
    cp.kubectl("apply", "-f", str(RBAC / "tenant-role.yaml"))
    for account in ("tests", "nobody", "narrow") if pods else ():
        cp.kubectl("create", "serviceaccount", account, "-n", ns)
    cp.kubectl(
        "create", "rolebinding", "tests-tenant", "-n", ns, "--clusterrole=greenloop-tenant",
        f"--serviceaccount={ns}:tests",
    )  # fmt: skip
    cp.apply(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "narrow"}, "rules": narrow_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "narrow"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "narrow"},
         "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": ns}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "alice"},
         "rules": [{"apiGroups": [crd.GROUP], "resources": [crd.PLURAL],
                    "verbs": ["create", "get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "alice"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "alice"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": "alice"}]},
        namespace=ns,
    )  # fmt: skip
    return cp.kubeconfig_for_user("alice")


def validation(name: str, account: str, **spec: Any) -> dict[str, Any]:
    """One suite, two tests, acting as `account` (test_operator_loop.py's `sv`)."""
    return sv(name, ["core"], serviceAccountName=account, expectedTests=2, **spec)


def as_alice(cp: ControlPlane, alice: Path, ns: str, obj: dict[str, Any]) -> None:
    cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj), kubeconfig=alice)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict[str, str]]]]:
    calls: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(dict(self.headers))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/deploy", calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tenancy(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[tuple[Operator, Path]]:
    """The operator for `namespace` with no default account, loopback allowed (the
    listener is there: what refuses must be the account's rights, not the outbound
    policy); alice's kubeconfig. `backend` and `victim-app` rolled out."""
    ensure_crd(cluster)
    alice = cast_in(cluster, namespace)
    roll_out(cluster, namespace, "backend")
    roll_out(cluster, namespace, "victim-app")
    port = free_ports(1)[0]
    op = Operator(
        cluster, namespace, tmp_path / "operator.log", f"http://127.0.0.1:{port}", port,
        tenancy=(),
    )  # fmt: skip
    op.start()
    try:
        yield op, alice
    finally:
        op.kill(signal.SIGTERM)


def answer(job: dict[str, Any]) -> bytes:
    # Iteration 1: an HTTP 503, which calls for a redeploy; after it, a pass.
    if job["metadata"]["labels"]["greenloop.dev/iteration"] == "1":
        return junit(
            PASS.format(c="core", n="health"),
            FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"),
        )
    return junit(PASS.format(c="core", n="health"), PASS.format(c="core", n="websocket"))


def rollouts(cp: ControlPlane, ns: str, app: str) -> tuple[int, dict[str, str]]:
    """(ReplicaSets of `app`, its pod template's annotations): 1 and no greenloop
    annotation while greenloop never rolled it."""
    rs = cp.get_json("replicasets", "-n", ns, "-l", f"app={app}")["items"]
    dep = cp.get_json("deployment", app, "-n", ns)
    return len(rs), dep["spec"]["template"]["metadata"].get("annotations") or {}


def warnings(cp: ControlPlane, ns: str, reason: str) -> list[str]:
    events = cp.get_json("events", "-n", ns)["items"]
    return [
        e["message"]
        for e in events
        if e["involvedObject"]["kind"] == crd.KIND and e["reason"] == reason
    ]


def stalled_on(
    cp: ControlPlane, op: Operator, tmp: Path, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    status = run_until_done(cp, op, Sidecar(cp, op, answer, tmp), name)
    assert status["phase"] == "Stalled", f"{json.dumps(status)[:2000]}\n{op.tail()}"
    return status, condition(status, "Stalled")


# ---- the matrix --------------------------------------------------------------------------


def test_an_account_with_the_tenant_role_converges_as_the_demo_does(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    as_alice(cluster, alice, namespace, validation("demo", "tests", target=TARGET))
    status = run_until_done(cluster, op, Sidecar(cluster, op, answer, tmp_path), "demo")
    assert status["phase"] == "Passed", f"{json.dumps(status)[:2000]}\n{op.tail()}"
    assert status["iteration"] == 2
    assert rollouts(cluster, namespace, "backend")[0] == 2, "one rollout, made as `tests`"


def test_an_account_without_the_role_stalls_naming_it_and_nothing_is_created(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    as_alice(cluster, alice, namespace, sv("bare", ["core"], serviceAccountName="nobody"))
    _, stalled = stalled_on(cluster, op, tmp_path, "bare")
    assert stalled["reason"] == "Forbidden", stalled
    assert stalled["message"].startswith(f"serviceaccount {namespace}/nobody cannot "), stalled
    assert cluster.get_json("jobs", "-n", namespace)["items"] == []
    assert warnings(cluster, namespace, "Forbidden") == [stalled["message"]]


def test_no_account_and_no_platform_default_stalls_no_service_account(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    obj = sv("anon", ["core"])
    del obj["spec"]["serviceAccountName"]
    as_alice(cluster, alice, namespace, obj)
    _, stalled = stalled_on(cluster, op, tmp_path, "anon")
    assert stalled["reason"] == "NoServiceAccount", stalled
    assert "spec.serviceAccountName" in stalled["message"]
    assert cluster.get_json("jobs", "-n", namespace)["items"] == []
    assert len(warnings(cluster, namespace, "NoServiceAccount")) == 1


def test_probe_3_a_workload_the_account_may_not_patch_is_not_rolled(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    target = {"workloads": [{"kind": "Deployment", "name": "victim-app"}]}
    as_alice(cluster, alice, namespace, validation("probe3", "narrow", target=target))
    _, stalled = stalled_on(cluster, op, tmp_path, "probe3")
    expected = f"serviceaccount {namespace}/narrow cannot patch deployments.apps/victim-app"
    assert stalled["reason"] == "Forbidden", stalled
    assert stalled["message"].startswith(expected), stalled
    assert warnings(cluster, namespace, "Forbidden") == [stalled["message"]]
    time.sleep(2)  # a patch, had one been made, would have a ReplicaSet by now
    count, annotations = rollouts(cluster, namespace, "victim-app")
    assert count == 1 and "greenloop.dev/rollout" not in annotations, annotations


def test_probe_1_a_header_secret_the_account_may_not_read_is_not_sent(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path,
    listener: tuple[str, list[dict[str, str]]],
) -> None:  # fmt: skip
    op, alice = tenancy
    url, calls = listener
    cluster.kubectl(
        "create", "secret", "generic", "db-creds", "-n", namespace,
        f"--from-literal=X-Db={SECRET_VALUE}",
    )  # fmt: skip
    webhook = {"url": url, "headersFrom": {"secretName": "db-creds"}}
    as_alice(cluster, alice, namespace, validation("probe1", "narrow", target={"webhook": webhook}))
    status, stalled = stalled_on(cluster, op, tmp_path, "probe1")
    expected = f"serviceaccount {namespace}/narrow cannot get secrets/db-creds"
    assert stalled["reason"] == "Forbidden", stalled
    assert stalled["message"].startswith(expected), stalled
    time.sleep(1)
    assert calls == []
    written = json.dumps(status) + json.dumps(cluster.get_json("events", "-n", namespace))
    assert SECRET_VALUE not in written


def test_probe_4_a_webhook_to_an_internal_address_is_refused_as_the_tenant(
    cluster: ControlPlane, namespace: str, tmp_path: Path,
    listener: tuple[str, list[dict[str, str]]],
) -> None:  # fmt: skip
    """The outbound policy's refusal (test_operator_outbound.py), for the tenant account:
    the operator's default policy, which denies loopback, where the listener is."""
    ensure_crd(cluster)
    alice = cast_in(cluster, namespace)
    url, calls = listener
    port = free_ports(1)[0]
    op = Operator(
        cluster, namespace, tmp_path / "operator.log", f"http://127.0.0.1:{port}", port,
        outbound=(), tenancy=(),
    )  # fmt: skip
    op.start()
    try:
        obj = validation("probe4", "tests", target={"webhook": {"url": url}})
        as_alice(cluster, alice, namespace, obj)
        _, stalled = stalled_on(cluster, op, tmp_path, "probe4")
    finally:
        op.kill(signal.SIGTERM)
    assert stalled["reason"] == "RedeployFailed", stalled
    assert "refused by the operator's outbound policy" in stalled["message"], stalled
    assert calls == []


# ---- who may do what -------------------------------------------------------------------


def can_i(cp: ControlPlane, who: list[str], verb: str, resource: str, ns: str) -> str:
    resource, _, sub = resource.partition("/")
    subresource = [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl("auth", "can-i", verb, resource, *subresource, "-n", ns, *who, check=False)
    return proc.stdout.strip()


#: (verb, resource) -> what alice, the user of the probes, may do in her namespace.
ALICE = {
    ("create", crd.NAME): "yes",
    ("get", crd.NAME): "yes",
    ("get", "secrets"): "no",
    ("patch", "deployments.apps"): "no",
    ("create", "pods"): "no",
    ("create", "jobs.batch"): "no",
}

#: (verb, resource) -> what the operator's own account (config/rbac/role.yaml) may do.
OPERATOR = {
    ("impersonate", "serviceaccounts"): "yes",
    ("patch", f"{crd.NAME}/status"): "yes",
    ("watch", "jobs.batch"): "yes",
    ("create", "jobs.batch"): "no",
    ("patch", "jobs.batch"): "no",
    ("delete", "jobs.batch"): "no",
    ("patch", "deployments.apps"): "no",
    ("create", "pods"): "no",
    ("list", "secrets"): "no",
    ("create", "secrets"): "no",
    ("get", "pods/log"): "no",
    # no Secret at all: suite pods prove themselves with their own bound token, and the
    # Secrets an object names are read as its account
    ("get", "secrets"): "no",
}


def test_what_alice_and_the_operators_own_account_may_do(
    cluster: ControlPlane, namespace: str
) -> None:
    ensure_crd(cluster)
    alice = cast_in(cluster, namespace)
    cluster.kubectl("apply", "-f", str(RBAC))
    got_alice = {
        (verb, res): can_i(cluster, [f"--kubeconfig={alice}"], verb, res, namespace)
        for verb, res in ALICE
    }
    assert got_alice == ALICE
    got_operator = {
        (verb, res): can_i(cluster, [AS_OPERATOR], verb, res, namespace) for verb, res in OPERATOR
    }
    assert got_operator == OPERATOR
    groups = cluster.kubectl("auth", "can-i", "impersonate", "groups", AS_OPERATOR, check=False)
    assert groups.stdout.strip() == "no"  # any group would be system:masters too


# ---- on the real node ---------------------------------------------------------------------

SUITE = (
    "printf 'def test_ok():\\n    pass\\n\\ndef test_two():\\n    assert 1 + 1 == 2\\n' "
    "> /tmp/test_real.py && python3 -m pytest -q -p no:cacheprovider /tmp/test_real.py"
)


@pytest.mark.timeout(400)
def test_a_real_suite_runs_to_passed_as_the_tenant_account(
    cluster: ControlPlane, node: RealNode, node_namespace: str, node_operator: Operator
) -> None:
    """Jobs created by the tenant account (the Role alone, no blanket binding) run on the
    real node, upload through the real sidecar, and the object passes."""
    ns = node_namespace
    alice = cast_in(cluster, ns, pods=True)
    obj = {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": "real"},
        "spec": {
            "serviceAccountName": "tests",
            "expectedTests": 2,
            "suites": [{"name": "real", "image": IMAGES["demo-suites"],
                        "command": ["sh", "-c", SUITE], "timeoutSeconds": 120}],
            "policy": {"maxIterations": 2},
        },
    }  # fmt: skip
    as_alice(cluster, alice, ns, obj)
    deadline = time.monotonic() + 240
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and status.get("phase") not in ("Passed", "Stalled"):
        time.sleep(1)
        status = (cluster.get_json("sv", "real", "-n", ns, check=False) or {}).get("status") or {}
    assert status.get("phase") == "Passed", f"{json.dumps(status)[:2000]}\n{node_operator.tail()}"
    (job,) = cluster.get_json("jobs", "-n", ns)["items"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "tests"
