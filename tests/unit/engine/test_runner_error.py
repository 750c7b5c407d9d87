"""A suite that produced no results (docs/design.md §1): a ``RunnerError`` for that
suite, rerun once (even alone), then Stalled; a cause a rerun cannot change stops at once.
Rules: ``engine.rules.runner_errors_to_stop``, ``runner_errors_to_retry``,
``runner_error_alone``."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason, RunSuites, SuiteFinished, SuiteRun
from tests.unit.engine.cases import (
    GREEN,
    TWO,
    TWO_SUITES,
    Case,
    End,
    end_tests,
    scenario_tests,
)
from tests.unit.scenario import ASSERT, Script, bad, make_spec, ok, play

CASES = [
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
        # Its one retry is not a flake retry: flakeRetries 0 does not take it away.
        "a runner error is retried once without flake retries",
        make_spec(*TWO_SUITES, expected=4, flake_retries=0),
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
]


test_scenario, test_a_restart_between_any_two_steps_changes_nothing = scenario_tests(CASES)


ENDS = [
    End(
        # A suite's runner error is retried only when nothing else fails.
        "a runner error beside a failure, no retries left",
        make_spec(*TWO, flake_retries=0),
        [{"critical": [bad("c1", ASSERT)], "extended": "timed out after 900 s"}],
        "Assertion",
        "1 Assertion still failing after 0 reruns without a redeploy: "
        "Assertion is not in policy.redeployOn",
    ),
    End(
        "a runner error twice",
        make_spec(*TWO),
        [{"critical": [ok("c1")], "extended": "wrote no JUnit XML"}],
        "RunnerError",
        "no results twice: suite extended: wrote no JUnit XML",
    ),
]


test_how_a_round_ends_reads = end_tests(ENDS)


def test_a_suite_error_event_is_a_runner_error_retried_once() -> None:
    spec = make_spec(("critical", "P1"))
    played = play(spec, [{"critical": "Job ended without results: OOMKilled"}])
    assert played.finish.reason is Reason.RUNNER_ERROR
    assert len(played.runs) == 2
    assert "OOMKilled" in played.finish.message


@pytest.mark.parametrize(
    ("script", "permanent", "iterations", "message"),
    [
        (
            [{"api": "command not found: 'jest'", "web": [ok("w1")]}],
            True,
            1,
            "no results: suite api: command not found: 'jest'",
        ),
        (
            [{"api": "x" * 1000, "web": [ok("w1")]}],
            True,
            1,
            "no results: suite api: " + "x" * (engine.MAX_NOTE - 1) + "…",
        ),
        (
            [{"api": "OOMKilled", "web": [ok("w1")]}],
            False,
            2,
            "no results twice: suite api: OOMKilled",
        ),
        (
            [{"api": "OOMKilled", "web": "wrote no JUnit XML"}],
            False,
            2,
            "no results twice: suite api: OOMKilled; suite web: wrote no JUnit XML",
        ),
    ],
    ids=["permanent", "a long error", "twice", "two suites twice"],
)
def test_a_suite_without_results_stops_the_round_once_a_rerun_cannot_help(
    script: Script, permanent: bool, iterations: int, message: str
) -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    state = play(spec, script, permanent=permanent).state
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.RUNNER_ERROR)
    assert (state.iteration, state.message) == (iterations, message)
    # Each iteration's record keeps what each suite said (status and report show it).
    why = message.split("suite api: ", 1)[1].split("; ", 1)[0]
    assert [record.suite_errors[0] for record in state.history] == [("api", why)] * iterations


def test_a_suite_that_produced_results_again_gets_its_retry_back() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=5)
    script = [
        {"api": "OOMKilled", "web": [bad("w1", ASSERT)]},
        {"api": [bad("a1", ASSERT)], "web": [bad("w1", ASSERT)]},
        {"api": "OOMKilled", "web": [bad("w1", ASSERT)]},
        {"api": [ok("a1")], "web": [ok("w1")]},
    ]
    state = play(spec, script).state
    assert (state.phase, state.reason, state.iteration) == (Phase.PASSED, Reason.GOAL_MET, 4)


def test_a_runner_error_alone_is_rerun_and_recorded_as_such() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=3)
    script = [{"api": "OOMKilled", "web": [ok("w1")]}, {"api": [ok("a1")], "web": [ok("w1")]}]
    played = play(spec, script)
    record = played.state.history[0]
    assert (record.action, record.reason, record.detail) == (
        engine.ActionKind.RERUN,
        Reason.RETRYING,
        "rerun 1/3 without redeploy (runner error)",
    )
    assert played.state.reason is Reason.GOAL_MET


def test_a_permanent_runner_error_stops_without_the_retry() -> None:
    from greenloop.core import engine

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
