"""The Job and ConfigMap for one suite run, as the API server will receive them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from greenloop.core import crd
from greenloop.core.model import EnvVar, Suite
from greenloop.core.spec_checks import RESERVED_VOLUMES
from greenloop.k8s.jobs import (
    JUNIT_PATH,
    SELECT_PATH,
    TOKEN_DIR,
    TOKEN_PATH,
    TOKEN_VOLUME,
    Owner,
    SuiteJob,
    build_job,
    build_selection_configmap,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
UID = "4f1c2d3e-0000-4000-8000-00000000abcd"


def run(
    *,
    name: str = "checkout",
    iteration: int = 1,
    suite: str = "critical",
    selection: tuple[str, ...] | None = None,
    service_account: str = "default",
    uid: str = UID,
    round_: int = 1,
) -> SuiteJob:
    return SuiteJob(
        owner=Owner(name=name, namespace="staging", uid=uid),
        iteration=iteration,
        suite=Suite(
            name=suite,
            command=("pytest", "tests/e2e"),
            image="registry.example/e2e:1.4",
            env=(EnvVar("BASE_URL", "http://backend:8000"),),
            timeout_seconds=321,
        ),
        reporter_image="localhost/greenloop:dev",
        results_url="http://results.greenloop.svc:8081",
        selection=selection,
        service_account=service_account,
        round=round_,
    )


def pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_names_are_deterministic_dns_labels_distinct_per_round_iteration_suite_and_uid() -> None:
    long_name = "a" * 200 + ".b"
    runs = [
        run(),
        run(iteration=2),
        run(suite="core"),
        run(uid="other-uid"),
        run(round_=2),
        run(name=long_name),
        run(name=long_name, suite="core"),
    ]
    names = [n for r in runs for n in (r.job_name, r.selection_name, r.results_name)]
    assert len(set(names)) == len(names), "two objects would share a name"
    for n in names:
        assert len(n) <= 63 and DNS_LABEL.match(n), n
    assert run().job_name == run().job_name
    assert run().job_name.startswith("checkout-1-critical-")


def test_job_runs_once_within_the_suite_timeout_and_ignores_disruptions() -> None:
    spec = build_job(run())["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 321
    assert spec["suspend"] is True
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]
    assert pod(build_job(run()))["restartPolicy"] == "Never"


@pytest.mark.parametrize("account", ["default", "e2e-runner"])
def test_pods_run_as_the_namespace_account_without_its_api_token(account: str) -> None:
    spec = pod(build_job(run(service_account=account)))
    assert spec["serviceAccountName"] == account
    assert spec["automountServiceAccountToken"] is False


def test_every_container_is_restricted() -> None:
    spec = pod(build_job(run(selection=("a::b",))))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"] + spec["initContainers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["runAsNonRoot"] is True, c["name"]


def test_owner_reference_and_labels_lead_back_to_the_object() -> None:
    job = build_job(run())
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        crd.KIND,
        "checkout",
        UID,
        True,
    )
    assert job["metadata"]["namespace"] == "staging"
    labels = job["metadata"]["labels"]
    assert labels["greenloop.dev/validation-uid"] == UID
    assert labels["greenloop.dev/iteration"] == "1"
    assert labels["greenloop.dev/suite"] == "critical"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["annotations"]["greenloop.dev/validation"] == "checkout"


def test_suite_container_gets_its_command_env_and_the_runner_contract() -> None:
    main = pod(build_job(run()))["containers"][0]
    assert main["image"] == "registry.example/e2e:1.4"
    assert main["command"] == ["pytest", "tests/e2e"]
    env = env_of(main)
    assert env["BASE_URL"] == "http://backend:8000"
    assert env["GREENLOOP_JUNIT_XML"] == JUNIT_PATH
    assert "GREENLOOP_SELECT" not in env, "the whole suite runs without a selection"


def test_a_selection_is_mounted_from_its_configmap() -> None:
    r = run(selection=("t.py::a", "t.py::b"))
    spec = pod(build_job(r))
    assert env_of(spec["containers"][0])["GREENLOOP_SELECT"] == SELECT_PATH
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["select"]["configMap"]["name"] == r.selection_name
    cm = build_selection_configmap(r, job_uid="job-uid-1")
    assert cm["metadata"]["name"] == r.selection_name
    assert cm["data"] == {"tests.txt": "t.py::a\nt.py::b\n"}
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "job-uid-1"


def test_results_sidecar_is_native_shares_the_results_dir_and_has_time_to_upload() -> None:
    spec = pod(build_job(run()))
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "localhost/greenloop:dev"
    assert sidecar["command"][:3] == ["greenloop", "report", "upload"]
    deadline = int(sidecar["command"][sidecar["command"].index("--deadline") + 1])
    assert spec["terminationGracePeriodSeconds"] > deadline
    main_mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    side_mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert main_mounts["results"] == side_mounts["results"]
    assert JUNIT_PATH.startswith(side_mounts["results"] + "/")


def test_the_results_token_is_a_pod_bound_projected_token_mounted_into_the_sidecar_only() -> None:
    """No Secret, no API token anywhere: the sidecar alone gets the pod's own
    ServiceAccount token for the results endpoint's audience, short-lived."""
    spec = pod(build_job(run()))
    assert spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[TOKEN_VOLUME] == {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "greenloop.dev/results",
                        "expirationSeconds": 600,
                        "path": "token",
                    }
                }
            ]
        },
    }
    assert not any("secret" in v for v in spec["volumes"])
    (sidecar,) = spec["initContainers"]
    (suite,) = spec["containers"]
    assert {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True} in sidecar[
        "volumeMounts"
    ]
    assert TOKEN_VOLUME not in {m["name"] for m in suite["volumeMounts"]}
    assert sidecar["command"][sidecar["command"].index("--token-file") + 1] == TOKEN_PATH
    for container in (sidecar, suite):
        for env in container.get("env") or ():
            assert "secretKeyRef" not in (env.get("valueFrom") or {}), env


def test_every_volume_of_greenloops_pod_is_a_name_a_suite_may_not_use() -> None:
    """A suite volume named like one of greenloop's own would make a Job the API server
    refuses: the spec check (and the CRD's rule, mirrored in test_spec) reserves them."""
    names = {v["name"] for v in pod(build_job(run(selection=("t.py::a",))))["volumes"]}
    assert names <= set(RESERVED_VOLUMES)
