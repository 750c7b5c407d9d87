"""Engine rules that survived ``make mutate`` (core/engine.py) after test_engine_pinned.py:
each test names the rule it pins and checks what a person reads (phase, reason, message,
counts, the rerun's selection)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from greenloop.core import engine
from greenloop.core.engine import (
    Counts,
    Phase,
    Reason,
    State,
    SuiteFinished,
    SuiteRun,
    SuiteSelection,
)
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult
from tests.unit.scenario import ASSERT, bad, dep_skip, make_spec, ok, play

SELECTION_HELP = (
    ": the rerun did not run the selected tests twice (it skipped them, did not report "
    "them, or reported tests that were not selected); fix the suite's command so it runs "
    "only the ids listed in the file $GREENLOOP_SELECT names, reporting each with the id it "
    "had (docs/design.md §4)"
)


def nothing_on_rerun(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full if sel.test_ids is None else []


def test_selection_ignored_names_every_suite_that_ignored_it_and_says_how_to_fix_it() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=3)
    first = {"api": [ok("a1"), bad("a2", ASSERT)], "web": [ok("w1"), bad("w2", ASSERT)]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert state.message == "suite api, web" + SELECTION_HELP


def test_an_internal_error_keeps_a_whole_note_of_its_message() -> None:
    state = engine.begin(make_spec(("e2e", "P1")), 1000.0).state
    done = engine.internal_error(state, 1001.0, "x" * 1000)
    assert done.state.message == "x" * (engine.MAX_NOTE - 1) + "…"


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
    first = {"e2e": [ok("a"), bad("b", ASSERT, priority="P4")]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    record = state.tests["b"]
    assert record.diagnosis is not None
    assert (str(record.diagnosis.failure_class), record.priority) == ("NotRerun", "P4")
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


def skipped(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED)


def errored(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.ERROR, message="boom")


@pytest.mark.parametrize(
    ("results", "counts"),
    [
        ([], Counts(0, 0, 0)),
        ([ok("a"), ok("b")], Counts(2, 0, 0)),
        ([bad("a", ASSERT), errored("b")], Counts(0, 2, 0)),
        ([skipped("a"), skipped("b")], Counts(0, 0, 2)),
        # A dependency skip fails with its root: the progress line counts it failed.
        ([bad("a", ASSERT), dep_skip("b", "a"), ok("c"), skipped("d")], Counts(1, 2, 1)),
    ],
    ids=["nothing", "passed", "failed and errors", "skipped", "a dependency skip fails"],
)
def test_a_suite_s_progress_line_counts_passed_failed_skipped(
    results: list[TestResult], counts: Counts
) -> None:
    assert engine.tally_results(results) == counts
    assert engine.tally_results(results).total == len(results)


def test_the_same_generation_again_changes_nothing_and_asks_for_the_same_batch() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    changed = engine.on_spec_changed(spec, engine.begin(spec, 1000.0).state, 2000.0, generation=2)
    same = engine.on_spec_changed(spec, changed.state, 3000.0, generation=2)
    assert same == changed
    assert isinstance(same.action, engine.RunSuites)
    assert [s.suite for s in same.action.suites] == ["api", "web"]
