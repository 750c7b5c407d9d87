"""Priority groups and ``failFast`` (docs/design.md §1): suites run in priority order;
with failFast, lower priorities wait while a higher one fails, one group per batch."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason, SuiteFinished, SuiteRun
from tests.unit.engine.cases import GREEN
from tests.unit.scenario import HTTP_503, bad, make_spec, ok, play, selected


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


def test_fail_fast_gives_each_priority_group_the_next_action_id_and_a_fresh_batch() -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), ("extended", "P5"), fail_fast=True)
    ids: list[str] = []
    reported: list[tuple[str, ...]] = []
    decision = engine.begin(spec, 1000.0)
    while isinstance(decision.action, engine.RunSuites):
        ids.append(decision.action.id)
        reported.append(decision.state.reported)
        (sel,) = decision.action.suites
        run = SuiteRun(sel.suite, tests=(ok(sel.suite + "1"),))
        decision = engine.on_suite(
            spec, decision.state, SuiteFinished(decision.action.id, run), 1001.0
        )
    assert ids == ["r1-i1-s0", "r1-i1-s1", "r1-i1-s2"]
    assert reported == [(), (), ()]
    assert decision.state.reason is Reason.GOAL_MET
