"""A sharded run observed through the operator's watch-fed store (k8s/suites.py
observe_shards, k8s/store.py; issue 17): what is read from the store and what from the
API, counted by the API server (an audit log), and the lines a run's report gets.

- A wake while the shards run asks the API nothing; once an index uploaded, only its
  body is read (the store keeps a results ConfigMap's metadata).
- An upload the store has not seen yet is confirmed with the API before "no JUnit XML"
  is a verdict: the store's watch is not ordered with the Job's.
- A Go run not split in the pod says why in the report's lines: an idle index's
  ``greenloop.note`` (core/pod_listing), a command without ``{greenloop:select}``.
- The same-collection rule: the ``greenloop.collected`` each shard of a whole-suite
  pytest run writes reaches the merge; shards that collected different suites (or
  reported fewer tests than they collected) are a shard error, never a pass. The upload
  path keeps the property: the sidecar gzips the file (k8s/upload.py) and the endpoint
  stores the body as sent (k8s/results.py), so a stored ConfigMap is what is made here.

On an API server of this module's own (started with an audit log; no controllers, no
kubelet): the Job is greenloop's own (`start`, left suspended), its pods are made and
their status written as the Job controller and the kubelet would, each index's upload is
stored as the results endpoint stores it (k8s/results.py), and the Job's Complete
condition is written as the Job controller writes it. The pure rules are pinned in
tests/unit/test_pod_listing.py and tests/unit/test_shards.py (core/shard_results.merge).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import COLLECTED_PROPERTY, Collected, Shard, collected
from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import COMPLETION_INDEX_ANNOTATION, Owner, SuiteJob, shard_results_name
from greenloop.k8s.results import _results_configmap
from greenloop.k8s.store import SOURCES, Store
from greenloop.k8s.suites import observe_shards, start
from tests.integration.test_operator_shard_pods import sharded_run
from tests.support.owners import default_account, make_owner
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration
T = TypeVar("T")

#: greenloop's Gateway (kubernetes.aio), as the audit log names its requests.
GATEWAY_AGENT = "OpenAPI-Generator"
#: What observe_shards reads through the store: the pods, the upload ConfigMaps (kept as
#: metadata), as the operator's store holds them.
READ = tuple(s for s in SOURCES if s.kind in ("Pod", "ConfigMap"))
NOW = "2027-01-15T08:00:00Z"
IDLE_NOTE = "not split in the pod: the test listing found no tests; shard 1 ran the whole suite"
Request = tuple[str, str, str]  # verb, resource, name


@pytest.fixture(scope="module")
def audited() -> Iterator[ControlPlane]:
    cp = ControlPlane.start(build=False, audit=True)
    try:
        yield cp
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)


@pytest.fixture
def ns(audited: ControlPlane) -> Iterator[str]:
    name = audited.create_namespace(f"reads-{uuid.uuid4().hex[:6]}")
    yield name
    audited.kubectl("delete", "namespace", name, "--wait=false", check=False)


def on(cp: ControlPlane, body: Callable[[Gateway], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await body(gw)

    return asyncio.run(main())


def made(cp: ControlPlane, run: SuiteJob) -> dict[str, Any]:
    """The run's Job, as `start` makes it (suspended: no controller runs it here)."""
    return on(cp, lambda gw: start(gw, run, resume=False))


def upload(job: dict[str, Any], run: SuiteJob, index: int, xml: str) -> dict[str, Any]:
    """Index `index`'s upload, as the results endpoint stores it."""
    name = shard_results_name(run.results_name, index)
    return _results_configmap(job, name, gzip.compress(xml.encode()))


def passed(index: int) -> str:
    return f'<testsuite><testcase classname="t.py" name="test_{index}"/></testsuite>'


def running_pods(cp: ControlPlane, run: SuiteJob) -> None:
    """A pod per index as the Job controller names it, its suite running (the kubelet)."""
    ns = run.owner.namespace
    default_account(cp, ns)
    for shard in run.shards:
        name = f"{run.job_name}-{shard.index}-abcde"
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"job-name": run.job_name},
                         "annotations": {COMPLETION_INDEX_ANNOTATION: str(shard.index)}},
            "spec": {"containers": [{"name": "suite", "image": "e2e:1"}]},
        }  # fmt: skip
        cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(pod))
        suite = {"name": "suite", "image": "e2e:1", "imageID": "", "ready": True,
                 "restartCount": 0, "state": {"running": {"startedAt": NOW}}}  # fmt: skip
        status = {"status": {"phase": "Running", "startTime": NOW, "containerStatuses": [suite]}}
        cp.kubectl(
            "patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge",
            "-p", json.dumps(status),
        )  # fmt: skip


