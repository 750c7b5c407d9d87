"""The engine's decision rules (docs/design.md §1), as scenarios a user would recognise.

Each scenario scripts what the suites report per iteration; a small driver plays the
shell (honouring the engine's selection like a real runner) and the final state is
checked the way a user reads status: phase, reason, iterations, redeploys, reruns.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from greenloop.core import engine
from greenloop.core.engine import (
    Finish,
    Phase,
)
from greenloop.core.model import (
    FailureClass,
    RerunMode,
    Rule,
    Target,
    ValidationSpec,
)
from tests.unit.scenario import (
    ASSERT,
    HTTP_403,
    HTTP_503,
    IMPORT,
    Script,
    bad,
    dep_skip,
    make_spec,
    ok,
    play,
    selected,
)

TWO_SUITES = (("critical", "P1"), ("extended", "P5"))
GREEN = {"critical": [ok("c1"), ok("c2")], "extended": [ok("e1"), ok("e2")]}


@dataclass(frozen=True)
class Case:
    name: str
    spec: ValidationSpec
    script: Script
    phase: Phase
    reason: str
    iterations: int
    redeploys: int
    flaky: tuple[str, ...] = ()


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
        "503 and a dependent: one redeploy, then green",
        make_spec(*TWO_SUITES, expected=4),
        [
            {
                "critical": [ok("c1"), bad("c2", HTTP_503)],
                "extended": [ok("e1"), dep_skip("e2", "c2")],
            },
            GREEN,
        ],
        Phase.PASSED,
        "GoalMet",
        2,
        1,
    ),
    Case(
        "redeploy changed nothing",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": [ok("e1"), ok("e2")]}],
        Phase.STALLED,
        "RedeployIneffective",
        2,
        1,
    ),
    Case(
        "403 never redeploys; one retry then AuthError",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), bad("c2", HTTP_403)], "extended": [ok("e1"), ok("e2")]}],
        Phase.STALLED,
        "AuthError",
        2,
        0,
    ),
    Case(
        "broken test code with no retries stalls at once",
        make_spec(*TWO_SUITES, flake_retries=0),
        [{"critical": [ok("c1"), bad("c2", IMPORT)], "extended": [ok("e1"), ok("e2")]}],
        Phase.STALLED,
        "TestCodeError",
        1,
        0,
    ),
    Case(
        "an assertion that passes on the retry is flaky",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), bad("c2", ASSERT)], "extended": [ok("e1"), ok("e2")]}, GREEN],
        Phase.PASSED,
        "GoalMet",
        2,
        0,
        ("c2",),
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
        "a runner error is retried once",
        make_spec(*TWO_SUITES, expected=4),
        [{"critical": GREEN["critical"], "extended": "timed out after 900 s"}, GREEN],
        Phase.PASSED,
        "GoalMet",
        2,
        0,
    ),
    Case(
        "a runner error twice stalls",
        make_spec(*TWO_SUITES),
        [{"critical": GREEN["critical"], "extended": "wrote no JUnit XML"}],
        Phase.STALLED,
        "RunnerError",
        2,
        0,
    ),
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
    Case(
        "503 with no redeploy target: retried, then stalled with the class",
        make_spec(*TWO_SUITES, target=Target()),
        [{"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]}],
        Phase.STALLED,
        "ServiceUnavailable",
        2,
        0,
    ),
    Case(
        "503 plus an assertion: the redeploy fixes the 503, the assertion stalls",
        make_spec(*TWO_SUITES),
        [
            {"critical": [bad("c1", ASSERT), bad("c2", HTTP_503)], "extended": GREEN["extended"]},
            {"critical": [bad("c1", ASSERT), ok("c2")], "extended": GREEN["extended"]},
        ],
        Phase.STALLED,
        "Assertion",
        3,
        1,
    ),
    Case(
        "a user rule makes an unknown message redeployable",
        make_spec(
            *TWO_SUITES,
            rules=[Rule("upstream connect error", FailureClass.SERVICE_UNAVAILABLE)],
        ),
        [
            {
                "critical": [ok("c1"), bad("c2", "upstream connect error or disconnect")],
                "extended": GREEN["extended"],
            },
            GREEN,
        ],
        Phase.PASSED,
        "GoalMet",
        2,
        1,
    ),
    Case(
        "Surefire's own rerun pass is listed as flaky",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), ok("c2", flaky=True)], "extended": GREEN["extended"]}],
        Phase.PASSED,
        "GoalMet",
        1,
        0,
        ("c2",),
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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenario(case: Case) -> None:
    played = play(case.spec, case.script)
    state = played.state
    assert (state.phase, str(state.reason)) == (case.phase, case.reason), state.message
    assert state.iteration == case.iterations
    assert len(played.redeploys) == state.redeploys == case.redeploys
    assert tuple(sorted(state.flaky)) == case.flaky
    assert played.finish.phase is case.phase
    # Every iteration is closed with the action that followed it.
    assert all(rec.finished is not None and rec.action for rec in state.history)
    assert [rec.iteration for rec in state.history] == list(range(1, case.iterations + 1))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_restart_between_any_two_steps_changes_nothing(case: Case) -> None:
    """State survives a restart: snapshot to JSON after every step, resume from it alone."""
    straight = play(case.spec, case.script)
    restarted = play(case.spec, case.script, restart_between_steps=True)
    assert restarted.state == straight.state
    assert restarted.runs == straight.runs
    assert restarted.redeploys == straight.redeploys
    assert restarted.finish == straight.finish


def test_rerun_failed_selects_failures_and_their_dependents_only() -> None:
    spec = make_spec(*TWO_SUITES, expected=4)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    }
    played = play(spec, [first, GREEN])
    assert selected(played.runs[0]) == {"critical": None, "extended": None}
    assert selected(played.runs[1]) == {"critical": ("c2",), "extended": ("e2",)}
    assert played.redeploys[0].reason == "1 ServiceUnavailable, 1 Dependent"


def test_dependent_failure_names_its_root_and_follows_its_class() -> None:
    spec = make_spec(*TWO_SUITES, max_iterations=1)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    }
    state = play(spec, [first]).state
    dependent = state.tests["e2"]
    assert dependent.diagnosis is not None
    assert dependent.diagnosis.failure_class is FailureClass.DEPENDENT
    assert dependent.diagnosis.root_cause == "c2"
    assert engine.effective_class(state, dependent) is FailureClass.SERVICE_UNAVAILABLE


def test_a_passing_dependent_of_a_failing_test_reruns_with_it() -> None:
    spec = make_spec(*TWO_SUITES)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), ok("e2", depends_on=("c2",))],
    }
    played = play(spec, [first, GREEN])
    assert selected(played.runs[1]) == {"critical": ("c2",), "extended": ("e2",)}


def test_rerun_all_runs_every_suite_whole() -> None:
    spec = make_spec(*TWO_SUITES, rerun=RerunMode.ALL)
    first = {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]}
    played = play(spec, [first, GREEN])
    assert selected(played.runs[1]) == {"critical": None, "extended": None}


@pytest.mark.parametrize("restart", [False, True], ids=["straight", "restarted every step"])
def test_fail_fast_holds_back_lower_priorities_until_higher_ones_pass(restart: bool) -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), ("extended", "P5"), fail_fast=True)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "core": [ok("k1")],
        "extended": [ok("e1")],
    }
    played = play(
        spec,
        [first, {"critical": [ok("c1"), ok("c2")], "core": [ok("k1")], "extended": [ok("e1")]}],
        restart_between_steps=restart,
    )
    assert [selected(r) for r in played.runs] == [
        {"critical": None},  # iteration 1: P1 fails, P3 and P5 wait
        {"critical": ("c2",)},  # iteration 2 after the redeploy: P1 first...
        {"core": None},  # ...then the suites that never ran, one priority at a time
        {"extended": None},
    ]
    assert played.state.phase is Phase.PASSED
    assert "failFast: 2 lower-priority suites not run" in played.state.history[0].notes


def test_without_fail_fast_every_priority_runs_in_one_batch_in_priority_order() -> None:
    spec = make_spec(("extended", "P5"), ("critical", "P1"))
    played = play(spec, [GREEN])
    assert [s.suite for s in played.runs[0].suites] == ["critical", "extended"]


def test_deadline_ends_the_round() -> None:
    spec = make_spec(*TWO_SUITES, deadline_seconds=60, max_iterations=50, rerun=RerunMode.ALL)
    script = [
        {"critical": [ok("c1"), bad(f"c{i}", HTTP_503)], "extended": GREEN["extended"]}
        for i in range(2, 40)
    ]
    played = play(spec, script, clock=lambda step: 1000.0 + 20 * step)
    assert str(played.state.reason) == "BudgetExhausted"
    assert "deadlineSeconds (60)" in played.state.message


def test_a_failed_redeploy_stalls_with_its_message() -> None:
    spec = make_spec(*TWO_SUITES)
    first = {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]}
    played = play(spec, [first], redeploy_ok=False)
    assert (played.state.phase, str(played.state.reason)) == (Phase.STALLED, "RedeployFailed")
    assert played.state.message == "exit code 3"


def test_a_test_that_vanishes_from_a_whole_suite_run_is_forgotten() -> None:
    spec = make_spec(*TWO_SUITES, rerun=RerunMode.ALL)
    first = {"critical": [ok("c1"), bad("gone", ASSERT)], "extended": GREEN["extended"]}
    second = {"critical": [ok("c1")], "extended": GREEN["extended"]}
    state = play(spec, [first, second]).state
    assert "gone" not in state.tests
    assert state.phase is Phase.PASSED


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


def test_interrupt_ends_stalled_with_what_is_known() -> None:
    spec = make_spec(*TWO_SUITES)
    decision = engine.begin(spec, 0.0)
    decision = engine.interrupt(decision.state, 5.0, "interrupted by the user")
    assert isinstance(decision.action, Finish)
    assert (decision.state.phase, str(decision.state.reason)) == (Phase.STALLED, "Interrupted")
    assert decision.state.history[-1].finished == 5.0
