"""The decision rules after each run (docs/design.md §1 "The decision after each run"),
one named function each, in the order :func:`~greenloop.core.engine.decide._decide` tries
them:

- a suite produced no results: :func:`runner_errors_to_stop` (twice, or a cause a rerun
  cannot change) and :func:`runner_errors_to_retry` (once);
- a rerun did not run what it selected, the second time: :func:`selection_ignored_twice`;
- every test that ran passed (:func:`all_that_ran_passed`): :func:`goal_met`, unless
  :func:`nothing_ran`, :func:`nothing_passed` or :func:`expected_tests_missing`;
- :func:`budget_spent` (``maxIterations``, ``deadlineSeconds``); between runs,
  :func:`round_deadline` (time alone ends a round whose suites still run);
- :func:`redeploy_was_ineffective` (same tests, same classes after a redeploy);
- :func:`redeploy_can_help` (a root class in ``redeployOn`` and a target this mode can
  redeploy), gated by :func:`redeploy_needs_approval`;
- :func:`rerun_may_reveal_flake` (``flakeRetries`` left) or :func:`runner_error_alone`;
- otherwise the round stalls on :func:`class_to_name`.

What a rerun runs is :func:`rerun_selection`. Each rule reads state and spec only; what
to do when one holds (and the message a person reads) is in ``decide.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from greenloop.core.capabilities import Capabilities
from greenloop.core.engine.events import ActionKind, SuiteSelection
from greenloop.core.engine.state import (
    Counts,
    State,
    TestRecord,
    class_of_root,
    failing,
    roots_of,
    signature_digest,
)
from greenloop.core.model import FailureClass, RedeployPolicy, RerunMode, ValidationSpec


def runner_errors_to_stop(state: State) -> dict[str, str]:
    """Suites without results that need a person (suite -> why): a suite that produced
    nothing is retried once; twice in a row needs a person, and so does once when the
    cause cannot change on a rerun."""
    return {
        s: why
        for s, (n, why) in state.suite_errors.items()
        if n >= 2 or s in state.permanent_errors
    }


def runner_errors_to_retry(state: State) -> list[str]:
    """Suites that produced nothing once: they rerun whole."""
    return sorted(s for s, (n, _) in state.suite_errors.items() if n == 1)


def selection_ignored_twice(state: State) -> list[str]:
    """Suites whose rerun ignored the selection a second time: rerunning cannot help."""
    return sorted(s for s, n in state.selection_misses.items() if n >= 2)


def all_that_ran_passed(c: Counts, retry_suites: Sequence[str]) -> bool:
    """No test fails and no suite waits for its runner-error retry."""
    return c.failed == 0 and not retry_suites


def nothing_ran(state: State) -> bool:
    """The suites reported no tests at all: never success."""
    return not state.tests


def nothing_passed(c: Counts) -> bool:
    """Tests were reported, but every one was skipped: never success."""
    return c.passed == 0


def expected_tests_missing(spec: ValidationSpec, c: Counts) -> int:
    """How many of ``expectedTests`` never ran (0: none missing, or no count set)."""
    expected = spec.expected_tests
    if expected is not None and c.passed < expected:
        return expected - c.passed
    return 0


def goal_met(spec: ValidationSpec, state: State, c: Counts) -> bool:
    """Asked once every test that ran passed: the goal is met when something ran and
    passed and no expected test is missing."""
    return not (nothing_ran(state) or nothing_passed(c) or expected_tests_missing(spec, c))


def round_deadline(spec: ValidationSpec, state: State) -> float | None:
    """When ``deadlineSeconds`` ends the round in flight (None: it has no start). Time
    alone ends a round still running suites or waiting for approval at this moment
    (:func:`~greenloop.core.engine.rounds.on_tick`), as local mode cuts a running suite
    short: results that would come later do not extend the round."""
    if state.started_at is None:
        return None
    return state.started_at + spec.policy.deadline_seconds


def budget_spent(spec: ValidationSpec, state: State, now: float) -> str:
    """Why the budget is spent ("": it is not): ``maxIterations`` iterations ran, or
    ``deadlineSeconds`` passed since the round began."""
    policy = spec.policy
    if state.iteration >= policy.max_iterations:
        return f"maxIterations ({policy.max_iterations}) reached with failures left"
    if state.started_at is not None and now - state.started_at >= policy.deadline_seconds:
        return f"deadlineSeconds ({policy.deadline_seconds}) passed with failures left"
    return ""


def redeploy_was_ineffective(state: State, current: Iterable[tuple[str, str]]) -> bool:
    """The last action was a redeploy and the same tests fail with the same classes
    (``current``: the failing (id, class) pairs now)."""
    return state.last_action is ActionKind.REDEPLOY and state.before_redeploy == (
        signature_digest(current)
    )


def redeploy_can_help(
    spec: ValidationSpec, state: State, failing_now: Sequence[TestRecord], caps: Capabilities
) -> bool:
    """Some failure's root class (a Dependent's is its root's) is in ``redeployOn``, and
    this mode can redeploy the target (``caps``, from :func:`capabilities.of_target`)."""
    roots = roots_of(state, failing_now)  # one walk: a chain is not followed from each test
    redeployable = {
        k for k in (class_of_root(roots[t.id]) for t in failing_now) if k in spec.policy.redeploy_on
    }
    return bool(redeployable) and caps.can_redeploy


def redeploy_needs_approval(spec: ValidationSpec) -> bool:
    """``policy.redeploy: RequireApproval``: a person hands back the token first (§8)."""
    return spec.policy.redeploy is RedeployPolicy.REQUIRE_APPROVAL


def rerun_may_reveal_flake(spec: ValidationSpec, state: State) -> bool:
    """Reruns without a redeploy are left (``flakeRetries``): a test that passes on one is
    flaky, not fixed."""
    return state.retries < spec.policy.flake_retries


def runner_error_alone(c: Counts, retry_suites: Sequence[str], unrun: int = 0) -> bool:
    """Only a suite's runner error is left (``unrun``: the failing tests that are the
    RunnerErrors of shards that produced nothing): it gets its one rerun whatever
    ``flakeRetries`` says."""
    return bool(retry_suites) and c.failed == unrun


def unrun_tests(state: State) -> list[TestRecord]:
    """The tests of shards that produced nothing (docs/design.md §4.1): failing
    RunnerErrors, rerun as a selection rather than their suite whole."""
    return [
        t
        for t in failing(state)
        if t.diagnosis is not None and t.diagnosis.failure_class is FailureClass.RUNNER_ERROR
    ]


def class_to_name(by_class: Mapping[FailureClass, int]) -> FailureClass:
    """The class a stalled round names: the first root class in the built-in order
    (Dependent only when nothing else fails)."""
    order = list(FailureClass)
    roots = [k for k in by_class if k is not FailureClass.DEPENDENT]
    return min(roots, key=order.index) if roots else FailureClass.DEPENDENT


def rerun_selection(
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
    partial = {t.suite for t in unrun_tests(state)}
    out: list[SuiteSelection] = []
    for suite in spec.suites:  # spec order, grouped by priority below
        whole = suite.name in retry_suites and suite.name not in partial
        if whole or suite.name not in reported:
            out.append(SuiteSelection(suite.name))
        elif suite.name in per_suite:
            out.append(SuiteSelection(suite.name, tuple(sorted(per_suite[suite.name]))))
    return tuple(out)
