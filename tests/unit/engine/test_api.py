"""The engine's API as the shells use it (docs/design.md §6): one event per suite, the
batch complete when its last suite reports, action ids, late, repeated or foreign events
that change nothing, the ends a shell calls (interrupt, internal error), exit codes, and
the shared counts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from greenloop.core import engine, snapshot
from greenloop.core.engine import (
    Counts,
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
from greenloop.core.exits import ExitCode, exit_code
from greenloop.core.model import Outcome, TestResult, ValidationSpec
from tests.unit.engine.cases import ONE, TWO, TWO_SUITES
from tests.unit.engine.steps import finished, skipped
from tests.unit.scenario import ASSERT, HTTP_503, bad, dep_skip, make_spec, ok, play


def redeploying() -> tuple[ValidationSpec, State, Redeploy]:
    spec = make_spec(*ONE)
    decision = engine.begin(spec, 1000.0)
    assert isinstance(decision.action, RunSuites)
    run = SuiteRun("critical", tests=(bad("c1", HTTP_503), ok("c2")))
    decision = engine.on_suite(spec, decision.state, SuiteFinished(decision.action.id, run), 1001.0)
    assert isinstance(decision.action, Redeploy)
    return spec, decision.state, decision.action


def errored(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.ERROR, message="boom")


def _interrupted_while_redeploying() -> State:
    spec = make_spec(("critical", "P1"), ("core", "P3"), fail_fast=True)
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("critical", tests=(bad("c1", HTTP_503), ok("c2")))
    decided = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert isinstance(decided.action, engine.Redeploy)
    data = snapshot.to_data(decided.state)
    # failFast held "core" back: no group waits any more, no batch is in flight.
    for key in ("pending", "running", "reported"):
        assert key not in data, key
    assert data["nextRun"] == [{"suite": "critical", "tests": ["c1"]}, {"suite": "core"}]
    started = engine.on_redeploy_started(decided.state, RedeployStarted(decided.action.id))
    return engine.interrupt(started.state, 1002.0, "stopped").state


def _interrupted_while_testing() -> State:
    spec = make_spec(("critical", "P1"), ("core", "P3"), fail_fast=True)
    return engine.interrupt(engine.begin(spec, 1000.0).state, 1001.0, "stopped").state


def _interrupted_after_one_of_two_suites() -> State:
    spec = make_spec(("api", "P1"), ("web", "P1"))
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("api", tests=(ok("a1"),))
    half = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert half.state.reported == ("api",)
    return engine.interrupt(half.state, 1002.0, "stopped").state


def test_interrupt_ends_stalled_with_what_is_known() -> None:
    spec = make_spec(*TWO_SUITES)
    decision = engine.begin(spec, 0.0)
    decision = engine.interrupt(decision.state, 5.0, "interrupted by the user")
    assert isinstance(decision.action, Finish)
    assert (decision.state.phase, str(decision.state.reason)) == (Phase.STALLED, "Interrupted")
    assert decision.state.history[-1].finished == 5.0


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


def test_every_batch_has_its_own_action_id() -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), ("extended", "P5"), fail_fast=True)
    played = play(spec, [{"critical": [ok("c1")], "core": [ok("k1")], "extended": [ok("e1")]}])
    ids = [r.id for r in played.runs]
    assert len(ids) == 3
    assert len(set(ids)) == 3


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


def test_an_internal_error_keeps_a_whole_note_of_its_message() -> None:
    state = engine.begin(make_spec(("e2e", "P1")), 1000.0).state
    done = engine.internal_error(state, 1001.0, "x" * 1000)
    assert done.state.message == "x" * (engine.MAX_NOTE - 1) + "…"


@pytest.mark.parametrize(
    ("results", "counts"),
    [
        ([], Counts(0, 0, 0)),
        ([ok("a"), ok("b")], Counts(2, 0, 0)),
        ([bad("a", ASSERT), errored("b")], Counts(0, 2, 0)),
        ([skipped("a"), skipped("b")], Counts(0, 0, 2)),
        # A dependency skip fails with its root: the progress line counts it failed.
        ([bad("a", ASSERT), dep_skip("b", "a"), ok("c"), skipped("d")], Counts(1, 2, 1)),
    ],
    ids=["nothing", "passed", "failed and errors", "skipped", "a dependency skip fails"],
)
def test_a_suite_s_progress_line_counts_passed_failed_skipped(
    results: list[TestResult], counts: Counts
) -> None:
    assert engine.tally_results(results) == counts
    assert engine.tally_results(results).total == len(results)


@pytest.mark.parametrize(
    "ended",
    [
        _interrupted_while_redeploying,
        _interrupted_while_testing,
        _interrupted_after_one_of_two_suites,
    ],
    ids=["while redeploying", "while the first priority group runs", "with a suite reported"],
)
def test_a_finished_round_stores_nothing_in_flight(ended: Callable[[], State]) -> None:
    state = ended()
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.INTERRUPTED)
    data = snapshot.to_data(state)
    for key in ("running", "reported", "pending", "nextRun", "redeploy"):
        assert key not in data, key
