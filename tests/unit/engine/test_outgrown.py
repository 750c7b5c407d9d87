"""A round that outgrows its object (docs/design.md §5, "Budget"): more tests than a
state holds ends ``Stalled``/``TooManyTests``, a status the API server refuses for good
``Stalled``/``StatusRejected``; either drops the test table so the stall can be written,
keeps the iteration's counts, and sticks until a new round. Rules: ``budget.too_many_tests``
(``engine.on_too_many_tests``), ``budget.status_refusal`` (``engine.on_status_rejected``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from greenloop.core import budget, engine, snapshot
from greenloop.core.engine import Decision, Finish, Phase, Reason, RunSuites, State
from tests.unit.engine.cases import ONE, TWO
from tests.unit.engine.steps import finished
from tests.unit.scenario import HTTP_503, bad, make_spec, ok

NOW = 1000.0


def after_first_suite(*tests: object) -> tuple[Decision, Decision]:
    """A two-suite round, and the decision after `critical` reported `tests`."""
    spec = make_spec(*TWO)
    started = engine.begin(spec, NOW, rerun="")
    action = started.action
    assert isinstance(action, RunSuites)
    return started, engine.on_suite(spec, started.state, finished(action, "critical", *tests), NOW)


STALLS: dict[str, tuple[Callable[[State, str, float], Decision], Reason]] = {
    "too many tests": (engine.on_too_many_tests, Reason.TOO_MANY_TESTS),
    "status rejected": (engine.on_status_rejected, Reason.STATUS_REJECTED),
}


@pytest.mark.parametrize("stall, reason", STALLS.values(), ids=STALLS.keys())
def test_an_outgrown_round_stalls_small_keeping_its_counts(
    stall: Callable[[State, str, float], Decision], reason: Reason
) -> None:
    _, mid = after_first_suite(ok("c1"), bad("c2", HTTP_503))
    decision = stall(mid.state, "the limit, named", NOW + 1)
    state = decision.state
    assert (state.phase, state.reason, state.message) == (Phase.STALLED, reason, "the limit, named")
    assert isinstance(decision.action, Finish)
    assert state.tests == {} and state.flaky == {} and state.running == ()
    assert (state.history[-1].passed, state.history[-1].failed) == (1, 1)
    assert snapshot.from_data(snapshot.to_data(state)) == state
    # It sticks: time changes nothing; a new round starts from it.
    assert engine.on_tick(make_spec(*TWO), state, NOW + 10_000).state == state
    rerun = engine.on_rerun(make_spec(*TWO), state, "again", NOW + 2)
    assert (rerun.state.phase, rerun.state.round) == (Phase.TESTING, state.round + 1)


def test_a_suite_that_takes_the_state_past_max_tests_stalls_naming_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(budget, "MAX_TESTS", 3)
    _, within = after_first_suite(ok("c1"), ok("c2"), ok("c3"))
    assert within.state.phase is Phase.TESTING
    _, over = after_first_suite(ok("c1"), ok("c2"), ok("c3"), ok("c4"))
    assert (over.state.phase, over.state.reason) == (Phase.STALLED, Reason.TOO_MANY_TESTS)
    assert over.state.message == (
        "4 tests reported; an object's state holds at most 3: split the suites across objects"
    )


def test_a_state_at_max_tests_fits_the_byte_budget_with_short_ids() -> None:
    """MAX_TESTS is reachable: 100,000 passing tests with ids as a runner names them
    take well under MAX_STATE_BYTES (the test ids of a parametrized suite, random
    parameters, reach the byte budget first: test_operator_wedges.py)."""
    spec = make_spec(*ONE)
    started = engine.begin(spec, NOW)
    action = started.action
    assert isinstance(action, RunSuites)
    tests = [ok(f"tests/api/test_m{i // 100}.py::test_{i}") for i in range(budget.MAX_TESTS)]
    done = engine.on_suite(spec, started.state, finished(action, "critical", *tests), NOW)
    assert done.state.phase is Phase.PASSED
    size = snapshot.size(snapshot.to_data(done.state))
    print(f"{budget.MAX_TESTS:,} passing tests: status.engine {size / 1024:.0f} KiB")
    assert not budget.too_many_tests(len(done.state.tests), size)
