"""A cluster many teams share (issue 19): greenloop acts for an object with the rights of
the object's own ServiceAccount, never with the operator's (docs/design.md §8 "Tenancy").

The cast, on the real API server with RBAC: a user `alice` who may only create and get
StagingValidations in the namespace (no Secrets, no Deployments, no pods, no tokens)
creates every object; the accounts the objects name are

- `tests` (and the victim's `victim`): bound to config/rbac/tenant-role.yaml;
- `narrow`: the tenant Role cut as config/rbac/tenant-role.yaml says one may (no
  `patch` on deployments, no `get` on secrets);
- `nobody`: bound to nothing;
- none, and no --default-service-account.

The matrix runs on the real node (one namespace, one operator for the module, every
object created at once so their suite pods run side by side): the operator is a process
on this host running as its own ServiceAccount (a token of config/rbac/'s `greenloop`,
no admin), its results endpoint behind a Service; every suite is a real pod of the
demo-suites image testing `victim-app` (the demo app on its first boot: its upstream
answers 503, so each probe's first run fails for real and calls for a redeploy). For each
of the issue's probes the attack fails with a Stalled reason and nothing leaves:

1. `headersFrom` naming Secret `db-creds`, as `narrow`: Stalled/Forbidden naming account,
   verb and Secret; the listener (allowed by the outbound policy) is called by no one
   and the value is written nowhere;
2. forging the victim's verdict: every credential a tenant can obtain (a token for its
   own account, with and without our audience, one bound to its own suite pod) is
   refused by the results endpoint, nothing is stored for the victim's Job, and the
   victim ends as its real suite says (failing on the 503), never Passed;
3. `target.workloads` naming `victim-app`, as `narrow`: Stalled/Forbidden naming the
   patch; `victim-app`'s pod template and ReplicaSets unchanged;
4. a webhook to an internal address (a listener on loopback, where the control plane's
   etcd is), as `tests`: Stalled/RedeployFailed naming the outbound policy; no call.

Beside them: `nobody` stalls naming itself and gets no Job; `tests` runs a real suite to
Passed. `kubectl auth can-i` rows pin what alice, the tenant account and the operator's
own account may do. Two rows need no pods and stay on kwok's node: the demo converging
with one rollout made as `tests` (the test plays the sidecar, test_operator_loop.py) and
NoServiceAccount.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import shlex
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from greenloop.core import crd
from tests.integration.listener import Calls, gate, listening
from tests.integration.test_operator_loop import TARGET, Sidecar, condition, run_until_done, sv
from tests.integration.test_operator_rbac import install, token_kubeconfig
from tests.support.demo import K8S, fresh_state
from tests.support.pod_tokens import job_pod, mint
from tests.support.sidecar import FAIL, PASS, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.node import IMAGES
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports

if TYPE_CHECKING:
    from tests.integration.conftest import NodeManager

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
    for account in ("tests", "victim", "nobody", "narrow") if pods else ():
        cp.kubectl("create", "serviceaccount", account, "-n", ns)
    for account in ("tests", "victim"):
        cp.kubectl(
            "create", "rolebinding", f"{account}-tenant", "-n", ns,
            "--clusterrole=greenloop-tenant", f"--serviceaccount={ns}:{account}",
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


def as_alice(cp: ControlPlane, alice: Path, ns: str, obj: dict[str, Any]) -> None:
    cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj), kubeconfig=alice)


def rollouts(cp: ControlPlane, ns: str, app: str) -> tuple[int, dict[str, Any]]:
    """(ReplicaSets of `app`, its pod template): a rollout would add a ReplicaSet and a
    greenloop annotation to the template."""
    rs = cp.get_json("replicasets", "-n", ns, "-l", f"app={app}")["items"]
    dep = cp.get_json("deployment", app, "-n", ns)
    return len(rs), dep["spec"]["template"]


def warnings(cp: ControlPlane, ns: str, reason: str, name: str | None = None) -> list[str]:
    events = cp.get_json("events", "-n", ns)["items"]
    return [
        e["message"]
        for e in events
        if e["involvedObject"]["kind"] == crd.KIND
        and e["reason"] == reason
        and name in (None, e["involvedObject"]["name"])
    ]


# ---- kwok's node: the rows that need no pod ------------------------------------------------


@pytest.fixture
def tenancy(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[tuple[Operator, Path]]:
    """The operator for `namespace` with no default account; alice's kubeconfig.
    `backend` rolled out on kwok's node."""
    ensure_crd(cluster)
    alice = cast_in(cluster, namespace)
    roll_out(cluster, namespace, "backend")
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


