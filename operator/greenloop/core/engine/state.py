"""The engine's state (all a shell must remember, docs/design.md §5) and the queries on it
that the engine, status and report share: counts, failing tests, root causes, the
failure signature, and the action a state waits on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from greenloop.core.classify import is_failing
from greenloop.core.engine.events import (
    Action,
    ActionKind,
    AwaitApproval,
    Finish,
    Phase,
    Reason,
    Redeploy,
    RunSuites,
    SuiteSelection,
    action_id,
)
from greenloop.core.fingerprint import Fingerprint
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult

# Storage budget (docs/design.md §5): what one state may hold, whatever the suites print.
MAX_HISTORY = 20  # iterations kept in state (and shown in status)
MAX_EVIDENCE = 240  # characters of one evidence line kept in state
MAX_NOTES = 12  # notes / observations kept per iteration
MAX_NOTE = 400  # characters of one note

# ---------------------------------------------------------------------------
# State


@dataclass(frozen=True, slots=True)
class FirstFailure:
    """How a test first failed in this round: what the report's why-chain tells when it
    passes later."""

    iteration: int
    failure_class: FailureClass
    evidence: str


@dataclass(frozen=True, slots=True)
class TestRecord:
    """The latest knowledge about one test, merged across iterations: one record per
    test, never one per iteration (docs/design.md §5)."""

    __test__ = False

    id: str
    suite: str
    priority: str
    outcome: Outcome
    iteration: int  # the iteration of the latest result that counts
    diagnosis: Diagnosis | None = None
    depends_on: tuple[str, ...] = ()
    first_failure: FirstFailure | None = None
    failed_runs: int = 0  # runs in this round in which it failed
    last_failed: int = 0  # the last iteration in which it failed (0: never)
    # The seconds its latest reported result took (0: never reported one): what balances
    # a sharded suite's next run (docs/design.md §4.1). One float per test.
    seconds: float = 0.0

    @property
    def failing(self) -> bool:
        return self.diagnosis is not None


@dataclass(frozen=True, slots=True)
class FlakyTest:
    id: str
    suite: str
    iteration: int  # the iteration in which it passed again
    evidence: str  # how it had failed


@dataclass(frozen=True, slots=True)
class IterationRecord:
    iteration: int
    started: float
    finished: float | None = None
    passed: int = 0
    failed: int = 0
    action: ActionKind | None = None
    reason: Reason | None = None
    detail: str = ""  # one line: what was decided and why
    ran: int = 0  # how many test results this iteration produced (that counted)
    ran_passed: int = 0  # of those, how many passed; ``passed`` counts the whole round
    ran_failed: int = 0  # of those, how many failed (Dependent skips included)
    observed: tuple[str, ...] = ()  # what the target showed while the tests ran
    notes: tuple[str, ...] = ()  # what greenloop did and its output (redeploy, failFast)
    suite_errors: tuple[tuple[str, str], ...] = ()
    fingerprint: str = ""  # the digest of the targets' fingerprint its results came from


#: Bound on the round and step counters of a stored state: they go into Job names and
#: labels (≤ 63 characters), and no real round count comes near it.
MAX_COUNTER = 10**6


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.PENDING
    iteration: int = 0
    started_at: float | None = None
    tests: Mapping[str, TestRecord] = field(default_factory=dict)
    flaky: Mapping[str, FlakyTest] = field(default_factory=dict)
    suite_errors: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # suite -> (n, why)
    history: tuple[IterationRecord, ...] = ()  # the last MAX_HISTORY iterations
    redeploys: int = 0
    retries: int = 0  # reruns without a redeploy since the last redeploy
    running: tuple[SuiteSelection, ...] = ()  # the batch in flight (RunSuites)
    reported: tuple[str, ...] = ()  # suites of that batch already reported
    pending: tuple[tuple[SuiteSelection, ...], ...] = ()  # later priority groups (failFast)
    next_run: tuple[SuiteSelection, ...] = ()  # what runs after the redeploy in progress
    # A digest of the failing (id, class) pairs when the redeploy was decided: all "did
    # the redeploy change anything" needs, in 64 characters instead of one pair per test.
    before_redeploy: str | None = None
    last_action: ActionKind | None = None
    reason: Reason | None = None
    message: str = ""
    generation: int = 0
    round: int = 1
    step: int = 0  # actions so far in this iteration
    redeploy_reason: str = ""  # the in-flight Redeploy's reason
    redeploy_started: bool = False  # the in-flight Redeploy was triggered
    selection_misses: Mapping[str, int] = field(default_factory=dict)  # suite -> times
    ignored_results: int = 0  # results for tests that were not selected (this round)
    permanent_errors: tuple[str, ...] = ()  # suites whose RunnerError a rerun cannot fix
    # The targets' fingerprint this round's results were gathered on (None: not observed).
    fingerprint: Fingerprint | None = None
    # The greenloop.dev/rerun annotation's value when last looked at; None: never looked.
    rerun_seen: str | None = None
    round_reason: Reason | None = None  # why this round started (None: the first round)
    # suite -> ((shards, seconds beyond its tests), ...): the latest run's overhead at
    # each of the last two widths the suite ran in, newest first (docs/design.md §4.1,
    # shard_results.start_cost); four numbers per suite; a round re-learns them.
    shard_overheads: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)

    @property
    def action_id(self) -> str:
        return action_id(self.round, self.iteration, self.step)


@dataclass(frozen=True, slots=True)
class Decision:
    state: State
    action: Action


# ---------------------------------------------------------------------------
# Queries on state (shared by the engine, status and report)


@dataclass(frozen=True, slots=True)
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def tally(records: Iterable[TestRecord]) -> Counts:
    """The one place outcomes are counted: failing (any class, NotRerun included),
    passed, and the rest skipped."""
    return _count((record.failing, record.outcome) for record in records)


def tally_results(results: Iterable[TestResult]) -> Counts:
    """The same count over raw results (a progress line): failing as the classifier
    sees it (a dependency skip fails), passed, the rest skipped."""
    return _count((is_failing(result), result.outcome) for result in results)


def _count(outcomes: Iterable[tuple[bool, Outcome]]) -> Counts:
    passed = failed = skipped = 0
    for is_failed, outcome in outcomes:
        if is_failed:
            failed += 1
        elif outcome is Outcome.PASSED:
            passed += 1
        else:
            skipped += 1
    return Counts(passed, failed, skipped)


def failing(state: State) -> list[TestRecord]:
    return [t for t in state.tests.values() if t.failing]


def effective_class(state: State, record: TestRecord) -> FailureClass:
    """The class that decides what to do: a Dependent's is its root's."""
    return class_of_root(root_of(state, record))


def class_of_root(root: TestRecord) -> FailureClass:
    """A root's class: Dependent when the chain ends at a test with no diagnosis."""
    if root.diagnosis is None:
        return FailureClass.DEPENDENT
    return root.diagnosis.failure_class


