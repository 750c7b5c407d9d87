"""The pure decision: (spec, state, event, now) -> (state, next action).

No I/O and no clock reads: both shells (the local runner and the operator) observe the
world, feed the engine the same events and carry out the action it returns. Everything
the engine needs to remember lives in ``State``, which serializes to plain data
(:mod:`greenloop.core.snapshot`) so the operator can keep it in the object and survive a
restart. The API is described in docs/design.md §6; the rules in §1 and §7.

Events: :class:`SuiteFinished` (one per suite of a batch, in any order),
:class:`RedeployStarted`, :class:`RedeployDone`; transitions :func:`begin`,
:func:`on_suite`, :func:`on_redeploy_started`, :func:`on_redeploy`,
:func:`on_spec_changed`, :func:`on_target_observed`, :func:`on_rerun`, :func:`on_approved`,
:func:`on_tick`, :func:`interrupt`, :func:`internal_error`; :func:`current_action` to
resume from a state alone and :func:`wake_at` for when time alone changes something. An
event whose ``action_id`` is not
the action in flight (a duplicate, or a stale one from before a restart) changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from greenloop.core.capabilities import Capabilities, of_target
from greenloop.core.classify import CompiledRules, compile_rules, diagnose_batch, is_failing
from greenloop.core.fingerprint import Fingerprint, changes, refine
from greenloop.core.model import (
    DEFAULT_PRIORITY,
    Diagnosis,
    FailureClass,
    Outcome,
    RedeployPolicy,
    RerunMode,
    TestResult,
    ValidationSpec,
)
from greenloop.core.words import plural

__all__ = [
    "Action",
    "ActionKind",
    "AwaitApproval",
    "Counts",
    "Decision",
    "Finish",
    "FirstFailure",
    "FlakyTest",
    "IterationRecord",
    "LineUp",
    "Phase",
    "Reason",
    "Redeploy",
    "RedeployDone",
    "RedeployStarted",
    "RunSuites",
    "State",
    "SuiteFinished",
    "SuiteRun",
    "SuiteSelection",
    "TestRecord",
    "action_id",
    "begin",
    "counts",
    "current_action",
    "effective_class",
    "failing",
    "internal_error",
    "interrupt",
    "line_up",
    "on_approved",
    "on_redeploy",
    "on_redeploy_started",
    "on_rerun",
    "on_spec_changed",
    "on_suite",
    "on_target_observed",
    "on_tick",
    "root_of",
    "signature",
    "signature_digest",
    "tally",
    "tally_results",
    "wake_at",
]

# Storage budget (docs/design.md §5): what one state may hold, whatever the suites print.
MAX_HISTORY = 20  # iterations kept in state (and shown in status)
MAX_EVIDENCE = 240  # characters of one evidence line kept in state
MAX_NOTES = 12  # notes / observations kept per iteration
MAX_NOTE = 400  # characters of one note


class Phase(StrEnum):
    PENDING = "Pending"
    TESTING = "Testing"
    WAITING_APPROVAL = "WaitingApproval"  # a redeploy is decided; a person must approve it
    REDEPLOYING = "Redeploying"
    PASSED = "Passed"
    STALLED = "Stalled"


class Reason(StrEnum):
    """Why a round ended (or what it is doing). Each failure class is also a reason: the
    class a person must look at when the round stalls on it."""

    GOAL_MET = "GoalMet"
    RUNNING_TESTS = "RunningTests"
    REDEPLOYING = "Redeploying"
    RETRYING = "RetryingFailedTests"
    REDEPLOY_INEFFECTIVE = "RedeployIneffective"
    REDEPLOY_FAILED = "RedeployFailed"
    EXPECTED_TESTS_MISSING = "ExpectedTestsMissing"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_TESTS = "NoTestsReported"
    NOTHING_PASSED = "NothingPassed"
    SELECTION_IGNORED = "SelectionIgnored"
    TARGET_CHANGED = "TargetChanged"  # someone else changed a target: a new round
    INTERRUPTED = "Interrupted"
    INTERNAL_ERROR = "InternalError"
    WAITING_APPROVAL = "WaitingApproval"
    # Why a round after the first started (State.round_reason).
    SPEC_CHANGED = "SpecChanged"
    RERUN_REQUESTED = "RerunRequested"
    REVALIDATING = "Revalidating"
    # The failure classes, as stall reasons.
    DEPENDENT = FailureClass.DEPENDENT.value
    TEST_CODE_ERROR = FailureClass.TEST_CODE_ERROR.value
    AUTH_ERROR = FailureClass.AUTH_ERROR.value
    SERVICE_UNAVAILABLE = FailureClass.SERVICE_UNAVAILABLE.value
    CONNECTION_ERROR = FailureClass.CONNECTION_ERROR.value
    TIMEOUT = FailureClass.TIMEOUT.value
    SERVER_ERROR = FailureClass.SERVER_ERROR.value
    ASSERTION = FailureClass.ASSERTION.value
    UNKNOWN = FailureClass.UNKNOWN.value
    NOT_RERUN = FailureClass.NOT_RERUN.value
    RUNNER_ERROR = FailureClass.RUNNER_ERROR.value


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
    usable results (timeout, crash, missing or unreadable XML): a RunnerError.
    ``permanent`` says the cause cannot change on a rerun (command not found, no such
    directory, permission denied): the round stops without the retry."""

    suite: str
    tests: tuple[TestResult, ...] = ()
    error: str | None = None
    exit_code: int | None = None
    started: float = 0.0
    finished: float = 0.0
    selected: tuple[str, ...] | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class SuiteFinished:
    """One suite of the batch in flight is done. ``action_id`` is the id of the
    :class:`RunSuites` it answers; ``observed`` is what the target showed meanwhile
    (health answers, unavailable replicas, warning events): the why-chain's evidence.
    ``fingerprint``: the targets' fingerprint seen when the results were read (None: the
    shell has none, as in local mode)."""

    action_id: str
    run: SuiteRun
    observed: tuple[str, ...] = ()
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True, slots=True)
class RedeployStarted:
    """The shell has triggered the redeploy (written the rollout token, run the command,
    called the webhook); from now on a repeated :class:`Redeploy` says ``started``."""

    action_id: str


