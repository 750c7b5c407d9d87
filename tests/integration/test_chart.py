"""charts/greenloop: linted, rendered, and accepted by the real API server.

Grouped by what the chart promises (issue 15):
- every ci/*-values.yaml passes `helm lint --strict` and, rendered with `helm template`,
  `kubectl apply --dry-run=server` on the real kube-apiserver (its admission, its CRD
  schemas: StagingValidation, kopf's peering, prometheus-operator's ServiceMonitor);
- values.schema.json refuses a typo, a wrong type or a negative replica count, naming
  the key, at `helm template` and at `helm install`;
- one source of truth: the RBAC rules are config/rbac/role.yaml's, the CRD is
  crds/stagingvalidation.yaml, in both the cluster-wide and the namespaced install;
- the operator pod (and the `helm test` pod) pass the restricted Pod Security Standard,
  checked by the API server's own PodSecurity admission, with a negative control;
- the NetworkPolicy admits exactly the labels greenloop puts on suite pods;
- a real `helm install`/`upgrade`/`uninstall` keeps the CRD and the objects;
- the `helm test` hook's script, run against the API server with the hook's own
  ServiceAccount, passes on Ready and fails with the reason on Stalled.

helm comes from tools/helm/build (built once when missing); the control plane from
tests/integration/conftest.py (`apiserver`: etcd + kube-apiserver, no node: nothing here
runs a pod). The operator-in-a-pod install on the real node: test_chart_node.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenloop.k8s.jobs import LABEL_MANAGED_BY, Owner, job_labels
from tests.support.helm import CHART, CI_VALUES, Helm, by_kind
from tests.support.owners import ensure_crd
from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane
from tools.cluster.node import IMAGES
from tools.cluster.node_config import NODE_LABEL, NODE_TAINT
from tools.cluster.procs import wait_until

pytestmark = [pytest.mark.integration]

RELEASE = "gl"
FULLNAME = "gl-greenloop"
CI_FILES = sorted(CI_VALUES.glob("*-values.yaml"))
ROLE = REPO_ROOT / "config" / "rbac" / "role.yaml"
TOKENREVIEW_ROLE = REPO_ROOT / "config" / "rbac" / "tokenreview_role.yaml"
CRD = REPO_ROOT / "crds" / "stagingvalidation.yaml"
PEERING_CRDS = REPO_ROOT / "crds" / "kopf-peering.yaml"
SERVICEMONITOR_CRD = (
    REPO_ROOT / "tests" / "support" / "crds" / "servicemonitors.monitoring.coreos.com.yaml"
)
HELM_TEST_SCRIPT = CHART / "files" / "helm-test.py"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
#: the namespaces ci/namespaced-values.yaml and ci/ha-namespaced-values.yaml watch
CI_NAMESPACES = ("team-a", "team-b")


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm.ensure()


def values_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind}s rendered, expected one"
    return found[0]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = the(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def arg_values(container: dict[str, Any], flag: str) -> list[str]:
    """The values given to `--flag=value` arguments, in order."""
    prefix = f"{flag}="
    return [a.removeprefix(prefix) for a in container["args"] if a.startswith(prefix)]


# --------------------------------------------------------------------------------------
# helm lint and the schema


def test_the_chart_has_a_ci_values_file_for_each_way_it_is_installed() -> None:
    assert {values_id(p) for p in CI_FILES} >= {
        "default",
        "namespaced",
        "ha",
        "ha-namespaced",
        "servicemonitor",
        "no-metrics",
        "networkpolicy",
        "existing-account",
        "node",
        "outbound",
    }


@pytest.mark.parametrize("values", CI_FILES, ids=values_id)
def test_helm_lint_strict_passes(helm: Helm, values: Path) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "--values", str(values), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


# (what is set, the key the refusal must name)
BAD_VALUES = [
    pytest.param(["--set", "replcas=2"], "replcas", id="unknown-top-level-key"),
    pytest.param(["--set", "image.pullPolcy=Never"], "pullPolcy", id="unknown-nested-key"),
    pytest.param(["--set", "metrics.serviceMonitor.enable=true"], "enable", id="unknown-deep-key"),
    pytest.param(["--set-string", "replicas=two"], "replicas", id="replicas-not-a-number"),
    pytest.param(["--set", "replicas=-1"], "replicas", id="negative-replicas"),
    pytest.param(["--set", "logFormat=xml"], "logFormat", id="log-format-not-json-or-text"),
    pytest.param(["--set", "results.port=70000"], "port", id="port-out-of-range"),
    pytest.param(["--set", "watchNamespaces[0]=Team_A"], "watchNamespaces", id="namespace-not-dns"),
    pytest.param(["--set", "image.digest=latest"], "digest", id="digest-not-sha256"),
    pytest.param(["--set", "installCRDs=maybe"], "installCRDs", id="bool-not-a-bool"),
    pytest.param(["--set", "outbound.allow=10.0.0.0/8"], "allow", id="outbound-allow-not-a-list"),
    pytest.param(
        ["--set", "outbound.allowCluster=yes"], "allowCluster", id="outbound-cluster-not-a-bool"
    ),
    pytest.param(
        ["--set", "outbound.clusterCIDRs[0]=pods"], "clusterCIDRs", id="cluster-cidr-not-a-cidr"
    ),
    pytest.param(["--set", "outbound.alow[0]=x"], "alow", id="outbound-unknown-key"),
    pytest.param(
        ["--set-string", "liveness.port=healthz"], "port", id="liveness-port-not-a-number"
    ),
    pytest.param(
        ["--set", "tenancy.defaultServiceAccount=Tests"],
        "defaultServiceAccount",
        id="tenant-account-not-dns",
    ),
    pytest.param(["--set", "tenancy.namespaces[0]=Team_A"], "namespaces", id="tenant-ns-not-dns"),
]


@pytest.mark.parametrize(("sets", "key"), BAD_VALUES)
def test_helm_template_refuses_bad_values_naming_the_key(
    helm: Helm, sets: list[str], key: str
) -> None:
    proc = helm.run("template", RELEASE, str(CHART), *sets, check=False)
    assert proc.returncode != 0, f"accepted {sets}:\n{proc.stdout[:500]}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert key in proc.stderr, proc.stderr


@pytest.mark.parametrize(("sets", "key"), BAD_VALUES[:5])
def test_helm_install_refuses_bad_values_naming_the_key(
    helm: Helm, apiserver: ControlPlane, namespace: str, sets: list[str], key: str
) -> None:
    proc = helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--dry-run=server",
        "--kubeconfig",
        str(apiserver.kubeconfig),
        *sets,
        check=False,
    )
    assert proc.returncode != 0, proc.stdout[:500]
    assert key in proc.stderr, proc.stderr
    listed = helm.run("list", "--short", "-n", namespace, "--kubeconfig", str(apiserver.kubeconfig))
    assert listed.stdout.split() == []


def test_every_value_in_values_yaml_is_in_the_schema() -> None:
    """additionalProperties is false at each level: a key values.yaml has and the schema
    lacks would make the chart refuse its own defaults - walk both to say which."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def missing(vals: dict[str, Any], node: dict[str, Any], path: str) -> list[str]:
        props = node.get("properties")
        if props is None:
            return []
        out = []
        for k, v in vals.items():
            if k not in props:
                out.append(f"{path}{k}")
            elif isinstance(v, dict):
                out += missing(v, props[k], f"{path}{k}.")
        return out

    assert missing(values, schema, "") == []


