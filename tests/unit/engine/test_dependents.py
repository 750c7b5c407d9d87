"""Dependent failures (docs/design.md §1): a test skipped or failed because another
failed names its root and is decided on the root's class; a dependency cycle ends instead
of looping (``engine.root_of``, ``engine.effective_class``)."""

from __future__ import annotations

import random

import pytest

from greenloop.core import engine
from greenloop.core.engine import (
    Phase,
    Redeploy,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
    TestRecord,
)
from greenloop.core.model import Diagnosis, FailureClass, Outcome, StagingValidation
from greenloop.core.report import render
from greenloop.core.status import build_status
from tests.unit.engine.cases import ONE_SUITE, TWO_SUITES, Row, row_tests
from tests.unit.engine.steps import CountingId, hashes_while
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


test_engine_rule = row_tests(ROWS)


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


def chain_of(n: int) -> int:
    """The ids hashed while the engine merges and decides on one failure (a 503) with a
    chain of ``n`` dependents, each skipped because the one before it did not pass."""
    spec = make_spec(("e2e", "P1"))
    ids = [CountingId(f"tests/test_chain.py::test_{k:06d}") for k in range(n + 1)]
    results = [bad(ids[0], HTTP_503), *(dep_skip(ids[k], ids[k - 1]) for k in range(1, n + 1))]
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    event = SuiteFinished(start.action.id, SuiteRun("e2e", tests=tuple(results)))
    decision = engine.on_suite(spec, start.state, event, 1.0)
    assert isinstance(decision.action, Redeploy), "decided on the root's class"
    return hashes_while(lambda: engine.on_suite(spec, start.state, event, 1.0))


def test_deciding_on_a_chain_of_dependents_is_linear_in_its_length() -> None:
    # Each Dependent is decided on its root's class: following the chain from every
    # dependent anew would be quadratic in the chain's length.
    n = 200
    assert chain_of(2 * n) <= 2.5 * chain_of(n)


def random_graph(seed: int) -> State:
    """Up to 8 tests, each passing, failing with a class, or Dependent on another test (or
    on one state does not know): chains, branches, cycles and self-loops."""
    rnd = random.Random(seed)
    ids = [f"t{k}" for k in range(rnd.randint(1, 8))]
    tests = {}
    for test_id in ids:
        kind = rnd.choice(["passed", "class", "dependent", "dependent", "dependent"])
        if kind == "passed":
            diagnosis = None
        elif kind == "class":
            # A root cause on a class other than Dependent is not followed.
            diagnosis = Diagnosis(rnd.choice(list(FailureClass)), "evidence", rnd.choice(ids))
        else:
            root = rnd.choice([*ids, "gone", ""])
            diagnosis = Diagnosis(FailureClass.DEPENDENT, "skipped", root)
        tests[test_id] = TestRecord(test_id, "e2e", "P1", Outcome.FAILED, 1, diagnosis)
    return State(tests=tests)


def test_the_roots_found_in_one_pass_are_those_root_of_finds_from_each_test() -> None:
    for seed in range(300):
        state = random_graph(seed)
        records = list(state.tests.values())
        random.Random(seed).shuffle(records)
        expected = {t.id: engine.root_of(state, t) for t in records}
        assert engine.roots_of(state, records) == expected, f"seed {seed}"