@dataclass(frozen=True, slots=True)
class RedeployDone:
    """``fingerprint``: the targets' fingerprint seen after greenloop's own rollout, the
    round's new baseline (None: not observed)."""

    ok: bool
    message: str
    notes: tuple[str, ...] = ()
    action_id: str | None = None  # None: the redeploy in flight, whatever its id
    fingerprint: Fingerprint | None = None


# ---------------------------------------------------------------------------
# Actions the shells carry out. Every action has an ``id`` derived from (round,
# iteration, step): a restarted shell compares it with what it already did.


@dataclass(frozen=True, slots=True)
class SuiteSelection:
    suite: str
    test_ids: tuple[str, ...] | None = None  # None: the whole suite


@dataclass(frozen=True, slots=True)
class RunSuites:
    """Run these suites (those of the batch not yet reported) and send one
    :class:`SuiteFinished` for each."""

    id: str
    iteration: int
    suites: tuple[SuiteSelection, ...]


@dataclass(frozen=True, slots=True)
class Redeploy:
    """Redeploy the target. ``token`` is what the operator writes into each workload's
    pod template (so writing it twice is one rollout) and sends in the webhook payload.
    ``started``: the shell already triggered it before a restart; wait for the rollout
    and health only, then send :class:`RedeployDone`."""

    id: str
    iteration: int
    reason: str
    token: str
    started: bool = False


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """A redeploy is decided and ``spec.policy.redeploy`` is RequireApproval: start
    nothing; wait until a person hands ``token`` back (:func:`on_approved`). The token is
    the id the :class:`Redeploy` will have, so the rollout token is the approved one."""

    id: str
    iteration: int
    reason: str
    token: str


@dataclass(frozen=True, slots=True)
class Finish:
    id: str
    phase: Phase
    reason: Reason
    message: str


Action = RunSuites | Redeploy | AwaitApproval | Finish


def action_id(round_: int, iteration: int, step: int) -> str:
    """``r<round>-i<iteration>-s<step>``: safe as a label value, an annotation value and in
    a Kubernetes name."""
    return f"r{round_}-i{iteration}-s{step}"


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
    passed = failed = skipped = 0
    for record in records:
        if record.failing:
            failed += 1
        elif record.outcome is Outcome.PASSED:
            passed += 1
        else:
            skipped += 1
    return Counts(passed, failed, skipped)


def tally_results(results: Iterable[TestResult]) -> Counts:
    """The same count over raw results (a progress line): failing as the classifier
    sees it (a dependency skip fails), passed, the rest skipped."""
    passed = failed = skipped = 0
    for result in results:
        if is_failing(result):
            failed += 1
        elif result.outcome is Outcome.PASSED:
            passed += 1
        else:
            skipped += 1
    return Counts(passed, failed, skipped)


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


# ---------------------------------------------------------------------------
# Transitions


def begin(
    spec: ValidationSpec,
    now: float,
    *,
    generation: int = 1,
    round_: int = 1,
    flaky: Mapping[str, FlakyTest] | None = None,
    fingerprint: Fingerprint | None = None,
    rerun: str | None = None,
    trigger: Reason | None = None,
    why: str = "",
) -> Decision:
    """Start a round: iteration 1 runs every suite (grouped by priority under failFast).
    ``fingerprint``: the targets as observed now, the round's baseline. ``rerun`` is the
    greenloop.dev/rerun annotation's value now (recorded, so only a later change starts
    another round); ``trigger`` and ``why`` say why a round after the first started (the
    event and the message name it)."""
    groups = _priority_groups(spec, [SuiteSelection(s.name) for s in spec.suites])
    first, rest = groups[0], tuple(groups[1:])
    message = f"iteration 1: running {plural(len(spec.suites), 'suite')}"
    if why:
        message = f"round {round_} ({why}): {message}"
    state = State(
        phase=Phase.TESTING,
        iteration=1,
        started_at=now,
        running=first,
        pending=rest,
        history=(
            IterationRecord(
                iteration=1, started=now, fingerprint=fingerprint.digest if fingerprint else ""
            ),
        ),
        last_action=ActionKind.RUN,
        reason=Reason.RUNNING_TESTS,
        message=message,
        generation=generation,
        round=round_,
        flaky=dict(flaky or {}),
        fingerprint=fingerprint,
        rerun_seen=rerun,
        round_reason=trigger,
    )
    return Decision(state, RunSuites(state.action_id, 1, first))


