"""The operator's metrics (k8s/metrics.py): what one decision adds, and labels that stay
within fixed sets — namespace and phase, never a test, suite or object name."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest

from greenloop.core import engine
from greenloop.core.engine import (
    Decision,
    Phase,
    RedeployDone,
    RedeployStarted,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.model import (
    FailureClass,
    Outcome,
    Suite,
    Target,
    TestResult,
    ValidationSpec,
)
from greenloop.k8s import metrics
from greenloop.k8s.metrics import Observed, observe_decision

SPEC = ValidationSpec(suites=(Suite("api", ("pytest",)),), target=Target(command=("./restart",)))
HTTP_503 = "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://app/ws'"
ASSERT = "AssertionError: assert 'draft' == 'paid'"
SECRET_ID = "tests/test_private_customer_4711.py::test_refund"  # must never be a label


def passed(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.PASSED)


def failed(test_id: str, message: str) -> TestResult:
    return TestResult(
        id=test_id, name=test_id, classname="", outcome=Outcome.FAILED, message=message
    )


def suite_done(decision: Decision, *tests: TestResult, error: str | None = None) -> Decision:
    run = SuiteRun("api", tests, error=error, started=1.0, finished=41.0)
    return engine.on_suite(SPEC, decision.state, SuiteFinished(decision.state.action_id, run), 60.0)


START = engine.begin(SPEC, 0.0)
ALL_PASS = suite_done(START, passed("a"), passed(SECRET_ID))
ONE_503 = suite_done(START, passed("a"), failed(SECRET_ID, HTTP_503))
ONE_ASSERT = suite_done(START, passed("a"), failed(SECRET_ID, ASSERT))
NO_RESULTS = suite_done(START, error="Job api-1 completed without uploading JUnit XML")
REDEPLOYING = engine.on_redeploy_started(ONE_503.state, RedeployStarted(ONE_503.state.action_id))
REDEPLOYED = engine.on_redeploy(SPEC, REDEPLOYING.state, RedeployDone(True, "ok"), 90.0)
REDEPLOY_FAILED = engine.on_redeploy(SPEC, REDEPLOYING.state, RedeployDone(False, "gone"), 90.0)

CASES: list[tuple[str, Decision | None, Decision, Observed]] = [
    ("a round begins: nothing ended", None, START, Observed()),
    ("a repeated step adds nothing", ALL_PASS, ALL_PASS, Observed()),
    ("an iteration passes", START, ALL_PASS, Observed((("passed", 60.0),))),
    (
        "an iteration fails: its failing tests by class",
        START,
        ONE_503,
        Observed((("failed", 60.0),), failures={"ServiceUnavailable": 1}),
    ),
    (
        "an iteration stalls on an assertion",
        START,
        ONE_ASSERT,
        Observed((("failed", 60.0),), failures={"Assertion": 1}),
    ),
    (
        "a suite with no results is a runner error",
        START,
        NO_RESULTS,
        Observed((("runner_error", 60.0),), failures={}),
    ),
    ("a redeploy started: nothing yet", ONE_503, REDEPLOYING, Observed()),
    ("a redeploy that worked", REDEPLOYING, REDEPLOYED, Observed(redeploys=("ok",))),
    ("a redeploy that failed", REDEPLOYING, REDEPLOY_FAILED, Observed(redeploys=("failed",))),
]


@pytest.mark.parametrize(
    ("before", "after", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_what_a_decision_adds(before: Decision | None, after: Decision, expected: Observed) -> None:
    assert observe_decision(before.state if before else None, after.state) == expected


def test_the_fixtures_are_the_transitions_they_are_named_for() -> None:
    assert ONE_503.state.phase is Phase.REDEPLOYING
    assert REDEPLOYED.state.phase is Phase.TESTING
    assert REDEPLOY_FAILED.state.phase is Phase.STALLED


@pytest.mark.parametrize(
    ("status", "label"), [(200, "200"), (413, "413"), (503, "503"), (418, "other"), (999, "other")]
)
def test_upload_codes_outside_the_endpoints_answers_are_other(status: int, label: str) -> None:
    assert metrics.upload_code(status) == label


def test_the_phase_gauge_counts_objects_and_forgets_the_gone() -> None:
    phases = metrics.Phases()
    phases.set("shop", "checkout", "Testing")
    phases.set("shop", "cart", "Testing")
    phases.set("shop", "cart", "Passed")  # moved on: counted once, where it is now
    phases.set("pay", "refunds", "Stalled")
    phases.set("pay", "odd", "NotAPhase")  # never a label value outside Phase
    assert phases.counts() == {("shop", "Testing"): 1, ("shop", "Passed"): 1, ("pay", "Stalled"): 1}
    phases.forget("pay", "refunds")
    assert ("pay", "Stalled") not in phases.counts()


ALLOWED = {
    "namespace": None,  # any namespace: bounded by where objects live
    "phase": {p.value for p in Phase},
    "outcome": {"passed", "failed", "runner_error", "ok", "stop", "error"},
    "class": {c.value for c in FailureClass},
    "code": {str(c) for c in metrics.UPLOAD_CODES} | {"other"},
}


def test_every_greenloop_series_has_only_bounded_labels() -> None:
    """Drive every series once, with a test id and object name a user chose, then read
    the registry: only the allowed label names, each within its set."""
    for before, after in [(START, ONE_503), (REDEPLOYING, REDEPLOY_FAILED), (START, NO_RESULTS)]:
        metrics.record("shop", observe_decision(before.state, after.state))
    metrics.SUITE_SECONDS.labels("shop").observe(40.0)
    metrics.UPLOADS_BY_CODE.labels(metrics.upload_code(418)).inc()
    metrics.PHASES.set("shop", "customer-4711-private", "Redeploying")
    try:
        seen = 0
        for family in REGISTRY.collect():
            if not family.name.startswith("greenloop_"):
                continue
            for sample in family.samples:
                for name, value in sample.labels.items():
                    if name == "le":  # a histogram's bucket bound
                        continue
                    assert name in ALLOWED, (family.name, name)
                    allowed = ALLOWED[name]
                    assert allowed is None or value in allowed, (family.name, name, value)
                    seen += 1
        assert seen
        text = generate_latest(REGISTRY).decode()
        assert 'greenloop_validations{namespace="shop",phase="Redeploying"} 1.0' in text
        assert "4711" not in text
    finally:
        metrics.PHASES.forget("shop", "customer-4711-private")


def late_heartbeats(above: float) -> float:
    """How many heartbeats so far came more than ``above`` seconds late (a bucket bound)."""
    count = REGISTRY.get_sample_value("greenloop_event_loop_lag_seconds_count") or 0.0
    within = REGISTRY.get_sample_value(
        "greenloop_event_loop_lag_seconds_bucket", {"le": str(above)}
    )
    return count - (within or 0.0)


def test_a_blocked_event_loop_shows_as_a_late_heartbeat() -> None:
    """Issue 17: what holds the loop (a parse on it) shows in the lag histogram. The loop
    is held for 0.4 s while the heartbeat sleeps its 0.1 s: that beat is >= 0.3 s late."""
    import asyncio
    import time

    async def hold_the_loop() -> None:
        heartbeat = asyncio.create_task(metrics.measure_loop_lag())
        await asyncio.sleep(0.05)  # the heartbeat is asleep
        time.sleep(0.4)  # the point: the loop is held
        await asyncio.sleep(0.15)  # it wakes, records, sleeps again
        heartbeat.cancel()

    before = late_heartbeats(0.25)
    asyncio.run(hold_the_loop())
    assert late_heartbeats(0.25) == before + 1
