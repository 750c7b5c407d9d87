"""A sharded run's deleted pod is named in its report line (k8s/suites.py observe_shards,
core/shard_pods.py), by this operator and by a restarted one: the pod last seen for
each index is kept on the Job, not in the operator's memory.

On the real API server without controllers: the Indexed Job is greenloop's own (made by
`start`, left suspended), its pods are made here as the Job controller names them
(``<job>-<index>-<random>``), and the Job's ``status.failedIndexes`` is written as the
Job controller writes it when a pod is lost. The real-node test of the whole story is
tests/integration/test_operator_shards.py
(test_a_deleted_shard_pod_is_a_runner_error_for_its_tests_until_a_rerun_passes_them).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import plan
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import COMPLETION_INDEX_ANNOTATION, Owner, SuiteJob
from greenloop.k8s.suites import observe_shards, start
from tests.support.owners import default_account, make_owner
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def sharded_run(owner: Owner) -> SuiteJob:
    return SuiteJob(
        owner=owner,
        iteration=1,
        suite=Suite(name="e2e", command=("pytest",), image="e2e:1", shards=2, runner="pytest"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://unused",
        shards=plan("e2e", None, 2, runner="pytest").shards,
        max_pods=2,
    )


def shard_pod(run: SuiteJob, index: int, suffix: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{run.job_name}-{index}-{suffix}",
            "namespace": run.owner.namespace,
            "labels": {"job-name": run.job_name},
            "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)},
        },
        "spec": {"containers": [{"name": "suite", "image": "e2e:1"}]},
    }


def lost_line(kubeconfig: str, owner: dict[str, str]) -> str:
    """As a freshly started operator: read the Job, observe the run, return the report
    line of shard 2 (or the run's error)."""

    async def main() -> str:
        run = sharded_run(Owner(**owner))
        async with await Gateway.connect(kubeconfig) as gw:
            job = await gw.find("Job", run.owner.namespace, run.job_name)
            assert job is not None
            got = await observe_shards(gw, run, job)
        assert got is not None, "the run is over: index 1 failed, index 0 too"
        return next((line for line in got.shard_lines if "shard 2/2" in line), got.error or "")

    return asyncio.run(main())


def in_a_fresh_process(cp: ControlPlane, owner: Owner) -> str:
    fields = {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid}
    code = (
        "import json, sys; from tests.integration.test_operator_shard_pods import lost_line; "
        "print(lost_line(sys.argv[1], json.loads(sys.argv[2])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(cp.kubeconfig), json.dumps(fields)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def lose_both_indexes(cp: ControlPlane, run: SuiteJob) -> None:
    """What the Job controller writes once the indexes' pods are gone (none uploaded)."""
    status = {"status": {"failedIndexes": "0,1", "failed": 2}}
    cp.kubectl(
        "patch", "job", run.job_name, "-n", run.owner.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip


def test_a_deleted_shard_pod_is_named_by_a_restarted_operator(
    apiserver: ControlPlane, namespace: str
) -> None:
    run = sharded_run(make_owner(apiserver, namespace))
    default_account(apiserver, namespace)

    async def seen() -> None:
        async with await Gateway.connect(str(apiserver.kubeconfig)) as gw:
            job = await start(gw, run, resume=False)
            for index in range(2):
                await gw.create(shard_pod(run, index, f"x{index}abc"))
            assert await observe_shards(gw, run, job) is None  # both run

    asyncio.run(seen())
    for index in range(2):
        apiserver.kubectl("delete", "pod", "-n", namespace, f"{run.job_name}-{index}-x{index}abc")
    lose_both_indexes(apiserver, run)
    line = in_a_fresh_process(apiserver, run.owner)
    assert f"shard 2/2 (pod {run.job_name}-1-x1abc, deleted): no results: index 1" in line, line


def test_a_failed_index_whose_pod_was_never_seen_says_its_pod_was_deleted(
    apiserver: ControlPlane, namespace: str
) -> None:
    run = sharded_run(make_owner(apiserver, namespace))

    async def made() -> None:
        async with await Gateway.connect(str(apiserver.kubeconfig)) as gw:
            await start(gw, run, resume=False)

    asyncio.run(made())
    lose_both_indexes(apiserver, run)
    line = in_a_fresh_process(apiserver, run.owner)
    assert "shard 2/2 (pod deleted): no results: index 1" in line, line
