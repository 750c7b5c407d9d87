"""Reruns without a redeploy (docs/design.md §1): only non-redeployable failures rerun
up to ``flakeRetries`` times; a test that then passes is listed as flaky; still failing →
Stalled with the class a person must look at as the reason, and a hint saying why no
redeploy was tried. Rules: ``engine.rules.rerun_may_reveal_flake``, ``class_to_name``."""

from __future__ import annotations

import pytest

from greenloop.core import engine
from greenloop.core.engine import Phase
from greenloop.core.model import RerunMode, Target
from tests.unit.engine.cases import (
    GREEN,
    ONE,
    ONE_SUITE,
    TWO_SUITES,
    Case,
    End,
    Row,
    end_tests,
    row_tests,
    scenario_tests,
)
from tests.unit.engine.steps import one_suite
from tests.unit.scenario import ASSERT, HTTP_403, HTTP_503, IMPORT, RESTART, bad, make_spec, ok

NO_TARGET = Target()


CASES = [
    Case(
        "403 never redeploys; one retry then AuthError",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), bad("c2", HTTP_403)], "extended": [ok("e1"), ok("e2")]}],
        Phase.STALLED,
        "AuthError",
        2,
        0,
    ),
    Case(
        "broken test code with no retries stalls at once",
        make_spec(*TWO_SUITES, flake_retries=0),
        [{"critical": [ok("c1"), bad("c2", IMPORT)], "extended": [ok("e1"), ok("e2")]}],
        Phase.STALLED,
        "TestCodeError",
        1,
        0,
    ),
    Case(
        "an assertion that passes on the retry is flaky",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), bad("c2", ASSERT)], "extended": [ok("e1"), ok("e2")]}, GREEN],
        Phase.PASSED,
        "GoalMet",
        2,
        0,
        ("c2",),
    ),
    Case(
        "Surefire's own rerun pass is listed as flaky",
        make_spec(*TWO_SUITES),
        [{"critical": [ok("c1"), ok("c2", flaky=True)], "extended": GREEN["extended"]}],
        Phase.PASSED,
        "GoalMet",
        1,
        0,
        ("c2",),
    ),
]


test_scenario, test_a_restart_between_any_two_steps_changes_nothing = scenario_tests(CASES)


ROWS = [
    Row(
        # A redeploy resets the flake-retry count: the failure after it gets its retry.
        "a redeploy gives the next failure its retry again",
        make_spec(*ONE_SUITE, flake_retries=1),
        [
            {"critical": [bad("c1", ASSERT), ok("c2")]},  # 1: assertion -> retry
            {"critical": [bad("c1", HTTP_503)]},  # 2: 503 -> redeploy
            {"critical": [bad("c1", ASSERT)]},  # 3: assertion -> retry again
            {"critical": [ok("c1")]},  # 4: green
        ],
        Phase.PASSED,
        "GoalMet",
        4,
        1,
        ("c1",),
    ),
    Row(
        # A flaky test that fails again is a failure, no longer flaky.
        "a flaky test that fails again leaves the flaky list",
        make_spec(*ONE_SUITE, rerun=RerunMode.ALL),
        [
            {"critical": [ok("c1", flaky=True), bad("c2", ASSERT)]},
            {"critical": [bad("c1", ASSERT), ok("c2")]},
        ],
        Phase.STALLED,
        "Assertion",
        2,
        0,
        ("c2",),
    ),
]


test_engine_rule = row_tests(ROWS)


ENDS = [
    End(
        "broken test code",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", IMPORT), ok("c2")]}],
        "TestCodeError",
        "1 TestCodeError still failing after 0 reruns without a redeploy: "
        "the test code itself is broken; a redeploy cannot fix it",
    ),
    End(
        "rejected credentials",
        make_spec(*ONE),
        [{"critical": [bad("c1", HTTP_403), ok("c2")]}],
        "AuthError",
        "1 AuthError still failing after 1 rerun without a redeploy: "
        "credentials are rejected; a redeploy cannot fix them",
    ),
    End(
        "a class outside redeployOn",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", ASSERT), ok("c2")]}],
        "Assertion",
        "1 Assertion still failing after 0 reruns without a redeploy: "
        "Assertion is not in policy.redeployOn",
    ),
    End(
        # By the built-in order, not by name: "Assertion" sorts before "AuthError".
        "several classes: the first in the built-in order is named",
        make_spec(*ONE, flake_retries=0),
        [{"critical": [bad("c1", ASSERT), bad("c2", HTTP_403)]}],
        "AuthError",
        "1 AuthError, 1 Assertion still failing after 0 reruns without a redeploy: "
        "credentials are rejected; a redeploy cannot fix them",
    ),
]


test_how_a_round_ends_reads = end_tests(ENDS)


@pytest.mark.parametrize(
    ("message", "target", "reason", "hint"),
    [
        (HTTP_403, RESTART, "AuthError", "credentials are rejected; a redeploy cannot fix them"),
        (
            IMPORT,
            RESTART,
            "TestCodeError",
            "the test code itself is broken; a redeploy cannot fix it",
        ),
        (ASSERT, RESTART, "Assertion", "Assertion is not in policy.redeployOn"),
        (HTTP_403, NO_TARGET, "AuthError", "credentials are rejected; a redeploy cannot fix them"),
        (
            HTTP_503,
            NO_TARGET,
            "ServiceUnavailable",
            "no redeploy target this mode can use is configured (spec.target)",
        ),
    ],
    ids=["auth", "test code", "not in redeployOn", "auth, no target", "503, no target"],
)
def test_a_stall_says_why_a_redeploy_was_not_tried(
    message: str, target: Target, reason: str, hint: str
) -> None:
    spec = make_spec(("api", "P1"), target=target, flake_retries=0)
    state = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", message)).state
    assert (state.phase, str(state.reason)) == (Phase.STALLED, reason)
    assert state.message == f"1 {reason} still failing after 0 reruns without a redeploy: {hint}"


def test_a_rerun_without_redeploy_is_recorded_with_each_class_counted() -> None:
    spec = make_spec(("api", "P1"), flake_retries=2)
    rerun = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", ASSERT), bad("b", HTTP_403))
    assert rerun.state.history[0].detail == (
        "rerun 1/2 without redeploy (1 AuthError, 1 Assertion)"
    )