def root_of(state: State, record: TestRecord) -> TestRecord:
    """Follow Dependent links to the test that actually failed (cycle-safe)."""
    seen = {record.id}
    current = record
    while (
        current.diagnosis is not None
        and current.diagnosis.failure_class is FailureClass.DEPENDENT
        and current.diagnosis.root_cause
    ):
        nxt = state.tests.get(current.diagnosis.root_cause)
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        current = nxt
    return current


def roots_of(state: State, records: Iterable[TestRecord]) -> dict[str, TestRecord]:
    """:func:`root_of` of each record (id -> root) in one pass: every test of a chain of
    Dependents is walked once, not once from each test after it (n² steps for n)."""
    roots: dict[str, TestRecord] = {}
    for record in records:
        path: list[TestRecord] = []
        on_path: dict[str, int] = {}  # id -> its place in path
        current: TestRecord | None = record
        while current is not None and current.id not in roots:
            on_path[current.id] = len(path)
            path.append(current)
            nxt = _dependency(state, current)
            if nxt is not None and nxt.id in on_path:
                # A cycle: root_of stops at the test it would visit twice, so a test on
                # the cycle has the one before it as root, and a test leading into it the
                # last one walked.
                start = on_path[nxt.id]
                for i, test in enumerate(path):
                    roots[test.id] = path[i - 1] if i > start else path[-1]
                current = None
            elif nxt is None:
                for test in path:
                    roots[test.id] = path[-1]
                current = None
            else:
                current = nxt
        if current is not None:  # reached a test already resolved: the same root
            for test in path:
                roots[test.id] = roots[current.id]
    return roots


def _dependency(state: State, record: TestRecord) -> TestRecord | None:
    """The test a Dependent names as its root cause, when state knows it."""
    diagnosis = record.diagnosis
    if (
        diagnosis is None
        or diagnosis.failure_class is not FailureClass.DEPENDENT
        or not diagnosis.root_cause
    ):
        return None
    return state.tests.get(diagnosis.root_cause)


def durations(state: State, suite: str) -> dict[str, float]:
    """Test id -> the seconds its latest result took, for the suite's tests whose results
    reported one: what :func:`greenloop.core.shards.assign` balances shards by."""
    return {t.id: t.seconds for t in state.tests.values() if t.suite == suite and t.seconds > 0}


def counts(state: State) -> tuple[int, int, int]:
    """(passed, failed, skipped) over the distinct tests known."""
    c = tally(state.tests.values())
    return c.passed, c.failed, c.skipped


def signature(state: State) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((t.id, t.diagnosis.failure_class.value) for t in failing(state) if t.diagnosis)
    )


def signature_digest(pairs: Iterable[tuple[str, str]]) -> str:
    """sha256 over the failing (id, class) pairs: equal digests, same failures."""
    h = hashlib.sha256()
    for test_id, cls in pairs:
        h.update(test_id.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update(cls.encode())
        h.update(b"\n")
    return h.hexdigest()


def current_action(state: State) -> Action:
    """The action a state is waiting on, so a restarted shell resumes where it stopped:
    collect (or start) the suites of the batch not yet reported, wait for the approval of
    a redeploy, finish the redeploy (``started`` says it was already triggered), or report
    the end."""
    if state.phase is Phase.TESTING:
        remaining = tuple(s for s in state.running if s.suite not in state.reported)
        return RunSuites(state.action_id, state.iteration, remaining)
    if state.phase is Phase.WAITING_APPROVAL:
        return AwaitApproval(
            state.action_id, state.iteration, state.redeploy_reason, token=state.action_id
        )
    if state.phase is Phase.REDEPLOYING:
        return Redeploy(
            state.action_id,
            state.iteration,
            state.redeploy_reason,
            token=state.action_id,
            started=state.redeploy_started,
        )
    if state.phase in (Phase.PASSED, Phase.STALLED):
        return Finish(
            state.action_id, state.phase, state.reason or Reason.INTERNAL_ERROR, state.message
        )
    raise ValueError(f"a {state.phase.value} state has no action yet: call begin()")