def test_an_account_with_the_tenant_role_converges_as_the_demo_does(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    obj = sv("demo", ["core"], serviceAccountName="tests", expectedTests=2, target=TARGET)
    as_alice(cluster, alice, namespace, obj)
    status = run_until_done(cluster, op, Sidecar(cluster, op, answer, tmp_path), "demo")
    assert status["phase"] == "Passed", f"{json.dumps(status)[:2000]}\n{op.tail()}"
    assert status["iteration"] == 2
    assert rollouts(cluster, namespace, "backend")[0] == 2, "one rollout, made as `tests`"


def test_no_account_and_no_platform_default_stalls_no_service_account(
    cluster: ControlPlane, namespace: str, tenancy: tuple[Operator, Path], tmp_path: Path
) -> None:
    op, alice = tenancy
    obj = sv("anon", ["core"])
    del obj["spec"]["serviceAccountName"]
    as_alice(cluster, alice, namespace, obj)
    status = run_until_done(cluster, op, Sidecar(cluster, op, answer, tmp_path), "anon")
    assert status["phase"] == "Stalled", f"{json.dumps(status)[:2000]}\n{op.tail()}"
    stalled = condition(status, "Stalled")
    assert stalled["reason"] == "NoServiceAccount", stalled
    assert "spec.serviceAccountName" in stalled["message"]
    assert cluster.get_json("jobs", "-n", namespace)["items"] == []
    assert len(warnings(cluster, namespace, "NoServiceAccount")) == 1


# ---- who may do what -------------------------------------------------------------------


def can_i(cp: ControlPlane, who: list[str], verb: str, resource: str, ns: str) -> str:
    resource, _, sub = resource.partition("/")
    subresource = [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl("auth", "can-i", verb, resource, *subresource, "-n", ns, *who, check=False)
    return proc.stdout.strip()


#: (verb, resource) -> what alice, the user of the probes, may do in her namespace: no
#: Secret, no workload, no pod of her own, no way into the victim's pod or its token.
ALICE = {
    ("create", crd.NAME): "yes",
    ("get", crd.NAME): "yes",
    ("get", "secrets"): "no",
    ("patch", "deployments.apps"): "no",
    ("create", "pods"): "no",
    ("get", "pods"): "no",
    ("create", "pods/exec"): "no",
    ("create", "jobs.batch"): "no",
    ("create", "serviceaccounts/token"): "no",
}

#: (verb, resource) -> what the tenant Role lets an account do (what an object naming it
#: gets greenloop to do): no pod of its own, no token for any account (so none bound to
#: another object's pod), no exec.
TENANT = {
    ("create", "jobs.batch"): "yes",
    ("get", "secrets"): "yes",
    ("create", "pods"): "no",
    ("create", "pods/exec"): "no",
    ("create", "serviceaccounts/token"): "no",
    ("list", "secrets"): "no",
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
    ("create", "serviceaccounts/token"): "no",
    # no Secret at all: suite pods prove themselves with their own bound token, and the
    # Secrets an object names are read as its account
    ("get", "secrets"): "no",
}


def test_what_alice_the_tenant_account_and_the_operators_own_account_may_do(
    cluster: ControlPlane, namespace: str
) -> None:
    ensure_crd(cluster)
    alice = cast_in(cluster, namespace)
    cluster.kubectl("apply", "-f", str(RBAC))

    def table(who: list[str], rows: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
        return {(verb, res): can_i(cluster, who, verb, res, namespace) for verb, res in rows}

    assert table([f"--kubeconfig={alice}"], ALICE) == ALICE
    assert table([f"--as=system:serviceaccount:{namespace}:tests"], TENANT) == TENANT
    assert table([AS_OPERATOR], OPERATOR) == OPERATOR
    groups = cluster.kubectl("auth", "can-i", "impersonate", "groups", AS_OPERATOR, check=False)
    assert groups.stdout.strip() == "no"  # any group would be system:masters too


# ---- the matrix on the real node -------------------------------------------------------------

#: A suite that passes: two tests (the tenant account's own object, `thief`).
PASSING = (
    "printf 'def test_ok():\\n    pass\\n\\ndef test_two():\\n    assert 1 + 1 == 2\\n' "
    "> /tmp/test_real.py && python3 -m pytest -q -p no:cacheprovider /tmp/test_real.py"
)
#: Two of the demo's core tests against victim-app: its upstream check fails with
#: "HTTP 503 Service Unavailable" on the app's first boot (a redeploy would fix it), the
#: other passes. The app is found through its Service's environment variables.
CORE = [
    "python3", "-m", "pytest", "-q", "tests/test_core.py",
    "-k", "inventory_upstream_reachable or product_not_found",
]  # fmt: skip
BASE_URL = "http://$(VICTIM_APP_SERVICE_HOST):$(VICTIM_APP_SERVICE_PORT)"


def on_node(name: str, account: str | None, command: list[str], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "expectedTests": 2,
        "suites": [{"name": "core", "image": IMAGES["demo-suites"], "command": command,
                    "env": [{"name": "BASE_URL", "value": BASE_URL}],
                    "timeoutSeconds": 240}],
        "policy": {"maxIterations": 2, "flakeRetries": 0},
        **spec,
    }  # fmt: skip
    if account is not None:
        body["serviceAccountName"] = account
    return {"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": name},
            "spec": body}  # fmt: skip


def gated(command: list[str], url: str) -> list[str]:
    """`command` once `url` answers 200: the victim's real suite runs after the forgeries."""
    wait = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
    loop = f'until python3 -c "{wait}" {url} 2>/dev/null; do sleep 1; done'
    return ["sh", "-c", f"{loop}; exec {shlex.join(command)}"]


@dataclass
class Stage:
    cp: ControlPlane
    ns: str
    op: Operator
    endpoint: str  # the results endpoint as this host reaches it
    allowed: Calls  # probe 1's listener, which the outbound policy allows
    internal: Calls  # probe 4's, on loopback (where etcd listens), which it denies
    victim_app: tuple[int, dict[str, Any]]  # its ReplicaSets and pod template before
    release: threading.Event  # lets the victim's suite run

    def verdict(self, name: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.op.proc is None or self.op.proc.poll() is not None:
                pytest.fail(f"the operator exited:\n{self.op.tail()}")
            status = (self.cp.get_json("sv", name, "-n", self.ns, check=False) or {}).get(
                "status"
            ) or {}
            if status.get("phase") in ("Passed", "Stalled"):
                return status
            time.sleep(1)
        pytest.fail(f"sv/{name}: no verdict in {timeout}s: {json.dumps(status)[:2000]}")

    def jobs(self, name: str) -> list[dict[str, Any]]:
        uid = self.cp.get_json("sv", name, "-n", self.ns)["metadata"]["uid"]
        selector = f"greenloop.dev/validation-uid={uid}"
        jobs: list[dict[str, Any]] = self.cp.get_json("jobs", "-n", self.ns, "-l", selector)[
            "items"
        ]
        return jobs

    def stored_for(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The results ConfigMaps the endpoint stored for `job` (owned by it)."""
        maps = self.cp.get_json("configmaps", "-n", self.ns, "-l", "greenloop.dev/results")
        uid = job["metadata"]["uid"]
        owned = [(m, m["metadata"].get("ownerReferences") or ()) for m in maps["items"]]
        return [m for m, owners in owned if any(o["uid"] == uid for o in owners)]


@pytest.fixture(scope="module")
def stage(
    cluster: ControlPlane, node_manager: NodeManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stage]:
    """Namespace `ta-…` on the real node with the cast, Secret `db-creds`, `victim-app`
    (examples/demo/k8s/demo-shop.yaml renamed, on its first boot), the operator as its
    own ServiceAccount, and every object of the matrix created by alice at once."""
    node = node_manager.get()
    tmp = tmp_path_factory.mktemp("tenancy")
    ns = cluster.create_namespace(f"ta-{uuid.uuid4().hex[:6]}", tenant_role=False)
    with contextlib.ExitStack() as stack:
        stack.callback(cluster.kubectl, "delete", "namespace", ns, "--wait=false", check=False)
        node.use_namespace(ns)
        install(cluster)
        alice = cast_in(cluster, ns, pods=True)
        cluster.kubectl(
            "create", "secret", "generic", "db-creds", "-n", ns,
            f"--from-literal=X-Db={SECRET_VALUE}",
        )  # fmt: skip
        stack.enter_context(fresh_state(ns))
        app = (K8S / "demo-shop.yaml").read_text()
        app = app.replace("name: demo-shop\n", "name: victim-app\n")
        app = app.replace("app: demo-shop}", "app: victim-app}")
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=app)
        cluster.kubectl("rollout", "status", "-n", ns, "deployment/victim-app", "--timeout=180s")
        allowed_url, allowed = stack.enter_context(listening("127.0.0.2"))
        internal_url, internal = stack.enter_context(listening("127.0.0.1"))
        gate_url, release = stack.enter_context(gate(node.host_address))

        as_operator = copy.copy(cluster)
        as_operator.kubeconfig = token_kubeconfig(cluster, "greenloop", tmp / "op.kubeconfig")
        port = free_ports(1)[0]
        ip = node.expose_host_port(ns, "greenloop-results", port, service_port=8081)
        op = Operator(
            as_operator, ns, tmp / "operator.log", f"http://{ip}:8081", port,
            host=node.host_address, outbound=("--allow-outbound", "127.0.0.2"), tenancy=(),
        )  # fmt: skip
        op.start()
        stack.callback(op.kill, signal.SIGTERM)

        webhook1 = {"url": allowed_url, "headersFrom": {"secretName": "db-creds"}}
        victim_app = {"workloads": [{"kind": "Deployment", "name": "victim-app"}]}
        for obj in (
            on_node(
                "victim",
                "victim",
                gated(CORE, gate_url),
                policy={"maxIterations": 1, "flakeRetries": 0},
            ),
            on_node("thief", "tests", ["sh", "-c", PASSING]),
            on_node("probe1", "narrow", CORE, target={"webhook": webhook1}),
            on_node("probe3", "narrow", CORE, target=victim_app),
            on_node("probe4", "tests", CORE, target={"webhook": {"url": internal_url}}),
            on_node("nobody", "nobody", CORE),
        ):
            as_alice(cluster, alice, ns, obj)
        before = rollouts(cluster, ns, "victim-app")
        endpoint = f"http://{node.host_address}:{port}"
        yield Stage(cluster, ns, op, endpoint, allowed, internal, before, release)


#: The first test to use `stage` includes the wait for the machine's one real node (up
#: to GREENLOOP_NODE_LOCK_SECONDS, 1,800 s when others take turns), its start and every
#: pod's first run; each wait inside a test is bounded on its own (`verdict`, `wait_for`).
ON_NODE = pytest.mark.timeout(2400)


def stall(status: dict[str, Any]) -> dict[str, Any]:
    """The Stalled condition, {} when there is none (a Passed object)."""
    return next((c for c in status.get("conditions", ()) if c["type"] == "Stalled"), {})


def forge(url: str, token: str) -> int:
    """POST an all-pass JUnit XML for the victim's Job with `token`; the HTTP status."""
    body = gzip.compress(junit(PASS.format(c="core", n="a"), PASS.format(c="core", n="b")))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/gzip"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def wait_for(what: str, found: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(1)
    pytest.fail(f"no {what} in {timeout}s")


@ON_NODE
def test_probe_2_no_credential_a_tenant_can_obtain_forges_the_victims_verdict(
    stage: Stage,
) -> None:
    """While the victim's real suite waits at its gate, every token a tenant with the
    `tests` account can get (TokenRequest for its account, with and without the results
    audience, bound to its own suite pod or to none) uploads an all-pass result for the
    victim's Job: each is refused and nothing is stored. The victim's own pod token is
    mounted into its sidecar alone (no API token, no exec, no Secret to read: the can-i
    rows above). Then the victim's suite runs and the victim ends on its real 503."""
    cp, ns = stage.cp, stage.ns
    (job,) = wait_for("victim Job", lambda: stage.jobs("victim"))
    thief_job = wait_for("thief Job", lambda: stage.jobs("thief"))[0]
    thief_pod = wait_for(
        "thief pod",
        lambda: job_pod(cp.get_json("pods", "-n", ns)["items"], thief_job["metadata"]["uid"]),
    )
    # no upload Secret to steal (before the fix: one per Job, named from its uid)
    secrets = cp.get_json("secrets", "-n", ns)["items"]
    assert [s["metadata"]["name"] for s in secrets] == ["db-creds", "demo-api-token"]
    url = f"{stage.endpoint}/v1/results/{ns}/{job['metadata']['name']}"
    tokens = {
        "own account, results audience": mint(cp, ns, "tests"),
        "own account, API audience": mint(cp, ns, "tests", audience=None),
        "own suite pod, results audience": mint(cp, ns, "tests", pod=thief_pod),
        "own suite pod, API audience": mint(cp, ns, "tests", pod=thief_pod, audience=None),
    }
    codes = {what: forge(url, token) for what, token in tokens.items()}
    assert codes == {
        "own account, results audience": 401,  # bound to no pod
        "own account, API audience": 401,
        "own suite pod, results audience": 403,  # a pod, but not the victim Job's
        "own suite pod, API audience": 401,
    }, stage.op.tail()
    victim_pods = [p for p in cp.get_json("pods", "-n", ns)["items"]
                   if job_pod([p], job["metadata"]["uid"])]  # fmt: skip
    assert [p["status"]["phase"] for p in victim_pods] in (["Pending"], ["Running"])
    assert stage.stored_for(job) == [], "nothing stored while the real suite waits"

    stage.release.set()
    status = stage.verdict("victim")
    assert status["phase"] == "Stalled", json.dumps(status)[:2000]
    assert (status["summary"]["passed"], status["summary"]["failed"]) == (1, 1), status["summary"]
    assert len(stage.stored_for(job)) == 1, "the victim's own upload, no other"


# Each row checks first that nothing left (what the attack was after), then how it was
# refused: before issue 19's fix the first check is the one that failed.


@ON_NODE
def test_probe_1_a_header_secret_the_account_may_not_read_is_not_sent(stage: Stage) -> None:
    status = stage.verdict("probe1")
    assert stage.allowed == [], "the listener got the Secret's header"
    written = {
        "status": json.dumps(status),
        "events": json.dumps(stage.cp.get_json("events", "-n", stage.ns)),
        "operator log": stage.op.log.read_text(errors="replace"),
    }
    assert [where for where, text in written.items() if SECRET_VALUE in text] == []
    stalled = stall(status)
    expected = f"serviceaccount {stage.ns}/narrow cannot get secrets/db-creds"
    assert (status["phase"], stalled.get("reason")) == ("Stalled", "Forbidden"), stalled
    assert stalled["message"].startswith(expected), stalled
    assert warnings(stage.cp, stage.ns, "Forbidden", "probe1") == [stalled["message"]]


@ON_NODE
def test_probe_3_a_workload_the_account_may_not_patch_is_not_rolled(stage: Stage) -> None:
    status = stage.verdict("probe3")
    assert rollouts(stage.cp, stage.ns, "victim-app") == stage.victim_app, "victim-app rolled"
    stalled = stall(status)
    expected = f"serviceaccount {stage.ns}/narrow cannot patch deployments.apps/victim-app"
    assert (status["phase"], stalled.get("reason")) == ("Stalled", "Forbidden"), stalled
    assert stalled["message"].startswith(expected), stalled
    assert warnings(stage.cp, stage.ns, "Forbidden", "probe3") == [stalled["message"]]


@ON_NODE
def test_probe_4_a_webhook_to_an_internal_address_is_refused_as_the_tenant(
    stage: Stage,
) -> None:
    status = stage.verdict("probe4")
    assert stage.internal == [], "the internal address was called"
    stalled = stall(status)
    assert (status["phase"], stalled.get("reason")) == ("Stalled", "RedeployFailed"), stalled
    assert "refused by the operator's outbound policy" in stalled["message"], stalled
    assert "which is loopback" in stalled["message"], stalled


@ON_NODE
def test_an_account_without_the_role_stalls_naming_it_and_nothing_is_created(
    stage: Stage,
) -> None:
    status = stage.verdict("nobody")
    assert stage.jobs("nobody") == [], "a Job was created for an account bound to nothing"
    stalled = stall(status)
    assert (status["phase"], stalled.get("reason")) == ("Stalled", "Forbidden"), stalled
    assert stalled["message"].startswith(f"serviceaccount {stage.ns}/nobody cannot "), stalled
    assert warnings(stage.cp, stage.ns, "Forbidden", "nobody") == [stalled["message"]]


@ON_NODE
def test_a_real_suite_runs_to_passed_as_the_tenant_account(stage: Stage) -> None:
    """The tenant Role alone (no blanket binding) is enough: the Job created as `tests`
    runs on the real node, its sidecar uploads with its own pod's token, it passes."""
    status = stage.verdict("thief")
    assert status["phase"] == "Passed", f"{json.dumps(status)[:2000]}\n{stage.op.tail()}"
    (job,) = stage.jobs("thief")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "tests"
