"""One suite's results merged into state (``engine.merge``): one record per test, a
whole-suite run the new truth for its suite, a failure's first failure on record."""

from __future__ import annotations

from greenloop.core.engine import Phase
from greenloop.core.model import RerunMode
from tests.unit.engine.cases import GREEN, TWO_SUITES
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
