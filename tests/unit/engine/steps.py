"""Engine steps the rule files share: feed one suite's results, wait at the approval
gate, the specs and fingerprints those steps use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenloop.core import engine
from greenloop.core.engine import Decision, RunSuites, SuiteFinished, SuiteRun
from greenloop.core.fingerprint import Entry, fingerprint
from greenloop.core.model import Outcome, RedeployPolicy, TestResult, ValidationSpec
from tests.unit.scenario import HTTP_503, bad, make_spec, ok

API = make_spec(("api", "P1"))
V1 = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
V2 = fingerprint([Entry("Deployment/backend", "7c9a", "app", "app:v2")])
GATED = make_spec(("core", "P1"), redeploy=RedeployPolicy.REQUIRE_APPROVAL, deadline_seconds=600)


def finished(
    action: RunSuites, suite: str, *tests: object, error: str | None = None
) -> SuiteFinished:
    return SuiteFinished(action.id, SuiteRun(suite, tests=tuple(tests), error=error))  # type: ignore[arg-type]


def one_suite(
    spec: ValidationSpec, decision: engine.Decision, now: float, *tests: TestResult
) -> engine.Decision:
    action = decision.action
    assert isinstance(action, engine.RunSuites)
    run = SuiteRun("api", tests=tuple(tests), selected=action.suites[0].test_ids)
    return engine.on_suite(spec, decision.state, SuiteFinished(action.id, run), now)


def feed(spec_: ValidationSpec, decision: Decision, now: float, *tests: Any) -> Decision:
    action = decision.action
    assert isinstance(action, RunSuites), action
    run = SuiteRun("core", tests=tuple(tests), selected=action.suites[0].test_ids)
    return engine.on_suite(spec_, decision.state, SuiteFinished(action.id, run), now)


def waiting() -> Decision:
    """Iteration 1 of GATED failed with a 503: the redeploy waits for approval."""
    start = engine.begin(GATED, 100.0, rerun="")
    return feed(GATED, start, 110.0, ok("a"), bad("b", HTTP_503))


def skipped(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED)


class CountingId(str):
    """A test id that counts how often it is hashed: every set or dict lookup of an id
    hashes it, so the count is the work of matching ids, on any machine."""

    hashes = 0

    def __hash__(self) -> int:
        CountingId.hashes += 1
        return str.__hash__(self)


def hashes_while(step: Callable[[], object]) -> int:
    """How many times ``step`` hashed a :class:`CountingId`."""
    CountingId.hashes = 0
    step()
    return CountingId.hashes