def _new_round(
    spec: ValidationSpec,
    state: State,
    now: float,
    *,
    trigger: Reason,
    why: str,
    fingerprint: Fingerprint | None,
    generation: int | None = None,
    rerun: str | None = None,
) -> Decision:
    """Round + 1 from iteration 1, keeping the flaky list for the suites that still
    exist. Whatever was in flight is abandoned: its late events carry the old round's ids
    and are ignored, and the operator's Job names include the round. ``fingerprint``: the
    new round's baseline."""
    names = {s.name for s in spec.suites}
    flaky = {k: f for k, f in state.flaky.items() if f.suite in names}
    return begin(
        spec,
        now,
        generation=state.generation if generation is None else generation,
        round_=state.round + 1,
        flaky=flaky,
        fingerprint=fingerprint,
        rerun=state.rerun_seen if rerun is None else rerun,
        trigger=trigger,
        why=why,
    )


def on_spec_changed(
    spec: ValidationSpec,
    state: State,
    now: float,
    *,
    generation: int,
    fingerprint: Fingerprint | None = None,
    rerun: str | None = None,
) -> Decision:
    """The object's spec changed (a new generation): a new round starts with the new
    spec, keeping the flaky list for the suites that still exist. The same generation
    changes nothing. Whatever was in flight is abandoned: its late events carry the old
    round's ids and are ignored. ``rerun``: the greenloop.dev/rerun value now, so an edit
    that changes both starts one round, not two."""
    if generation == state.generation and state.phase is not Phase.PENDING:
        return Decision(state, current_action(state))
    return _new_round(
        spec,
        state,
        now,
        trigger=Reason.SPEC_CHANGED,
        why=f"the spec changed: generation {generation}",
        fingerprint=fingerprint,
        generation=generation,
        rerun=rerun,
    )


def on_target_observed(
    spec: ValidationSpec,
    state: State,
    fingerprint: Fingerprint | None,
    now: float,
) -> Decision:
    """The shell looked at the targets between events (an idle tick, a workload event).
    The first fingerprint of a round is its baseline; one that differs from it while
    greenloop has not redeployed means someone else changed a target: the results
    gathered so far are stale and a new round starts (``TargetChanged``), from Testing
    as from Passed or Stalled. While greenloop's own redeploy is in flight the change is
    its own: :class:`RedeployDone` brings the new baseline. Same targets: no change (a
    digest learned since, as pods finish pulling, is recorded)."""
    if fingerprint is None or state.phase in (Phase.PENDING, Phase.REDEPLOYING):
        return Decision(state, current_action(state))
    return _check_target(spec, state, fingerprint, now)


def on_rerun(
    spec: ValidationSpec,
    state: State,
    value: str,
    now: float,
) -> Decision:
    """The greenloop.dev/rerun annotation as it is now. A new non-empty value starts a new
    round (like a spec change, keeping the flaky list), whether the round in flight is
    finished or not; the first look only records it, and so does removing it."""
    if state.phase is Phase.PENDING:
        return begin(spec, now, generation=state.generation or 1, rerun=value)
    if value == state.rerun_seen:
        return Decision(state, current_action(state))
    if state.rerun_seen is None or not value:
        state = replace(state, rerun_seen=value)
        return Decision(state, current_action(state))
    return _new_round(
        spec,
        state,
        now,
        trigger=Reason.RERUN_REQUESTED,
        why=f"greenloop.dev/rerun changed to {_clip(value, 64)!r}",
        fingerprint=state.fingerprint,  # the targets are as they were: the same baseline
        rerun=value,
    )


def on_approved(state: State, token: str) -> Decision:
    """A person handed back an approval token (the greenloop.dev/approve annotation). The
    token of the redeploy waiting for approval starts it; any other token (stale, from an
    earlier iteration or round, or mistyped) changes nothing."""
    if state.phase is not Phase.WAITING_APPROVAL or token.strip() != state.action_id:
        return Decision(state, current_action(state))
    record = _current(state)
    note = f"redeploy approved (greenloop.dev/approve={state.action_id})"
    record = replace(record, reason=Reason.REDEPLOYING, notes=_bounded((*record.notes, note)))
    state = _with_current(state, record)
    state = replace(
        state,
        phase=Phase.REDEPLOYING,
        redeploys=state.redeploys + 1,
        reason=Reason.REDEPLOYING,
        message=(
            f"iteration {state.iteration}: redeploying because of {state.redeploy_reason} "
            "(approved)"
        ),
        redeploy_started=False,
    )
    return Decision(state, current_action(state))


