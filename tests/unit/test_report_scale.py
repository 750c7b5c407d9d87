"""The status's failing tests and the report's why-chain are linear in the number of tests
(issue 17), however long a chain of Dependents: each failing test's root is found once.

Counted, never timed: the Python lines greenloop's core runs for N tests and for 2N.
Following each test's chain to its root anew made a chain of 4,000 tests take 2.3 s in
status and 4.8 s in the report, four times as long for twice the tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from greenloop.core import engine
from greenloop.core.model import (
    Diagnosis,
    FailureClass,
    Outcome,
    Policy,
    StagingValidation,
    Suite,
    Target,
    TestResult,
    ValidationSpec,
)
from greenloop.core.report import render
from greenloop.core.status import failing_roots, failing_tests

from .counting import counting_lines

N = 200


def chain(n: int) -> tuple[StagingValidation, engine.State]:
    """test_0 fails with a 503; each test_i after it fails because test_{i-1} did."""
    tests = [TestResult("t.py::test_0", "test_0", "t", Outcome.FAILED, message="HTTP 503")]
    tests += [
        TestResult(
            f"t.py::test_{i}", f"test_{i}", "t", Outcome.FAILED, depends_on=(f"t.py::test_{i - 1}",)
        )
        for i in range(1, n)
    ]
    spec = ValidationSpec(
        suites=(Suite(name="e2e", command=("pytest",)),),
        target=Target(command=("./restart",)),
        policy=Policy(max_iterations=1),
    )
    decision = engine.begin(spec, 0.0)
    run = engine.SuiteRun(suite="e2e", tests=tuple(tests), finished=1.0)
    event = engine.SuiteFinished(decision.state.action_id, run)
    state = engine.on_suite(spec, decision.state, event, 1.0).state
    return StagingValidation(name="chain", spec=spec), state


STEPS: dict[str, Callable[[StagingValidation, engine.State], object]] = {
    "status: the failing tests": lambda obj, state: failing_tests(state, limit=None),
    "the report": lambda obj, state: render(obj, state, 2.0),
}


@pytest.mark.parametrize("step", STEPS.values(), ids=STEPS.keys())
def test_a_chain_of_twice_the_dependents_is_at_most_about_twice_the_work(
    step: Callable[[StagingValidation, engine.State], object],
) -> None:
    counts = []
    for n in (N, 2 * N):
        obj, state = chain(n)
        with counting_lines() as count:
            step(obj, state)
        counts.append(count[0])
    once, twice = counts
    assert twice / once < 2.5, f"{once:,} lines for {N} tests, {twice:,} for {2 * N}"


def test_every_test_of_the_chain_has_the_first_as_its_root() -> None:
    _, state = chain(4)
    rows = failing_tests(state, limit=None)
    assert [(r["id"], r["class"], r["rootCause"]) for r in rows] == [
        ("t.py::test_0", FailureClass.SERVICE_UNAVAILABLE.value, None),
        *((f"t.py::test_{i}", FailureClass.DEPENDENT.value, "t.py::test_0") for i in (1, 2, 3)),
    ]


@pytest.mark.parametrize("seed", range(30))
def test_failing_roots_answers_what_root_of_answers_for_each_test(seed: int) -> None:
    """Random Dependent links among 40 tests: chains, cycles, self-links, links to tests
    greenloop does not know and to tests that pass."""
    rng = random.Random(seed)
    _, state = chain(40)
    ids = [f"t.py::test_{i}" for i in range(40)]
    tests = {}
    for test_id, record in state.tests.items():
        roll = rng.random()
        if roll < 0.1:
            record = replace(record, diagnosis=None)
        elif roll < 0.2:
            diagnosis = Diagnosis(FailureClass.TIMEOUT, "timed out")
            record = replace(record, diagnosis=diagnosis)
        else:
            root = rng.choice([*ids, "t.py::unknown", ""])
            record = replace(record, diagnosis=Diagnosis(FailureClass.DEPENDENT, "x", root))
        tests[test_id] = record
    state = replace(state, tests=tests)
    found = failing_roots(state)
    assert {t.id: found[t.id] for t in engine.failing(state)} == {
        t.id: engine.root_of(state, t) for t in engine.failing(state)
    }
