"""A test pod that can never start (core/pod_start.py, docs/design.md §8): the operator
applies the rule to a one-pod Job's pod and to every index's pod of an Indexed Job, read
from recorded pod objects; and it reports when a waiting pod's verdict can next change,
so the reconcile sleeps until then instead of ticking on a timer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from greenloop.core.model import Suite
from greenloop.core.pod_start import RETRY_GRACE_SECONDS, verdict_changes_at
from greenloop.core.shards import plan
from greenloop.k8s.jobs import COMPLETION_INDEX_ANNOTATION, Owner, SuiteJob
from greenloop.k8s.suites import RUNNER_ERROR_ANNOTATION, Recheck, observe

STARTED = 1_800_000_000.0


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def suite_job(shards: int) -> SuiteJob:
    return SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid="u-1"),
        iteration=1,
        suite=Suite(name="e2e", command=("pytest",), image="e2e:missing", shards=shards),
        reporter_image="greenloop:dev",
        results_url="http://results:8081",
        shards=plan("e2e", None, shards, runner="pytest").shards if shards > 1 else (),
        max_pods=shards,
    )


def pod(index: int, state: dict[str, Any], started: float = STARTED) -> dict[str, Any]:
    """A pod as the store keeps it (k8s/store.py): its suite container's state."""
    return {
        "metadata": {
            "name": f"e2e-{index}-abcde",
            "creationTimestamp": stamp(started),
            "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)},
        },
        "status": {
            "phase": "Pending",
            "startTime": stamp(started),
            "containerStatuses": [{"name": "suite", "state": state}],
        },
    }


RUNNING: dict[str, Any] = {"running": {"startedAt": stamp(STARTED)}}
PULL_FAILS: dict[str, Any] = {
    "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "e2e:missing"'}
}


class Cluster:
    """The API and the store as `observe` sees them: the Job, its pods; the patches
    written, and every read that went to the API."""

    cached = True

    def __init__(self, job_run: SuiteJob, pods: list[dict[str, Any]]) -> None:
        self.job: dict[str, Any] = {
            "metadata": {"name": job_run.job_name, "uid": "job-uid", "annotations": {}},
            "spec": {"suspend": False},
            "status": {"startTime": stamp(STARTED)},
        }
        self.pods = pods
        self.patches: list[dict[str, Any]] = []
        self.api_reads: list[str] = []

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.job if kind == "Job" else None

    async def select(self, kind: str, namespace: str, selector: str, **_: Any) -> list[Any]:
        return self.pods if kind == "Pod" else []

    async def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> Any:
        self.patches.append(body)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        self.job["metadata"]["annotations"].update(annotations)
        return self.job

    async def pod_log(self, *_: Any, **__: Any) -> str:
        self.api_reads.append("log")
        return ""


class Api(Cluster):
    cached = False


def look(job_run: SuiteJob, cluster: Cluster, now: float, recheck: Recheck | None = None) -> Any:
    api = Api(job_run, [])
    api.job = cluster.job
    return asyncio.run(observe(api, job_run, cluster, actor=cluster, now=now, recheck=recheck))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The rule's clock: when a waiting pod's verdict can change


@pytest.mark.parametrize(
    ("reason", "started", "expected"),
    [
        ("ImagePullBackOff", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("ErrImagePull", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("CreateContainerConfigError", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("InvalidImageName", STARTED, None),  # decided at once: no later change
        ("ContainerCreating", STARTED, None),  # a pod starting: the next event says more
        (None, STARTED, None),
        ("ImagePullBackOff", 0.0, None),  # not started yet: its startTime will wake us
    ],
)
def test_a_waiting_pod_s_verdict_changes_only_after_the_kubelet_s_retries(
    reason: str | None, started: float, expected: float | None
) -> None:
    assert verdict_changes_at(reason, started) == expected


# ---------------------------------------------------------------------------
# A sharded suite whose image cannot be pulled ends at once, as an unsharded one does


@pytest.mark.parametrize("shards", [1, 2])
def test_a_pod_that_never_starts_ends_the_run_permanent_with_the_kubelet_s_reason(
    shards: int,
) -> None:
    job_run = suite_job(shards)
    pods = [pod(0, RUNNING), pod(1, PULL_FAILS)][-shards:]
    cluster = Cluster(job_run, pods)
    got = look(job_run, cluster, now=STARTED + RETRY_GRACE_SECONDS + 1)
    assert got is not None and got.permanent, got
    assert "ImagePullBackOff" in (got.error or "") and "e2e-1-abcde" in (got.error or "")
    assert {"spec": {"suspend": True}}.items() <= cluster.patches[-1].items()
    noted = cluster.job["metadata"]["annotations"][RUNNER_ERROR_ANNOTATION]
    assert "ImagePullBackOff" in noted
    # A restarted operator reads the same permanent verdict from the Job.
    again = look(job_run, cluster, now=STARTED + 60)
    assert again is not None and again.permanent and "ImagePullBackOff" in (again.error or "")


@pytest.mark.parametrize("shards", [1, 2])
def test_within_the_kubelet_s_retries_the_run_waits_and_says_until_when(shards: int) -> None:
    job_run = suite_job(shards)
    pods = [pod(0, RUNNING), pod(1, PULL_FAILS, started=STARTED + 5)][-shards:]
    cluster = Cluster(job_run, pods)
    recheck = Recheck()
    assert look(job_run, cluster, now=STARTED + 10, recheck=recheck) is None
    assert recheck.at == STARTED + 5 + RETRY_GRACE_SECONDS
    assert not any("suspend" in p.get("spec", {}) for p in cluster.patches)


def test_a_running_pod_gives_no_time_to_look_again() -> None:
    job_run = suite_job(2)
    recheck = Recheck()
    cluster = Cluster(job_run, [pod(0, RUNNING), pod(1, RUNNING)])
    assert look(job_run, cluster, STARTED, recheck) is None
    assert recheck.at is None


@pytest.mark.parametrize(
    ("at", "now", "expected"),
    [(None, 100.0, 300.0), (125.0, 100.0, 25.0), (900.0, 100.0, 300.0), (90.0, 100.0, 0.05)],
)
def test_the_tick_sleeps_until_the_verdict_can_turn_at_most_its_idle_wait(
    at: float | None, now: float, expected: float
) -> None:
    assert Recheck(at).wait(now, idle=300.0) == expected