def wake_at(spec: ValidationSpec, state: State) -> float | None:
    """When time alone next changes this state (:func:`on_tick`), or None: the deadline of
    a redeploy waiting for approval; the revalidation of a Passed round."""
    if state.phase is Phase.WAITING_APPROVAL and state.started_at is not None:
        return state.started_at + spec.policy.deadline_seconds
    if state.phase is Phase.PASSED and spec.revalidate_every_seconds:
        return _ended_at(state) + spec.revalidate_every_seconds
    return None


def on_tick(spec: ValidationSpec, state: State, now: float) -> Decision:
    """Time passed. A redeploy still waiting for approval when ``deadlineSeconds`` is
    spent ends the round ``Stalled``/``BudgetExhausted``: waiting counts against the
    deadline like any other step, so nothing waits forever. A Passed round is revalidated
    (a new round) ``revalidateEvery`` after it ended. Anything else changes nothing."""
    due = wake_at(spec, state)
    if due is None or now < due:
        return Decision(state, current_action(state))
    if state.phase is Phase.WAITING_APPROVAL:
        message = (
            f"deadlineSeconds ({spec.policy.deadline_seconds}) passed while the redeploy "
            f"waited for approval (token {state.action_id}); not redeploying"
        )
        record = replace(
            _current(state),
            action=ActionKind.STALL,
            reason=Reason.BUDGET_EXHAUSTED,
            detail=_clip(message, MAX_NOTE),
        )
        state = _with_current(state, record)
        return _finish(state, now, Phase.STALLED, Reason.BUDGET_EXHAUSTED, message)
    every = spec.revalidate_every_seconds
    assert every, "wake_at is due only for a Passed round with revalidateEvery"
    return _new_round(
        spec,
        state,
        now,
        trigger=Reason.REVALIDATING,
        why=f"revalidateEvery: {plural(every, 'second')} since the last round passed",
        fingerprint=state.fingerprint,
    )


def _ended_at(state: State) -> float:
    """When the round ended: its last iteration's end."""
    finished = _current(state).finished
    if finished is not None:
        return finished
    return state.started_at or 0.0


def on_suite(
    spec: ValidationSpec,
    state: State,
    event: SuiteFinished,
    now: float,
    *,
    caps: Capabilities | None = None,
    rules: CompiledRules | None = None,
) -> Decision:
    """Merge one suite's results. While suites of the batch are still out, the action is
    the same :class:`RunSuites` for those; the last one decides what comes next."""
    suite = event.run.suite
    in_batch = {s.suite: s for s in state.running}
    if (
        state.phase is not Phase.TESTING
        or event.action_id != state.action_id
        or suite not in in_batch
        or suite in state.reported
    ):
        return Decision(state, current_action(state))
    if event.fingerprint is not None:
        checked = _check_target(spec, state, event.fingerprint, now)
        if checked.state.round != state.round:
            return checked  # these results were gathered on targets that have changed
        state = checked.state
    if rules is None:
        rules = compile_rules(spec.classification)
    state = _merge(spec, state, in_batch[suite], event.run, rules)
    record = _current(state)
    record = replace(record, observed=_bounded(record.observed + event.observed))
    state = _with_current(state, record)
    state = replace(state, reported=(*state.reported, suite))
    remaining = _remaining(spec, state)
    if remaining:
        return Decision(state, RunSuites(state.action_id, state.iteration, remaining))
    return _batch_done(spec, state, now, _caps(spec, caps))


def on_redeploy_started(state: State, event: RedeployStarted) -> Decision:
    """Record that the redeploy was triggered, so a restarted shell waits for it instead
    of triggering a second one."""
    if state.phase is not Phase.REDEPLOYING or event.action_id != state.action_id:
        return Decision(state, current_action(state))
    state = replace(state, redeploy_started=True)
    return Decision(state, current_action(state))


def on_redeploy(
    spec: ValidationSpec,
    state: State,
    event: RedeployDone,
    now: float,
) -> Decision:
    if state.phase is not Phase.REDEPLOYING or event.action_id not in (None, state.action_id):
        return Decision(state, current_action(state))
    record = _current(state)
    state = _with_current(state, replace(record, notes=_bounded(record.notes + event.notes)))
    state = replace(state, redeploy_started=False, redeploy_reason="")
    if event.fingerprint is not None:
        # greenloop's own change: what the targets run now is the round's new baseline.
        state = replace(state, fingerprint=event.fingerprint)
    if not event.ok:
        return _finish(state, now, Phase.STALLED, Reason.REDEPLOY_FAILED, event.message)
    # last_action stays Redeploy: the next batch is judged against the one before it.
    return _start_iteration(spec, state, now, state.next_run)


def interrupt(state: State, now: float, message: str) -> Decision:
    """The shell was stopped (Ctrl-C, shutdown): end with what is known."""
    return _finish(state, now, Phase.STALLED, Reason.INTERRUPTED, message)


def internal_error(state: State, now: float, message: str) -> Decision:
    """The last resort: the shell hit an error it has no event for. The round ends
    ``Stalled``/``InternalError`` with what is known, so status and report are written."""
    return _finish(state, now, Phase.STALLED, Reason.INTERNAL_ERROR, _clip(message, MAX_NOTE))


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


# ---------------------------------------------------------------------------
# Deciding


def _caps(spec: ValidationSpec, caps: Capabilities | None) -> Capabilities:
    return caps if caps is not None else of_target(spec.target, None)