def complete(cp: ControlPlane, run: SuiteJob) -> None:
    """The Job's end, as the Job controller writes it once every index succeeded."""
    last = len(run.shards) - 1
    done = {"status": "True", "lastTransitionTime": NOW, "lastProbeTime": NOW}
    status = {
        "startTime": NOW, "completionTime": NOW, "succeeded": len(run.shards),
        "completedIndexes": "0" if last == 0 else f"0-{last}",
        "conditions": [{"type": "SuccessCriteriaMet", **done}, {"type": "Complete", **done}],
    }  # fmt: skip
    cp.kubectl(
        "patch", "job", run.job_name, "-n", run.owner.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def requests(cp: ControlPlane, ns: str, window: tuple[float, float]) -> list[Request]:
    """The Gateway's requests (not the store's watches) received within `window`. The
    audit log is written before each answer is (its default blocking mode): a request
    answered is in it."""

    def received(e: dict[str, Any]) -> float:
        return datetime.fromisoformat(e["requestReceivedTimestamp"]).timestamp()

    out = []
    for e in cp.audit_events():
        ref = e.get("objectRef") or {}
        if (
            str(e.get("userAgent", "")).startswith(GATEWAY_AGENT)
            and e["verb"] != "watch"
            and ref.get("namespace") == ns
            and window[0] <= received(e) < window[1]
        ):
            out.append((e["verb"], ref.get("resource", ""), ref.get("name", "")))
    return sorted(out)


async def timed(step: Awaitable[T]) -> tuple[T, tuple[float, float]]:
    began = time.time()
    got = await step
    return got, (began, time.time())


async def stored(store: Store, ns: str, name: str) -> None:
    """Until the store's watch has delivered ConfigMap `name`."""
    for _ in range(300):
        if store.get("ConfigMap", ns, name) is not None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the store never saw {name}")


# ---------------------------------------------------------------------------
# A sharded run read from the store: no API request per wake while it runs


def test_a_running_sharded_run_is_read_from_the_store_without_api_requests(
    audited: ControlPlane, ns: str
) -> None:
    run = sharded_run(make_owner(audited, ns))
    job = made(audited, run)
    running_pods(audited, run)
    first = shard_results_name(run.results_name, 0)

    async def wakes(gw: Gateway) -> list[tuple[Any, tuple[float, float]]]:
        async with await Gateway.connect(str(audited.kubeconfig)) as feed:
            store = Store(feed, [ns], sources=READ)
            assert await store.start()
            try:
                # First sight: the pods are noted on the Job (core/shard_pods.py), once.
                assert await observe_shards(gw, run, job, reader=store) is None
                noted = await gw.get("Job", ns, run.job_name)
                idle = await timed(observe_shards(gw, run, noted, reader=store))
                await gw.create(upload(job, run, 0, passed(0)))
                await stored(store, ns, first)
                one = await timed(observe_shards(gw, run, noted, reader=store))
                return [idle, one]
            finally:
                await store.stop()

    (idle, idle_window), (one, one_window) = on(audited, wakes)
    assert idle is None  # both indexes run
    assert requests(audited, ns, idle_window) == []  # before: a LIST of pods, a GET per index
    assert one is None  # index 1 still runs
    assert requests(audited, ns, one_window) == [("get", "configmaps", first)]  # its body


def test_an_upload_the_store_has_not_seen_yet_is_confirmed_with_the_api_before_a_verdict(
    audited: ControlPlane, ns: str
) -> None:
    """The Job ended; the store has seen index 0's upload but not index 1's: the API is
    asked, and both are read, not a "no JUnit XML" error."""
    run = sharded_run(make_owner(audited, ns))
    job = made(audited, run)
    names = [shard_results_name(run.results_name, i) for i in range(2)]

    async def verdict(gw: Gateway) -> tuple[Any, tuple[float, float]]:
        async with await Gateway.connect(str(audited.kubeconfig)) as feed:
            await gw.create(upload(job, run, 0, passed(0)))
            store = Store(feed, [ns], sources=READ)
            assert await store.start()
            await stored(store, ns, names[0])
            # The store's watch stops here: what comes after, it has not been sent.
            await store.stop()
            await gw.create(upload(job, run, 1, passed(1)))
            complete(audited, run)
            ended = await gw.get("Job", ns, run.job_name)
            return await timed(observe_shards(gw, run, ended, reader=store))

    got, window = on(audited, verdict)
    assert got is not None and got.error is None, got
    assert sorted(t.id for t in got.tests) == ["t.py::test_0", "t.py::test_1"]
    assert requests(audited, ns, window) == [("get", "configmaps", name) for name in names]


# ---------------------------------------------------------------------------
# A Go suite split in the pod: an idle index's note, a blocked command's reason, in the
# report's lines (core/pod_listing)


def go_run(owner: Owner, command: tuple[str, ...], shards: int) -> SuiteJob:
    return SuiteJob(
        owner=owner,
        iteration=1,
        suite=Suite(name="e2e", command=command, image="e2e:1", runner="go", shards=2),
        reporter_image="greenloop:dev",
        results_url="http://unused",
        shards=tuple(Shard(i, shards) for i in range(shards)),
        max_pods=2,
    )


@pytest.mark.parametrize(
    ("command", "shards", "line"),
    [
        (("gotestsum", "--", "{greenloop:select|./...}"), 2, IDLE_NOTE),
        (("gotestsum", "--", "./..."), 1, "not split: no {greenloop:select} in its command"),
    ],
)
def test_why_a_go_run_was_not_split_reaches_the_report_s_lines(
    audited: ControlPlane, ns: str, command: tuple[str, ...], shards: int, line: str
) -> None:
    run = go_run(make_owner(audited, ns), command, shards)
    job = made(audited, run)
    ran = '<testsuite><testcase classname="m/a" name="TestA"/></testsuite>'
    idle = (
        '<testsuites><testsuite name="greenloop" tests="0"><properties>'
        f'<property name="greenloop.note" value="{IDLE_NOTE}"/></properties></testsuite>'
        "</testsuites>"
    )
    for index in range(shards):
        audited.kubectl(
            "create", "-f", "-", input=json.dumps(upload(job, run, index, idle if index else ran))
        )
    complete(audited, run)

    async def observed(gw: Gateway) -> Any:
        return await observe_shards(gw, run, await gw.get("Job", ns, run.job_name))

    got = on(audited, observed)
    assert got is not None and got.error is None and got.shard_error is None, got
    assert [t.id for t in got.tests] == ["m/a::TestA"]  # the verdict: shard 0's run
    assert any(line in s for s in got.shard_lines), got.shard_lines


# ---------------------------------------------------------------------------
# The same-collection rule (core/shards.Collected, core/shard_results.different_collections):
# what each shard of a whole-suite pytest run says it collected reaches the merge


SUITE = ("t.py::test_0", "t.py::test_1")
MORE = (*SUITE, "t.py::test_2")  # one test more
OTHER = ("t.py::test_0", "t.py::test_other")  # one test other
NO_SHARD = "a test may have run in no shard"


def pytest_report(index: int, claim: Collected) -> str:
    """Index `index`'s JUnit XML, shaped as pytest's junitxml writes it, with the suite-level
    ``greenloop.collected`` property the plugin adds (pytest_plugin._record_collected)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1" time="0.1">'
        f'<properties><property name="{COLLECTED_PROPERTY}" value="{claim.describe()}"/>'
        f'</properties><testcase classname="t.py" name="test_{index}" time="0.01"/>'
        "</testsuite></testsuites>"
    )


@pytest.mark.parametrize(
    ("shard_1", "shard_2", "error"),
    [
        (SUITE, SUITE, None),
        (
            SUITE,
            MORE,
            f"shards collected different suites: shard 1 2 tests, shard 2 3 tests: {NO_SHARD}",
        ),
        (
            SUITE,
            OTHER,
            "shards collected different suites: shard 1 2 tests, shard 2 2 tests (other tests): "
            + NO_SHARD,
        ),
        (MORE, MORE, "shards collected 3 tests, 2 reported: a test ran in no shard"),
    ],
    ids=["the same suite", "one test more", "one test other", "the same suite, one unreported"],
)
def test_shards_that_collected_different_suites_are_a_shard_error_not_a_pass(
    audited: ControlPlane,
    ns: str,
    shard_1: tuple[str, ...],
    shard_2: tuple[str, ...],
    error: str | None,
) -> None:
    """Each index's upload carries what it collected; the stored uploads are read as the
    operator reads them (through its store), and the merged run names the difference."""
    run = sharded_run(make_owner(audited, ns))
    assert run.suite.runner == "pytest" and run.selection is None  # a whole-suite run
    job = made(audited, run)
    claims = [collected(shard_1), collected(shard_2)]
    for index in range(2):
        xml = pytest_report(index, claims[index])
        audited.kubectl("create", "-f", "-", input=json.dumps(upload(job, run, index, xml)))
    complete(audited, run)
    names = [shard_results_name(run.results_name, i) for i in range(2)]

    async def observed(gw: Gateway) -> Any:
        async with await Gateway.connect(str(audited.kubeconfig)) as feed:
            store = Store(feed, [ns], sources=READ)
            assert await store.start()
            try:
                for name in names:
                    await stored(store, ns, name)
                ended = await gw.get("Job", ns, run.job_name)
                return await observe_shards(gw, run, ended, reader=store)
            finally:
                await store.stop()

    got = on(audited, observed)
    assert got is not None and got.error is None, got
    assert sorted(t.id for t in got.tests) == list(SUITE)
    assert got.shard_error == error, got
