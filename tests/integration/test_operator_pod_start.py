"""A test pod that can never start (core/pod_start.py, docs/design.md §8), as `observe`
(k8s/suites.py) applies the rule on the real API server: to a one-pod Job's pod and to
every index's pod of an Indexed Job; the Job suspended and annotated so a restarted
operator reads the same verdict; and when a waiting pod's verdict can next change, so
the reconcile sleeps until then instead of ticking on a timer.

No controllers: the Job is greenloop's own (`start`, left suspended), its pods are made
here as the Job controller makes them and their status written as the kubelet writes
it (a waiting container's reason, the pod's startTime); ``now`` is given, so no test
waits for the kubelet's retries. The whole story on the real node:
tests/integration/test_operator_pods.py (one pod) and test_operator_shards.py (shards).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from greenloop.core.model import Suite
from greenloop.core.pod_start import RETRY_GRACE_SECONDS
from greenloop.core.shards import plan
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import COMPLETION_INDEX_ANNOTATION, Owner, SuiteJob
from greenloop.k8s.suites import RUNNER_ERROR_ANNOTATION, Recheck, observe, start
from tests.support.owners import default_account, make_owner
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration
T = TypeVar("T")

STARTED = 1_800_000_000.0
RUNNING: dict[str, Any] = {"running": {"startedAt": "2027-01-15T08:00:00Z"}}
PULL_FAILS: dict[str, Any] = {
    "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "e2e:missing"'}
}


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def on(cp: ControlPlane, body: Callable[[Gateway], Awaitable[T]]) -> T:
    """Each call a fresh gateway: as a (re)started operator sees the cluster."""

    async def main() -> T:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await body(gw)

    return asyncio.run(main())


def suite_job(owner: Owner, shards: int) -> SuiteJob:
    return SuiteJob(
        owner=owner,
        iteration=1,
        suite=Suite(name="e2e", command=("pytest",), image="e2e:missing", shards=shards),
        reporter_image="greenloop:dev",
        results_url="http://unused",
        shards=plan("e2e", None, shards, runner="pytest").shards if shards > 1 else (),
        max_pods=shards,
    )


def with_pods(
    cp: ControlPlane, namespace: str, shards: int, states: list[tuple[Any, float]]
) -> SuiteJob:
    """The run's Job, and one pod per (state, started) as the kubelet reports it; a
    one-pod Job's last."""
    run = suite_job(make_owner(cp, namespace), shards)
    default_account(cp, namespace)
    on(cp, lambda gw: start(gw, run, resume=False))
    for index, (state, started) in list(enumerate(states))[-shards:]:
        name = f"{run.job_name}-{index}-abcde"
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"job-name": run.job_name},
                         "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)}},
            "spec": {"containers": [{"name": "suite", "image": "e2e:missing"}]},
        }  # fmt: skip
        cp.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
        suite = {"name": "suite", "image": "e2e:missing", "imageID": "", "ready": False,
                 "restartCount": 0, "state": state}  # fmt: skip
        status = {"status": {"phase": "Pending", "startTime": stamp(started),
                             "containerStatuses": [suite]}}  # fmt: skip
        cp.kubectl(
            "patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps(status),
        )  # fmt: skip
    return run


def job_of(cp: ControlPlane, run: SuiteJob) -> dict[str, Any]:
    return cp.get_json("job", run.job_name, "-n", run.owner.namespace)  # type: ignore[no-any-return]


@pytest.mark.parametrize("shards", [1, 2])
def test_a_pod_that_never_starts_ends_the_run_permanent_with_the_kubelet_s_reason(
    apiserver: ControlPlane, namespace: str, shards: int
) -> None:
    run = with_pods(apiserver, namespace, shards, [(RUNNING, STARTED), (PULL_FAILS, STARTED)])
    now = STARTED + RETRY_GRACE_SECONDS + 1
    got = on(apiserver, lambda gw: observe(gw, run, now=now))
    assert got is not None and got.permanent, got
    assert "ImagePullBackOff" in (got.error or "")
    assert f"{run.job_name}-1-abcde" in (got.error or "")
    job = job_of(apiserver, run)
    assert job["spec"]["suspend"] is True
    assert "ImagePullBackOff" in job["metadata"]["annotations"][RUNNER_ERROR_ANNOTATION]
    # A restarted operator reads the same permanent verdict from the Job, at any time.
    again = on(apiserver, lambda gw: observe(gw, run, now=STARTED + 60))
    assert again is not None and again.permanent and "ImagePullBackOff" in (again.error or "")


@pytest.mark.parametrize("shards", [1, 2])
def test_within_the_kubelet_s_retries_the_run_waits_and_says_until_when(
    apiserver: ControlPlane, namespace: str, shards: int
) -> None:
    run = with_pods(apiserver, namespace, shards, [(RUNNING, STARTED), (PULL_FAILS, STARTED + 5)])
    recheck = Recheck()
    assert on(apiserver, lambda gw: observe(gw, run, now=STARTED + 10, recheck=recheck)) is None
    assert recheck.at == STARTED + 5 + RETRY_GRACE_SECONDS
    job = job_of(apiserver, run)
    assert RUNNER_ERROR_ANNOTATION not in (job["metadata"].get("annotations") or {})


def test_a_running_pod_gives_no_time_to_look_again(apiserver: ControlPlane, namespace: str) -> None:
    run = with_pods(apiserver, namespace, 2, [(RUNNING, STARTED), (RUNNING, STARTED)])
    recheck = Recheck()
    assert on(apiserver, lambda gw: observe(gw, run, now=STARTED, recheck=recheck)) is None
    assert recheck.at is None