def _check_target(
    spec: ValidationSpec,
    state: State,
    fingerprint: Fingerprint,
    now: float,
) -> Decision:
    """Compare an observed fingerprint with the round's: record it when it is the first
    or only adds digests; start a new round when a target changed."""
    recorded = state.fingerprint
    if recorded is None:
        return Decision(_record_fingerprint(state, fingerprint), current_action(state))
    what = changes(recorded, fingerprint)
    if not what:
        # Digests learned as pods start are kept while testing; a finished round keeps
        # the fingerprint its verdict names.
        refined = refine(recorded, fingerprint)
        if refined == recorded or state.phase is not Phase.TESTING:
            return Decision(state, current_action(state))
        return Decision(_record_fingerprint(state, refined), current_action(state))
    names = {s.name for s in spec.suites}
    flaky = {k: f for k, f in state.flaky.items() if f.suite in names}
    decision = begin(
        spec, now, generation=state.generation, round_=state.round + 1, flaky=flaky,
        fingerprint=fingerprint, rerun=state.rerun_seen, trigger=Reason.TARGET_CHANGED,
    )  # fmt: skip
    was = f"round {state.round} ({state.phase.value}, iteration {state.iteration})"
    message = _clip(
        f"target changed, not by greenloop: {'; '.join(what)}; the results of {was} are "
        f"stale: round {state.round + 1} starts over",
        MAX_NOTE,
    )
    new = _annotate(decision.state, message)
    new = replace(new, reason=Reason.TARGET_CHANGED, message=message)
    return Decision(new, decision.action)


def _record_fingerprint(state: State, fingerprint: Fingerprint) -> State:
    state = replace(state, fingerprint=fingerprint)
    if not state.history or state.history[-1].finished is not None:
        return state
    return _with_current(state, replace(state.history[-1], fingerprint=fingerprint.digest))


def _remaining(spec: ValidationSpec, state: State) -> tuple[SuiteSelection, ...]:
    """Suites of the batch still out; a suite the spec no longer has is not waited for."""
    names = {s.name for s in spec.suites}
    return tuple(s for s in state.running if s.suite not in state.reported and s.suite in names)


def _batch_done(spec: ValidationSpec, state: State, now: float, caps: Capabilities) -> Decision:
    batch = set(state.reported)
    # failFast runs one priority group at a time; lower ones wait while a higher one fails.
    if state.pending:
        batch_failed = any(state.suite_errors.get(s) for s in batch) or any(
            t.failing for t in state.tests.values() if t.suite in batch
        )
        if not (spec.policy.fail_fast and batch_failed):
            nxt, rest = state.pending[0], state.pending[1:]
            state = replace(state, running=nxt, reported=(), pending=rest, step=state.step + 1)
            return Decision(state, RunSuites(state.action_id, state.iteration, nxt))
        skipped = sum(len(g) for g in state.pending)
        state = replace(state, pending=())
        state = _annotate(state, f"failFast: {plural(skipped, 'lower-priority suite')} not run")
    return _decide(spec, state, now, caps)


