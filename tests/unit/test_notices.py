"""Which decisions a person is told about (the operator's Kubernetes Events,
docs/design.md §8): a whole round played through the engine, each step's notices read
the way `kubectl get events` lists them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from greenloop.core import engine
from greenloop.core.engine import Decision, Phase, Reason, RedeployDone, RedeployStarted, State
from greenloop.core.fingerprint import Entry, fingerprint
from greenloop.core.model import RedeployPolicy, StagingValidation, Target, ValidationSpec, Workload
from greenloop.core.notices import Notice, notices
from tests.unit.scenario import ASSERT, HTTP_503, Script, bad, make_spec, ok, play

TWO = make_spec(("api", "P1"), ("web", "P1"))


def told(spec: ValidationSpec, script: Script, **kw: object) -> list[Notice]:
    """Every notice of a played round, in order: each step compared with the one before,
    as the operator's tick compares the state it read with the one it wrote."""
    states: list[State] = []
    play(spec, script, observe=states.append, **kw)  # type: ignore[arg-type]
    obj = StagingValidation(name="shop", namespace="staging", spec=spec)
    out: list[Notice] = []
    before: State | None = None
    for state in states:
        out += notices(before, Decision(state, engine.current_action(state)), obj)
        before = state
    return out


@pytest.mark.parametrize(
    ("script", "kw", "expected"),
    [
        pytest.param(
            [{"api": [ok("a")], "web": [ok("w")]}],
            {},
            [("IterationStarted", False), ("Passed", False)],
            id="passes at once: one IterationStarted, not one per suite",
        ),
        pytest.param(
            [{"api": [bad("a", HTTP_503)], "web": [ok("w")]}, {"api": [ok("a")]}],
            {},
            [
                ("IterationStarted", False),
                ("Redeploying", False),
                ("IterationStarted", False),
                ("Passed", False),
            ],
            id="a 503 redeploys once, then passes",
        ),
        pytest.param(
            [{"api": [bad("a", ASSERT)], "web": [ok("w")]}],
            {},
            [("IterationStarted", False), ("IterationStarted", False), ("Assertion", True)],
            id="a failed assertion, rerun once in case it is flaky, stalls: a Warning",
        ),
        pytest.param(
            [{"api": [bad("a", HTTP_503)], "web": [ok("w")]}],
            {"redeploy_ok": False},
            [("IterationStarted", False), ("Redeploying", False), ("RedeployFailed", True)],
            id="a failed redeploy is a Warning",
        ),
    ],
)
def test_each_decision_a_person_tracks_is_told_once(
    script: Script, kw: dict[str, object], expected: list[tuple[str, bool]]
) -> None:
    assert [(n.reason, n.warning) for n in told(TWO, script, **kw)] == expected


def test_a_restart_between_steps_tells_nothing_twice() -> None:
    script: Script = [{"api": [bad("a", HTTP_503)], "web": [ok("w")]}, {"api": [ok("a")]}]
    assert told(TWO, script, restart_between_steps=True) == told(TWO, script)


def test_the_messages_say_which_iteration_and_why() -> None:
    script: Script = [{"api": [bad("a", HTTP_503)], "web": [ok("w")]}, {"api": [ok("a")]}]
    start, redeploy, rerun, passed = told(TWO, script)
    assert start.message == "iteration 1: running 2 suites"
    assert redeploy.message == "iteration 1: 1 ServiceUnavailable"
    assert rerun.message.startswith("iteration 2: ")
    assert passed.message == "2/2 tests passed"


GATED = make_spec(("core", "P1"), redeploy=RedeployPolicy.REQUIRE_APPROVAL)
OBJ = StagingValidation(name="checkout", namespace="staging", spec=GATED)


def gated_wait() -> tuple[State, Decision]:
    start = engine.begin(GATED, 100.0)
    action = start.action
    assert isinstance(action, engine.RunSuites)
    run = engine.SuiteRun("core", tests=(ok("a"), bad("b", HTTP_503)))
    return start.state, engine.on_suite(
        GATED, start.state, engine.SuiteFinished(action.id, run), 110.0
    )


def test_a_gated_redeploy_tells_the_exact_approve_command_then_that_it_was_approved() -> None:
    before, waiting = gated_wait()
    assert notices(before, waiting, OBJ) == (
        Notice(
            "WaitingApproval",
            "iteration 1: redeploy because of 1 ServiceUnavailable; approve: kubectl annotate "
            "sv/checkout -n staging greenloop.dev/approve=r1-i1-s1 --overwrite",
        ),
    )
    assert notices(waiting.state, waiting, OBJ) == (), "still waiting: nothing new"
    approved = engine.on_approved(waiting.state, "r1-i1-s1")
    assert notices(waiting.state, approved, OBJ) == (
        Notice("Redeploying", "iteration 1: 1 ServiceUnavailable (approved)"),
    )
    started = engine.on_redeploy_started(approved.state, RedeployStarted(approved.action.id))
    assert notices(approved.state, started, OBJ) == (), "the same redeploy, under way"
    done = engine.on_redeploy(
        GATED, started.state, RedeployDone(True, "ok", action_id=approved.action.id), 120.0
    )
    assert [n.reason for n in notices(started.state, done, OBJ)] == ["IterationStarted"]


