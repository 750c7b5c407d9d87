"""The verdict rule (docs/design.md §7) as engine scenarios: only a result from the run
that selected a test says whether it passes. How a rerun lines up with its selection,
``NotRerun``, and ``SelectionIgnored`` the second time (``engine.verdict``,
``engine.rules.selection_ignored_twice``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason, State, SuiteFinished, SuiteRun, SuiteSelection
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult
from tests.unit.engine.steps import skipped
from tests.unit.scenario import ASSERT, Script, bad, dep_skip, make_spec, ok, play

Runner = Callable[[SuiteSelection, Sequence[TestResult]], Sequence[TestResult]]


SELECTION_HELP = (
    ": the rerun did not run the selected tests twice (it skipped them, did not report "
    "them, or reported tests that were not selected); fix the suite's command so it runs "
    "only the ids listed in the file $GREENLOOP_SELECT names, reporting each with the id it "
    "had (docs/design.md §4)"
)


def nothing_on_rerun(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full if sel.test_ids is None else []


def reruns_everything(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full


def deselected_skipped(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    if sel.test_ids is None:
        return full
    return [t if t.id in sel.test_ids else skipped(t.id) for t in full]


def honest(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return [t for t in full if sel.test_ids is None or t.id in sel.test_ids]


def skips_everything_on_rerun(
    sel: SuiteSelection, full: Sequence[TestResult]
) -> Sequence[TestResult]:
    return full if sel.test_ids is None else [skipped(t.id) for t in full]


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


def test_selection_ignored_names_every_suite_that_ignored_it_and_says_how_to_fix_it() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=3)
    first = {"api": [ok("a1"), bad("a2", ASSERT)], "web": [ok("w1"), bad("w2", ASSERT)]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert state.message == "suite api, web" + SELECTION_HELP
    assert state.history[-1].finished is not None  # the report's duration of the last one


def test_a_selected_test_with_no_record_is_not_rerun_with_its_suite_s_priority() -> None:
    # A state restored from elsewhere may select a test it holds no record of.
    spec = make_spec(("api", "P1"), ("web", "P3"))
    state = State(
        phase=Phase.TESTING,
        iteration=2,
        started_at=1000.0,
        running=(SuiteSelection("web", ("w9",)),),
        history=(engine.IterationRecord(iteration=2, started=1000.0),),
    )
    run = SuiteRun("web", tests=(), selected=("w9",))
    done = engine.on_suite(spec, state, SuiteFinished(state.action_id, run), 1001.0)
    record = done.state.tests["w9"]
    assert (record.suite, record.priority, record.outcome) == ("web", "P3", Outcome.SKIPPED)
    assert record.diagnosis is not None
    assert str(record.diagnosis.failure_class) == "NotRerun"
    assert (record.failed_runs, record.last_failed) == (1, 2)
    assert record.first_failure == engine.FirstFailure(
        2,
        record.diagnosis.failure_class,
        "selected for the rerun, but the rerun skipped it or did not report it",
    )


def test_a_test_not_rerun_keeps_its_own_priority_and_how_it_first_failed() -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    first = {"e2e": [ok("a"), bad("b", ASSERT, priority="P4", depends_on=("a",))]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    record = state.tests["b"]
    assert record.diagnosis == Diagnosis(
        FailureClass.NOT_RERUN,
        "selected for the rerun, but the rerun skipped it or did not report it",
    )
    assert (record.priority, record.iteration, record.depends_on) == ("P4", 2, ("a",))
    assert record.first_failure is not None
    assert (record.first_failure.iteration, str(record.first_failure.failure_class)) == (
        1,
        "Assertion",
    )
    assert record.first_failure.evidence == ASSERT
    assert (record.failed_runs, record.last_failed) == (2, 2)
    # No retries left: the round stops on the NotRerun test, naming the suite at fault.
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert state.message == "suite e2e" + SELECTION_HELP


def test_selection_ignored_with_no_suite_on_record_says_unknown() -> None:
    # A state restored from elsewhere: a NotRerun test, but no selection miss recorded.
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=0)
    not_rerun = engine.TestRecord(
        id="w1",
        suite="web",
        priority="P2",
        outcome=Outcome.SKIPPED,
        iteration=1,
        diagnosis=Diagnosis(FailureClass.NOT_RERUN, "selected for the rerun, not reported"),
    )
    state = State(
        phase=Phase.TESTING,
        iteration=1,
        started_at=1000.0,
        tests={"w1": not_rerun},
        running=(SuiteSelection("api"),),
        history=(engine.IterationRecord(iteration=1, started=1000.0),),
    )
    run = SuiteRun("api", tests=(ok("a1"),))
    done = engine.on_suite(spec, state, SuiteFinished(state.action_id, run), 1001.0)
    assert (done.state.phase, done.state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert done.state.message == "suite (unknown)" + SELECTION_HELP


@pytest.mark.parametrize(
    ("test_ids", "results", "missing", "skips", "extra", "ran_extra", "message"),
    [
        (None, [ok("a"), skipped("b")], (), (), (), 0, ""),
        (("a", "b"), [ok("a"), bad("b", ASSERT)], (), (), (), 0, ""),
        # A dependency skip is a result: the test was run and its root failed.
        (("a", "b"), [bad("a", ASSERT), dep_skip("b", "a")], (), (), (), 0, ""),
        (
            ("c", "a", "b"),
            [ok("b")],
            ("c", "a"),
            (),
            (),
            0,
            "suite e2e: rerun of 3 selected tests: 2 not reported (counted as NotRerun)",
        ),
        (
            ("a", "b"),
            [skipped("a"), ok("b")],
            (),
            ("a",),
            (),
            0,
            "suite e2e: rerun of 2 selected tests: 1 reported as skipped (counted as NotRerun)",
        ),
        (
            ("a",),
            [ok("a"), ok("x"), skipped("y"), bad("z", ASSERT)],
            (),
            (),
            ("x", "y", "z"),
            2,
            "suite e2e: rerun of 1 selected test; 3 results for tests not selected ignored",
        ),
        (
            ("a", "b", "c"),
            [skipped("b"), ok("c"), skipped("x")],
            ("a",),
            ("b",),
            ("x",),
            0,
            "suite e2e: rerun of 3 selected tests: 1 not reported, 1 reported as skipped "
            "(counted as NotRerun); 1 result for tests not selected ignored",
        ),
    ],
    ids=[
        "a whole suite",
        "lined up",
        "a dependency skip",
        "not reported",
        "reported skipped",
        "extra results",
        "all at once",
    ],
)
def test_a_rerun_s_line_up_counts_what_was_not_run_and_what_was_not_selected(
    test_ids: tuple[str, ...] | None,
    results: list[TestResult],
    missing: tuple[str, ...],
    skips: tuple[str, ...],
    extra: tuple[str, ...],
    ran_extra: int,
    message: str,
) -> None:
    line = engine.line_up(SuiteSelection("e2e", test_ids), results)
    assert (line.suite, line.selected) == ("e2e", 0 if test_ids is None else len(test_ids))
    assert (line.missing, line.skipped, line.extra, line.ran_extra) == (
        missing,
        skips,
        extra,
        ran_extra,
    )
    assert line.message == message


@pytest.mark.parametrize(
    ("runner", "reason", "iterations", "ignored"),
    [
        # Tests that were not selected ran: the selection was ignored, twice is a stop.
        (reruns_everything, Reason.SELECTION_IGNORED, 3, 4),
        # Reported as skipped, they did not run: the selection held; the retries run out.
        (deselected_skipped, Reason.ASSERTION, 4, 6),
    ],
    ids=["not selected, yet run", "not selected, reported skipped"],
)
def test_a_rerun_that_runs_tests_not_selected_ignored_the_selection(
    runner: Runner, reason: Reason, iterations: int, ignored: int
) -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=3)
    every = {"e2e": [ok("a"), ok("b"), bad("c", ASSERT)]}
    state = play(spec, [every], runner=runner).state
    assert (state.phase, state.reason, state.iteration) == (Phase.STALLED, reason, iterations)
    assert state.ignored_results == ignored


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
