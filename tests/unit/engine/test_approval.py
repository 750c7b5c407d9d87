"""The approval gate (docs/design.md §8, ``policy.redeploy: RequireApproval``): a
decided redeploy waits with a token; only that token starts it; the deadline keeps running
while it waits. Rule: ``engine.rules.redeploy_needs_approval``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from greenloop.core import engine, mergepatch, snapshot, spec
from greenloop.core.engine import (
    ActionKind,
    AwaitApproval,
    Finish,
    Phase,
    Reason,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.model import RedeployPolicy, StagingValidation
from greenloop.core.report import render
from greenloop.core.schema import validate
from greenloop.core.status import build_status
from tests.unit.engine.steps import GATED, feed, one_suite, waiting
from tests.unit.scenario import HTTP_503, bad, make_spec, ok

GATED_API = make_spec(("api", "P1"), redeploy=RedeployPolicy.REQUIRE_APPROVAL, deadline_seconds=600)


def gated_wait() -> engine.Decision:
    return one_suite(GATED_API, engine.begin(GATED_API, 100.0), 110.0, bad("a", HTTP_503))


STATUS_SCHEMA = spec.spec_schema()["properties"]["status"]


def test_an_approved_redeploy_says_so_and_starts_from_not_started() -> None:
    waiting = replace(gated_wait().state, redeploy_started=True)  # restored from elsewhere
    approved = engine.on_approved(waiting, "r1-i1-s1")
    state = approved.state
    assert (state.phase, state.reason, state.redeploys) == (
        Phase.REDEPLOYING,
        Reason.REDEPLOYING,
        1,
    )
    assert state.message == "iteration 1: redeploying because of 1 ServiceUnavailable (approved)"
    assert state.redeploy_started is False
    assert isinstance(approved.action, engine.Redeploy) and not approved.action.started
    assert state.history[-1].reason is Reason.REDEPLOYING


def test_a_wait_outliving_the_deadline_ends_the_round_with_the_reason_on_record() -> None:
    waiting = gated_wait()
    ended = engine.on_tick(GATED_API, waiting.state, 700.0)
    message = (
        "deadlineSeconds (600) passed while the redeploy waited for approval (token r1-i1-s1); "
        "not redeploying"
    )
    assert (ended.state.phase, ended.state.reason, ended.state.message) == (
        Phase.STALLED,
        Reason.BUDGET_EXHAUSTED,
        message,
    )
    record = ended.state.history[-1]
    # The iteration's own end stays when its tests ended; the wait is the round's.
    assert (record.finished, record.action, record.reason) == (
        110.0,
        engine.ActionKind.STALL,
        Reason.BUDGET_EXHAUSTED,
    )
    assert record.detail == message


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
