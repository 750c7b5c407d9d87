"""The verdict rule (docs/design.md §7) as engine scenarios: only a result from the run
that selected a test says whether it passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from greenloop.core.engine import Phase, Reason, SuiteSelection
from greenloop.core.model import Outcome, TestResult
from tests.unit.scenario import ASSERT, Script, bad, dep_skip, make_spec, ok, play

Runner = Callable[[SuiteSelection, Sequence[TestResult]], Sequence[TestResult]]


def skipped(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED)


def honest(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return [t for t in full if sel.test_ids is None or t.id in sel.test_ids]


def skips_everything_on_rerun(
    sel: SuiteSelection, full: Sequence[TestResult]
) -> Sequence[TestResult]:
    return full if sel.test_ids is None else [skipped(t.id) for t in full]


def nothing_on_rerun(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full if sel.test_ids is None else []


def deselected_as_skipped(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    if sel.test_ids is None:
        return full
    return [t if t.id in sel.test_ids else skipped(t.id) for t in full]


def whole_suite_always(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full


FIRST = {"e2e": [ok("a"), ok("b"), bad("c", ASSERT), bad("d", ASSERT)]}
SECOND = {"e2e": [ok("a"), ok("b"), ok("c"), ok("d")]}


@dataclass(frozen=True)
class Case:
    name: str
    runner: Runner
    script: Script
    phase: Phase
    reason: Reason
    iterations: int
    passed: int
    expected: int | None = None
    flake_retries: int = 3


CASES = [
    Case("honest runner", honest, [FIRST, SECOND], Phase.PASSED, Reason.GOAL_MET, 2, 4),
    Case(
        "selected tests reported skipped: NotRerun, the second time SelectionIgnored",
        skips_everything_on_rerun,
        [FIRST, SECOND],
        Phase.STALLED,
        Reason.SELECTION_IGNORED,
        3,
        2,
    ),
    Case(
        "no results for the selection",
        nothing_on_rerun,
        [FIRST, SECOND],
        Phase.STALLED,
        Reason.SELECTION_IGNORED,
        3,
        2,
    ),
    Case(
        "NotRerun without retries left stops SelectionIgnored at once",
        nothing_on_rerun,
        [FIRST, SECOND],
        Phase.STALLED,
        Reason.SELECTION_IGNORED,
        2,
        2,
        flake_retries=1,
    ),
    Case(
        "deselected reported skipped cannot overwrite earlier passes",
        deselected_as_skipped,
        [FIRST, SECOND],
        Phase.PASSED,
        Reason.GOAL_MET,
        2,
        4,
        expected=4,
    ),
    Case(
        "a runner that reruns everything: the selected results count",
        whole_suite_always,
        [FIRST, SECOND],
        Phase.PASSED,
        Reason.GOAL_MET,
        2,
        4,
    ),
    Case(
        "nothing ran",
        honest,
        [{"e2e": []}],
        Phase.STALLED,
        Reason.NO_TESTS,
        1,
        0,
    ),
    Case(
        "nothing passed: every test skipped",
        honest,
        [{"e2e": [skipped("a"), skipped("b")]}],
        Phase.STALLED,
        Reason.NOTHING_PASSED,
        1,
        0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict(case: Case) -> None:
    spec = make_spec(("e2e", "P1"), expected=case.expected, flake_retries=case.flake_retries)
    played = play(spec, case.script, runner=case.runner)
    state = played.state
    assert (state.phase, state.reason) == (case.phase, case.reason), state.message
    assert state.iteration == case.iterations
    assert (
        sum(1 for t in state.tests.values() if t.outcome is Outcome.PASSED and not t.failing)
        == case.passed
    )


def test_a_not_rerun_test_is_failing_with_that_class_and_never_redeployed() -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    played = play(spec, [FIRST, SECOND], runner=nothing_on_rerun)
    classes = {
        t.id: t.diagnosis.failure_class.value for t in played.state.tests.values() if t.diagnosis
    }
    assert classes == {"c": "NotRerun", "d": "NotRerun"}
    assert played.redeploys == []
    assert "fix the suite's command" in played.state.message
    assert "GREENLOOP_SELECT" in played.state.message


def test_a_dependency_skip_in_a_rerun_is_dependent_not_not_rerun() -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    first = {"e2e": [bad("root", ASSERT), dep_skip("child", "root")]}
    played = play(spec, [first, first])
    classes = {
        t.id: t.diagnosis.failure_class.value for t in played.state.tests.values() if t.diagnosis
    }
    assert classes == {"root": "Assertion", "child": "Dependent"}
    assert played.state.reason is Reason.ASSERTION


def test_a_mismatch_is_noted_with_its_numbers() -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    played = play(spec, [FIRST, SECOND], runner=skips_everything_on_rerun)
    notes = [n for rec in played.state.history for n in rec.notes]
    assert (
        "suite e2e: rerun of 2 selected tests: 2 reported as skipped (counted as NotRerun); "
        "2 results for tests not selected ignored"
    ) in notes
    assert played.state.ignored_results == 2


def test_a_permanent_runner_error_stops_without_the_retry() -> None:
    from greenloop.core import engine
    from greenloop.core.engine import RunSuites, SuiteFinished, SuiteRun

    spec = make_spec(("e2e", "P1"))
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    run = SuiteRun("e2e", error="command not found: 'jest'", permanent=True)
    end = engine.on_suite(spec, start.state, SuiteFinished(start.action.id, run), 1.0)
    assert (end.state.phase, end.state.reason) == (Phase.STALLED, Reason.RUNNER_ERROR)
    assert end.state.iteration == 1
    transient = engine.on_suite(
        spec, start.state, SuiteFinished(start.action.id, SuiteRun("e2e", error="OOMKilled")), 1.0
    )
    assert isinstance(transient.action, RunSuites)  # retried once