# --------------------------------------------------------------------------------------
# every ci values file on the real API server


@pytest.fixture
def cluster_ready(apiserver: ControlPlane) -> ControlPlane:
    """The CRDs the rendered objects need, for real: StagingValidation, kopf's peering
    (the chart's crds/), prometheus-operator's ServiceMonitor; the ci files' namespaces."""
    ensure_crd(apiserver)
    apiserver.kubectl("apply", "-f", str(PEERING_CRDS), "-f", str(SERVICEMONITOR_CRD))
    for crd in (
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
        "servicemonitors.monitoring.coreos.com",
    ):
        apiserver.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    for ns in CI_NAMESPACES:
        if apiserver.kubectl("get", "namespace", ns, check=False).returncode != 0:
            apiserver.create_namespace(ns)
    return apiserver


def dry_run(cp: ControlPlane, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    text = "\n---\n".join(json.dumps(d) for d in docs)
    return cp.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False)


def create_service_accounts(cp: ControlPlane, docs: list[dict[str, Any]]) -> None:
    """A Pod is admitted only when its ServiceAccount exists, and a dry-run creates
    nothing: make the rendered ServiceAccounts for real."""
    accounts = by_kind(docs, "ServiceAccount")
    if accounts:
        cp.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(a) for a in accounts))


