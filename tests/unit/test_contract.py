"""The runner contract's environment (core/contract.py, docs/runners.md "The contract"):
every variable the docs promise is set, in both modes, and the two shells that start a
suite (local/suites.py, a process; k8s/jobs.py, a container) give a suite the same names
for the same suite, selection and shard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from greenloop.core import contract
from greenloop.core.engine import SuiteSelection
from greenloop.core.model import EnvVar, Suite
from greenloop.core.shards import Shard
from greenloop.k8s.jobs import Owner, SuiteJob, build_job
from greenloop.local import suites as local_suites

DOCS = Path(__file__).resolve().parents[2] / "docs" / "runners.md"
IDS = ("a.test.js::adds $(HOME)", "a.test.js::pays", "b.test.js::ships")
# The reporter variables greenloop sets for a runner (docs/runners.md, per runner).
REPORTERS = ("JEST_JUNIT_OUTPUT_FILE", "PLAYWRIGHT_JUNIT_OUTPUT_FILE")


def suite(runner: str, env: tuple[EnvVar, ...] = ()) -> Suite:
    return Suite(
        name="e2e",
        command=("run", "{greenloop:select}"),
        image="e2e:1",
        runner=runner,
        shards=3,
        env=(EnvVar("BASE_URL", "http://backend"), *env),
    )


def shards_of(selected: bool) -> tuple[Shard, ...]:
    if not selected:
        return tuple(Shard(i, 3) for i in range(3))
    return tuple(Shard(i, 3, IDS[i : i + 1]) for i in range(3))


def local_env(
    monkeypatch: pytest.MonkeyPatch, s: Suite, selected: bool, sharded: bool
) -> dict[str, str]:
    """What local mode's process of shard 1 (or the one process) gets."""
    # Inherited from whoever ran greenloop: never the suite's.
    for name in contract.OWN_NAMES:
        monkeypatch.setenv(name, "inherited")
    shard = shards_of(selected)[1] if sharded else None
    files = local_suites.suite_files(Path("/run"), s.name, shard)
    selection = local_suites.shard_selection(
        SuiteSelection(s.name, IDS if selected else None), shard
    )
    return local_suites.suite_env(s, files, selection, 2, shard)


def pod_env(s: Suite, selected: bool, sharded: bool) -> list[dict[str, Any]]:
    """What operator mode's suite container is given."""
    job = build_job(
        SuiteJob(
            owner=Owner(name="checkout", namespace="staging", uid="u-1"),
            iteration=2,
            suite=s,
            reporter_image="greenloop:dev",
            results_url="http://results",
            selection=IDS if selected else None,
            shards=shards_of(selected) if sharded else (),
            max_pods=3,
        )
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    env: list[dict[str, Any]] = container["env"]
    # The shard wrapper exports the index's selection arguments at run time.
    if any("export GREENLOOP_SELECT_ARGS" in word for word in container["command"]):
        env = [*env, {"name": contract.SELECT_ARGS_ENV, "value": "(the wrapper's)"}]
    return env


def contract_names(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("GREENLOOP_") or n in REPORTERS}


CASES = [
    pytest.param(runner, selected, sharded, id=f"{runner}-{kind}-{width}")
    for runner in ("pytest", "jest", "playwright", "go", "maven", "generic")
    for selected, kind in ((False, "whole"), (True, "rerun"))
    for sharded, width in ((False, "1"), (True, "3"))
]


@pytest.mark.parametrize(("runner", "selected", "sharded"), CASES)
def test_local_and_operator_mode_give_a_suite_the_same_names(
    runner: str, selected: bool, sharded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = suite(runner)
    local = contract_names(set(local_env(monkeypatch, s, selected, sharded)))
    pod = pod_env(s, selected, sharded)
    assert local == contract_names({e["name"] for e in pod})
    assert "BASE_URL" in {e["name"] for e in pod}


@pytest.mark.parametrize(("runner", "selected", "sharded"), CASES)
def test_a_pod_sets_each_name_once_and_greenloop_s_own_win(
    runner: str, selected: bool, sharded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite's env naming greenloop's own variables does not override them (local mode
    overwrites; a pod must not list a name twice, which the API server warns about and
    whose winner a reader of the spec cannot see)."""
    s = suite(runner, (EnvVar("GREENLOOP_SUITE", "mine"), EnvVar("GREENLOOP_JUNIT_XML", "x")))
    names = [e["name"] for e in pod_env(s, selected, sharded)]
    assert len(names) == len(set(names))
    pod = {e["name"]: e.get("value") for e in pod_env(s, selected, sharded)}
    local = local_env(monkeypatch, s, selected, sharded)
    assert pod["GREENLOOP_SUITE"] == local["GREENLOOP_SUITE"] == "e2e"
    assert local["GREENLOOP_JUNIT_XML"] != "x" and pod["GREENLOOP_JUNIT_XML"] != "x"


def test_a_suite_s_own_reporter_variable_is_kept_in_both_modes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = suite("jest", (EnvVar("JEST_JUNIT_OUTPUT_FILE", "mine.xml"),))
    pod = [e for e in pod_env(s, False, False) if e["name"] == "JEST_JUNIT_OUTPUT_FILE"]
    assert [e["value"] for e in pod] == ["mine.xml"]
    assert local_env(monkeypatch, s, False, False)["JEST_JUNIT_OUTPUT_FILE"] == "mine.xml"


def documented_names() -> set[str]:
    text = DOCS.read_text()
    return set(re.findall(r"\bGREENLOOP_[A-Z_]+\b", text)) | {n for n in REPORTERS if n in text}


@pytest.mark.parametrize("mode", ["local", "operator"])
def test_every_variable_docs_runners_md_lists_is_produced(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced: set[str] = set()
    for param in CASES:
        runner, selected, sharded = param.values
        s = suite(str(runner))
        if mode == "local":
            produced |= set(local_env(monkeypatch, s, bool(selected), bool(sharded)))
        else:
            produced |= {e["name"] for e in pod_env(s, bool(selected), bool(sharded))}
    documented = documented_names()
    assert {"GREENLOOP_JUNIT_XML", "GREENLOOP_SELECT", "GREENLOOP_SHARD_INDEX"} <= documented
    assert documented <= produced
    assert set(contract.OWN_NAMES) <= documented | {"GREENLOOP_SUITE", "GREENLOOP_ITERATION"}


def test_an_index_read_from_the_pod_is_defined_before_the_selection_file_that_names_it() -> None:
    """Kubernetes expands $(GREENLOOP_SHARD_INDEX) only in a variable listed after it."""
    env = contract.suite_env(
        suite("pytest"),
        1,
        "/r/junit.xml",
        contract.per_index_selection("pytest", "/s/tests-$(GREENLOOP_SHARD_INDEX).txt"),
        contract.ShardVars(3, index_from={"fieldRef": {"fieldPath": "x"}}),
    )
    names = [var.name for var in env]
    assert names.index("GREENLOOP_SHARD_INDEX") < names.index("GREENLOOP_SELECT")
    assert {v.name: v.value for v in env}["GREENLOOP_SELECT_ARGS"] == ""


@pytest.mark.parametrize("runner", ["jest", "vitest", "playwright", "go", "maven"])
def test_a_runner_told_its_ids_as_arguments_gets_each_index_s_from_the_wrapper(
    runner: str,
) -> None:
    assert contract.per_index_selection(runner, "/s/f").args is None
