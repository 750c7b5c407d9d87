"""The budget (docs/design.md §1): ``maxIterations`` and ``deadlineSeconds`` spent with
failures left → Stalled/BudgetExhausted. Rule: ``engine.rules.budget_spent``. (The storage
budget of §5 is test_state_size.py.)"""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase
from greenloop.core.model import RerunMode
from tests.unit.engine.cases import (
    GREEN,
    ONE,
    TWO_SUITES,
    Case,
    scenario_tests,
)
from tests.unit.scenario import ASSERT, HTTP_503, bad, make_spec, ok, play

EPOCH = 1_764_600_000.0  # a real clock's epoch seconds: starts are far from zero


CASES = [
    Case(
        "different 503s every time: the iteration budget ends it",
        make_spec(*TWO_SUITES, max_iterations=3, rerun=RerunMode.ALL),
        [
            {"critical": [bad("c1", HTTP_503), ok("c2")], "extended": GREEN["extended"]},
            {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]},
            {"critical": [bad("c1", HTTP_503), ok("c2")], "extended": GREEN["extended"]},
        ],
        Phase.STALLED,
        "BudgetExhausted",
        3,
        2,
    ),
]


test_scenario, test_a_restart_between_any_two_steps_changes_nothing = scenario_tests(CASES)


def test_deadline_ends_the_round() -> None:
    spec = make_spec(*TWO_SUITES, deadline_seconds=60, max_iterations=50, rerun=RerunMode.ALL)
    script = [
        {"critical": [ok("c1"), bad(f"c{i}", HTTP_503)], "extended": GREEN["extended"]}
        for i in range(2, 40)
    ]
    played = play(spec, script, clock=lambda step: 1000.0 + 20 * step)
    assert str(played.state.reason) == "BudgetExhausted"
    assert "deadlineSeconds (60)" in played.state.message


def test_a_retry_within_the_deadline_runs() -> None:
    spec = make_spec(*ONE, deadline_seconds=600)
    script = [{"critical": [bad("c1", ASSERT), ok("c2")]}, {"critical": [ok("c1")]}]
    state = play(spec, script, clock=lambda step: EPOCH + step).state
    assert (state.phase, str(state.reason)) == (Phase.PASSED, "GoalMet")


def test_the_deadline_is_spent_the_second_it_is_reached() -> None:
    spec = make_spec(*ONE, deadline_seconds=60, max_iterations=10)
    script = [{"critical": [bad("c1", ASSERT), ok("c2")]}]
    # begin at step 0, the first suite's results at step 1: 60 s later.
    state = play(spec, script, clock=lambda step: EPOCH + 60 * step).state
    assert str(state.reason) == "BudgetExhausted"
    assert state.message == "deadlineSeconds (60) passed with failures left"
    assert state.iteration == 1


@pytest.mark.parametrize(("now", "stalled"), [(EPOCH + 0.5, False), (EPOCH + 1.0, True)])
def test_the_deadline_bounds_a_round_whose_suites_are_still_running(
    now: float, stalled: bool
) -> None:
    # Issue 19 item 8: in operator mode a round ran on past deadlineSeconds (1) and
    # ended Passed after 31 s. Time alone ends it, as local mode's cut-off suite does.
    spec = make_spec(*ONE, deadline_seconds=1)
    running = engine.begin(spec, EPOCH).state
    assert engine.wake_at(spec, running) == EPOCH + 1.0
    after = engine.on_tick(spec, running, now)
    if not stalled:
        assert after.state == running
        return
    assert (after.state.phase, str(after.state.reason)) == (Phase.STALLED, "BudgetExhausted")
    assert after.state.message == (
        "deadlineSeconds (1) passed while suites ran (critical); their runs were stopped"
    )
    assert isinstance(after.action, engine.Finish)
    # The stopped suites' late results change nothing.
    late = engine.SuiteFinished(running.action_id, engine.SuiteRun("critical", (ok("c1"),)))
    assert engine.on_suite(spec, after.state, late, now + 1).state == after.state
