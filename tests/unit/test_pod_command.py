"""What the suite container runs in a cluster (core/pod_command.py, docs/runners.md "In
operator mode"): the command's placeholders filled in as local mode fills them, at Job
creation for a one-pod Job, and through a POSIX shell wrapper for an Indexed Job whose
pods share one template. The wrapper is run with the real /bin/sh in
tests/e2e/test_pod_command.py; here, its shape and what the Job carries."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import Shard, plan
from greenloop.k8s.jobs import (
    JUNIT_PATH,
    Owner,
    SuiteJob,
    build_job,
    build_selection_configmap,
)

UID = "4f1c2d3e-0000-4000-8000-00000000abcd"
JEST = ("npx", "jest", "--ci", "{greenloop:select}", "--outputFile={greenloop:junit}")
IDS = ("shop.test.js::cart adds $(HOME) items", "shop.test.js::pays")


def suite_job(
    runner: str,
    command: tuple[str, ...],
    *,
    selection: tuple[str, ...] | None,
    shards: tuple[Shard, ...] = (),
) -> SuiteJob:
    return SuiteJob(
        owner=Owner(name="checkout", namespace="staging", uid=UID),
        iteration=2,
        suite=Suite(name="e2e", command=command, image="e2e:1", runner=runner, shards=3),
        reporter_image="localhost/greenloop:dev",
        results_url="http://results:8081",
        selection=selection,
        shards=shards,
        max_pods=3,
    )


def suite_container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def kube_expand(arg: str) -> str:
    """Kubernetes' $(VAR) expansion of a command argument, for a pod with no variable
    these tests look up: ``$$`` becomes ``$``, an unknown ``$(X)`` stays as written."""
    return arg.replace("$$", "\0").replace("\0", "$")


# ---------------------------------------------------------------------------
# A one-pod Job: the command expanded at creation, as local mode does


def test_a_jest_rerun_gets_its_selection_arguments_in_place_of_the_placeholder() -> None:
    job = build_job(suite_job("jest", JEST, selection=IDS))
    command = [kube_expand(a) for a in suite_container(job)["command"]]
    assert "{greenloop:select}" not in command
    assert command == [
        "npx", "jest", "--ci",
        "-t", r"^(?:cart adds \$\(HOME\) items|pays)$", "--", r"shop\.test\.js$",
        f"--outputFile={JUNIT_PATH}",
    ]  # fmt: skip


def test_a_whole_suite_run_fills_the_placeholder_s_default() -> None:
    go = ("gotestsum", "--junitfile", "{greenloop:junit}", "--", "{greenloop:select|./...}")
    job = build_job(suite_job("go", go, selection=None))
    assert suite_container(job)["command"] == [
        "gotestsum",
        "--junitfile",
        JUNIT_PATH,
        "--",
        "./...",
    ]


def test_a_test_id_cannot_reach_kubernetes_variable_expansion() -> None:
    # Ids are tenant data: a classname "$(SECRET)" must reach vitest as written, not
    # as the value of a variable of the pod.
    job = build_job(
        suite_job("vitest", ("vitest", "{greenloop:select}"), selection=("$(SECRET)::t",))
    )
    command = suite_container(job)["command"]
    assert "$$(SECRET)" in command
    assert kube_expand("$$(SECRET)") == "$(SECRET)"


def test_the_runner_s_report_path_and_selection_words_are_in_the_env_as_in_local_mode() -> None:
    container = suite_container(build_job(suite_job("jest", JEST, selection=IDS)))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JEST_JUNIT_OUTPUT_FILE"] == JUNIT_PATH
    words = shlex.split(kube_expand(env["GREENLOOP_SELECT_ARGS"]))
    assert words[:2] == ["-t", r"^(?:cart adds \$\(HOME\) items|pays)$"]


# ---------------------------------------------------------------------------
# An Indexed Job: one template for every index, a shell wrapper splices each index's part


def test_a_whole_suite_jest_run_in_shards_gets_shard_flags_through_the_wrapper() -> None:
    shards = plan("e2e", None, 3, runner="jest").shards
    job = build_job(suite_job("jest", JEST, selection=None, shards=shards))
    command = suite_container(job)["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert "--shard=$$((GREENLOOP_SHARD_INDEX + 1))/$$GREENLOOP_SHARD_COUNT" in command[2]
    assert command[4:] == ["npx", "jest", "--ci", f"--outputFile={JUNIT_PATH}"]


def test_a_sharded_jest_rerun_reads_its_index_s_arguments_from_the_selection() -> None:
    p = plan("e2e", IDS, 3, runner="jest")
    r = suite_job("jest", JEST, selection=IDS, shards=p.shards)
    command = suite_container(build_job(r))["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert "{greenloop:select}" not in command
    data = build_selection_configmap(r, job_uid="job-1")["data"]
    for shard in p.shards:
        words = shlex.split(data[f"args-{shard.index}.txt"])
        assert words[0] == "-t" and len(words) >= 2


@pytest.mark.parametrize("runner", ["pytest", "generic"])
def test_runners_that_read_their_file_get_no_wrapper(runner: str) -> None:
    p = plan("e2e", IDS, 3, runner=runner)
    r = suite_job(runner, ("pytest", "{greenloop:select|tests/}"), selection=IDS, shards=p.shards)
    assert suite_container(build_job(r))["command"] == ["pytest"]
    data = build_selection_configmap(r, job_uid="job-1")["data"]
    assert not [k for k in data if k.startswith("args-")]