def _decide(spec: ValidationSpec, state: State, now: float, caps: Capabilities) -> Decision:
    policy = spec.policy
    c = tally(state.tests.values())
    passed, failed = c.passed, c.failed
    expected = spec.expected_tests

    # A suite that produced nothing is retried once; twice in a row needs a person, and
    # so does once when the cause cannot change on a rerun.
    broken = {
        s: why
        for s, (n, why) in state.suite_errors.items()
        if n >= 2 or s in state.permanent_errors
    }
    if broken:
        detail = "; ".join(f"suite {s}: {why}" for s, why in sorted(broken.items()))
        lead = "no results twice" if not state.permanent_errors else "no results"
        return _finish(state, now, Phase.STALLED, Reason.RUNNER_ERROR, f"{lead}: {detail}")
    retry_suites = sorted(s for s, (n, _) in state.suite_errors.items() if n == 1)

    # The runner ignored the selection a second time: rerunning cannot help.
    ignored = sorted(s for s, n in state.selection_misses.items() if n >= 2)
    if ignored:
        return _finish(
            state, now, Phase.STALLED, Reason.SELECTION_IGNORED, _selection_message(ignored)
        )

    if failed == 0 and not retry_suites:
        if not state.tests:
            return _finish(
                state, now, Phase.STALLED, Reason.NO_TESTS, "the suites reported no tests"
            )
        if passed == 0:
            return _finish(
                state,
                now,
                Phase.STALLED,
                Reason.NOTHING_PASSED,
                f"no test passed: all {plural(c.skipped, 'test')} reported were skipped",
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
        proven = f"{goal} tests passed"
        if state.fingerprint is not None:
            proven += f" on target fingerprint {state.fingerprint.describe()}"
        return _finish(state, now, Phase.PASSED, Reason.GOAL_MET, _clip(proven, MAX_NOTE))

    budget = _budget_spent(spec, state, now)
    if budget:
        return _finish(state, now, Phase.STALLED, Reason.BUDGET_EXHAUSTED, budget)

    current = signature(state)
    failing_now = failing(state)
    # Decide on each failure's root class; describe them as diagnosed (Dependent included).
    by_class: dict[FailureClass, int] = {}
    for t in failing_now:
        if t.diagnosis is not None:
            k = t.diagnosis.failure_class
            by_class[k] = by_class.get(k, 0) + 1
    redeployable = {
        k for k in (effective_class(state, t) for t in failing_now) if k in policy.redeploy_on
    }
    selection = _rerun_selection(spec, state, retry_suites)

    if state.last_action is ActionKind.REDEPLOY and state.before_redeploy == signature_digest(
        current
    ):
        return _finish(
            state,
            now,
            Phase.STALLED,
            Reason.REDEPLOY_INEFFECTIVE,
            f"the redeploy changed nothing: the same {plural(len(current), 'test')} "
            f"fail with the same classes ({_class_summary(by_class)}); not redeploying again",
        )

    if redeployable and caps.can_redeploy:
        why = _class_summary(by_class)
        # The approval gate: the same decision, but nothing starts until a person hands
        # back the token, which is the id the Redeploy will have (docs/design.md §8).
        gated = policy.redeploy is RedeployPolicy.REQUIRE_APPROVAL
        reason = Reason.WAITING_APPROVAL if gated else Reason.REDEPLOYING
        state = _close_iteration(state, now, ActionKind.REDEPLOY, reason, why)
        step = state.step + 1
        if gated:
            token = action_id(state.round, state.iteration, step)
            message = (
                f"iteration {state.iteration}: a redeploy because of {why} waits for "
                f"approval (token {token})"
            )
        else:
            message = f"iteration {state.iteration}: redeploying because of {why}"
        state = replace(
            state,
            phase=Phase.WAITING_APPROVAL if gated else Phase.REDEPLOYING,
            running=(),
            reported=(),
            redeploys=state.redeploys + (0 if gated else 1),
            retries=0,
            next_run=selection,
            before_redeploy=signature_digest(current),
            last_action=ActionKind.REDEPLOY,
            reason=reason,
            message=message,
            step=step,
            redeploy_reason=why,
            redeploy_started=False,
        )
        return Decision(state, current_action(state))

    if state.retries < policy.flake_retries or (retry_suites and failed == 0):
        state = replace(state, retries=state.retries + 1, last_action=ActionKind.RERUN)
        why = (
            f"rerun {state.retries}/{policy.flake_retries} without redeploy "
            f"({_class_summary(by_class) or 'runner error'})"
        )
        state = _close_iteration(state, now, ActionKind.RERUN, Reason.RETRYING, why)
        return _start_iteration(spec, state, now, selection)

    reason, message = _stall_reason(spec, state, by_class, caps)
    return _finish(state, now, Phase.STALLED, reason, message)


def _selection_message(suites: Sequence[str]) -> str:
    names = ", ".join(suites)
    return (
        f"suite {names}: the rerun did not run the selected tests twice (it skipped them, "
        "did not report them, or reported tests that were not selected); fix the suite's "
        "command so it runs only the ids listed in the file $GREENLOOP_SELECT names, "
        "reporting each with the id it had (docs/design.md §4)"
    )


def _stall_reason(
    spec: ValidationSpec,
    state: State,
    by_class: Mapping[FailureClass, int],
    caps: Capabilities,
) -> tuple[Reason, str]:
    """Name the class a person must look at: the first in the built-in order."""
    order = list(FailureClass)
    roots = [k for k in by_class if k is not FailureClass.DEPENDENT]
    chosen = min(roots, key=order.index) if roots else FailureClass.DEPENDENT
    summary = _class_summary(by_class)
    if chosen is FailureClass.NOT_RERUN:
        misses = sorted(state.selection_misses)
        return Reason.SELECTION_IGNORED, _selection_message(misses or ["(unknown)"])
    if chosen in spec.policy.redeploy_on and not caps.can_redeploy:
        hint = "no redeploy target this mode can use is configured (spec.target)"
    elif chosen is FailureClass.TEST_CODE_ERROR:
        hint = "the test code itself is broken; a redeploy cannot fix it"
    elif chosen is FailureClass.AUTH_ERROR:
        hint = "credentials are rejected; a redeploy cannot fix them"
    else:
        hint = f"{chosen.value} is not in policy.redeployOn"
    return (
        Reason(chosen.value),
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
    # Dependents of a failing test rerun too, even if they last passed: a walk over the
    # reverse edges, each test visited once (5,000 tests must not mean 5,000 passes).
    dependents: dict[str, list[str]] = {}
    for t in state.tests.values():
        for d in t.depends_on:
            dependents.setdefault(d, []).append(t.id)
    todo = list(chosen)
    while todo:
        for dependent in dependents.get(todo.pop(), ()):
            if dependent not in chosen:
                chosen.add(dependent)
                todo.append(dependent)
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
) -> Decision:
    nxt = state.iteration + 1
    groups = _priority_groups(spec, selection)
    what = ", ".join(
        f"{s.suite} ({plural(len(s.test_ids), 'test')})" if s.test_ids is not None else s.suite
        for s in selection
    )
    digest = state.fingerprint.digest if state.fingerprint else ""
    history = (*state.history, IterationRecord(iteration=nxt, started=now, fingerprint=digest))
    state = replace(
        state,
        phase=Phase.TESTING,
        iteration=nxt,
        step=0,
        running=groups[0],
        reported=(),
        pending=tuple(groups[1:]),
        next_run=(),
        history=history[-MAX_HISTORY:],
        reason=Reason.RUNNING_TESTS,
        message=f"iteration {nxt}: rerunning {what}",
    )
    return Decision(state, RunSuites(state.action_id, nxt, groups[0]))


def _finish(state: State, now: float, phase: Phase, reason: Reason, message: str) -> Decision:
    kind = ActionKind.DONE if phase is Phase.PASSED else ActionKind.STALL
    state = _close_iteration(state, now, kind, reason, message)
    state = replace(
        state,
        phase=phase,
        reason=reason,
        message=message,
        running=(),
        reported=(),
        pending=(),
        next_run=(),
        redeploy_reason="",
        redeploy_started=False,
        step=state.step + 1,
    )
    return Decision(state, current_action(state))


def _close_iteration(
    state: State, now: float, action: ActionKind, reason: Reason, detail: str
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
        action=action,
        reason=reason,
        detail=_clip(detail, MAX_NOTE),
    )
    return _with_current(state, record)


def _annotate(state: State, note: str) -> State:
    record = _current(state)
    return _with_current(state, replace(record, notes=_bounded((*record.notes, note))))


def _current(state: State) -> IterationRecord:
    if not state.history:
        return IterationRecord(iteration=state.iteration, started=state.started_at or 0.0)
    return state.history[-1]


def _with_current(state: State, record: IterationRecord) -> State:
    return replace(state, history=(*state.history[:-1], record))


def _merge(
    spec: ValidationSpec,
    state: State,
    selection: SuiteSelection,
    run: SuiteRun,
    rules: CompiledRules,
) -> State:
    """One suite's results into state, under the verdict rule (docs/design.md §7): only a
    result from the run that selected a test says whether it passes."""
    suite = run.suite
    tests = dict(state.tests)
    flaky = dict(state.flaky)
    suite_errors = dict(state.suite_errors)
    misses = dict(state.selection_misses)
    record = _current(state)
    notes = list(record.notes)
    errors = list(record.suite_errors)
    ran = record.ran
    ran_passed, ran_failed = record.ran_passed, record.ran_failed
    ignored = state.ignored_results
    permanent = state.permanent_errors
    was_redeploy = state.last_action is ActionKind.REDEPLOY and state.iteration > 1

    if run.error is not None:
        n, _ = suite_errors.get(suite, (0, ""))
        why = _clip(run.error, MAX_NOTE)
        suite_errors[suite] = (n + 1, why)
        errors.append((suite, why))
        if run.permanent and suite not in permanent:
            permanent = (*permanent, suite)
        record = replace(record, suite_errors=tuple(errors))
        state = replace(state, suite_errors=suite_errors, permanent_errors=permanent)
        return _with_current(state, record)
    suite_errors.pop(suite, None)

    chosen = selection.test_ids
    results = list(run.tests)
    if chosen is None:
        # A whole-suite run is the new truth for that suite: vanished tests go.
        for test_id in [k for k, v in tests.items() if v.suite == suite]:
            del tests[test_id]
    else:
        line = line_up(selection, results)
        results = [t for t in results if t.id in set(chosen)]
        skips = set(line.skipped)
        ignored += len(line.extra)
        if line.missing or line.skipped or line.ran_extra:
            misses[suite] = misses.get(suite, 0) + 1
        if line.message:
            notes.append(line.message)
        missing = line.missing
        results = [t for t in results if t.id not in skips]
        for test_id in sorted(set(missing) | skips):
            prev = tests.get(test_id)
            tests[test_id] = _not_rerun(spec, state, suite, test_id, prev)

    failing_ids = {t.id for t in tests.values() if t.failing}
    suite_priority = _suite_priority(spec, suite)
    for result, diagnosis in diagnose_batch(results, rules, failing_ids=failing_ids):
        previous = state.tests.get(result.id)
        if diagnosis is not None:
            diagnosis = Diagnosis(
                diagnosis.failure_class, _clip(diagnosis.evidence), diagnosis.root_cause
            )
        first = previous.first_failure if previous is not None else None
        runs = previous.failed_runs if previous is not None else 0
        last = previous.last_failed if previous is not None else 0
        if diagnosis is not None:
            if first is None:
                first = FirstFailure(state.iteration, diagnosis.failure_class, diagnosis.evidence)
            runs += 1
            last = state.iteration
        tests[result.id] = TestRecord(
            id=result.id,
            suite=suite,
            priority=result.priority or suite_priority,
            outcome=result.outcome,
            iteration=state.iteration,
            diagnosis=diagnosis,
            depends_on=result.depends_on,
            first_failure=first,
            failed_runs=runs,
            last_failed=last,
        )
        ran += 1
        if diagnosis is not None:
            ran_failed += 1
        elif result.outcome is Outcome.PASSED:
            ran_passed += 1
        if diagnosis is not None:
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

    record = replace(
        record,
        ran=ran,
        ran_passed=ran_passed,
        ran_failed=ran_failed,
        notes=_bounded(tuple(notes)),
    )
    state = replace(
        state,
        tests=tests,
        flaky=flaky,
        suite_errors=suite_errors,
        selection_misses=misses,
        ignored_results=ignored,
    )
    return _with_current(state, record)


@dataclass(frozen=True, slots=True)
class LineUp:
    """How a rerun's results line up with its selection (docs/design.md §7)."""

    suite: str
    selected: int
    missing: tuple[str, ...] = ()  # selected, not reported
    skipped: tuple[str, ...] = ()  # selected, reported skipped (not a dependency skip)
    extra: tuple[str, ...] = ()  # reported, not selected: ignored
    ran_extra: int = 0  # of those, how many actually ran (passed or failed)

    @property
    def message(self) -> str:
        """One line with the numbers; "" when the results lined up."""
        if not (self.missing or self.skipped or self.extra):
            return ""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} not reported")
        if self.skipped:
            parts.append(f"{len(self.skipped)} reported as skipped")
        line = f"suite {self.suite}: rerun of {plural(self.selected, 'selected test')}"
        if parts:
            line += ": " + ", ".join(parts) + " (counted as NotRerun)"
        if self.extra:
            line += f"; {plural(len(self.extra), 'result')} for tests not selected ignored"
        return line


