"""A sharded suite run as one Indexed Job (docs/design.md §4.1): the Job, the env each pod
gets, the selection ConfigMap with a key per index, where each index's upload is stored,
and how the Job's failedIndexes are read."""

from __future__ import annotations

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
from greenloop.k8s.results import _index_of_job
from greenloop.k8s.suites import _failed_indexes

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


# The store reads, the API requests they cost, and the report lines of a Go run not split
# in the pod: tests/integration/test_operator_shard_reads.py (the real API server).
