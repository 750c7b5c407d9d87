"""The suite Job (its sidecar's pod-bound results token a projected volume) and its
selection ConfigMap, as the real API server takes them.

The namespace warns on the `restricted` Pod Security level, so the API server itself says
whether the pod template would be refused in a locked-down namespace.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import plan
from greenloop.k8s.jobs import (
    SuiteJob,
    build_job,
    build_selection_configmap,
)
from tests.support.owners import make_owner
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def _create(cp: ControlPlane, obj: dict[str, Any]) -> Any:
    return cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj), check=False)


def test_api_server_accepts_the_job_and_configmap_as_restricted(
    apiserver: ControlPlane, namespace: str
) -> None:
    apiserver.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    run = SuiteJob(
        owner=make_owner(apiserver, namespace, "checkout-" + "x" * 120),
        iteration=2,
        suite=Suite(name="critical", command=("pytest", "-q"), image="localhost/e2e:dev"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://10.0.0.10:8081",
        selection=("tests/test_a.py::test_one",),
    )
    proc = _create(apiserver, build_job(run))
    assert proc.returncode == 0, proc.stderr
    assert "would violate PodSecurity" not in proc.stderr, proc.stderr
    job = json.loads(proc.stdout)
    assert job["metadata"]["name"] == run.job_name
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"

    uid = job["metadata"]["uid"]
    for obj in (build_selection_configmap(run, job_uid=uid),):
        created = _create(apiserver, obj)
        assert created.returncode == 0, created.stderr
        stored = json.loads(created.stdout)
        assert stored["metadata"]["ownerReferences"][0]["uid"] == uid

    # The same Job again is refused as existing: the operator adopts it, never a twin.
    again = _create(apiserver, build_job(run))
    assert again.returncode != 0 and "AlreadyExists" in again.stderr
    jobs = apiserver.get_json("jobs", "-n", namespace)["items"]
    assert [j["metadata"]["name"] for j in jobs] == [run.job_name]


def test_api_server_accepts_a_sharded_jest_rerun_s_wrapper_and_argument_keys(
    apiserver: ControlPlane, namespace: str
) -> None:
    """The Indexed Job's shell wrapper and the selection ConfigMap's ``args-<i>.txt``
    keys, as the API server stores them: the command unchanged (``$$`` is the kubelet's
    to reduce), every key accepted."""
    ids = ("shop.test.js::it's $(HOME) `x`", "pay.test.js::card", "pay.test.js::cash")
    suite = Suite(
        name="critical",
        command=("npx", "jest", "{greenloop:select}"),
        image="localhost/e2e:dev",
        runner="jest",
        shards=2,
    )
    run = SuiteJob(
        owner=make_owner(apiserver, namespace, "sharded"),
        iteration=2,
        suite=suite,
        reporter_image="localhost/greenloop:dev",
        results_url="http://10.0.0.10:8081",
        selection=ids,
        shards=plan("critical", ids, 2, runner="jest").shards,
        max_pods=2,
    )
    built = build_job(run)
    proc = _create(apiserver, built)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == built["spec"]["template"]["spec"]["containers"][0]["command"]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    selection = build_selection_configmap(run, job_uid=job["metadata"]["uid"])
    created = _create(apiserver, selection)
    assert created.returncode == 0, created.stderr
    assert {"args-0.txt", "args-1.txt"} <= set(json.loads(created.stdout)["data"])
