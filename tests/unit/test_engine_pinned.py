"""Engine rules that survived ``make mutate`` before these rows (core/engine.py).

What a person reads when a round ends (reason and message), which tests a rerun selects,
when the budget is spent, and that late or repeated events change nothing. Scenarios go
through tests/unit/scenario.py; the few direct calls are the engine's public transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from greenloop.core import engine
from greenloop.core.engine import (
    Phase,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.model import Outcome, Target, TestResult, ValidationSpec
from tests.unit.scenario import (
    ASSERT,
    HTTP_403,
    HTTP_503,
    IMPORT,
    Script,
    bad,
    make_spec,
    ok,
    play,
    selected,
)

ONE = (("critical", "P1"),)
TWO = (("critical", "P1"), ("extended", "P5"))


def skipped(test_id: str) -> TestResult:
    return TestResult(
        id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED, message="not on linux"
    )


@dataclass(frozen=True)
class End:
    name: str
    spec: ValidationSpec
    script: Script
    reason: str
    message: str


ENDS = [
    End(
        "broken test code",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", IMPORT), ok("c2")]}],
        "TestCodeError",
        "1 TestCodeError still failing after 0 reruns without a redeploy: "
        "the test code itself is broken; a redeploy cannot fix it",
    ),
    End(
        "rejected credentials",
        make_spec(*ONE),
        [{"critical": [bad("c1", HTTP_403), ok("c2")]}],
        "AuthError",
        "1 AuthError still failing after 1 rerun without a redeploy: "
        "credentials are rejected; a redeploy cannot fix them",
    ),
    End(
        "a redeployable class with nothing to redeploy",
        make_spec(*ONE, target=Target(), flake_retries=0),
        [{"critical": [bad("c1", HTTP_503), ok("c2")]}],
        "ServiceUnavailable",
        "1 ServiceUnavailable still failing after 0 reruns without a redeploy: "
        "no redeploy target this mode can use is configured (spec.target)",
    ),
    End(
        "a class outside redeployOn",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", ASSERT), ok("c2")]}],
        "Assertion",
        "1 Assertion still failing after 0 reruns without a redeploy: "
        "Assertion is not in policy.redeployOn",
    ),
    End(
        # By the built-in order, not by name: "Assertion" sorts before "AuthError".
        "several classes: the first in the built-in order is named",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", ASSERT), bad("c2", HTTP_403)]}],
        "AuthError",
        "1 AuthError, 1 Assertion still failing after 0 reruns without a redeploy: "
        "credentials are rejected; a redeploy cannot fix them",
    ),
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
        "a runner error twice",
        make_spec(*TWO),
        [{"critical": [ok("c1")], "extended": "wrote no JUnit XML"}],
        "RunnerError",
        "no results twice: suite extended: wrote no JUnit XML",
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
    End(
        "a redeploy that changed nothing",
        make_spec(*ONE),
        [{"critical": [bad("c1", HTTP_503), ok("c2")]}],
        "RedeployIneffective",
        "the redeploy changed nothing: the same 1 test fail with the same classes "
        "(1 ServiceUnavailable); not redeploying again",
    ),
]


@pytest.mark.parametrize("end", ENDS, ids=[e.name for e in ENDS])
def test_how_a_round_ends_reads(end: End) -> None:
    state = play(end.spec, end.script).state
    assert (str(state.reason), state.message) == (end.reason, end.message)
    assert state.history[-1].finished is not None


def test_a_rerun_says_what_it_reruns() -> None:
    messages: list[str] = []
    spec = make_spec(*TWO)
    script = [
        {"critical": [bad("c1", HTTP_503), ok("c2")], "extended": "timed out after 900 s"},
        {"critical": [ok("c1")], "extended": [ok("e1")]},
    ]
    play(spec, script, observe=lambda state: messages.append(state.message))
    assert "iteration 2: rerunning critical (1 test), extended" in messages


def test_while_redeploying_status_says_so_and_why() -> None:
    seen: list[tuple[Phase, str, str]] = []
    spec = make_spec(*ONE)
    script = [{"critical": [bad("c1", HTTP_503), ok("c2")]}, {"critical": [ok("c1")]}]
    play(spec, script, observe=lambda s: seen.append((s.phase, str(s.reason), s.message)))
    assert (
        Phase.REDEPLOYING,
        "Redeploying",
        "iteration 1: redeploying because of 1 ServiceUnavailable",
    ) in seen


def test_dependents_of_dependents_rerun_with_the_failure() -> None:
    spec = make_spec(*ONE)
    first = {
        # e3 comes first: finding it needs a second pass over the dependents.
        "critical": [
            ok("e3", depends_on=("e2",)),
            ok("e2", depends_on=("c2",)),
            bad("c2", HTTP_503),
        ]
    }
    played = play(spec, [first, {"critical": [ok("c2"), ok("e2"), ok("e3")]}])
    assert selected(played.runs[1]) == {"critical": ("c2", "e2", "e3")}


def test_fail_fast_holds_back_lower_priorities_after_a_runner_error() -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), fail_fast=True)
    script = [
        {"critical": "timed out after 900 s", "core": [ok("k1")]},
        {"critical": [ok("c1")], "core": [ok("k1")]},
    ]
    played = play(spec, script)
    assert [selected(r) for r in played.runs] == [
        {"critical": None},
        {"critical": None},
        {"core": None},
    ]
    assert played.state.phase is Phase.PASSED


def test_every_batch_has_its_own_action_id() -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), ("extended", "P5"), fail_fast=True)
    played = play(spec, [{"critical": [ok("c1")], "core": [ok("k1")], "extended": [ok("e1")]}])
    ids = [r.id for r in played.runs]
    assert len(ids) == 3
    assert len(set(ids)) == 3


# ---------------------------------------------------------------------------
# The deadline

EPOCH = 1_764_600_000.0  # a real clock's epoch seconds: starts are far from zero


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


# ---------------------------------------------------------------------------
# Late, repeated or foreign events change nothing


def redeploying() -> tuple[ValidationSpec, State, Redeploy]:
    spec = make_spec(*ONE)
    decision = engine.begin(spec, 1000.0)
    assert isinstance(decision.action, RunSuites)
    run = SuiteRun("critical", tests=(bad("c1", HTTP_503), ok("c2")))
    decision = engine.on_suite(spec, decision.state, SuiteFinished(decision.action.id, run), 1001.0)
    assert isinstance(decision.action, Redeploy)
    return spec, decision.state, decision.action


def test_a_redeploy_started_for_another_action_is_ignored() -> None:
    _, state, action = redeploying()
    stale = engine.on_redeploy_started(state, RedeployStarted("not-" + action.id))
    assert stale.state == state
    assert isinstance(stale.action, Redeploy) and not stale.action.started
    started = engine.on_redeploy_started(state, RedeployStarted(action.id))
    assert isinstance(started.action, Redeploy) and started.action.started
    assert started.action.token == action.token


def test_a_redeploy_done_for_another_action_is_ignored() -> None:
    spec, state, _ = redeploying()
    stale = engine.on_redeploy(spec, state, RedeployDone(True, "ok", action_id="other"), 1002.0)
    assert stale.state == state
    assert stale.action == engine.current_action(state)


def test_a_failed_redeploy_stalls_with_the_redeploy_s_answer() -> None:
    spec, state, action = redeploying()
    done = engine.on_redeploy(
        spec, state, RedeployDone(False, "exit code 3", action_id=action.id), 1005.0
    )
    assert (done.state.phase, str(done.state.reason)) == (Phase.STALLED, "RedeployFailed")
    assert done.state.message == "exit code 3"


def test_an_internal_error_ends_the_round_with_a_bounded_message() -> None:
    state = engine.begin(make_spec(*ONE), 1000.0).state
    done = engine.internal_error(state, 1003.0, "boom " * 10_000)
    assert (done.state.phase, str(done.state.reason)) == (Phase.STALLED, "InternalError")
    assert done.state.message.startswith("boom boom")
    assert len(done.state.message) <= engine.MAX_NOTE
    assert done.state.history[-1].finished == 1003.0


def test_a_spec_change_starts_a_new_round_at_that_time() -> None:
    spec = make_spec(*ONE, deadline_seconds=60, max_iterations=10)
    state = engine.begin(spec, 1000.0, generation=1).state
    changed = engine.on_spec_changed(spec, state, 5000.0, generation=2)
    assert changed.state.started_at == 5000.0
    assert changed.state.generation == 2
    assert changed.state.round == state.round + 1
    same = engine.on_spec_changed(spec, changed.state, 6000.0, generation=2)
    assert same.state == changed.state
