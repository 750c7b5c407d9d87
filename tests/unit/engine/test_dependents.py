"""Dependent failures (docs/design.md §1): a test skipped or failed because another
failed names its root and is decided on the root's class; a dependency cycle ends instead
of looping (``engine.root_of``, ``engine.effective_class``)."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, State
from greenloop.core.model import Diagnosis, FailureClass, Outcome, StagingValidation
from greenloop.core.report import render
from greenloop.core.status import build_status
from tests.unit.engine.cases import ONE_SUITE, TWO_SUITES, Row, check_row
from tests.unit.scenario import ASSERT, HTTP_503, bad, dep_skip, make_spec, ok, play

ROWS = [
    Row(
        # root_of's cycle guard: without it the engine never returns from this step.
        "tests that depend on each other in a cycle stall instead of looping",
        make_spec(*ONE_SUITE),
        [
            {
                "critical": [
                    bad("a", ASSERT, depends_on=("b",)),
                    bad("b", ASSERT, depends_on=("a",)),
                    ok("c"),
                ]
            }
        ],
        Phase.STALLED,
        "Dependent",
        2,
        0,
    ),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_engine_rule(row: Row) -> None:
    check_row(row)


def test_dependent_failure_names_its_root_and_follows_its_class() -> None:
    spec = make_spec(*TWO_SUITES, max_iterations=1)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    }
    state = play(spec, [first]).state
    dependent = state.tests["e2"]
    assert dependent.diagnosis is not None
    assert dependent.diagnosis.failure_class is FailureClass.DEPENDENT
    assert dependent.diagnosis.root_cause == "c2"
    assert engine.effective_class(state, dependent) is FailureClass.SERVICE_UNAVAILABLE


def test_a_dependent_in_a_later_suite_finds_its_root_by_short_name() -> None:
    # The root failed in a suite reported earlier in the batch, named by its short name.
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=0, redeploy_on=())
    root = "tests/test_auth.py::test_login"
    script = [{"api": [bad(root, HTTP_503)], "web": [dep_skip("web::test_cart", "test_login")]}]
    state = play(spec, script).state
    diagnosis = state.tests["web::test_cart"].diagnosis
    assert diagnosis is not None
    assert (str(diagnosis.failure_class), diagnosis.root_cause) == ("Dependent", root)


def test_the_root_of_a_chain_ending_in_a_cycle_is_found_in_bounded_steps() -> None:
    def dependent(test_id: str, root: str) -> engine.TestRecord:
        diagnosis = Diagnosis(FailureClass.DEPENDENT, f"depends on {root}", root)
        return engine.TestRecord(test_id, "api", "P1", Outcome.SKIPPED, 1, diagnosis)

    # a -> b -> c -> b: the cycle does not pass through the start.
    tests = {"a": dependent("a", "b"), "b": dependent("b", "c"), "c": dependent("c", "b")}
    state = State(phase=Phase.TESTING, iteration=1, tests=tests)
    assert engine.root_of(state, tests["a"]).id in {"b", "c"}


@pytest.mark.timeout(10)
def test_a_dependency_cycle_still_reports_every_failing_test() -> None:
    """Status and report follow root causes too: a cycle must not hang them."""
    spec = make_spec(*ONE_SUITE, flake_retries=0)
    script = [{"critical": [bad("a", "", depends_on=("b",)), bad("b", "", depends_on=("a",))]}]
    state = play(spec, script).state
    obj = StagingValidation(name="cycle", spec=spec)
    status = build_status(obj, state, now=5000.0)
    assert sorted(t["id"] for t in status["failingTests"]) == ["a", "b"]
    assert {t["class"] for t in status["failingTests"]} == {"Dependent"}
    assert "# greenloop report: cycle" in render(obj, state, now=5000.0)
