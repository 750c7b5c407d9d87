"""The engine's API as the shells use it (docs/design.md §6): one event per suite, action
ids and rollout tokens, idempotent events, spec changes, capabilities, exit codes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from greenloop.core import engine
from greenloop.core.capabilities import Capabilities, capabilities, of_target, webhook_payload
from greenloop.core.engine import (
    Finish,
    Phase,
    Reason,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.exits import ExitCode, exit_code
from greenloop.core.model import Target, Webhook, Workload
from tests.unit.scenario import HTTP_503, bad, dep_skip, make_spec, ok, play

TWO = (("critical", "P1"), ("extended", "P5"))


def finished(
    action: RunSuites, suite: str, *tests: object, error: str | None = None
) -> SuiteFinished:
    return SuiteFinished(action.id, SuiteRun(suite, tests=tuple(tests), error=error))  # type: ignore[arg-type]


def test_the_batch_completes_when_its_last_suite_reports_in_any_order() -> None:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    assert start.action.id == "r1-i1-s0"
    first = engine.on_suite(spec, start.state, finished(start.action, "extended", ok("e1")), 1.0)
    # Still out: only the suite not yet reported, under the same id.
    assert first.action == RunSuites("r1-i1-s0", 1, (engine.SuiteSelection("critical"),))
    assert first.state.phase is Phase.TESTING
    last = engine.on_suite(spec, first.state, finished(start.action, "critical", ok("c1")), 2.0)
    assert isinstance(last.action, Finish)
    assert (last.action.phase, last.action.reason) == (Phase.PASSED, Reason.GOAL_MET)


@pytest.mark.parametrize(
    "what",
    ["the same suite twice", "a stale action id", "a suite not in the batch"],
)
def test_an_event_that_does_not_answer_the_action_in_flight_changes_nothing(what: str) -> None:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    once = engine.on_suite(spec, start.state, finished(start.action, "extended", ok("e1")), 1.0)
    event = {
        "the same suite twice": finished(start.action, "extended", bad("e1", HTTP_503)),
        "a stale action id": SuiteFinished("r0-i9-s9", SuiteRun("critical", (ok("c1"),))),
        "a suite not in the batch": finished(start.action, "nightly", ok("n1")),
    }[what]
    again = engine.on_suite(spec, once.state, event, 2.0)
    assert again == once


def test_every_action_has_an_id_from_round_iteration_and_step() -> None:
    spec = make_spec(*TWO, expected=4)
    script = [
        {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": [ok("e1"), dep_skip("e2", "c2")]},
        {"critical": [ok("c1"), ok("c2")], "extended": [ok("e1"), ok("e2")]},
    ]
    played = play(spec, script)
    assert [r.id for r in played.runs] == ["r1-i1-s0", "r1-i2-s0"]
    assert [(r.id, r.token) for r in played.redeploys] == [("r1-i1-s1", "r1-i1-s1")]
    assert played.finish.id == "r1-i2-s1"


def redeploying() -> tuple[engine.State, Redeploy]:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    state = engine.on_suite(
        spec, start.state, finished(start.action, "critical", bad("c1", HTTP_503)), 1.0
    ).state
    decision = engine.on_suite(spec, state, finished(start.action, "extended", ok("e1")), 2.0)
    assert isinstance(decision.action, Redeploy)
    return decision.state, decision.action


def test_a_repeated_current_action_while_redeploying_is_the_same_redeploy() -> None:
    state, action = redeploying()
    assert engine.current_action(state) == action
    assert (action.started, action.reason) == (False, "1 ServiceUnavailable")
    started = engine.on_redeploy_started(state, RedeployStarted(action.id))
    # After a restart the shell sees it was triggered: wait, do not roll out again.
    assert engine.current_action(started.state) == replace(action, started=True)
    # The reason comes from state, not from the history text.
    history = (*started.state.history[:-1], replace(started.state.history[-1], detail="edited"))
    edited = replace(started.state, history=history)
    assert engine.current_action(edited) == replace(action, started=True)


def test_a_redeploy_done_for_another_action_changes_nothing() -> None:
    state, action = redeploying()
    stale = engine.on_redeploy(
        make_spec(*TWO), state, RedeployDone(True, "ok", action_id="r1-i0-s0"), 3.0
    )
    assert stale.action == action
    done = engine.on_redeploy(
        make_spec(*TWO), state, RedeployDone(True, "ok", action_id=action.id), 3.0
    )
    assert isinstance(done.action, RunSuites) and done.action.id == "r1-i2-s0"


def test_a_failed_redeploy_event_stalls_with_redeploy_failed() -> None:
    state, action = redeploying()
    done = engine.on_redeploy(
        make_spec(*TWO),
        state,
        RedeployDone(False, "rollout: ImagePullBackOff", action_id=action.id),
        3.0,
    )
    assert done.action == Finish(
        "r1-i1-s2", Phase.STALLED, Reason.REDEPLOY_FAILED, "rollout: ImagePullBackOff"
    )


def test_a_new_generation_starts_a_new_round_keeping_the_flaky_list() -> None:
    spec = make_spec(*TWO, flake_retries=1)
    script = [
        {"critical": [ok("c1"), bad("c2", "AssertionError: flaky")], "extended": [ok("e1")]},
        {"critical": [ok("c1"), ok("c2")], "extended": [ok("e1")]},
    ]
    played = play(spec, script)
    assert set(played.state.flaky) == {"c2"}
    changed = engine.on_spec_changed(spec, played.state, 50.0, generation=2)
    assert isinstance(changed.action, RunSuites)
    assert (changed.action.id, changed.state.iteration, changed.state.generation) == (
        "r2-i1-s0",
        1,
        2,
    )
    assert set(changed.state.flaky) == {"c2"}
    assert changed.state.tests == {}
    same = engine.on_spec_changed(spec, changed.state, 51.0, generation=2)
    assert same.state == changed.state


def test_a_suite_removed_mid_run_is_dropped_cleanly() -> None:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    smaller = make_spec(("critical", "P1"))
    # The shell feeds the new spec before it noticed the change: nothing waits for
    # "extended", nothing looks it up.
    done = engine.on_suite(smaller, start.state, finished(start.action, "critical", ok("c1")), 1.0)
    assert isinstance(done.action, Finish) and done.action.phase is Phase.PASSED
    # And a new round with the new spec runs only what exists.
    mid = engine.on_suite(
        spec, start.state, finished(start.action, "critical", bad("c1", HTTP_503)), 1.0
    )
    changed = engine.on_spec_changed(smaller, mid.state, 2.0, generation=2)
    assert isinstance(changed.action, RunSuites)
    assert [s.suite for s in changed.action.suites] == ["critical"]


def test_a_rerun_of_a_suite_the_spec_no_longer_has_is_not_looked_up() -> None:
    spec = make_spec(*TWO, flake_retries=1)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    state = engine.on_suite(
        spec, start.state, finished(start.action, "critical", ok("c1")), 1.0
    ).state
    smaller = make_spec(("critical", "P1"), flake_retries=1)
    # extended fails in the old spec; the rerun selection is built under the new one.
    decision = engine.on_suite(
        smaller, state, finished(start.action, "extended", bad("e1", "AssertionError: x")), 2.0
    )
    assert isinstance(decision.action, (RunSuites, Finish))


WEBHOOK = Webhook(url="http://ci.example/deploy")


@pytest.mark.parametrize(
    ("mode", "target", "can"),
    [
        ("local", Target(workloads=(Workload("Deployment", "app"),)), Capabilities()),
        (
            "operator",
            Target(workloads=(Workload("Deployment", "app"),)),
            Capabilities(workloads=True),
        ),
        ("local", Target(command=("./restart",)), Capabilities(command=True)),
        ("operator", Target(command=("./restart",)), Capabilities()),
        ("local", Target(webhook=WEBHOOK), Capabilities(webhook=True)),
        ("operator", Target(webhook=WEBHOOK), Capabilities(webhook=True)),
        (
            None,
            Target(command=("x",), workloads=(Workload("Deployment", "a"),)),
            Capabilities(True, True),
        ),
    ],
)
def test_what_a_mode_can_redeploy_is_decided_in_one_place(
    mode: str | None, target: Target, can: Capabilities
) -> None:
    assert of_target(target, mode) == can  # type: ignore[arg-type]
    assert (
        capabilities(
            mode,  # type: ignore[arg-type]
            workloads=bool(target.workloads),
            command=bool(target.command),
            webhook=target.webhook is not None,
        )
        == can
    )


def test_a_503_with_only_workloads_in_local_mode_stalls_instead_of_redeploying() -> None:
    target = Target(workloads=(Workload("Deployment", "app"),))
    spec = make_spec(("critical", "P1"), target=target, flake_retries=0)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    event = finished(start.action, "critical", bad("c1", HTTP_503))
    local = engine.on_suite(spec, start.state, event, 1.0, caps=of_target(target, "local"))
    assert isinstance(local.action, Finish)
    assert local.action.reason is Reason.SERVICE_UNAVAILABLE
    assert "no redeploy target this mode can use" in local.action.message
    cluster = engine.on_suite(spec, start.state, event, 1.0, caps=of_target(target, "operator"))
    assert isinstance(cluster.action, Redeploy)


def test_the_webhook_payload_carries_the_rollout_token() -> None:
    assert webhook_payload(
        name="checkout",
        namespace="staging",
        iteration=2,
        reason="3 ServiceUnavailable",
        token="r1-i2-s1",
    ) == {
        "validation": "checkout",
        "namespace": "staging",
        "iteration": 2,
        "reason": "3 ServiceUnavailable",
        "token": "r1-i2-s1",
    }


@pytest.mark.parametrize(
    ("phase", "reason", "code"),
    [
        (Phase.PASSED, Reason.GOAL_MET, ExitCode.OK),
        (Phase.STALLED, Reason.SERVICE_UNAVAILABLE, ExitCode.STALLED),
        (Phase.STALLED, Reason.INTERRUPTED, ExitCode.INTERRUPTED),
        (Phase.STALLED, Reason.INTERNAL_ERROR, ExitCode.INTERNAL_ERROR),
    ],
)
def test_each_end_has_its_exit_code(phase: Phase, reason: Reason, code: ExitCode) -> None:
    assert exit_code(phase, reason) == code
    assert (ExitCode.OK, ExitCode.STALLED, ExitCode.USAGE, ExitCode.INTERRUPTED) == (0, 1, 2, 130)


def test_an_internal_error_ends_stalled_with_what_is_known() -> None:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    mid = engine.on_suite(spec, start.state, finished(start.action, "critical", ok("c1")), 1.0)
    end = engine.internal_error(mid.state, 2.0, "PermissionError: [Errno 13] ./restart.sh")
    assert isinstance(end.action, Finish)
    assert (end.action.phase, end.action.reason) == (Phase.STALLED, Reason.INTERNAL_ERROR)
    assert "c1" in end.state.tests
    assert exit_code(end.state.phase, end.state.reason) is ExitCode.INTERNAL_ERROR


def test_a_suite_error_event_is_a_runner_error_retried_once() -> None:
    spec = make_spec(("critical", "P1"))
    played = play(spec, [{"critical": "Job ended without results: OOMKilled"}])
    assert played.finish.reason is Reason.RUNNER_ERROR
    assert len(played.runs) == 2
    assert "OOMKilled" in played.finish.message


def test_notes_of_an_iteration_are_bounded_and_say_how_many_were_cut() -> None:
    state, action = redeploying()
    notes = tuple(f"rollout line {k}: " + "x" * 5000 for k in range(40))
    done = engine.on_redeploy(
        make_spec(*TWO), state, RedeployDone(True, "ok", notes, action.id), 3.0
    )
    record = next(r for r in done.state.history if r.iteration == 1)
    assert len(record.notes) == engine.MAX_NOTES
    assert all(len(n) <= engine.MAX_NOTE for n in record.notes)
    assert record.notes[-1] == f"… and {40 - (engine.MAX_NOTES - 1)} more"
