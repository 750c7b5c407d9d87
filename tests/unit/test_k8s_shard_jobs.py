"""A sharded suite run as one Indexed Job (docs/design.md §4.1): the Job, the env each pod
gets, the selection ConfigMap with a key per index, where each index's upload is stored,
and how the Job's failedIndexes are read."""

from __future__ import annotations

import asyncio
import base64
import gzip
from typing import Any

import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import Shard, plan
from greenloop.k8s.jobs import (
    COMPLETION_INDEX_ANNOTATION,
    TOKEN_DIR,
    Owner,
    SuiteJob,
    build_job,
    build_selection_configmap,
    shard_results_name,
)
from greenloop.k8s.results import RESULTS_KEY, _index_of_job
from greenloop.k8s.suites import SHARD_PODS_ANNOTATION, _failed_indexes, observe_shards

UID = "4f1c2d3e-0000-4000-8000-00000000abcd"
IDS = tuple(f"t.py::test_{n}" for n in range(6))


def run(shards: tuple[Shard, ...], *, selection: tuple[str, ...] | None, max_pods: int) -> SuiteJob:
    return SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid=UID),
        iteration=1,
        suite=Suite(name="e2e", command=("pytest",), image="e2e:1", shards=4, runner="pytest"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://results:8081",
        selection=selection,
        shards=shards,
        max_pods=max_pods,
    )


def whole(count: int = 4, max_pods: int = 4) -> SuiteJob:
    return run(plan("e2e", None, count, runner="pytest").shards, selection=None, max_pods=max_pods)


def rerun(max_pods: int = 4) -> SuiteJob:
    p = plan("e2e", IDS, 3)
    return run(p.shards, selection=IDS, max_pods=max_pods)


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in (*spec["initContainers"], *spec["containers"])}


# ---------------------------------------------------------------------------
# The Job: one index per shard, never retried, policy.parallelism pods at once


@pytest.mark.parametrize(("max_pods", "parallelism"), [(4, 4), (2, 2), (64, 4), (0, 1)])
def test_a_sharded_run_is_one_indexed_job_capped_by_policy_parallelism(
    max_pods: int, parallelism: int
) -> None:
    spec = build_job(whole(4, max_pods))["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (4, parallelism)
    assert spec["backoffLimitPerIndex"] == 0
    # backoffLimit 0 would fail the Job at the first lost pod and stop every other shard.
    assert "backoffLimit" not in spec


def test_an_unsharded_run_keeps_its_one_pod_job() -> None:
    spec = build_job(run((), selection=None, max_pods=4))["spec"]
    assert "completionMode" not in spec and spec["backoffLimit"] == 0
    assert "GREENLOOP_SHARD_INDEX" not in {
        e["name"] for e in containers({"spec": spec})["suite"]["env"]
    }


# ---------------------------------------------------------------------------
# Each pod is told its shard


def test_each_pod_gets_its_index_from_the_job_and_the_count() -> None:
    env = containers(build_job(whole()))["suite"]["env"]
    by_name = {e["name"]: e for e in env}
    field = by_name["GREENLOOP_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    assert by_name["GREENLOOP_SHARD_COUNT"]["value"] == "4"
    assert "GREENLOOP_SELECT" not in by_name  # a whole-suite run: the runner splits


def test_a_rerun_gives_each_index_its_own_selection_file() -> None:
    r = rerun()
    env = [e["name"] for e in containers(build_job(r))["suite"]["env"]]
    select = next(
        e for e in containers(build_job(r))["suite"]["env"] if e["name"] == "GREENLOOP_SELECT"
    )
    # $(GREENLOOP_SHARD_INDEX) expands only when defined before it.
    assert env.index("GREENLOOP_SHARD_INDEX") < env.index("GREENLOOP_SELECT")
    assert select["value"] == "/greenloop/select/tests-$(GREENLOOP_SHARD_INDEX).txt"
    data = build_selection_configmap(r, job_uid="job-1")["data"]
    assert data == {
        f"tests-{s.index}.txt": "".join(f"{t}\n" for t in s.test_ids or ()) for s in r.shards
    }
    assert sorted(t for text in data.values() for t in text.split()) == sorted(IDS)


def test_the_sidecar_claims_no_index_its_pod_s_token_proves_it() -> None:
    # The endpoint reads the shard from the pod the bound token names (its completion
    # index annotation): nothing the sidecar says can pick another shard.
    sidecar = containers(build_job(whole()))["greenloop-results"]
    assert "GREENLOOP_SHARD_INDEX" not in {e["name"] for e in sidecar.get("env") or ()}
    assert TOKEN_DIR in {m["mountPath"] for m in sidecar["volumeMounts"]}


# ---------------------------------------------------------------------------
# Each index's upload is stored apart, and only for an index the Job has


def test_each_index_is_stored_apart() -> None:
    assert shard_results_name("checkout-1-e2e-results-ab12cd34", None) == (
        "checkout-1-e2e-results-ab12cd34"
    )
    assert shard_results_name("checkout-1-e2e-results-ab12cd34", 3) == (
        "checkout-1-e2e-results-ab12cd34-3"
    )


@pytest.mark.parametrize(
    ("spec", "index", "allowed"),
    [
        ({}, None, True),  # an unsharded Job's upload names no index
        ({}, 0, False),
        ({"completionMode": "Indexed", "completions": 3}, 2, True),
        ({"completionMode": "Indexed", "completions": 3}, 3, False),
        ({"completionMode": "Indexed", "completions": 3}, None, False),
    ],
)
def test_an_upload_names_an_index_exactly_when_its_job_is_indexed(
    spec: dict[str, Any], index: int | None, allowed: bool
) -> None:
    assert _index_of_job({"spec": spec}, index) is allowed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, set()), ("", set()), ("2", {2}), ("0,3-5,9", {0, 3, 4, 5, 9}), ("x,1", {1})],
)
def test_failed_indexes_are_read_from_the_job_status(raw: str | None, expected: set[int]) -> None:
    assert _failed_indexes({"status": {"failedIndexes": raw}}) == expected


