"""A whole-suite run of a sharded Go or Maven suite in operator mode, split from a listing
made in each pod (core/pod_listing.py, docs/design.md §4.1).

Grouped by rule: the command alone decides whether the run is split (blockers, at Job
creation); a split run is N indexes of one Indexed Job whose command is the listing
wrapper, holding no tenant data; a rerun is unchanged (greenloop assigns the ids); an
idle index's empty report carries its note to the report's shard line. The wrapper is
run by the real /bin/sh in tests/e2e/test_pod_listing.py."""

from __future__ import annotations

from typing import Any

import pytest

from greenloop.core.engine import State, SuiteSelection
from greenloop.core.junit import parse_junit
from greenloop.core.model import Suite
from greenloop.core.pod_command import SHELL
from greenloop.core.pod_listing import (
    NOTE_PROPERTY,
    command_blocker,
    listing_wrapper_command,
    not_split_note,
)
from greenloop.core.shard_results import ShardOutcome, merge, suite_plan
from greenloop.core.shards import Shard, ShardPlan
from greenloop.k8s.jobs import JUNIT_PATH
from tests.support.pod_commands import container_command

GO = (
    "gotestsum",
    "--junitfile",
    "{greenloop:junit}",
    "--",
    "-tags",
    "x",
    "{greenloop:select|./...}",
)
MVN = ("mvn", "-B", "test", "{greenloop:select}")

# ---------------------------------------------------------------------------
# The command alone: decided at Job creation


@pytest.mark.parametrize(
    ("runner", "command", "why"),
    [
        ("go", GO, None),
        ("go", ("gotestsum", "--", "{greenloop:select}"), None),
        (
            "go",
            ("gotestsum", "--", "./..."),
            "no {greenloop:select} in its command for each shard's -run",
        ),
        ("maven", MVN, None),
        ("maven", ("mvn", "test"), "no {greenloop:select} in its command for each shard's classes"),
        (
            "maven",
            ("mvn", "-Dtest=CartTest", "test", "{greenloop:select}"),
            "chooses the test classes",
        ),
        ("maven", ("mvn", "-D", "test=CartTest", "{greenloop:select}"), "chooses the test classes"),
        ("maven", ("mvn", "-Dsurefire.includesFile=a", "{greenloop:select}"), "chooses"),
        ("maven", ("mvn", "--define", "surefire.excludesFile=a", "{greenloop:select}"), "chooses"),
        ("maven", ("mvn", "-Dtestx=1", "-Dit.test=X", "{greenloop:select}"), None),
        ("jest", ("jest",), None),  # not split from a listing: no blocker of this kind
    ],
)
def test_the_command_decides_whether_a_whole_suite_run_can_split(
    runner: str, command: tuple[str, ...], why: str | None
) -> None:
    got = command_blocker(runner, command)
    assert (got is None) == (why is None), got
    if why is not None:
        assert got is not None and why in got


def suite(runner: str, command: tuple[str, ...], shards: int = 3) -> Suite:
    return Suite(name="e2e", command=command, image="e2e:1", runner=runner, shards=shards)


@pytest.mark.parametrize(
    ("runner", "command", "whole"),
    [
        ("go", GO, 3),
        ("maven", MVN, 3),
        ("go", ("gotestsum", "--", "./..."), 1),  # blocked: one shard
        ("maven", ("mvn", "-Dtest=A", "{greenloop:select}"), 1),
    ],
)
def test_a_whole_suite_run_is_n_indexes_unless_the_command_blocks_it(
    runner: str, command: tuple[str, ...], whole: int
) -> None:
    s = suite(runner, command)
    plan = suite_plan(s, State(), SuiteSelection("e2e", None))
    assert plan.shards == tuple(Shard(i, whole) for i in range(whole))
    # A rerun's ids are greenloop's to assign: planned as for a command that splits.
    ids = tuple(f"p::Test{i}" for i in range(12)) if runner == "go" else ("c.A::a", "c.B::b")
    unblocked = suite(runner, GO if runner == "go" else MVN)
    rerun_plan = suite_plan(s, State(), SuiteSelection("e2e", ids))
    assert rerun_plan == suite_plan(unblocked, State(), SuiteSelection("e2e", ids))
    assert all(sh.test_ids for sh in rerun_plan.shards)


@pytest.mark.parametrize(
    ("command", "shards", "note"),
    [
        (GO, 3, None),
        (("gotestsum", "--", "./..."), 3, "not split: no {greenloop:select} in its command"),
        (("gotestsum", "--", "./..."), 1, None),
    ],
)
def test_a_blocked_run_says_why_in_the_report(
    command: tuple[str, ...], shards: int, note: str | None
) -> None:
    got = not_split_note("go", command, shards)
    assert (got is None) == (note is None)
    if note is not None:
        assert got is not None and got.startswith(note) and got.endswith("; one shard")


# ---------------------------------------------------------------------------
# The Indexed Job's command: the listing wrapper, tenant words as parameters only

NASTY = '$(SECRET) it\'s `id` "q"'


def job_command(runner: str, command: tuple[str, ...], shards: int = 3) -> list[str]:
    return container_command(
        suite(runner, command, shards), tuple(Shard(i, shards) for i in range(shards))
    )


