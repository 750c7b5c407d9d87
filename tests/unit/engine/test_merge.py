"""One suite's results merged into state (``engine.merge``): one record per test, a
whole-suite run the new truth for its suite, a failure's first failure on record."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase, RunSuites, SuiteFinished, SuiteRun
from greenloop.core.model import RerunMode
from tests.unit.engine.cases import GREEN, TWO_SUITES
from tests.unit.engine.steps import CountingId, hashes_while
from tests.unit.scenario import ASSERT, bad, make_spec, ok, play


def test_a_test_that_vanishes_from_a_whole_suite_run_is_forgotten() -> None:
    spec = make_spec(*TWO_SUITES, rerun=RerunMode.ALL)
    first = {"critical": [ok("c1"), bad("gone", ASSERT)], "extended": GREEN["extended"]}
    second = {"critical": [ok("c1")], "extended": GREEN["extended"]}
    state = play(spec, [first, second]).state
    assert "gone" not in state.tests
    assert state.phase is Phase.PASSED


def test_a_test_that_never_failed_has_no_failure_on_record() -> None:
    spec = make_spec(("e2e", "P1"))
    state = play(spec, [{"e2e": [ok("a"), bad("b", ASSERT)]}, {"e2e": [ok("b")]}]).state
    a = state.tests["a"]
    assert (a.failed_runs, a.last_failed, a.first_failure) == (0, 0, None)


def rerun_of(n: int, *, passing: bool) -> int:
    """The ids hashed while the engine merges (and decides on) a rerun of ``n`` failed
    tests that now pass, or fail again."""
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    ids = [CountingId(f"tests/test_{k:06d}.py::test_it") for k in range(n)]
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    failed = SuiteRun("e2e", tests=tuple(bad(i, ASSERT) for i in ids))
    first = engine.on_suite(spec, start.state, SuiteFinished(start.action.id, failed), 1.0)
    rerun = first.action
    assert isinstance(rerun, RunSuites)
    assert len(rerun.suites[0].test_ids or ()) == n
    again = tuple(ok(i) if passing else bad(i, ASSERT) for i in ids)
    event = SuiteFinished(rerun.id, SuiteRun("e2e", tests=again, selected=rerun.suites[0].test_ids))
    return hashes_while(lambda: engine.on_suite(spec, first.state, event, 2.0))


@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing again"])
def test_merging_a_rerun_is_linear_in_the_tests_it_selected(passing: bool) -> None:
    # Issue 17: a rerun of 30,000 failed tests took 44 s, a set of the selection built
    # once per result. Twice the tests may cost twice the work, not four times.
    n = 200
    assert rerun_of(2 * n, passing=passing) <= 2.5 * rerun_of(n, passing=passing)