# ---------------------------------------------------------------------------
# A sharded run read from the store (issue 17): no API request per wake while it runs


class CountingApi:
    """The API as `observe_shards` sees it: each read counted; the upload ConfigMaps'
    bodies by name."""

    def __init__(self, configmaps: dict[str, dict[str, Any]]) -> None:
        self.configmaps = configmaps
        self.reads: list[tuple[str, str]] = []

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, name))
        return self.configmaps.get(name) if kind == "ConfigMap" else None

    async def list(self, kind: str, namespace: str, **_: Any) -> dict[str, Any]:
        self.reads.append((kind, "*"))
        return {"items": []}

    async def pod_log(self, *_: Any, **__: Any) -> str:
        self.reads.append(("log", ""))
        return ""


class StoreView:
    """A watch-fed store's answers: pods, and the upload ConfigMaps' metadata it has seen."""

    cached = True

    def __init__(self, pods: list[dict[str, Any]], configmaps: dict[str, dict[str, Any]]) -> None:
        self.pods = pods
        self.configmaps = configmaps

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.configmaps.get(name) if kind == "ConfigMap" else None
        return None if found is None else {"metadata": found["metadata"]}

    async def select(self, kind: str, namespace: str, selector: str, **_: Any) -> list[Any]:
        return self.pods if kind == "Pod" else []


def shard_upload(job_run: SuiteJob, index: int, job_uid: str) -> dict[str, Any]:
    xml = f'<testsuite><testcase classname="t.py" name="test_{index}"/></testsuite>'
    return {
        "metadata": {
            "name": shard_results_name(job_run.results_name, index),
            "ownerReferences": [{"uid": job_uid}],
        },
        "binaryData": {RESULTS_KEY: base64.b64encode(gzip.compress(xml.encode())).decode()},
    }


def indexed_job(job_run: SuiteJob, *conditions: str) -> dict[str, Any]:
    return {
        "metadata": {"name": job_run.job_name, "uid": "job-uid", "annotations": {}},
        "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]},
    }