def line_up(selection: SuiteSelection, results: Iterable[TestResult]) -> LineUp:
    chosen = selection.test_ids
    if chosen is None:
        return LineUp(selection.suite, 0)
    wanted = set(chosen)
    batch = list(results)
    extra = [t for t in batch if t.id not in wanted]
    reported = {t.id for t in batch if t.id in wanted}
    return LineUp(
        suite=selection.suite,
        selected=len(chosen),
        missing=tuple(i for i in chosen if i not in reported),
        skipped=tuple(
            t.id
            for t in batch
            if t.id in wanted and t.outcome is Outcome.SKIPPED and not is_failing(t)
        ),
        extra=tuple(t.id for t in extra),
        ran_extra=sum(1 for t in extra if t.outcome is not Outcome.SKIPPED),
    )


def _not_rerun(
    spec: ValidationSpec, state: State, suite: str, test_id: str, prev: TestRecord | None
) -> TestRecord:
    evidence = "selected for the rerun, but the rerun skipped it or did not report it"
    priority = prev.priority if prev is not None else _suite_priority(spec, suite)
    first = prev.first_failure if prev is not None else None
    if first is None:
        first = FirstFailure(state.iteration, FailureClass.NOT_RERUN, evidence)
    return TestRecord(
        id=test_id,
        suite=suite,
        priority=priority,
        outcome=Outcome.SKIPPED,
        iteration=state.iteration,
        diagnosis=Diagnosis(FailureClass.NOT_RERUN, evidence),
        depends_on=prev.depends_on if prev is not None else (),
        first_failure=first,
        failed_runs=(prev.failed_runs if prev is not None else 0) + 1,
        last_failed=state.iteration,
    )


