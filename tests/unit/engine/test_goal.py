"""Goal met, and the ends that are never success (docs/design.md §1): every test that
ran passed → Passed/GoalMet, unless nothing ran (NoTestsReported), nothing passed
(NothingPassed) or fewer than ``expectedTests`` ran (ExpectedTestsMissing; rerunning cannot
add them). Rules: ``engine.rules.goal_met``, ``nothing_ran``, ``nothing_passed``,
``expected_tests_missing``."""

from __future__ import annotations

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason
from greenloop.core.fingerprint import Entry, fingerprint
from tests.unit.engine.cases import (
    GREEN,
    ONE,
    TWO_SUITES,
    Case,
    End,
    end_tests,
    scenario_tests,
    skipped,
)
from tests.unit.engine.steps import one_suite
from tests.unit.scenario import make_spec, ok, play

CASES = [
    Case(
        "all pass first time",
        make_spec(*TWO_SUITES, expected=4),
        [GREEN],
        Phase.PASSED,
        "GoalMet",
        1,
        0,
    ),
    Case(
        "every test passed but fewer than expected ran",
        make_spec(*TWO_SUITES, expected=10),
        [GREEN],
        Phase.STALLED,
        "ExpectedTestsMissing",
        1,
        0,
    ),
    Case(
        "no tests at all is not success",
        make_spec(*TWO_SUITES),
        [{"critical": [], "extended": []}],
        Phase.STALLED,
        "NoTestsReported",
        1,
        0,
    ),
]


test_scenario, test_a_restart_between_any_two_steps_changes_nothing = scenario_tests(CASES)


ENDS = [
    End(
        "every test skipped",
        make_spec(*ONE),
        [{"critical": [skipped("c1"), skipped("c2")]}],
        "NothingPassed",
        "no test passed: all 2 tests reported were skipped",
    ),
    End(
        "no tests",
        make_spec(*ONE),
        [{"critical": []}],
        "NoTestsReported",
        "the suites reported no tests",
    ),
    End(
        "fewer tests than expected",
        make_spec(*ONE, expected=5),
        [{"critical": [ok("c1"), ok("c2")]}],
        "ExpectedTestsMissing",
        "all 2 tests that ran passed, but 5 are expected: 3 never ran; rerunning cannot add "
        "them — check the suites' selection or spec.expectedTests",
    ),
    End(
        "goal met without an expected count",
        make_spec(*ONE),
        [{"critical": [ok("c1"), ok("c2")]}],
        "GoalMet",
        "2/2 tests passed",
    ),
    End(
        "goal met with an expected count",
        make_spec(*ONE, expected=2),
        [{"critical": [ok("c1"), ok("c2")]}],
        "GoalMet",
        "2/2 tests passed",
    ),
]


test_how_a_round_ends_reads = end_tests(ENDS)


def test_expected_tests_missing_counts_what_never_ran() -> None:
    from greenloop.core.status import summary

    spec = make_spec(*TWO_SUITES, expected=10)
    state = play(spec, [GREEN]).state
    assert summary(state, 10) == {
        "expected": 10,
        "total": 4,
        "passed": 4,
        "failed": 0,
        "skipped": 0,
        "notRun": 6,
        "passRate": "100.0%",
    }
    assert "6 never ran" in state.message


def test_goal_met_says_how_many_passed_of_how_many_expected() -> None:
    spec = make_spec(("e2e", "P1"), expected=2)
    state = play(spec, [{"e2e": [ok("a"), ok("b"), ok("c")]}]).state
    assert (state.reason, state.message) == (Reason.GOAL_MET, "3/2 tests passed")


def test_a_passed_round_names_a_long_fingerprint_within_one_note() -> None:
    entries = [Entry(f"Deployment/{'w' * 200}{n}", "1", "app", "app:v1") for n in range(8)]
    spec = make_spec(("api", "P1"))
    start = engine.begin(spec, 100.0, fingerprint=fingerprint(entries))
    done = one_suite(spec, start, 110.0, ok("a"))
    assert done.state.phase is Phase.PASSED
    assert len(done.state.message) == engine.MAX_NOTE
    assert done.state.message.startswith("1/1 tests passed on target fingerprint ")