def test_a_running_sharded_run_is_read_from_the_store_without_api_requests() -> None:
    job_run = whole(count=2)
    pods = [
        {"metadata": {"name": f"p{i}", "annotations": {COMPLETION_INDEX_ANNOTATION: str(i)}},
         "status": {"containerStatuses": [{"name": "suite", "state": {"running": {}}}]}}
        for i in range(2)
    ]  # fmt: skip
    uploaded = {shard_upload(job_run, 0, "job-uid")["metadata"]["name"]:
                shard_upload(job_run, 0, "job-uid")}  # fmt: skip
    api = CountingApi(uploaded)
    job = indexed_job(job_run)
    # The pods were noted on the Job when first seen (core/shard_pods.py): no write now.
    job["metadata"]["annotations"][SHARD_PODS_ANNOTATION] = "0=p0,1=p1"
    got = asyncio.run(
        observe_shards(api, job_run, job, reader=StoreView(pods, {}))  # type: ignore[arg-type]
    )
    assert got is None
    assert api.reads == []  # before: a LIST of pods and a GET per index, every wake
    got = asyncio.run(
        observe_shards(api, job_run, job, reader=StoreView(pods, uploaded))  # type: ignore[arg-type]
    )
    assert got is None  # index 1 still runs
    assert api.reads == [("ConfigMap", shard_results_name(job_run.results_name, 0))]  # its body


def test_an_upload_the_store_has_not_seen_yet_is_confirmed_with_the_api_before_a_verdict() -> None:
    """The Job ended; the store has seen index 0's upload but not index 1's (its watch
    is not ordered with the Job's): the API is asked, and both are read, not a
    "no JUnit XML" error."""
    job_run = whole(count=2)
    uploads = {
        shard_results_name(job_run.results_name, i): shard_upload(job_run, i, "job-uid")
        for i in range(2)
    }
    first = shard_results_name(job_run.results_name, 0)
    api = CountingApi(uploads)
    got = asyncio.run(
        observe_shards(
            api, job_run, indexed_job(job_run, "Complete"),  # type: ignore[arg-type]
            reader=StoreView([], {first: uploads[first]}),
        )
    )  # fmt: skip
    assert got is not None and got.error is None, got
    assert sorted(t.id for t in got.tests) == ["t.py::test_0", "t.py::test_1"]
    assert sorted(api.reads) == sorted(("ConfigMap", name) for name in uploads)


# ---------------------------------------------------------------------------
# A Go suite split in the pod: an idle index's note, a blocked command's reason, in the
# report's lines (core/pod_listing)

IDLE_NOTE = "not split in the pod: the test listing found no tests; shard 1 ran the whole suite"


def go_run(command: tuple[str, ...], shards: tuple[Shard, ...]) -> SuiteJob:
    return SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid="u-1"),
        iteration=1,
        suite=Suite(name="e2e", command=command, image="e2e:1", runner="go", shards=2),
        reporter_image="greenloop:dev",
        results_url="http://results:8081",
        shards=shards,
        max_pods=2,
    )


def upload_of(job_run: SuiteJob, index: int, xml: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": shard_results_name(job_run.results_name, index),
            "ownerReferences": [{"uid": "job-uid"}],
        },
        "binaryData": {RESULTS_KEY: base64.b64encode(gzip.compress(xml.encode())).decode()},
    }


@pytest.mark.parametrize(
    ("command", "shards", "line"),
    [
        (("gotestsum", "--", "{greenloop:select|./...}"), 2, IDLE_NOTE),
        (("gotestsum", "--", "./..."), 1, "not split: no {greenloop:select} in its command"),
    ],
)
def test_why_a_go_run_was_not_split_reaches_the_report_s_lines(
    command: tuple[str, ...], shards: int, line: str
) -> None:
    job_run = go_run(command, tuple(Shard(i, shards) for i in range(shards)))
    ran = '<testsuite><testcase classname="m/a" name="TestA"/></testsuite>'
    idle = (
        '<testsuites><testsuite name="greenloop" tests="0"><properties>'
        f'<property name="greenloop.note" value="{IDLE_NOTE}"/></properties></testsuite>'
        "</testsuites>"
    )
    uploads = {
        shard_results_name(job_run.results_name, i): upload_of(job_run, i, ran if i == 0 else idle)
        for i in range(shards)
    }
    got = asyncio.run(
        observe_shards(
            CountingApi(uploads), job_run, indexed_job(job_run, "Complete"),  # type: ignore[arg-type]
            reader=StoreView([], uploads),
        )
    )  # fmt: skip
    assert got is not None and got.error is None and got.shard_error is None
    assert [t.id for t in got.tests] == ["m/a::TestA"]  # the verdict: shard 1's run
    assert any(line in s for s in got.shard_lines), got.shard_lines
