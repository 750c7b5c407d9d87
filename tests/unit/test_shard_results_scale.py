"""Merging a sharded suite's results is linear in its tests (issue 17): 8 shards of T
tests merge with the same work per test at T as at 10·T, however the shards lined up.

Counted, never timed: the Python lines greenloop's core runs in `shard_results.merge`
(tests/support/scale_steps.py) for T tests and for 10·T: 10 times as many when linear,
100 when a loop visits every test per test (seen: reading `plan.owner`, a property
that builds its map, once per result, fails two cases at 95 times). bench/store_scale.py
prints the same counts, and CPU times, as ratios.
"""

from __future__ import annotations

import pytest

from greenloop.core.shard_results import MergedSuite
from tests.support.scale_steps import MERGE_STEPS, PACKAGE, Builder

from .counting import lines_of

T = 400
#: 10·T tests may cost at most this many times T's (linear: 10; quadratic: 100).
BOUND = 12.0


@pytest.mark.parametrize("build", MERGE_STEPS.values(), ids=MERGE_STEPS.keys())
def test_ten_times_the_tests_is_at_most_about_ten_times_the_merge_s_work(build: Builder) -> None:
    once, tenfold = lines_of(build(T), PACKAGE), lines_of(build(10 * T), PACKAGE)
    assert tenfold / once <= BOUND, f"{once:,} lines for {T} tests, {tenfold:,} for {10 * T}"


def test_the_cases_are_what_they_say() -> None:
    """Each case merges as its name says (so the counts are of the path named)."""
    runs = {}
    for name, build in MERGE_STEPS.items():
        merged = build(T)()
        assert isinstance(merged, MergedSuite)
        runs[name] = merged.run
    assert len(runs["a rerun, every shard reported"].tests) == T
    assert len(runs["a whole suite the runner split"].tests) == T
    assert len(runs["a whole suite every shard ran"].split_ignored) == T
    assert runs["a rerun with a shard lost"].shard_error is not None
    assert 0 < len(runs["a rerun with a shard lost"].unrun) < T
