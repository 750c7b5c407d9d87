"""What comes after a batch: the next priority group (failFast), or the decision after
each run (docs/design.md §1), which tries the rules of ``rules.py`` in the design's order
and says what it decided in words a person reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from greenloop.core.capabilities import Capabilities
from greenloop.core.engine.events import (
    ActionKind,
    Phase,
    Reason,
    RunSuites,
    SuiteSelection,
    action_id,
)
from greenloop.core.engine.history import (
    _annotate,
    _clip,
    _close_iteration,
    _finish,
    _start_iteration,
)
from greenloop.core.engine.rules import (
    all_that_ran_passed,
    budget_spent,
    class_to_name,
    expected_tests_missing,
    goal_met,
    nothing_passed,
    nothing_ran,
    redeploy_can_help,
    redeploy_needs_approval,
    redeploy_was_ineffective,
    rerun_may_reveal_flake,
    rerun_selection,
    runner_error_alone,
    runner_errors_to_retry,
    runner_errors_to_stop,
    selection_ignored_twice,
    unrun_tests,
)
from greenloop.core.engine.state import (
    MAX_NOTE,
    Counts,
    Decision,
    State,
    TestRecord,
    current_action,
    failing,
    signature,
    signature_digest,
    tally,
)
from greenloop.core.model import FailureClass, ValidationSpec
from greenloop.core.words import plural


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
    """The rules in the design's order; the first that holds decides."""
    c = tally(state.tests.values())
    if broken := runner_errors_to_stop(state):
        return _stall_on_runner_errors(state, now, broken)
    retry_suites = runner_errors_to_retry(state)
    if ignored := selection_ignored_twice(state):
        return _stall(state, now, Reason.SELECTION_IGNORED, _selection_message(spec, ignored))
    if all_that_ran_passed(c, retry_suites):
        return _judge_all_passed(spec, state, now, c)
    if why := budget_spent(spec, state, now):
        return _stall(state, now, Reason.BUDGET_EXHAUSTED, why)
    current = signature(state)
    failing_now = failing(state)
    by_class = _by_class(failing_now)
    selection = rerun_selection(spec, state, retry_suites)
    if redeploy_was_ineffective(state, current):
        return _stall(
            state,
            now,
            Reason.REDEPLOY_INEFFECTIVE,
            f"the redeploy changed nothing: the same {plural(len(current), 'test')} "
            f"fail with the same classes ({_class_summary(by_class)}); not redeploying again",
        )
    if redeploy_can_help(spec, state, failing_now, caps):
        return _redeploy(spec, state, now, _class_summary(by_class), current, selection)
    unrun = len(unrun_tests(state))
    if rerun_may_reveal_flake(spec, state) or runner_error_alone(c, retry_suites, unrun):
        return _rerun(spec, state, now, _class_summary(by_class), selection)
    reason, message = _stall_reason(spec, state, by_class, caps)
    return _stall(state, now, reason, message)


def _stall(state: State, now: float, reason: Reason, message: str) -> Decision:
    return _finish(state, now, Phase.STALLED, reason, message)


def _stall_on_runner_errors(state: State, now: float, broken: Mapping[str, str]) -> Decision:
    detail = "; ".join(f"suite {s}: {why}" for s, why in sorted(broken.items()))
    lead = "no results twice" if not state.permanent_errors else "no results"
    return _stall(state, now, Reason.RUNNER_ERROR, f"{lead}: {detail}")


