"""The approval gate and the triggers for a new round (docs/design.md §6, §8): pure
transitions, as the operator feeds them from annotations and the clock."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from greenloop.core import engine, mergepatch, snapshot, spec
from greenloop.core.engine import (
    ActionKind,
    AwaitApproval,
    Decision,
    Finish,
    Phase,
    Reason,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.fingerprint import Entry, fingerprint
from greenloop.core.model import RedeployPolicy, StagingValidation, ValidationSpec
from greenloop.core.report import render
from greenloop.core.schema import validate
from greenloop.core.status import build_status
from tests.unit.scenario import HTTP_503, bad, make_spec, ok

GATED = make_spec(("core", "P1"), redeploy=RedeployPolicy.REQUIRE_APPROVAL, deadline_seconds=600)
STATUS_SCHEMA = spec.spec_schema()["properties"]["status"]


def feed(spec_: ValidationSpec, decision: Decision, now: float, *tests: Any) -> Decision:
    action = decision.action
    assert isinstance(action, RunSuites), action
    run = SuiteRun("core", tests=tuple(tests), selected=action.suites[0].test_ids)
    return engine.on_suite(spec_, decision.state, SuiteFinished(action.id, run), now)


def waiting() -> Decision:
    """Iteration 1 of GATED failed with a 503: the redeploy waits for approval."""
    start = engine.begin(GATED, 100.0, rerun="")
    return feed(GATED, start, 110.0, ok("a"), bad("b", HTTP_503))


def passed(spec_: ValidationSpec, now: float = 100.0) -> Decision:
    return feed(spec_, engine.begin(spec_, now, rerun=""), now + 10, ok("a"))


# -- the approval gate ----------------------------------------------------------------------


def test_a_gated_redeploy_waits_with_a_token_and_starts_nothing() -> None:
    decision = waiting()
    state = decision.state
    assert state.phase is Phase.WAITING_APPROVAL
    assert decision.action == AwaitApproval("r1-i1-s1", 1, "1 ServiceUnavailable", "r1-i1-s1")
    assert state.redeploys == 0, "nothing was redeployed yet"
    assert state.reason is Reason.WAITING_APPROVAL
    assert "waits for approval (token r1-i1-s1)" in state.message
    # A restarted operator reads the same wait from state alone.
    data = json.loads(json.dumps(snapshot.to_data(state)))
    assert engine.current_action(snapshot.from_data(data)) == decision.action


@pytest.mark.parametrize(
    ("token", "approved"),
    [
        ("r1-i1-s1", True),
        (" r1-i1-s1\n", True),  # kubectl/YAML whitespace around the value
        ("", False),  # no annotation
        ("r1-i1-s0", False),  # another step's id
        ("r0-i1-s1", False),  # an earlier round's
        ("R1-I1-S1", False),
        ("yes", False),
    ],
)
def test_only_the_shown_token_approves(token: str, approved: bool) -> None:
    before = waiting().state
    after = engine.on_approved(before, token)
    if not approved:
        assert after.state == before
        assert isinstance(after.action, AwaitApproval)
        return
    assert after.state.phase is Phase.REDEPLOYING
    assert after.action == Redeploy("r1-i1-s1", 1, "1 ServiceUnavailable", token="r1-i1-s1")
    assert after.state.redeploys == 1
    assert "redeploy approved (greenloop.dev/approve=r1-i1-s1)" in after.state.history[-1].notes


def test_an_approved_round_redeploys_once_and_passes() -> None:
    approved = engine.on_approved(waiting().state, "r1-i1-s1")
    assert isinstance(approved.action, Redeploy)
    # Approving again (the annotation stays) changes nothing.
    assert engine.on_approved(approved.state, "r1-i1-s1").state == approved.state
    started = engine.on_redeploy_started(approved.state, RedeployStarted(approved.action.id))
    done = engine.on_redeploy(
        GATED, started.state, RedeployDone(True, "ok", action_id=approved.action.id), 130.0
    )
    end = feed(GATED, done, 140.0, ok("b"))
    assert isinstance(end.action, Finish) and end.action.phase is Phase.PASSED
    assert [(h.iteration, h.action, h.reason) for h in end.state.history] == [
        (1, ActionKind.REDEPLOY, Reason.REDEPLOYING),
        (2, ActionKind.DONE, Reason.GOAL_MET),
    ]


def test_a_token_from_an_earlier_iteration_does_not_approve_the_next_wait() -> None:
    approved = engine.on_approved(waiting().state, "r1-i1-s1")
    assert isinstance(approved.action, Redeploy)
    done = engine.on_redeploy(
        GATED, approved.state, RedeployDone(True, "ok", action_id=approved.action.id), 130.0
    )
    # Iteration 2: the test fails another way a redeploy may fix: another redeploy.
    again = feed(GATED, done, 140.0, bad("b", "httpx.ReadTimeout: timed out"))
    assert isinstance(again.action, AwaitApproval)
    assert again.action.token == "r1-i2-s1"
    assert engine.on_approved(again.state, "r1-i1-s1").state == again.state


@pytest.mark.parametrize(
    "event",
    ["suite", "redeploy started", "redeploy done"],
)
def test_while_waiting_no_other_event_starts_anything(event: str) -> None:
    state = waiting().state
    if event == "suite":
        run = SuiteFinished(state.action_id, SuiteRun("core", (ok("b"),)))
        after = engine.on_suite(GATED, state, run, 120.0)
    elif event == "redeploy started":
        after = engine.on_redeploy_started(state, RedeployStarted(state.action_id))
    else:
        after = engine.on_redeploy(GATED, state, RedeployDone(True, "ok"), 120.0)
    assert after.state == state


@pytest.mark.parametrize(
    ("now", "phase"),
    [(110.0, Phase.WAITING_APPROVAL), (699.0, Phase.WAITING_APPROVAL), (700.0, Phase.STALLED)],
)
def test_the_deadline_keeps_running_while_waiting(now: float, phase: Phase) -> None:
    state = waiting().state
    assert engine.wake_at(GATED, state) == 700.0  # started 100 + deadlineSeconds 600
    after = engine.on_tick(GATED, state, now)
    assert after.state.phase is phase
    if phase is Phase.WAITING_APPROVAL:
        assert after.state == state
        return
    assert isinstance(after.action, Finish)
    assert after.action.reason is Reason.BUDGET_EXHAUSTED
    assert "waited for approval (token r1-i1-s1)" in after.action.message
    assert after.state.redeploys == 0
    last = after.state.history[-1]
    assert (last.action, last.reason) == (ActionKind.STALL, Reason.BUDGET_EXHAUSTED)
    # The token of a round that ended approves nothing.
    assert engine.on_approved(after.state, "r1-i1-s1").state == after.state


def test_an_automatic_policy_redeploys_without_waiting() -> None:
    auto = replace(GATED, policy=replace(GATED.policy, redeploy=RedeployPolicy.AUTOMATIC))
    decision = feed(auto, engine.begin(auto, 100.0), 110.0, bad("b", HTTP_503))
    assert isinstance(decision.action, Redeploy)
    assert decision.state.redeploys == 1


def test_status_and_report_say_how_to_approve() -> None:
    obj = StagingValidation(name="checkout", namespace="staging", spec=GATED)
    state = waiting().state
    status = build_status(obj, state, 120.0)
    assert status["phase"] == "WaitingApproval"
    command = "kubectl annotate sv/checkout -n staging greenloop.dev/approve=r1-i1-s1 --overwrite"
    assert status["approval"] == {"token": "r1-i1-s1", "command": command}
    by_type = {c["type"]: c for c in status["conditions"]}
    assert {k: (c["status"], c["reason"]) for k, c in by_type.items()} == {
        "Ready": ("False", "WaitingApproval"),
        "Reconciling": ("True", "WaitingApproval"),
        "Stalled": ("False", "WaitingApproval"),
    }
    assert command in by_type["Reconciling"]["message"]
    assert validate(status, STATUS_SCHEMA, "status") == []
    assert command in render(obj, state, 120.0).split("## Next step")[1]
    # Approved: the approval block is gone, so a merge patch removes it.
    after = build_status(obj, engine.on_approved(state, "r1-i1-s1").state, 121.0)
    assert "approval" not in after
    assert mergepatch.create(status, after)["approval"] is None


# -- the rerun annotation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seen", "value", "new_round"),
    [
        (None, "", False),  # the first look records it
        (None, "1", False),
        ("", "", False),
        ("", "1", True),
        ("1", "1", False),
        ("1", "2", True),
        ("1", "", False),  # removing the annotation asks for nothing
    ],
)
@pytest.mark.parametrize("when", ["finished", "mid-run", "waiting"])
def test_a_new_rerun_value_starts_a_new_round(
    seen: str | None, value: str, new_round: bool, when: str
) -> None:
    the_spec = GATED
    if when == "finished":
        before = passed(the_spec).state
    elif when == "mid-run":
        before = engine.begin(the_spec, 100.0).state
    else:
        before = waiting().state
    before = replace(before, rerun_seen=seen, flaky={"a": engine.FlakyTest("a", "core", 1, "x")})
    after = engine.on_rerun(the_spec, before, value, 200.0)
    assert after.state.rerun_seen == value
    if not new_round:
        assert after.state == replace(before, rerun_seen=value)
        return
    assert isinstance(after.action, RunSuites)
    assert after.action.id == "r2-i1-s0"
    assert (after.state.round, after.state.iteration, after.state.phase) == (2, 1, Phase.TESTING)
    assert after.state.round_reason is Reason.RERUN_REQUESTED
    assert f"greenloop.dev/rerun changed to {value!r}" in after.state.message
    assert set(after.state.flaky) == {"a"}, "the flaky list is kept"
    assert after.state.tests == {}
    # Results of the abandoned round's Jobs change nothing.
    late = SuiteFinished("r1-i1-s0", SuiteRun("core", (bad("a", HTTP_503),)))
    assert engine.on_suite(the_spec, after.state, late, 201.0).state == after.state


def test_a_spec_change_with_a_new_rerun_value_is_one_round() -> None:
    state = replace(passed(GATED).state, rerun_seen="1")
    changed = engine.on_spec_changed(GATED, state, 200.0, generation=2, rerun="2")
    assert (changed.state.round, changed.state.rerun_seen) == (2, "2")
    assert changed.state.round_reason is Reason.SPEC_CHANGED
    assert engine.on_rerun(GATED, changed.state, "2", 201.0).state == changed.state
    # Without a value the recorded one is carried over.
    kept = engine.on_spec_changed(GATED, state, 200.0, generation=2)
    assert kept.state.rerun_seen == "1"


# -- revalidateEvery ------------------------------------------------------------------------


def test_without_revalidate_every_a_passed_round_stays_passed() -> None:
    state = passed(GATED).state
    assert engine.wake_at(GATED, state) is None
    assert engine.on_tick(GATED, state, 10.0**9).state == state


@pytest.mark.parametrize(
    ("now", "new_round"),
    [(110.0, False), (169.9, False), (170.0, True), (10_000.0, True)],
)
def test_a_passed_round_is_revalidated_after_revalidate_every(now: float, new_round: bool) -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    state = passed(every).state  # ended at 110
    assert state.phase is Phase.PASSED
    assert engine.wake_at(every, state) == 170.0
    after = engine.on_tick(every, state, now)
    if not new_round:
        assert after.state == state
        return
    assert isinstance(after.action, RunSuites) and after.action.id == "r2-i1-s0"
    assert after.state.round_reason is Reason.REVALIDATING
    assert "revalidateEvery: 60 seconds since the last round passed" in after.state.message
    assert after.state.rerun_seen == state.rerun_seen
    # The new round is no longer due for revalidation until it passes again.
    assert engine.wake_at(every, after.state) is None


def test_a_stalled_round_is_not_revalidated() -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    state = engine.on_tick(every, waiting().state, 700.0).state
    assert state.phase is Phase.STALLED
    assert engine.wake_at(every, state) is None
    assert engine.on_tick(every, state, 10.0**9).state == state


# -- snapshots of the new states ------------------------------------------------------------


def test_every_trigger_state_round_trips_through_merge_patches() -> None:
    """Waiting, approved, a rerun recorded as "" and as a value, a revalidated round: each
    written as a merge patch over the previous snapshot reads back as the same state."""
    every = replace(GATED, revalidate_every_seconds=60)
    w = waiting()
    approved = engine.on_approved(w.state, "r1-i1-s1").state
    finished = engine.on_tick(GATED, w.state, 700.0).state
    p = passed(every).state
    states: list[State] = [
        engine.begin(GATED, 100.0).state,  # never looked at the annotation
        w.state,
        approved,
        finished,
        p,
        engine.on_rerun(every, replace(p, rerun_seen=None), "", 120.0).state,
        engine.on_rerun(every, p, "x", 130.0).state,
        engine.on_rerun(every, engine.on_rerun(every, p, "x", 130.0).state, "", 131.0).state,
        engine.on_tick(every, p, 1000.0).state,
        w.state,
    ]
    stored: dict[str, Any] = {}
    for state in states:
        new = json.loads(json.dumps(snapshot.to_data(state)))
        stored = mergepatch.apply(stored, mergepatch.create(stored, new))
        assert stored == new
        assert snapshot.from_data(stored) == state
    assert snapshot.to_data(states[5])["rerun"] == {"seen": ""}
    assert "rerun" not in snapshot.to_data(states[0])


# -- with the environment fingerprint (TargetChanged) ---------------------------------------

V1 = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
V2 = fingerprint([Entry("Deployment/backend", "7c9a", "app", "app:v2")])


def test_a_target_change_while_waiting_starts_over_keeping_the_rerun_value() -> None:
    state = replace(waiting().state, rerun_seen="7")
    state = engine.on_target_observed(GATED, state, V1, 115.0).state  # the baseline
    assert state.phase is Phase.WAITING_APPROVAL
    changed = engine.on_target_observed(GATED, state, V2, 116.0)
    assert isinstance(changed.action, RunSuites) and changed.action.id == "r2-i1-s0"
    assert changed.state.round_reason is Reason.TARGET_CHANGED
    assert changed.state.rerun_seen == "7", "a TargetChanged round is no rerun request"
    assert engine.on_approved(changed.state, "r1-i1-s1").state == changed.state


def test_a_rerun_or_revalidation_keeps_the_fingerprint_as_its_baseline() -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    done = engine.on_target_observed(every, passed(every).state, V1, 111.0).state
    assert done.fingerprint == V1
    for new in (
        engine.on_rerun(every, done, "1", 120.0).state,
        engine.on_tick(every, done, 1000.0).state,
    ):
        assert new.round == 2 and new.fingerprint == V1
        # The same targets seen again: no TargetChanged round on top.
        assert engine.on_target_observed(every, new, V1, 1001.0).state.round == 2