@pytest.mark.parametrize(
    ("runner", "command", "words"),
    [
        ("go", (*GO, NASTY),
         ["./...", "gotestsum", "--junitfile", JUNIT_PATH, "--", "-tags", "x", "./...", NASTY]),
        ("go", ("gotestsum", "--", "{greenloop:select}"), ["./...", "gotestsum", "--"]),
        ("go", ("gt", "{greenloop:select|-tags=y ./a ./b}"),
         ["-tags=y", "./a", "./b", "gt", "-tags=y", "./a", "./b"]),
        ("maven", (*MVN, NASTY), ["mvn", "-B", "test", NASTY]),
    ],
)  # fmt: skip
def test_the_wrapper_gets_the_listing_s_packages_and_the_whole_command_as_parameters(
    runner: str, command: tuple[str, ...], words: list[str]
) -> None:
    got = job_command(runner, command)
    assert got[:2] == [SHELL, "-c"]
    assert got[3] == "greenloop-shard"
    assert got[4:] == words  # as the team wrote them: Kubernetes still expands $(VAR)
    script = got[2]
    assert NASTY not in script and "SECRET" not in script and "-tags" not in script
    # Every $ of the script is doubled: Kubernetes' expansion gives the shell its own.
    assert "$" not in script.replace("$$", "")
    assert "{greenloop" not in script


def test_a_blocked_command_runs_as_one_unsharded_pod_command() -> None:
    command = ("gotestsum", "--", "./...")
    assert job_command("go", command, shards=1) == ["gotestsum", "--", "./..."]


def test_a_single_index_whole_run_or_a_rerun_gets_no_listing_wrapper() -> None:
    s = suite("go", GO)
    rerun = suite_plan(s, State(), SuiteSelection("e2e", ("p::TestA", "p::TestB")))
    got = container_command(s, rerun.shards, selection=rerun.selected, iteration=2)
    assert "go test -list" not in got[2]


def test_only_go_and_maven_have_a_listing_wrapper() -> None:
    with pytest.raises(ValueError, match="jest"):
        listing_wrapper_command(("jest", "{greenloop:select}"), "jest", JUNIT_PATH)


# ---------------------------------------------------------------------------
# An idle index's note reaches the report's shard line

IDLE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="greenloop" '
    f'tests="0"><properties><property name="{NOTE_PROPERTY}" value="not split in the pod: '
    'a/pom.xml &amp; b sets it; shard 1 ran the whole suite"/></properties></testsuite>'
    "</testsuites>\n"
)


def test_an_idle_index_s_report_has_no_test_and_its_note() -> None:
    report = parse_junit(IDLE.encode(), name="idle.xml")
    assert report.tests == ()
    assert report.notes == (
        "not split in the pod: a/pom.xml & b sets it; shard 1 ran the whole suite",
    )


def test_a_note_inside_a_testcase_or_of_another_name_is_not_one() -> None:
    xml = (
        '<testsuite><properties><property name="other" value="x"/></properties>'
        f'<testcase name="t"><properties><property name="{NOTE_PROPERTY}" value="y"/>'
        "</properties></testcase></testsuite>"
    )
    assert parse_junit(xml.encode(), name="x.xml").notes == ()


def test_the_merged_shard_lines_show_an_idle_index_s_note_and_the_verdict_is_shard_0_s() -> None:
    from greenloop.core.model import Outcome, TestResult

    plan = ShardPlan("e2e", None, (Shard(0, 2), Shard(1, 2)))
    ran = (TestResult(id="p::TestA", name="TestA", classname="p", outcome=Outcome.PASSED),)
    note = "not split in the pod: the test listing found no tests; shard 1 ran the whole suite"
    merged: Any = merge(plan, [ShardOutcome(0, ran), ShardOutcome(1, (), note=note)])
    assert merged.run.error is None and merged.run.shard_error is None
    assert [t.id for t in merged.run.tests] == ["p::TestA"]
    assert merged.run.shard_lines[1].endswith(f"0 tests in 0.0 s ({note})")
    assert "(" not in merged.run.shard_lines[0]


# ---------------------------------------------------------------------------
# The listing-failure rule: an index whose listing failed in its pod ends without a
# report, and its shard can never pass (the e2e test runs the wrapper)


def test_a_shard_whose_listing_failed_is_a_runner_error_and_the_first_run_never_passes() -> None:
    from greenloop.core import engine
    from greenloop.core.engine import RunSuites, SuiteFinished
    from greenloop.core.model import Outcome, TestResult
    from tests.unit.scenario import make_spec

    spec = make_spec(("e2e", "P1"))
    d = engine.begin(spec, 0.0)  # the first run: no test known yet
    assert isinstance(d.action, RunSuites)
    plan = ShardPlan("e2e", None, tuple(Shard(i, 3) for i in range(3)))
    ran = (TestResult(id="p::TestA", name="TestA", classname="p", outcome=Outcome.PASSED),)
    why = (
        "container suite ended: Error, exit code 125; last log lines: greenloop: the test"
        " listing failed in this pod: go: example.com/dep@v1.2.0: no such host (exit 1)"
    )
    outcomes = [ShardOutcome(0, ran), ShardOutcome(1, ()), ShardOutcome(2, error=why, pod="e2e-2")]
    merged: Any = merge(plan, outcomes)
    assert merged.run.shard_error == f"shard 3/3 (e2e-2): no results: {why}"
    d = engine.on_suite(spec, d.state, SuiteFinished(d.action.id, merged.run), 1.0)
    assert d.state.phase is not engine.Phase.PASSED