def _judge_all_passed(spec: ValidationSpec, state: State, now: float, c: Counts) -> Decision:
    """Every test that ran passed: the goal is met, or one of the three ends that are
    never success."""
    expected = spec.expected_tests
    if goal_met(spec, state, c):
        goal = f"{c.passed}/{expected}" if expected is not None else f"{c.passed}/{c.passed}"
        proven = f"{goal} tests passed"
        if state.fingerprint is not None:
            proven += f" on target fingerprint {state.fingerprint.describe()}"
        return _finish(state, now, Phase.PASSED, Reason.GOAL_MET, _clip(proven, MAX_NOTE))
    if nothing_ran(state):
        return _stall(state, now, Reason.NO_TESTS, "the suites reported no tests")
    if nothing_passed(c):
        return _stall(
            state,
            now,
            Reason.NOTHING_PASSED,
            f"no test passed: all {plural(c.skipped, 'test')} reported were skipped",
        )
    return _stall(
        state,
        now,
        Reason.EXPECTED_TESTS_MISSING,
        f"all {c.passed} tests that ran passed, but {expected} are expected: "
        f"{expected_tests_missing(spec, c)} never ran; rerunning cannot add them — check "
        "the suites' selection or spec.expectedTests",
    )


def _rerun(
    spec: ValidationSpec,
    state: State,
    now: float,
    summary: str,
    selection: tuple[SuiteSelection, ...],
) -> Decision:
    """Rerun ``selection`` without a redeploy (a flake retry, or a runner error's retry)."""
    state = replace(state, retries=state.retries + 1, last_action=ActionKind.RERUN)
    why = (
        f"rerun {state.retries}/{spec.policy.flake_retries} without redeploy "
        f"({summary or 'runner error'})"
    )
    state = _close_iteration(state, now, ActionKind.RERUN, Reason.RETRYING, why)
    return _start_iteration(spec, state, now, selection)


def _redeploy(
    spec: ValidationSpec,
    state: State,
    now: float,
    why: str,
    current: tuple[tuple[str, str], ...],
    selection: tuple[SuiteSelection, ...],
) -> Decision:
    """Redeploy, then rerun ``selection``. The approval gate takes the same decision, but
    nothing starts until a person hands back the token, which is the id the Redeploy will
    have (docs/design.md §8)."""
    gated = redeploy_needs_approval(spec)
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


def _by_class(failing_now: Sequence[TestRecord]) -> dict[FailureClass, int]:
    """Failures counted by class as diagnosed (Dependent included): how they are
    described. What to do is decided on each failure's root class."""
    by_class: dict[FailureClass, int] = {}
    for t in failing_now:
        if t.diagnosis is not None:
            k = t.diagnosis.failure_class
            by_class[k] = by_class.get(k, 0) + 1
    return by_class


def _selection_message(spec: ValidationSpec, suites: Sequence[str]) -> str:
    names = ", ".join(suites)
    sharded = any(s.shards > 1 for s in spec.suites if s.name in suites)
    return (
        f"suite {names}: the rerun did not run the selected tests twice (it skipped them, "
        "did not report them, or reported tests that were not selected); fix the suite's "
        "command so it runs only the ids listed in the file $GREENLOOP_SELECT names, "
        "reporting each with the id it had (docs/design.md §4)"
        + (
            ", and on a whole-suite run only its shard's part ($GREENLOOP_SHARD_INDEX of "
            "$GREENLOOP_SHARD_COUNT, docs/runners.md)"
            if sharded
            else ""
        )
    )


def _stall_reason(
    spec: ValidationSpec,
    state: State,
    by_class: Mapping[FailureClass, int],
    caps: Capabilities,
) -> tuple[Reason, str]:
    """Name the class a person must look at (:func:`class_to_name`), with a hint."""
    chosen = class_to_name(by_class)
    summary = _class_summary(by_class)
    if chosen is FailureClass.NOT_RERUN:
        misses = sorted(state.selection_misses)
        return Reason.SELECTION_IGNORED, _selection_message(spec, misses or ["(unknown)"])
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


def _class_summary(by_class: Mapping[FailureClass, int]) -> str:
    """ "3 ServiceUnavailable, 1 Dependent": root classes in built-in order, dependents last."""
    order = list(FailureClass)
    ranked = sorted(
        by_class.items(), key=lambda x: (x[0] is FailureClass.DEPENDENT, order.index(x[0]))
    )
    return ", ".join(f"{n} {k.value}" for k, n in ranked)
