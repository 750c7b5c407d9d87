"""This change's loops over tests grow linearly (issue 16): the pytest plugin's dealt
split (`shards.split_collected`), the width a rerun is worth (`assign` with a start
cost: `shards_worth_starting`), and the same-collection check of a whole-suite merge
(`shard_results.different_collections`).

Counted, never timed: the Python lines greenloop's core runs for N tests and for 10·N:
about 10 times as many when linear (``split_collected`` sorts, so a little more), 100
when a loop visits every test per test (a planted per-id scan of the reported ids in
the same-collection check fails at 91 times). Work done inside C (a list's ``in``,
``sorted``) is not counted: the count sees Python-level loops only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from greenloop.core.model import Outcome, TestResult
from greenloop.core.shard_results import MergedSuite, ShardOutcome, merge
from greenloop.core.shards import ShardPlan, assign, collected, plan, split_collected

from .counting import lines_of

N = 300
#: 10·N tests may cost at most this many times N's (linear: 10; n log n: ~13; quadratic: 100).
BOUND = 14.0


def _ids(n: int) -> list[str]:
    return [f"tests/test_{i % 37}.py::test_{i}" for i in range(n)]


def _merge_whole(n: int) -> Callable[[], Any]:
    ids = _ids(n)
    claim = collected(ids)
    whole: ShardPlan = plan("e2e", None, 4, runner="pytest")
    outcomes = [
        ShardOutcome(
            i,
            tuple(TestResult(t, t, "e2e", Outcome.PASSED) for t in ids[i::4]),
            collected=claim,
        )
        for i in range(4)
    ]
    return lambda: merge(whole, outcomes)


CASES: dict[str, Callable[[int], Callable[[], Any]]] = {
    "the dealt split": lambda n: lambda: split_collected(dict.fromkeys(_ids(n), 1), 8),
    "a rerun's width at a start cost": lambda n: (
        lambda: assign(
            _ids(n), 16, {t: 0.5 + (i % 7) / 10 for i, t in enumerate(_ids(n))}, start_cost=1.0
        )
    ),
    "a whole-suite merge that checks collections": _merge_whole,
}


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_ten_times_the_tests_is_at_most_about_ten_times_the_work(
    build: Callable[[int], Callable[[], Any]],
) -> None:
    once, tenfold = lines_of(build(N)), lines_of(build(10 * N))
    assert tenfold / once <= BOUND, f"{once:,} lines for {N} tests, {tenfold:,} for {10 * N}"


def test_the_merge_case_checks_the_collections() -> None:
    """The merge case runs the same-collection check and finds all tests reported."""
    merged = _merge_whole(N)()
    assert isinstance(merged, MergedSuite)
    assert merged.run.shard_error is None and len(merged.run.tests) == N
