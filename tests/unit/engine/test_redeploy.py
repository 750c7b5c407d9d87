"""Redeploy when it can help (docs/design.md §1): a failure whose root class is in
``redeployOn``, with a target this mode can redeploy, redeploys once, waits, and reruns the
failed tests and their dependents; a redeploy that changed nothing (same tests, same classes)
stalls ``RedeployIneffective``; a failed one ``RedeployFailed``. The redeploy's lifecycle
(started, done, its token and notes) and what each mode can redeploy. Rules:
``engine.rules.redeploy_can_help``, ``redeploy_was_ineffective``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from greenloop.core import engine, snapshot
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
from greenloop.core.model import FailureClass, Rule, Target, Webhook, Workload
from tests.unit.engine.cases import (
    CONNECTION_REFUSED,
    GREEN,
    ONE,
    ONE_SUITE,
    TWO,
    TWO_SUITES,
    Case,
    End,
    Row,
    end_tests,
    row_tests,
    scenario_tests,
)
from tests.unit.engine.steps import finished, one_suite
from tests.unit.scenario import ASSERT, HTTP_503, bad, dep_skip, make_spec, ok, play


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


WEBHOOK = Webhook(url="http://ci.example/deploy")


CASES = [
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
]


test_scenario, test_a_restart_between_any_two_steps_changes_nothing = scenario_tests(CASES)


ROWS = [
    Row(
        # "The redeploy changed nothing" compares (test, class), not just test ids.
        "the same test failing with another redeployable class redeploys again",
        make_spec(*ONE_SUITE),
        [
            {"critical": [bad("c1", HTTP_503), ok("c2")]},
            {"critical": [bad("c1", CONNECTION_REFUSED)]},
            {"critical": [ok("c1")]},
        ],
        Phase.PASSED,
        "GoalMet",
        3,
        2,
    ),
    Row(
        "the same test failing with the same class after a redeploy stalls",
        make_spec(*ONE_SUITE),
        [{"critical": [bad("c1", HTTP_503), ok("c2")]}],
        Phase.STALLED,
        "RedeployIneffective",
        2,
        1,
    ),
]


test_engine_rule = row_tests(ROWS)


ENDS = [
    End(
        "a redeployable class with nothing to redeploy",
        make_spec(*ONE, target=Target(), flake_retries=0),
        [{"critical": [bad("c1", HTTP_503), ok("c2")]}],
        "ServiceUnavailable",
        "1 ServiceUnavailable still failing after 0 reruns without a redeploy: "
        "no redeploy target this mode can use is configured (spec.target)",
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


test_how_a_round_ends_reads = end_tests(ENDS)


def test_a_failed_redeploy_stalls_with_its_message() -> None:
    spec = make_spec(*TWO_SUITES)
    first = {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]}
    played = play(spec, [first], redeploy_ok=False)
    assert (played.state.phase, str(played.state.reason)) == (Phase.STALLED, "RedeployFailed")
    assert played.state.message == "exit code 3"


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


def test_once_the_redeploy_is_done_the_state_says_testing_and_holds_no_redeploy_in_flight() -> None:
    spec = make_spec(("e2e", "P1"))
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("e2e", tests=(bad("a", HTTP_503), ok("b")))
    decided = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert isinstance(decided.action, engine.Redeploy)
    # The local shell names the redeploy's log by its iteration.
    assert (decided.action.iteration, decided.action.reason) == (1, "1 ServiceUnavailable")
    assert decided.action.token == decided.action.id == "r1-i1-s1"
    started = engine.on_redeploy_started(decided.state, RedeployStarted(decided.action.id))
    stored = snapshot.to_data(started.state)["redeploy"]
    assert stored == {"reason": "1 ServiceUnavailable", "started": True}
    done = engine.on_redeploy(
        spec, started.state, RedeployDone(True, "restarted", action_id=decided.action.id), 1002.0
    )
    # Testing again, and saying so: not "Redeploying" while the tests run.
    assert (done.state.phase, done.state.reason) == (Phase.TESTING, Reason.RUNNING_TESTS)
    assert done.state.message == "iteration 2: rerunning e2e (1 test)"
    data = snapshot.to_data(done.state)
    assert "redeploy" not in data
    assert "nextRun" not in data


def test_a_test_id_with_a_lone_surrogate_still_gets_a_redeploy_judged() -> None:
    # JSON (a results upload) can carry "\ud800": the id is odd, the decision is not.
    test_id = "tests/test_api.py::test_\udcff"
    spec = make_spec(("e2e", "P1"))
    played = play(spec, [{"e2e": [bad(test_id, HTTP_503), ok("b")]}])
    assert len(played.redeploys) == 1
    assert (played.state.reason, played.state.iteration) == (Reason.REDEPLOY_INEFFECTIVE, 2)


def test_a_redeploy_is_recorded_with_each_class_counted() -> None:
    spec = make_spec(("e2e", "P1"))
    first = {
        "e2e": [bad("a", HTTP_503), bad("b", HTTP_503), dep_skip("c", "a"), ok("d")],
    }
    played = play(spec, [first])
    record = played.state.history[0]
    why = "2 ServiceUnavailable, 1 Dependent"
    assert (record.action, record.reason, record.detail) == (
        engine.ActionKind.REDEPLOY,
        Reason.REDEPLOYING,
        why,
    )
    assert played.redeploys[0].reason == why
    assert played.state.message == (
        "the redeploy changed nothing: the same 3 tests fail with the same classes "
        f"({why}); not redeploying again"
    )


def test_a_failed_redeploy_stalls_the_round_keeping_the_iteration_s_own_end() -> None:
    spec = make_spec(("api", "P1"))
    waiting = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", HTTP_503))
    action = waiting.action
    assert isinstance(action, engine.Redeploy)
    started = engine.on_redeploy_started(waiting.state, RedeployStarted(action.id))
    failed = engine.on_redeploy(
        spec, started.state, RedeployDone(False, "exit 3", action_id=action.id), 130.0
    )
    assert (failed.state.phase, failed.state.reason) == (Phase.STALLED, Reason.REDEPLOY_FAILED)
    assert failed.state.history[-1].finished == 110.0
    assert failed.state.message == "exit 3"


def test_the_next_iteration_remembers_whether_a_redeploy_or_a_plain_rerun_came_before() -> None:
    # "The redeploy changed nothing" is judged only on the batch right after a redeploy.
    spec = make_spec(("api", "P1"), flake_retries=1)
    redeploy = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", HTTP_503))
    action = redeploy.action
    assert isinstance(action, engine.Redeploy)
    done = RedeployDone(True, "ok", action_id=action.id)
    after = engine.on_redeploy(spec, redeploy.state, done, 130.0)
    assert (after.state.iteration, after.state.last_action) == (2, engine.ActionKind.REDEPLOY)
    rerun = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", ASSERT))
    assert (rerun.state.iteration, rerun.state.last_action) == (2, engine.ActionKind.RERUN)