def _suite_priority(spec: ValidationSpec, suite: str) -> str:
    for s in spec.suites:
        if s.name == suite:
            return s.priority
    return DEFAULT_PRIORITY


def _priority_groups(
    spec: ValidationSpec, selection: Iterable[SuiteSelection]
) -> list[tuple[SuiteSelection, ...]]:
    rank = {s.name: s.rank for s in spec.suites}
    # A suite the spec no longer has is dropped, never looked up.
    ordered = sorted((s for s in selection if s.suite in rank), key=lambda s: rank[s.suite])
    if not spec.policy.fail_fast or not ordered:
        return [tuple(ordered)]
    groups: dict[int, list[SuiteSelection]] = {}
    for s in ordered:
        groups.setdefault(rank[s.suite], []).append(s)
    return [tuple(g) for _, g in sorted(groups.items())]


def _class_summary(by_class: Mapping[FailureClass, int]) -> str:
    """ "3 ServiceUnavailable, 1 Dependent": root classes in built-in order, dependents last."""
    order = list(FailureClass)
    ranked = sorted(
        by_class.items(), key=lambda x: (x[0] is FailureClass.DEPENDENT, order.index(x[0]))
    )
    return ", ".join(f"{n} {k.value}" for k, n in ranked)


def _clip(text: str, limit: int = MAX_EVIDENCE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CUT = re.compile(r"^… and (\d+) more$")


def _bounded(items: tuple[str, ...]) -> tuple[str, ...]:
    """At most MAX_NOTES items of MAX_NOTE characters; the last says how many were cut
    (counting those an earlier cut already dropped), so bounding twice changes nothing."""
    notes = [_clip(item, MAX_NOTE) for item in items if not _CUT.match(item)]
    cut = sum(int(marker.group(1)) for marker in map(_CUT.match, items) if marker)
    if not cut and len(notes) <= MAX_NOTES:
        return tuple(notes)
    keep = MAX_NOTES - 1  # the last place says how many were cut
    return (*notes[:keep], f"… and {cut + max(0, len(notes) - keep)} more")
