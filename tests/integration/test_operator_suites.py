"""A suite run as a Job on a cluster with real controllers (kwok completes Job pods).

kwok's node does not run containers, so the upload is sent here with the real
`greenloop report upload` and the Job's real token; everything else - the Job, its
Secret, its pod, its completion - is the real API server and controllers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from greenloop.core.engine import SuiteRun
from greenloop.core.model import Outcome, Suite
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import SuiteJob
from greenloop.k8s.suites import observe, start
from tests.support.owners import make_owner
from tests.support.pod_tokens import pod_for, pod_token
from tests.support.results_endpoint import Endpoint, serve_results
from tools.cluster.controlplane import ControlPlane
from tools.cluster.procs import wait_until

pytestmark = pytest.mark.integration
T = TypeVar("T")

XML = b"""<testsuite name="core" tests="2">
<testcase classname="t" name="ok"/>
<testcase classname="t" name="down"><failure message="HTTP 503">503</failure></testcase>
</testsuite>
"""


def on(cp: ControlPlane, body: Callable[[Gateway], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await body(gw)

    return asyncio.run(main())


@pytest.fixture
def endpoint(cluster: ControlPlane) -> Iterator[Endpoint]:
    with serve_results(cluster.kubeconfig) as ep:
        yield ep


def suite_run(
    cp: ControlPlane, namespace: str, *, selection: tuple[str, ...] | None = None
) -> SuiteJob:
    return SuiteJob(
        owner=make_owner(cp, namespace),
        iteration=1,
        suite=Suite(name="core", command=("pytest",), image="localhost/e2e:dev"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://unused",
        selection=selection,
    )


def names(cp: ControlPlane, kind: str, namespace: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in cp.get_json(kind, "-n", namespace)["items"])


def wait_result(cp: ControlPlane, run: SuiteJob) -> SuiteRun:
    return wait_until(
        f"a result from Job {run.job_name}",
        lambda: on(cp, lambda gw: observe(gw, run)),
        timeout=90,
        interval=0.5,
    )


def upload(cp: ControlPlane, ep: Endpoint, run: SuiteJob, tmp_path: Path) -> None:
    """As the Job's sidecar: with its pod's bound token (the pod made as the Job
    controller would, tests/support/pod_tokens.py), through the real CLI."""
    ns = run.owner.namespace
    job = cp.get_json("job", run.job_name, "-n", ns)
    pod = wait_until(
        "the Job's pod", lambda: pod_for(cp, ns, job, cp.get_json("pods", "-n", ns)["items"]),
        timeout=60,
    )  # fmt: skip
    junit = tmp_path / "junit.xml"
    junit.write_bytes(XML)
    token = tmp_path / "token"
    token.write_text(pod_token(cp, pod))
    env: dict[str, str] = {}
    cmd = [sys.executable, "-m", "greenloop.cli", "report", "upload", "--now",
           "--file", str(junit), "--url", ep.url, "--namespace", ns,
           "--job", run.job_name, "--token-file", str(token)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_start_is_idempotent_and_the_uploaded_results_become_the_suites_tests(
    cluster: ControlPlane, namespace: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    run = suite_run(cluster, namespace, selection=("t::ok", "t::down"))
    job = on(cluster, lambda gw: start(gw, run, resume=False))
    assert job["spec"]["suspend"] is True
    assert names(cluster, "pods", namespace) == [], "a suspended Job must not start a pod"
    assert names(cluster, "secrets", namespace) == [], "no upload credential is made"

    # A restarted operator repeats start(): it adopts the Job and resumes it.
    again: dict[str, Any] = on(cluster, lambda gw: start(gw, run))
    assert again["metadata"]["uid"] == job["metadata"]["uid"]
    assert again["spec"]["suspend"] is False
    assert names(cluster, "jobs", namespace) == [run.job_name]
    assert run.selection_name in names(cluster, "configmaps", namespace)
    upload(cluster, endpoint, run, tmp_path)

    result = wait_result(cluster, run)
    assert result.error is None, result.error
    outcomes = sorted((t.name, t.outcome) for t in result.tests)
    assert outcomes == [("down", Outcome.FAILED), ("ok", Outcome.PASSED)]
    assert result.selected == ("t::ok", "t::down")


def test_a_job_that_completes_without_results_is_a_runner_error_naming_it(
    cluster: ControlPlane, namespace: str
) -> None:
    run = suite_run(cluster, namespace)
    on(cluster, lambda gw: start(gw, run))
    result = wait_result(cluster, run)
    assert result.tests == ()
    assert result.error is not None
    assert f"Job {run.job_name} completed without uploading JUnit XML" in result.error
    # The pod's own story comes first: the engine keeps 400 characters of it.
    assert result.error.startswith("container suite ended: Completed, exit code 0"), result.error
    assert len(result.error) <= 400


def test_results_stored_after_the_job_ended_are_read_whenever_they_appear(
    cluster: ControlPlane, namespace: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    """A sidecar that waited out a burst stores its results late: `observe` reads the
    stored results first, whatever the Job's state, so they win over the RunnerError."""
    run = suite_run(cluster, namespace)
    on(cluster, lambda gw: start(gw, run))
    early = wait_result(cluster, run)
    assert early.error is not None and "completed without uploading" in early.error
    upload(cluster, endpoint, run, tmp_path)
    late = on(cluster, lambda gw: observe(gw, run))
    assert late is not None and late.error is None, late
    assert sorted(t.name for t in late.tests) == ["down", "ok"]


def test_a_deleted_job_is_a_runner_error_not_a_wait(cluster: ControlPlane, namespace: str) -> None:
    run = suite_run(cluster, namespace)
    on(cluster, lambda gw: start(gw, run, resume=False))
    cluster.kubectl("delete", "job", run.job_name, "-n", namespace)
    result = on(cluster, lambda gw: observe(gw, run))
    assert result is not None and result.error is not None
    assert "was deleted before it reported results" in result.error
