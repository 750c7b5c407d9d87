"""The classifier's work grows linearly with the number of tests (issue 17).

Counted, never timed: the Python lines the classifier runs (``sys.settrace`` line events
in greenloop/core/classify*.py) for N tests and for 2N. Linear work doubles; work that
scans every failing id for each test (8k message-less Go subtests took 19 s, a dangling
``depends_on`` at 4k 13 s) quadruples.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from greenloop.core.classify import FailingIds, diagnose_batch
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult

from .counting import CORE, counting_lines

FC = FailureClass
CLASSIFIER = CORE + "classify"  # classify.py and the modules it was split into
N = 300


def work(tests: list[TestResult]) -> tuple[int, list[tuple[TestResult, Diagnosis | None]]]:
    with counting_lines(CLASSIFIER) as count:
        diagnosed = diagnose_batch(tests)
    return count[0], diagnosed


def failed(test_id: str, message: str = "", depends_on: tuple[str, ...] = ()) -> TestResult:
    return TestResult(
        id=test_id,
        name=test_id.rpartition("/")[2],
        classname="example.com/shop/orders",
        outcome=Outcome.FAILED,
        message=message,
        depends_on=depends_on,
    )


def go_subtests(n: int) -> list[TestResult]:
    """A Go parent and its n subtests, every one failing without a message (a t.Fatal
    whose text the reporter dropped)."""
    parent = "example.com/shop/orders::TestOrders"
    return [failed(parent), *(failed(f"{parent}/case_{i}") for i in range(n))]


def dangling_dependencies(n: int) -> list[TestResult]:
    """n failing tests, each declaring a dependency that is not among the failures."""
    return [
        failed(f"tests/e2e/test_{i}.py::test_it", "boom", depends_on=(f"test_setup_{i}",))
        for i in range(n)
    ]


def short_name_dependencies(n: int) -> list[TestResult]:
    """n roots and n dependents naming their root by its short name."""
    roots = [failed(f"tests/e2e/test_{i}.py::test_login_{i}", "503") for i in range(n)]
    dependents = [
        failed(f"tests/e2e/test_{i}.py::test_cart", "", depends_on=(f"test_login_{i}",))
        for i in range(n)
    ]
    return roots + dependents


def one_short_name_in_every_module(n: int) -> list[TestResult]:
    """n modules, each with a failing test_login and a test that depends on "test_login":
    every name has n candidates, and the one in the dependent's own module is the root."""
    roots = [failed(f"tests/e2e/test_{i}.py::test_login", "503") for i in range(n)]
    dependents = [
        failed(f"tests/e2e/test_{i}.py::test_cart", "", depends_on=("test_login",))
        for i in range(n)
    ]
    return roots + dependents


SHAPES: dict[str, Callable[[int], list[TestResult]]] = {
    "Go subtests without a message": go_subtests,
    "a dangling depends_on": dangling_dependencies,
    "depends_on by a short name": short_name_dependencies,
    "one short name in every module": one_short_name_in_every_module,
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_twice_the_tests_is_at_most_about_twice_the_work(
    shape: Callable[[int], list[TestResult]],
) -> None:
    once, _ = work(shape(N))
    twice, _ = work(shape(2 * N))
    assert twice / once < 2.5, f"{once:,} lines for {N} tests, {twice:,} for {2 * N}"


def test_the_counted_shapes_are_classified_as_before() -> None:
    """What the counts above are counting: the shapes' diagnoses."""
    _, subtests = work(go_subtests(3))
    parent = "example.com/shop/orders::TestOrders"
    assert subtests[0][1] == Diagnosis(
        FC.DEPENDENT, f"its subtest {parent}/case_0 failed, and 2 more", f"{parent}/case_0"
    )
    assert [d for _, d in subtests[1:]] == [Diagnosis(FC.UNKNOWN, "failed")] * 3
    _, dangling = work(dangling_dependencies(2))
    assert [d for _, d in dangling] == [Diagnosis(FC.UNKNOWN, "boom")] * 2
    _, short = work(short_name_dependencies(2))
    assert [d for _, d in short[2:]] == [
        Diagnosis(
            FC.DEPENDENT,
            f"depends on tests/e2e/test_{i}.py::test_login_{i}, which failed",
            f"tests/e2e/test_{i}.py::test_login_{i}",
        )
        for i in range(2)
    ]
    _, every_module = work(one_short_name_in_every_module(2))
    assert [d for _, d in every_module[2:]] == [
        Diagnosis(
            FC.DEPENDENT,
            f"depends on tests/e2e/test_{i}.py::test_login, which failed",
            f"tests/e2e/test_{i}.py::test_login",
        )
        for i in range(2)
    ]


def test_failing_ids_is_the_collection_of_the_ids_it_was_given() -> None:
    ids = FailingIds(["b", "a", "b"])
    assert (sorted(ids), len(ids), "a" in ids, "c" in ids) == (["a", "b"], 2, True, False)
    assert FailingIds.of(ids) is ids