@pytest.mark.parametrize("values", CI_FILES, ids=values_id)
def test_every_ci_values_file_is_accepted_by_the_api_server(
    helm: Helm, cluster_ready: ControlPlane, namespace: str, values: Path
) -> None:
    docs = helm.template(RELEASE, namespace, values=[values], include_crds=True)
    create_service_accounts(cluster_ready, docs)
    proc = dry_run(cluster_ready, docs)
    assert proc.returncode == 0, proc.stderr
    applied = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr


def test_the_dry_run_can_fail(helm: Helm, cluster_ready: ControlPlane, namespace: str) -> None:
    """The check above is real: the API server refuses what the chart must never render
    (here a ServiceMonitor whose interval is not a duration, caught by its CRD's schema)."""
    docs = helm.template(
        RELEASE,
        namespace,
        values=[CI_VALUES / "servicemonitor-values.yaml"],
        show_only="templates/servicemonitor.yaml",
    )
    (monitor,) = docs
    monitor["spec"]["endpoints"][0]["interval"] = "soon"
    proc = dry_run(cluster_ready, [monitor])
    assert proc.returncode != 0
    assert "interval" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------
# what the rendered objects hold


@pytest.mark.parametrize("values", CI_FILES, ids=values_id)
def test_everything_carries_the_standard_labels(helm: Helm, values: Path) -> None:
    docs = helm.template(RELEASE, "greenloop-system", values=[values])
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/name"] == "greenloop"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def role_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ROLE.read_text())["rules"]
    assert rules, f"{ROLE} has no rules"
    return rules


def test_cluster_wide_install_grants_config_rbac_rules_by_a_cluster_role(helm: Helm) -> None:
    docs = [d for d in helm.template(RELEASE, "greenloop-system") if not is_hook(d)]
    role = the(docs, "ClusterRole")
    assert role["rules"] == role_rules()
    binding = the(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": "greenloop-system"}
    ]
    assert by_kind(docs, "Role") == by_kind(docs, "RoleBinding") == []
    assert arg_values(operator_container(docs), "--namespace") == []


def test_namespaced_install_grants_the_same_rules_in_the_watched_namespaces_only(
    helm: Helm,
) -> None:
    docs = helm.template(RELEASE, "greenloop-system", values=[CI_VALUES / "namespaced-values.yaml"])
    docs = [d for d in docs if not is_hook(d)]  # helm test's own account aside
    roles, bindings = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == list(CI_NAMESPACES)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == list(CI_NAMESPACES)
    for role in roles:
        assert role["rules"] == role_rules()
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "greenloop-system"
    # Cluster-wide, only the results endpoint's TokenReview (cluster-scoped).
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert cluster_role["metadata"]["name"] == f"{FULLNAME}-tokenreview"
    assert cluster_role["rules"] == yaml.safe_load(TOKENREVIEW_ROLE.read_text())["rules"]
    assert cluster_role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    (cluster_binding,) = by_kind(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == f"{FULLNAME}-tokenreview"
    assert cluster_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": "greenloop-system"}
    ]
    assert arg_values(operator_container(docs), "--namespace") == list(CI_NAMESPACES)


TENANT_ROLE = REPO_ROOT / "config" / "rbac" / "tenant-role.yaml"