def test_a_wait_that_outlives_the_deadline_is_a_warning() -> None:
    spec = replace(GATED, policy=replace(GATED.policy, deadline_seconds=60))
    _, waiting = gated_wait()
    ended = engine.on_tick(spec, waiting.state, 1000.0)
    assert notices(waiting.state, ended, OBJ) == (
        Notice("BudgetExhausted", ended.state.message, warning=True),
    )


V1 = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
V2 = fingerprint([Entry("Deployment/backend", "7c9a", "app", "app:v2")])


def passed_state(spec: ValidationSpec) -> State:
    start = engine.begin(spec, 100.0, rerun="")
    action = start.action
    assert isinstance(action, engine.RunSuites)
    run = engine.SuiteRun("core", tests=(ok("a"),))
    done = engine.on_suite(spec, start.state, engine.SuiteFinished(action.id, run), 110.0)
    assert done.state.phase is Phase.PASSED
    return engine.on_target_observed(spec, done.state, V1, 111.0).state


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        (lambda s, p: engine.on_target_observed(s, p, V2, 200.0), "TargetChanged"),
        (lambda s, p: engine.on_rerun(s, p, "1", 200.0), "RerunRequested"),
        (lambda s, p: engine.on_spec_changed(s, p, 200.0, generation=2), "SpecChanged"),
        (lambda s, p: engine.on_tick(s, p, 1000.0), "Revalidating"),
    ],
    ids=["TargetChanged", "RerunRequested", "SpecChanged", "Revalidating"],
)
def test_a_new_round_is_normal_and_names_what_started_it(step: object, reason: str) -> None:
    spec = replace(make_spec(("core", "P1")), revalidate_every_seconds=60)
    before = passed_state(spec)
    after = step(spec, before)  # type: ignore[operator]
    assert after.state.round == 2
    assert notices(before, after, OBJ) == (Notice(reason, after.state.message),)
    assert "round 2" in after.state.message
    # The next suite of the new round tells nothing more until its iteration ends.
    assert notices(after.state, after, OBJ) == ()


def test_a_new_round_restored_without_its_reason_still_says_a_round_started() -> None:
    before = passed_state(make_spec(("core", "P1")))
    fresh = engine.begin(make_spec(("core", "P1")), 200.0, round_=2)
    assert fresh.state.round_reason is None
    assert notices(before, fresh, OBJ) == (Notice("RoundStarted", fresh.state.message),)


def test_the_first_look_at_a_finished_object_tells_its_verdict() -> None:
    state = passed_state(make_spec(("core", "P1")))
    decision = Decision(state, engine.current_action(state))
    assert notices(None, decision, OBJ) == (Notice("Passed", state.message),)
    assert notices(state, decision, OBJ) == (), "a later look at the same verdict: nothing"
    stalled = replace(state, phase=Phase.STALLED, reason=Reason.AUTH_ERROR)
    assert [
        (n.reason, n.warning)
        for n in notices(None, Decision(stalled, engine.current_action(stalled)), OBJ)
    ] == [("AuthError", True)]


def test_a_missing_target_is_told_at_the_first_visit() -> None:
    spec = replace(
        TWO, target=Target(workloads=(Workload("Deployment", "api"), Workload("Deployment", "web")))
    )
    obj = StagingValidation(name="shop", namespace="staging", spec=spec)
    only_web = fingerprint([Entry("Deployment/web", "1", "app", "web:1")])
    first = engine.begin(spec, 0.0, fingerprint=only_web)
    assert notices(None, first, obj)[-1] == Notice(
        "TargetMissing",
        "Deployment/api not found in namespace staging (spec.target.workloads): a redeploy"
        " fails until it exists",
        warning=True,
    )
    # Told once a round: the next step of the same round says nothing of it.
    assert all(n.reason != "TargetMissing" for n in notices(first.state, first, obj))
    # Every target there: nothing to tell.
    both = fingerprint([*only_web.entries, Entry("Deployment/api", "1", "app", "api:1")])
    assert all(
        n.reason != "TargetMissing"
        for n in notices(None, engine.begin(spec, 0.0, fingerprint=both), obj)
    )
