"""What `/metrics` says about the operator, in series a platform team can alert on
(docs/metrics.md lists them with example queries).

Every label has a bounded set of values: ``namespace`` (where StagingValidations
live), ``phase`` (the engine's Phase), ``outcome`` (a fixed word list), ``class`` (the
FailureClass) and ``code`` (the HTTP status, or ``other``). Never a test id, suite name
or object name: those grow with what users write and would make every series a new one.

:func:`observe_decision` turns one decision (the state before and after) into the
counts it adds; it is pure and runs in the worker with the rest of a write
(`k8s/offload.py`), so counting failures of a 100k-test iteration costs the loop
nothing. :class:`Phases` keeps each object's phase for the ``greenloop_validations``
gauge, collected at scrape time so an object that is gone leaves no stale series.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason, State
from greenloop.core.model import FailureClass

__all__ = [
    "FAILURES",
    "ITERATIONS",
    "ITERATION_SECONDS",
    "LOOP_LAG",
    "REDEPLOYS",
    "SUITE_SECONDS",
    "UPLOADS_BY_CODE",
    "UPLOAD_CODES",
    "Observed",
    "Phases",
    "iteration_outcome",
    "measure_loop_lag",
    "observe_decision",
    "record",
    "upload_code",
]

ITERATION_OUTCOMES = ("passed", "failed", "runner_error")
REDEPLOY_OUTCOMES = ("ok", "failed")
#: The answers the results endpoint gives (k8s/results.py); any other code is "other".
UPLOAD_CODES = frozenset({200, 400, 401, 403, 404, 405, 408, 409, 413, 415, 500, 503})
#: Suites and iterations last seconds to hours (a suite's timeout is at most a day).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)

ITERATIONS = Counter(
    "greenloop_iterations_total",
    "Iterations ended, by outcome: passed (no failing test), failed, runner_error (a "
    "suite produced no results)",
    ["namespace", "outcome"],
)
REDEPLOYS = Counter(
    "greenloop_redeploys_total",
    "Redeploys carried out, by outcome: ok (rolled out and healthy) or failed",
    ["namespace", "outcome"],
)
FAILURES = Counter(
    "greenloop_failures_total",
    "Failing tests at the end of each iteration, by failure class",
    ["namespace", "class"],
)
SUITE_SECONDS = Histogram(
    "greenloop_suite_duration_seconds",
    "How long a suite's Job ran, from its start to its completion",
    ["namespace"],
    buckets=DURATION_BUCKETS,
)
ITERATION_SECONDS = Histogram(
    "greenloop_iteration_duration_seconds",
    "How long an iteration took, from its first Job to its decision",
    ["namespace"],
    buckets=DURATION_BUCKETS,
)
#: A 100 ms heartbeat's lateness: from "on time" to seconds of a frozen loop.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HEARTBEAT_SECONDS = 0.1
LOOP_LAG = Histogram(
    "greenloop_event_loop_lag_seconds",
    "How late the event loop ran a 100 ms heartbeat: every object's tick, watch and "
    "upload answer waits as long",
    buckets=LAG_BUCKETS,
)
UPLOADS_BY_CODE = Counter(
    "greenloop_uploads_total", "Uploads answered by the results endpoint, by HTTP code", ["code"]
)


async def measure_loop_lag() -> None:
    """Sleep 100 ms at a time for as long as the operator runs, recording how much later
    than asked each wake-up came (issue 17: a loop busy with one object's parse is an
    outage for all of them). Cancelled with the loop's other tasks at shutdown."""
    now = asyncio.get_running_loop().time
    while True:
        asked = now() + HEARTBEAT_SECONDS
        await asyncio.sleep(HEARTBEAT_SECONDS)
        LOOP_LAG.observe(max(0.0, now() - asked))


@dataclass(frozen=True, slots=True)
class Observed:
    """What one decision adds to the counters (all label values bounded)."""

    iterations: tuple[tuple[str, float], ...] = ()  # (outcome, duration seconds)
    redeploys: tuple[str, ...] = ()  # outcomes
    failures: dict[str, int] = field(default_factory=dict)  # failure class -> tests


def iteration_outcome(record: engine.IterationRecord) -> str:
    if record.suite_errors:
        return "runner_error"
    return "failed" if record.ran_failed or record.failed else "passed"


def observe_decision(before: State | None, after: State) -> Observed:
    """The counts going from ``before`` to ``after`` adds: the iterations that ended in
    this step (with the failing tests by class at their end), and a redeploy that
    finished. A repeated step (same state) adds nothing."""
    if before is not None and before.round != after.round:
        before = None  # a new round: only what the new state itself closed counts
    was_open = {r.iteration for r in (before.history if before else ()) if r.finished is None}
    ended = [
        r
        for r in after.history
        if r.finished is not None and (before is None or r.iteration in was_open)
    ]
    iterations = tuple(
        (iteration_outcome(r), max(0.0, (r.finished or r.started) - r.started)) for r in ended
    )
    failures: dict[str, int] = {}
    if ended:
        classes = Tally(str(engine.effective_class(after, t)) for t in engine.failing(after))
        failures = {c: n for c, n in classes.items() if c in _CLASSES}
    redeploys: tuple[str, ...] = ()
    if (
        before is not None
        and before.phase is Phase.REDEPLOYING
        and after.phase is not Phase.REDEPLOYING
    ):
        failed = after.reason is Reason.REDEPLOY_FAILED
        redeploys = ("failed" if failed else "ok",)
    return Observed(iterations, redeploys, failures)


_CLASSES = frozenset(c.value for c in FailureClass)


def record(namespace: str, observed: Observed) -> None:
    for outcome, seconds in observed.iterations:
        ITERATIONS.labels(namespace, outcome).inc()
        ITERATION_SECONDS.labels(namespace).observe(seconds)
    for outcome in observed.redeploys:
        REDEPLOYS.labels(namespace, outcome).inc()
    for cls, n in observed.failures.items():
        FAILURES.labels(namespace, cls).inc(n)


def upload_code(status: int) -> str:
    return str(status) if status in UPLOAD_CODES else "other"


class Phases(Collector):
    """Each reconciled object's phase, as ``greenloop_validations{namespace, phase}``."""

    def __init__(self) -> None:
        self._phase: dict[tuple[str, str], str] = {}

    def set(self, namespace: str, name: str, phase: str) -> None:
        if phase in _PHASES:
            self._phase[(namespace, name)] = phase

    def forget(self, namespace: str, name: str) -> None:
        self._phase.pop((namespace, name), None)

    def counts(self) -> dict[tuple[str, str], int]:
        return dict(Tally((ns, phase) for (ns, _), phase in self._phase.items()))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "greenloop_validations",
            "StagingValidations this operator reconciles, by namespace and phase",
            labels=["namespace", "phase"],
        )
        for (namespace, phase), n in sorted(self.counts().items()):
            family.add_metric([namespace, phase], n)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return ()  # collected at scrape time only


_PHASES = frozenset(p.value for p in Phase)
PHASES = Phases()
REGISTRY.register(PHASES)