def test_tenancy_values_create_the_tenant_role_and_bind_it_to_the_default_account(
    helm: Helm,
) -> None:
    """docs/design.md §8 "Tenancy": the ClusterRole is config/rbac/tenant-role.yaml's
    rules, bound in each listed namespace to the account the operator is told to use."""
    docs = helm.template(RELEASE, "greenloop-system", values=[CI_VALUES / "tenancy-values.yaml"])
    docs = [d for d in docs if not is_hook(d)]
    tenant = next(
        r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-tenant")
    )
    assert tenant["rules"] == yaml.safe_load(TENANT_ROLE.read_text())["rules"]
    (binding,) = [
        b
        for b in by_kind(docs, "RoleBinding")
        if b["roleRef"]["name"] == tenant["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == "default"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "greenloop-tests", "namespace": "default"}
    ]
    assert arg_values(operator_container(docs), "--default-service-account") == ["greenloop-tests"]
    plain = [d for d in helm.template(RELEASE, "greenloop-system") if not is_hook(d)]
    assert arg_values(operator_container(plain), "--default-service-account") == []
    assert not [
        r for r in by_kind(plain, "ClusterRole") if r["metadata"]["name"].endswith("-tenant")
    ]


def test_tenancy_namespaces_without_an_account_are_refused_naming_it(helm: Helm) -> None:
    proc = helm.run(
        "template", RELEASE, str(CHART), "--set", "tenancy.namespaces={ta}", check=False
    )
    assert proc.returncode != 0
    assert "tenancy.defaultServiceAccount" in proc.stderr, proc.stderr


def test_rbac_create_false_grants_nothing(helm: Helm) -> None:
    docs = helm.template(RELEASE, "ns", values=[CI_VALUES / "existing-account-values.yaml"])
    kinds = {d["kind"] for d in docs if not is_hook(d)}  # helm test's own account aside
    assert not kinds & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "CustomResourceDefinition",
    }
    assert the(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "greenloop"


def crd_without_chart_metadata(crd: dict[str, Any]) -> dict[str, Any]:
    meta = crd["metadata"]
    return {**crd, "metadata": {"name": meta["name"]}}


def test_the_crd_is_crds_stagingvalidation_upgraded_with_the_chart_and_kept(helm: Helm) -> None:
    docs = helm.template(RELEASE, "greenloop-system")
    crd = the(docs, "CustomResourceDefinition")
    source = yaml.safe_load(CRD.read_text())
    assert crd_without_chart_metadata(crd) == crd_without_chart_metadata(source)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # in templates/ (upgraded by helm upgrade), not the chart's crds/ (never upgraded)
    assert not (CHART / "crds" / "stagingvalidation.yaml").exists()


@pytest.mark.parametrize(
    ("sets", "has_crd", "kept"),
    [(["keepCRDs=false"], True, False), (["installCRDs=false"], False, False)],
    ids=["not-kept", "not-installed"],
)
def test_crd_values(helm: Helm, sets: list[str], has_crd: bool, kept: bool) -> None:
    docs = helm.template(RELEASE, "greenloop-system", sets=sets)
    crds = by_kind(docs, "CustomResourceDefinition")
    assert len(crds) == int(has_crd)
    for crd in crds:
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_the_chart_copies_of_the_sources_are_links_to_them() -> None:
    """files/ and crds/ hold symlinks to the repository's single sources, so the chart
    cannot drift from what `kubectl apply -f crds/ -f config/rbac/` installs."""
    for link, source in [
        (CHART / "files" / "stagingvalidation.yaml", CRD),
        (CHART / "files" / "operator-role.yaml", ROLE),
        (CHART / "files" / "tokenreview-role.yaml", TOKENREVIEW_ROLE),
        (CHART / "crds" / "kopf-peering.yaml", PEERING_CRDS),
    ]:
        assert link.is_symlink(), f"{link} should be a symlink to {source}"
        assert link.resolve() == source.resolve()


def test_the_packaged_chart_holds_the_sources_and_renders_as_the_checkout(
    helm: Helm, tmp_path: Path
) -> None:
    """`helm package` (what a chart registry holds) stores the linked files' contents."""
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("greenloop-*.tgz")
    with tarfile.open(package) as tar:
        for member, source in [
            ("greenloop/files/stagingvalidation.yaml", CRD),
            ("greenloop/files/operator-role.yaml", ROLE),
            ("greenloop/files/tokenreview-role.yaml", TOKENREVIEW_ROLE),
            ("greenloop/crds/kopf-peering.yaml", PEERING_CRDS),
        ]:
            info = tar.getmember(member)
            assert info.isfile(), member
            extracted = tar.extractfile(info)
            assert extracted is not None
            assert extracted.read() == source.read_bytes(), member
    for values in CI_FILES:
        args = ["template", RELEASE, "--namespace", "ns", "--values", str(values)]
        packaged = helm.run(*args[:2], str(package), *args[2:], "--include-crds").stdout
        checkout = helm.run(*args[:2], str(CHART), *args[2:], "--include-crds").stdout
        assert packaged == checkout, values.name


def test_operator_args_come_from_values(helm: Helm) -> None:
    docs = helm.template(RELEASE, "greenloop-system")
    c = operator_container(docs)
    image = c["image"]
    assert image == "localhost/greenloop:0.1.0"  # repository : appVersion
    assert c["command"] == ["greenloop", "operator"]
    assert arg_values(c, "--results-url") == [
        "http://gl-greenloop-results.greenloop-system.svc:8081"
    ]
    assert arg_values(c, "--results-port") == ["8081"]
    assert arg_values(c, "--metrics-port") == ["8080"]
    assert arg_values(c, "--reporter-image") == [image]  # the sidecar is greenloop's image
    assert arg_values(c, "--log-format") == ["json"]
    assert arg_values(c, "--peering") == []
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    assert services["gl-greenloop-results"]["spec"]["ports"][0]["port"] == 8081
    assert services["gl-greenloop-metrics"]["spec"]["ports"][0]["targetPort"] == "metrics"
    # liveness: kopf's own endpoint, on its own port; readiness: the results endpoint
    assert arg_values(c, "--liveness") == ["http://0.0.0.0:8082/healthz"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"results": 8081, "liveness": 8082, "metrics": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "results"}
    # the outbound policy is the operator's default: no flag
    for flag in ("--allow-outbound", "--cluster-cidr"):
        assert arg_values(c, flag) == [], flag
    assert "--allow-outbound-cluster" not in c["args"]


def test_the_outbound_values_become_the_operator_flags(helm: Helm) -> None:
    c = operator_container(
        helm.template(RELEASE, "ns", values=[CI_VALUES / "outbound-values.yaml"])
    )
    assert arg_values(c, "--allow-outbound") == [
        "hooks.internal.example.com", "*.deploy.example.com", "10.20.0.0/16",
    ]  # fmt: skip
    assert arg_values(c, "--cluster-cidr") == ["10.96.0.0/12", "10.244.0.0/16"]
    assert c["args"].count("--allow-outbound-cluster") == 1
    # and greenloop builds its policy from them: the webhook host allowed, a cluster
    # address not denied (allowCluster), loopback still denied
    from greenloop.cli import build_parser
    from greenloop.core.outbound import operator_policy

    args = build_parser().parse_args(["operator", *c["args"]])
    policy = operator_policy(
        allow=args.allow_outbound,
        allow_cluster=args.allow_outbound_cluster,
        cluster_cidrs=args.cluster_cidr,
    )
    assert args.allow_outbound_cluster is True
    assert len(policy.allowed) == 3
    assert not any("cluster" in rule.label for rule in policy.denied)


def test_the_liveness_port_is_a_value_distinct_from_the_other_listeners(
    helm: Helm,
) -> None:
    c = operator_container(helm.template(RELEASE, "ns", sets=["liveness.port=9090"]))
    assert arg_values(c, "--liveness") == ["http://0.0.0.0:9090/healthz"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["liveness"] == 9090
    proc = helm.run("template", RELEASE, str(CHART), "--set", "liveness.port=8080", check=False)
    assert proc.returncode != 0
    assert "results.port, liveness.port and metrics.port must differ" in proc.stderr
    # with metrics off, its port is free
    helm.run(
        "template", RELEASE, str(CHART), "--set", "liveness.port=8080",
        "--set", "metrics.enabled=false",
    )  # fmt: skip


def test_the_operator_arguments_are_ones_greenloop_operator_accepts(helm: Helm) -> None:
    """Every flag the chart renders (any ci file) parses with greenloop's own CLI parser."""
    from greenloop.cli import build_parser

    parser = build_parser()
    for values in CI_FILES:
        c = operator_container(helm.template(RELEASE, "ns", values=[values]))
        args = parser.parse_args(["operator", *c["args"]])
        assert args.func.__name__ == "cmd_operator", values.name


def test_a_digest_pins_the_image_of_the_operator_and_its_sidecars(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    c = operator_container(helm.template(RELEASE, "ns", sets=[f"image.digest={digest}"]))
    assert c["image"] == f"localhost/greenloop@{digest}"
    assert arg_values(c, "--reporter-image") == [c["image"]]


def test_ha_runs_kopf_peering_with_a_distinct_priority_per_pod(helm: Helm) -> None:
    docs = helm.template(RELEASE, "greenloop-system", values=[CI_VALUES / "ha-values.yaml"])
    c = operator_container(docs)
    # kopf pauses every peer when two share a priority; a Deployment's pods share args,
    # so each pod's shell gives it its start time in nanoseconds
    assert c["command"][:2] == ["/bin/sh", "-c"]
    assert '--priority "$(date +%s%N)"' in c["command"][2]
    assert arg_values(c, "--peering") == [FULLNAME]
    assert arg_values(c, "--peering-lifetime") == ["20"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    assert the(docs, "ClusterKopfPeering")["metadata"]["name"] == FULLNAME
    assert the(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    # peering CRDs come with the chart (crds/: installed before the templates)
    with_crds = helm.template(
        RELEASE, "x", values=[CI_VALUES / "ha-values.yaml"], include_crds=True
    )
    names = {d["metadata"]["name"] for d in by_kind(with_crds, "CustomResourceDefinition")}
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= names

    namespaced = helm.template(RELEASE, "x", values=[CI_VALUES / "ha-namespaced-values.yaml"])
    assert [p["metadata"]["namespace"] for p in by_kind(namespaced, "KopfPeering")] == ["team-a"]
    assert by_kind(namespaced, "ClusterKopfPeering") == []


def test_one_replica_has_no_peering_and_no_disruption_budget(helm: Helm) -> None:
    docs = helm.template(RELEASE, "greenloop-system")
    assert not {d["kind"] for d in docs} & {
        "PodDisruptionBudget",
        "ClusterKopfPeering",
        "KopfPeering",
    }


def test_the_priority_shell_runs_greenloop_with_the_args(helm: Helm, tmp_path: Path) -> None:
    """The HA command, run by a real /bin/sh with a stand-in `greenloop` that prints its
    argv: the args arrive intact and the priority is a number, different per start."""
    c = operator_container(helm.template(RELEASE, "x", values=[CI_VALUES / "ha-values.yaml"]))
    fake = tmp_path / "greenloop"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    runs = [
        subprocess.run(
            [*c["command"], *c["args"]], capture_output=True, text=True, env=env, check=True
        ).stdout.splitlines()
        for _ in range(2)
    ]
    for argv in runs:
        assert argv[:2] == ["operator", "--priority"]
        assert argv[2].isdigit()
        assert argv[3:] == c["args"]
    assert runs[0][2] != runs[1][2]


def test_the_networkpolicy_admits_the_labels_greenloop_puts_on_suite_pods(helm: Helm) -> None:
    docs = helm.template(
        RELEASE, "greenloop-system", values=[CI_VALUES / "networkpolicy-values.yaml"]
    )
    policy = the(docs, "NetworkPolicy")
    results_rule, metrics_rule = policy["spec"]["ingress"]
    assert results_rule["ports"] == [{"port": "results", "protocol": "TCP"}]
    (peer,) = results_rule["from"]
    wanted = peer["podSelector"]["matchLabels"]
    owner = Owner(namespace="team-a", name="checkout", uid="0000-uid")
    suite_pod_labels = job_labels(owner, iteration=1, suite="core")
    assert wanted.items() <= suite_pod_labels.items()
    assert wanted == {LABEL_MANAGED_BY: "greenloop"}
    assert metrics_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    # the policy selects the operator pods, not the helm test pod
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert selected["app.kubernetes.io/component"] == "operator"


def test_no_metrics_means_no_metrics_port_service_or_monitor(helm: Helm) -> None:
    docs = helm.template(RELEASE, "ns", values=[CI_VALUES / "no-metrics-values.yaml"])
    assert [s["metadata"]["name"] for s in by_kind(docs, "Service")] == ["gl-greenloop-results"]
    assert by_kind(docs, "ServiceMonitor") == []
    c = operator_container(docs)
    assert arg_values(c, "--metrics-port") == ["0"]
    # no metrics port; kopf's liveness endpoint stays
    assert [p["name"] for p in c["ports"]] == ["results", "liveness"]


def test_the_node_values_run_the_image_the_test_node_imports(helm: Helm) -> None:
    """ci/node-values.yaml is what the real-node install uses: tools/images/build's
    greenloop image, never pulled, on the node's label and taint."""
    docs = helm.template(RELEASE, "ns", values=[CI_VALUES / "node-values.yaml"])
    c = operator_container(docs)
    assert c["image"] == IMAGES["greenloop"]
    assert "localhost/greenloop:dev" in (REPO_ROOT / "tools" / "images" / "build.py").read_text()
    assert c["imagePullPolicy"] == "Never"
    pod = the(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {NODE_LABEL[0]: NODE_LABEL[1]}
    assert pod["tolerations"][0]["key"] == NODE_TAINT


def test_the_dockerfile_user_is_the_chart_default_user() -> None:
    """runAsNonRoot needs a numeric user; the chart's runAsUser is the image's USER."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    m = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert m, "the Dockerfile has no numeric USER"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(m.group(1))
    assert values["podSecurityContext"]["runAsGroup"] == int(m.group(2))


# --------------------------------------------------------------------------------------
# restricted Pod Security Standard, by the API server's PodSecurity admission


@pytest.fixture
def restricted_namespace(apiserver: ControlPlane, namespace: str) -> str:
    apiserver.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
    )
    return namespace


def pods_of(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The operator's pod as its Deployment would create it, and the helm test pod."""
    template = the(docs, "Deployment")["spec"]["template"]
    operator_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"{FULLNAME}-pod", "namespace": namespace},
        "spec": template["spec"],
    }
    return [operator_pod, *by_kind(docs, "Pod")]


@pytest.mark.parametrize(
    "values",
    [CI_VALUES / f for f in ("default-values.yaml", "ha-values.yaml", "node-values.yaml")],
    ids=values_id,
)
def test_the_pods_pass_the_restricted_pod_security_standard(
    helm: Helm, apiserver: ControlPlane, restricted_namespace: str, values: Path
) -> None:
    docs = helm.template(RELEASE, restricted_namespace, values=[values])
    create_service_accounts(apiserver, docs)
    workloads = by_kind(docs, "Deployment")
    proc = dry_run(apiserver, workloads)  # PodSecurity warns (not refuses) on workloads
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    pods = pods_of(docs, restricted_namespace)
    assert len(pods) == 2
    for pod in pods:
        proc = apiserver.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
        )
        assert proc.returncode == 0, f"{pod['metadata']['name']}: {proc.stderr}"


def test_the_restricted_check_refuses_a_privileged_pod(
    helm: Helm, apiserver: ControlPlane, restricted_namespace: str
) -> None:
    """Negative control: the same pod with privilege escalation allowed is refused, so
    the test above can fail."""
    docs = helm.template(
        RELEASE,
        restricted_namespace,
        sets=["containerSecurityContext.allowPrivilegeEscalation=true"],
    )
    create_service_accounts(apiserver, docs)
    pod = pods_of(docs, restricted_namespace)[0]
    proc = apiserver.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )
    assert proc.returncode != 0
    assert "violates PodSecurity" in proc.stderr and "allowPrivilegeEscalation" in proc.stderr


# --------------------------------------------------------------------------------------
# a real install, upgrade and uninstall (no node: the pod never runs, the objects are real)


def test_install_upgrade_uninstall_keeps_the_crd_and_the_objects(
    helm: Helm, cluster_ready: ControlPlane, namespace: str
) -> None:
    cp = cluster_ready
    kc = ["--kubeconfig", str(cp.kubeconfig), "--namespace", namespace]
    # The CRD exists already (kubectl apply -f crds/, as the README's install does):
    # the chart adopts it (--take-ownership) instead of refusing to install.
    out = helm.run(
        "install",
        RELEASE,
        str(CHART),
        *kc,
        "--take-ownership",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        "replicas=2",
    ).stdout
    assert "STATUS: deployed" in out
    assert f"helm test {RELEASE} -n {namespace}" in out  # NOTES.txt
    crd = cp.get_json("crd", "stagingvalidations.greenloop.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert cp.get_json("role", FULLNAME, "-n", namespace)["rules"] == role_rules()
    assert cp.get_json("kopfpeering", FULLNAME, "-n", namespace) is not None
    # the operator's account may act in the watched namespace, and nowhere else
    account = f"--as=system:serviceaccount:{namespace}:{FULLNAME}"
    for ns, allowed in [(namespace, "yes"), (CI_NAMESPACES[1], "no")]:
        rows = [("impersonate", "serviceaccounts"), ("watch", "jobs"), ("get", "secrets")]
        for verb, resource in rows:
            can = cp.kubectl("auth", "can-i", verb, resource, "-n", ns, account, check=False)
            assert can.stdout.strip() == allowed, (verb, resource, ns)
    cluster_wide = cp.kubectl(
        "auth", "can-i", "list", "stagingvalidations", "-A", account, check=False
    )
    assert cluster_wide.stdout.strip() == "no"

    obj = {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": "kept", "namespace": namespace},
        "spec": {"suites": [{"name": "core", "command": ["pytest"], "image": "e2e:1"}]},
    }
    cp.apply(obj)

    helm.run("upgrade", RELEASE, str(CHART), *kc, "--reuse-values", "--set", "logFormat=text")
    c = cp.get_json("deployment", FULLNAME, "-n", namespace)["spec"]["template"]["spec"]
    assert "--log-format=text" in c["containers"][0]["args"]
    assert cp.get_json("stagingvalidation", "kept", "-n", namespace) is not None

    out = helm.run("uninstall", RELEASE, *kc).stdout
    assert "kept due to the resource policy" in out, out
    assert cp.get_json("deployment", FULLNAME, "-n", namespace, check=False) is None
    assert cp.get_json("role", FULLNAME, "-n", namespace, check=False) is None
    assert cp.get_json("crd", "stagingvalidations.greenloop.dev") is not None
    assert cp.get_json("stagingvalidation", "kept", "-n", namespace) is not None


# --------------------------------------------------------------------------------------
# the helm test hook's script, against the API server, as the hook's ServiceAccount


class HelmTestRun:
    """files/helm-test.py on this host with the rendered hook's env and a token of the
    hook's own ServiceAccount (its Role and RoleBinding applied as rendered)."""

    def __init__(self, helm: Helm, cp: ControlPlane, namespace: str, tmp: Path) -> None:
        docs = helm.template(RELEASE, namespace, sets=["tests.timeoutSeconds=60"])
        hooks = [d for d in docs if is_hook(d)]
        assert {d["kind"] for d in hooks} == {"ServiceAccount", "Role", "RoleBinding", "Pod"}
        cp.kubectl(
            "apply",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(d) for d in hooks if d["kind"] != "Pod"),
        )
        pod = the(hooks, "Pod")
        account = pod["spec"]["serviceAccountName"]
        sa_dir = tmp / "serviceaccount"
        sa_dir.mkdir()
        token = cp.kubectl("create", "token", account, "-n", namespace).stdout.strip()
        (sa_dir / "token").write_text(token)
        (sa_dir / "ca.crt").write_bytes(cp.pki.ca_cert.read_bytes())
        container = pod["spec"]["containers"][0]
        assert container["command"][:2] == ["python3", "-c"]
        assert container["command"][2].strip() == HELM_TEST_SCRIPT.read_text().strip()
        port = cp.server.rsplit(":", 1)[1]
        self.env = {
            **{e["name"]: e["value"] for e in container["env"]},
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "TEST_SA_DIR": str(sa_dir),
            "PATH": os.environ["PATH"],
        }
        self.validation = json.loads(self.env["TEST_VALIDATION"])
        self.name = self.validation["metadata"]["name"]
        self.script = container["command"][2]

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", self.script],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def play_operator(
    cp: ControlPlane, namespace: str, name: str, conditions: list[dict[str, str]], phase: str
) -> threading.Thread:
    """Write the status the operator would, once the object exists."""

    def write() -> None:
        wait_until(
            f"{name} created",
            lambda: (
                cp.get_json("stagingvalidation", name, "-n", namespace, check=False) is not None
            ),
            timeout=60,
            interval=0.2,
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": phase,
            "observedGeneration": 1,
            "conditions": [
                {**c, "lastTransitionTime": now, "observedGeneration": 1} for c in conditions
            ],
        }
        cp.kubectl(
            "patch",
            "stagingvalidation",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def helm_test_run(
    helm: Helm, apiserver: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[HelmTestRun]:
    ensure_crd(apiserver)
    yield HelmTestRun(helm, apiserver, namespace, tmp_path)


def test_helm_test_passes_once_the_validation_is_ready_and_removes_it(
    apiserver: ControlPlane, namespace: str, helm_test_run: HelmTestRun
) -> None:
    writer = play_operator(
        apiserver,
        namespace,
        helm_test_run.name,
        [
            {"type": "Ready", "status": "True", "reason": "Passed", "message": "1/1 tests passed"},
            {"type": "Stalled", "status": "False", "reason": "Passed", "message": ""},
        ],
        "Passed",
    )
    proc = helm_test_run.run()
    writer.join(timeout=5)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is Ready: phase Passed" in proc.stdout
    assert (
        apiserver.get_json("stagingvalidation", helm_test_run.name, "-n", namespace, check=False)
        is None
    )


def test_helm_test_fails_with_the_reason_when_the_validation_stalls(
    apiserver: ControlPlane, namespace: str, helm_test_run: HelmTestRun
) -> None:
    writer = play_operator(
        apiserver,
        namespace,
        helm_test_run.name,
        [
            {
                "type": "Ready",
                "status": "False",
                "reason": "RunnerError",
                "message": "suite helm-test: ErrImagePull",
            },
            {
                "type": "Stalled",
                "status": "True",
                "reason": "RunnerError",
                "message": "suite helm-test: ErrImagePull",
            },
        ],
        "Stalled",
    )
    proc = helm_test_run.run()
    writer.join(timeout=5)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "stalled: phase Stalled" in proc.stderr and "ErrImagePull" in proc.stderr
    assert (
        apiserver.get_json("stagingvalidation", helm_test_run.name, "-n", namespace, check=False)
        is None
    )
