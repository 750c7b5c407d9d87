"""The pure decision: (spec, state, event, now) -> (state, next action).

No I/O and no clock reads: both shells (the local runner and the operator) observe the
world, feed the engine the same events and carry out the action it returns. Everything
the engine needs to remember lives in ``State``, which serializes to plain data so the
operator can keep it in the object's status and survive a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from greenloop.core.classify import CompiledRules, compile_rules, diagnose
from greenloop.core.model import (
    DEFAULT_PRIORITY,
    Diagnosis,
    FailureClass,
    Outcome,
    RerunMode,
    TestResult,
    ValidationSpec,
)
from greenloop.core.words import plural


class Phase(StrEnum):
    PENDING = "Pending"
    TESTING = "Testing"
    REDEPLOYING = "Redeploying"
    PASSED = "Passed"
    STALLED = "Stalled"


class Reason(StrEnum):
    """Why a round ended (or what it is doing). Failure classes double as reasons."""

    GOAL_MET = "GoalMet"
    RUNNING_TESTS = "RunningTests"
    REDEPLOYING = "Redeploying"
    RETRYING = "RetryingFailedTests"
    REDEPLOY_INEFFECTIVE = "RedeployIneffective"
    REDEPLOY_FAILED = "RedeployFailed"
    EXPECTED_TESTS_MISSING = "ExpectedTestsMissing"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    RUNNER_ERROR = "RunnerError"
    NO_TESTS = "NoTestsReported"
    INTERRUPTED = "Interrupted"
    INTERNAL_ERROR = "InternalError"


class ActionKind(StrEnum):
    RUN = "Run"
    REDEPLOY = "Redeploy"
    RERUN = "Rerun"  # a rerun without redeploy: flake retry or runner-error retry
    DONE = "Done"
    STALL = "Stall"


# ---------------------------------------------------------------------------
# Events the shells report


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """What one suite process/Job produced. ``error`` is set when it produced no
    usable results (timeout, crash, missing or unreadable XML): a RunnerError."""

    suite: str
    tests: tuple[TestResult, ...] = ()
    error: str | None = None
    exit_code: int | None = None
    started: float = 0.0
    finished: float = 0.0
    selected: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TestsRan:
    runs: tuple[SuiteRun, ...]
    observed: tuple[str, ...] = ()  # what the target showed meanwhile (health, pods, events)


@dataclass(frozen=True, slots=True)
class RedeployDone:
    ok: bool
    message: str
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Actions the shells carry out


@dataclass(frozen=True, slots=True)
class SuiteSelection:
    suite: str
    test_ids: tuple[str, ...] | None = None  # None: the whole suite


@dataclass(frozen=True, slots=True)
class RunSuites:
    iteration: int
    suites: tuple[SuiteSelection, ...]


@dataclass(frozen=True, slots=True)
class Redeploy:
    iteration: int
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    phase: Phase
    reason: str
    message: str


Action = RunSuites | Redeploy | Finish


# ---------------------------------------------------------------------------
# State


@dataclass(frozen=True, slots=True)
class TestRecord:
    """The latest knowledge about one test, merged across iterations."""

    __test__ = False

    id: str
    suite: str
    priority: str
    outcome: Outcome
    iteration: int
    diagnosis: Diagnosis | None = None
    depends_on: tuple[str, ...] = ()
    message: str = ""

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
    action: str = ""
    reason: str = ""
    detail: str = ""  # one line: what was decided and why
    ran: int = 0  # how many test results this iteration produced
    failures: tuple[tuple[str, str, str], ...] = ()  # (id, class, evidence) seen this iteration
    observed: tuple[str, ...] = ()  # what the target showed while the tests ran
    notes: tuple[str, ...] = ()  # what greenloop did and its output (redeploy, failFast)
    suite_errors: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.PENDING
    iteration: int = 0
    started_at: float | None = None
    tests: Mapping[str, TestRecord] = field(default_factory=dict)
    flaky: Mapping[str, FlakyTest] = field(default_factory=dict)
    suite_errors: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # suite -> (n, why)
    history: tuple[IterationRecord, ...] = ()
    redeploys: int = 0
    retries: int = 0  # reruns without a redeploy since the last redeploy
    running: tuple[SuiteSelection, ...] = ()  # the batch in flight (RunSuites)
    pending: tuple[tuple[SuiteSelection, ...], ...] = ()  # later priority groups (failFast)
    next_run: tuple[SuiteSelection, ...] = ()  # what runs after the redeploy in progress
    before_redeploy: tuple[tuple[str, str], ...] | None = None  # failing (id, class) then
    last_action: str = ""
    reason: str = ""
    message: str = ""
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    state: State
    action: Action


# ---------------------------------------------------------------------------
# Queries on state (shared by the engine, status and report)


def failing(state: State) -> list[TestRecord]:
    return [t for t in state.tests.values() if t.failing]


def effective_class(state: State, record: TestRecord) -> FailureClass:
    """The class that decides what to do: a Dependent's is its root's."""
    root = root_of(state, record)
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


def counts(state: State) -> tuple[int, int, int]:
    """(passed, failed, skipped) over the distinct tests known."""
    passed = failed = skipped = 0
    for record in state.tests.values():
        if record.failing:
            failed += 1
        elif record.outcome is Outcome.PASSED:
            passed += 1
        else:
            skipped += 1
    return passed, failed, skipped


def signature(state: State) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((t.id, t.diagnosis.failure_class.value) for t in failing(state) if t.diagnosis)
    )


# ---------------------------------------------------------------------------
# Transitions


def begin(spec: ValidationSpec, now: float, *, generation: int = 1) -> Decision:
    """Start a round: iteration 1 runs every suite (grouped by priority under failFast)."""
    groups = _priority_groups(spec, [SuiteSelection(s.name) for s in spec.suites])
    first, rest = groups[0], tuple(groups[1:])
    state = State(
        phase=Phase.TESTING,
        iteration=1,
        started_at=now,
        running=first,
        pending=rest,
        history=(IterationRecord(iteration=1, started=now),),
        last_action=ActionKind.RUN,
        reason=Reason.RUNNING_TESTS,
        message=f"iteration 1: running {plural(len(spec.suites), 'suite')}",
        generation=generation,
    )
    return Decision(state, RunSuites(1, first))


def on_tests(spec: ValidationSpec, state: State, event: TestsRan, now: float) -> Decision:
    """Merge one batch of suite results; decide what comes next."""
    rules = compile_rules(spec.classification)
    state = _merge(spec, state, event, rules)
    record = _current(state)
    record = replace(record, observed=record.observed + event.observed)
    state = _with_current(state, record)

    # failFast runs one priority group at a time; lower ones wait while a higher one fails.
    if state.pending:
        batch_failed = any(
            run.error or any(state.tests[t.id].failing for t in run.tests if t.id in state.tests)
            for run in event.runs
        )
        if not (spec.policy.fail_fast and batch_failed):
            nxt, rest = state.pending[0], state.pending[1:]
            state = replace(state, running=nxt, pending=rest)
            return Decision(state, RunSuites(state.iteration, nxt))
        skipped = sum(len(g) for g in state.pending)
        state = replace(state, pending=())
        state = _annotate(state, f"failFast: {plural(skipped, 'lower-priority suite')} not run")

    return _decide(spec, state, now)


def on_redeploy(spec: ValidationSpec, state: State, event: RedeployDone, now: float) -> Decision:
    record = _current(state)
    state = _with_current(state, replace(record, notes=record.notes + event.notes))
    if not event.ok:
        return _finish(state, now, Phase.STALLED, Reason.REDEPLOY_FAILED, event.message)
    return _start_iteration(spec, state, now, state.next_run, ActionKind.RUN)


def interrupt(state: State, now: float, message: str) -> Decision:
    """The shell was stopped (Ctrl-C, shutdown): end with what is known."""
    return _finish(state, now, Phase.STALLED, Reason.INTERRUPTED, message)


def internal_error(state: State, now: float, message: str) -> Decision:
    """The shell failed in a way it could not turn into an event: end ``Stalled`` /
    ``InternalError`` with what is known, so status and report are written."""
    return _finish(state, now, Phase.STALLED, Reason.INTERNAL_ERROR, message)


def current_action(state: State) -> Action:
    """The action a state is waiting on, so a restarted shell resumes where it stopped:
    collect (or start) the batch in flight, finish the redeploy, or report the end."""
    if state.phase is Phase.TESTING:
        return RunSuites(state.iteration, state.running)
    if state.phase is Phase.REDEPLOYING:
        return Redeploy(state.iteration, state.history[-1].detail if state.history else "")
    if state.phase in (Phase.PASSED, Phase.STALLED):
        return Finish(state.phase, str(state.reason), state.message)
    raise ValueError(f"a {state.phase.value} state has no action yet: call begin()")


def _decide(spec: ValidationSpec, state: State, now: float) -> Decision:
    policy = spec.policy
    passed, failed, _ = counts(state)
    expected = spec.expected_tests

    # A suite that produced nothing is retried once; twice in a row needs a person.
    broken = {s: why for s, (n, why) in state.suite_errors.items() if n >= 2}
    if broken:
        detail = "; ".join(f"suite {s}: {why}" for s, why in sorted(broken.items()))
        return _finish(
            state, now, Phase.STALLED, Reason.RUNNER_ERROR, f"no results twice: {detail}"
        )
    retry_suites = sorted(s for s, (n, _) in state.suite_errors.items() if n == 1)

    if failed == 0 and not retry_suites:
        if not state.tests:
            return _finish(
                state, now, Phase.STALLED, Reason.NO_TESTS, "the suites reported no tests"
            )
        if expected is not None and passed < expected:
            missing = expected - passed
            return _finish(
                state,
                now,
                Phase.STALLED,
                Reason.EXPECTED_TESTS_MISSING,
                f"all {passed} tests that ran passed, but {expected} are expected: "
                f"{missing} never ran; rerunning cannot add them — check the suites' "
                "selection or spec.expectedTests",
            )
        goal = f"{passed}/{expected}" if expected is not None else f"{passed}/{passed}"
        return _finish(state, now, Phase.PASSED, Reason.GOAL_MET, f"{goal} tests passed")

    budget = _budget_spent(spec, state, now)
    if budget:
        return _finish(state, now, Phase.STALLED, Reason.BUDGET_EXHAUSTED, budget)

    current = signature(state)
    failing_now = failing(state)
    # Decide on each failure's root class; describe them as diagnosed (Dependent included).
    by_class: dict[FailureClass, int] = {}
    for t in failing_now:
        if t.diagnosis is not None:
            c = t.diagnosis.failure_class
            by_class[c] = by_class.get(c, 0) + 1
    redeployable = {
        c for c in (effective_class(state, t) for t in failing_now) if c in policy.redeploy_on
    }
    selection = _rerun_selection(spec, state, retry_suites)

    if state.last_action == ActionKind.REDEPLOY and state.before_redeploy == current:
        return _finish(
            state,
            now,
            Phase.STALLED,
            Reason.REDEPLOY_INEFFECTIVE,
            f"the redeploy changed nothing: the same {plural(len(current), 'test')} "
            f"fail with the same classes ({_class_summary(by_class)}); not redeploying again",
        )

    if redeployable and spec.target.can_redeploy:
        why = _class_summary(by_class)
        state = replace(
            state,
            phase=Phase.REDEPLOYING,
            running=(),
            redeploys=state.redeploys + 1,
            retries=0,
            next_run=selection,
            before_redeploy=current,
            last_action=ActionKind.REDEPLOY,
            reason=Reason.REDEPLOYING,
            message=f"iteration {state.iteration}: redeploying because of {why}",
        )
        state = _close_iteration(state, now, ActionKind.REDEPLOY, Reason.REDEPLOYING, why)
        return Decision(state, Redeploy(state.iteration, why))

    if state.retries < policy.flake_retries or (retry_suites and failed == 0):
        state = replace(state, retries=state.retries + 1)
        why = (
            f"rerun {state.retries}/{policy.flake_retries} without redeploy "
            f"({_class_summary(by_class) or 'runner error'})"
        )
        state = _close_iteration(state, now, ActionKind.RERUN, Reason.RETRYING, why)
        return _start_iteration(spec, state, now, selection, ActionKind.RERUN)

    reason, message = _stall_reason(spec, state, by_class)
    return _finish(state, now, Phase.STALLED, reason, message)


def _stall_reason(
    spec: ValidationSpec, state: State, by_class: Mapping[FailureClass, int]
) -> tuple[str, str]:
    """Name the class a person must look at: the first in the built-in order."""
    order = list(FailureClass)
    roots = [c for c in by_class if c is not FailureClass.DEPENDENT]
    chosen = min(roots, key=order.index) if roots else FailureClass.DEPENDENT
    summary = _class_summary(by_class)
    if chosen in spec.policy.redeploy_on and not spec.target.can_redeploy:
        hint = "no redeploy target is configured (spec.target)"
    elif chosen is FailureClass.TEST_CODE_ERROR:
        hint = "the test code itself is broken; a redeploy cannot fix it"
    elif chosen is FailureClass.AUTH_ERROR:
        hint = "credentials are rejected; a redeploy cannot fix them"
    else:
        hint = f"{chosen.value} is not in policy.redeployOn"
    return (
        chosen.value,
        f"{summary} still failing after {plural(state.retries, 'rerun')} "
        f"without a redeploy: {hint}",
    )


def _budget_spent(spec: ValidationSpec, state: State, now: float) -> str:
    policy = spec.policy
    if state.iteration >= policy.max_iterations:
        return f"maxIterations ({policy.max_iterations}) reached with failures left"
    if state.started_at is not None and now - state.started_at >= policy.deadline_seconds:
        return f"deadlineSeconds ({policy.deadline_seconds}) passed with failures left"
    return ""


def _rerun_selection(
    spec: ValidationSpec, state: State, retry_suites: Sequence[str]
) -> tuple[SuiteSelection, ...]:
    """rerun: Failed -> failing tests plus their dependents, per suite; suites that
    produced nothing run whole. rerun: All -> every suite whole."""
    if spec.policy.rerun is RerunMode.ALL:
        return tuple(SuiteSelection(s.name) for s in spec.suites)
    chosen = {t.id for t in failing(state)}
    # Dependents of a failing test rerun too, even if they last passed.
    changed = True
    while changed:
        changed = False
        for t in state.tests.values():
            if t.id not in chosen and any(d in chosen for d in t.depends_on):
                chosen.add(t.id)
                changed = True
    per_suite: dict[str, list[str]] = {}
    for test_id in chosen:
        per_suite.setdefault(state.tests[test_id].suite, []).append(test_id)
    # A suite that has never reported (failFast held it back) runs whole.
    reported = {t.suite for t in state.tests.values()} | set(state.suite_errors)
    out: list[SuiteSelection] = []
    for suite in spec.suites:  # spec order, grouped by priority below
        if suite.name in retry_suites or suite.name not in reported:
            out.append(SuiteSelection(suite.name))
        elif suite.name in per_suite:
            out.append(SuiteSelection(suite.name, tuple(sorted(per_suite[suite.name]))))
    return tuple(out)


def _start_iteration(
    spec: ValidationSpec,
    state: State,
    now: float,
    selection: tuple[SuiteSelection, ...],
    kind: ActionKind,
) -> Decision:
    nxt = state.iteration + 1
    groups = _priority_groups(spec, selection)
    what = ", ".join(
        f"{s.suite} ({plural(len(s.test_ids), 'test')})" if s.test_ids is not None else s.suite
        for s in selection
    )
    state = replace(
        state,
        phase=Phase.TESTING,
        iteration=nxt,
        running=groups[0],
        pending=tuple(groups[1:]),
        next_run=(),
        history=(*state.history, IterationRecord(iteration=nxt, started=now)),
        last_action=kind if kind is ActionKind.RERUN else state.last_action,
        reason=Reason.RUNNING_TESTS,
        message=f"iteration {nxt}: rerunning {what}",
    )
    return Decision(state, RunSuites(nxt, groups[0]))


def _finish(state: State, now: float, phase: Phase, reason: str, message: str) -> Decision:
    kind = ActionKind.DONE if phase is Phase.PASSED else ActionKind.STALL
    state = replace(
        state, phase=phase, reason=reason, message=message, running=(), pending=(), next_run=()
    )
    state = _close_iteration(state, now, kind, reason, message)
    return Decision(state, Finish(phase, reason, message))


def _close_iteration(
    state: State, now: float, action: ActionKind, reason: str, detail: str
) -> State:
    passed, failed, _ = counts(state)
    record = _current(state)
    if record.finished is not None:  # already closed (e.g. interrupted after a decision)
        return state
    record = replace(
        record,
        finished=now,
        passed=passed,
        failed=failed,
        action=action.value,
        reason=str(reason),
        detail=detail,
    )
    return _with_current(state, record)


def _annotate(state: State, note: str) -> State:
    record = _current(state)
    return _with_current(state, replace(record, notes=(*record.notes, note)))


def _current(state: State) -> IterationRecord:
    if not state.history:
        return IterationRecord(iteration=state.iteration, started=state.started_at or 0.0)
    return state.history[-1]


def _with_current(state: State, record: IterationRecord) -> State:
    history = state.history[:-1] if state.history else ()
    return replace(state, history=(*history, record))


def _merge(spec: ValidationSpec, state: State, event: TestsRan, rules: CompiledRules) -> State:
    before = state.tests
    tests = dict(before)
    flaky = dict(state.flaky)
    suite_errors = dict(state.suite_errors)
    record = _current(state)
    failures = list(record.failures)
    errors = list(record.suite_errors)
    ran = record.ran
    was_redeploy = state.last_action == ActionKind.REDEPLOY and state.iteration > 1

    for run in event.runs:
        if run.error is not None:
            n, _ = suite_errors.get(run.suite, (0, ""))
            suite_errors[run.suite] = (n + 1, run.error)
            errors.append((run.suite, run.error))
            continue
        suite_errors.pop(run.suite, None)
        if run.selected is None:
            # A whole-suite run is the new truth for that suite: vanished tests go.
            for test_id in [k for k, v in tests.items() if v.suite == run.suite]:
                del tests[test_id]
        else:
            returned = {t.id for t in run.tests}
            for test_id in run.selected:
                if test_id not in returned and test_id in tests:
                    del tests[test_id]

    # Diagnose with the whole run's failing ids so a Dependent finds its root.
    fresh = [(run.suite, t) for run in event.runs if run.error is None for t in run.tests]
    failing_ids = {t.id for _, t in fresh if t.is_failure}
    failing_ids |= {t.id for t in tests.values() if t.failing}
    suite_priority = {s.name: s.priority for s in spec.suites}

    for suite, result in fresh:
        diagnosis = diagnose(result, rules, failing_ids=failing_ids)
        previous = before.get(result.id)
        new = TestRecord(
            id=result.id,
            suite=suite,
            priority=result.priority or suite_priority.get(suite, DEFAULT_PRIORITY),
            outcome=result.outcome,
            iteration=state.iteration,
            diagnosis=diagnosis,
            depends_on=result.depends_on,
            message=result.message,
        )
        tests[result.id] = new
        ran += 1
        if diagnosis is not None:
            failures.append((result.id, diagnosis.failure_class.value, diagnosis.evidence))
            flaky.pop(result.id, None)
        elif result.flaky:
            flaky[result.id] = FlakyTest(
                result.id, suite, state.iteration, "failed, then passed on the runner's rerun"
            )
        elif previous is not None and previous.diagnosis is not None and not was_redeploy:
            # It failed, nothing was redeployed, and now it passes: flaky.
            flaky[result.id] = FlakyTest(
                result.id, suite, state.iteration, previous.diagnosis.evidence
            )

    record = replace(record, failures=tuple(failures), suite_errors=tuple(errors), ran=ran)
    state = replace(state, tests=tests, flaky=flaky, suite_errors=suite_errors)
    return _with_current(state, record)


def _priority_groups(
    spec: ValidationSpec, selection: Iterable[SuiteSelection]
) -> list[tuple[SuiteSelection, ...]]:
    ordered = sorted(selection, key=lambda s: spec.suite(s.suite).rank)
    if not spec.policy.fail_fast or not ordered:
        return [tuple(ordered)]
    groups: dict[int, list[SuiteSelection]] = {}
    for s in ordered:
        groups.setdefault(spec.suite(s.suite).rank, []).append(s)
    return [tuple(g) for _, g in sorted(groups.items())]


def _class_summary(by_class: Mapping[FailureClass, int]) -> str:
    """ "3 ServiceUnavailable, 1 Dependent": root classes in built-in order, dependents last."""
    order = list(FailureClass)
    ranked = sorted(
        by_class.items(), key=lambda x: (x[0] is FailureClass.DEPENDENT, order.index(x[0]))
    )
    return ", ".join(f"{n} {c.value}" for c, n in ranked)
