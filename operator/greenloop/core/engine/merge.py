"""One suite's results merged into state: one record per test, never one per iteration
(docs/design.md §5), under the verdict rule (§7, ``verdict.py``). A suite without results
is counted as a runner error; a test that passes after failing without a redeploy is
listed as flaky."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from greenloop.core.classify import CompiledRules, diagnose_batch
from greenloop.core.engine.events import ActionKind, SuiteRun, SuiteSelection
from greenloop.core.engine.history import (
    _bounded,
    _clip,
    _current,
    _suite_priority,
    _with_current,
)
from greenloop.core.engine.state import MAX_NOTE, FirstFailure, FlakyTest, State, TestRecord
from greenloop.core.engine.verdict import (
    LineUp,
    line_up,
    not_rerun_records,
    rerun_ignored_selection,
    results_that_count,
)
from greenloop.core.model import Diagnosis, Outcome, TestResult, ValidationSpec


def _merge(
    spec: ValidationSpec,
    state: State,
    selection: SuiteSelection,
    run: SuiteRun,
    rules: CompiledRules,
) -> State:
    """One suite's results into state, under the verdict rule (docs/design.md §7): only a
    result from the run that selected a test says whether it passes."""
    if run.error is not None:
        return _record_runner_error(state, run, run.error)
    chosen = selection.test_ids
    if chosen is None:
        # A whole-suite run is the new truth for that suite: vanished tests go.
        tests = {k: v for k, v in state.tests.items() if v.suite != run.suite}
        line, results = LineUp(run.suite, 0), list(run.tests)
    else:
        line = line_up(selection, run.tests)
        results = results_that_count(run.tests, chosen, line)
        tests = {**state.tests, **not_rerun_records(spec, state, run.suite, line)}
    state = _count_line_up(state, line)
    return _merge_results(spec, state, run.suite, results, tests, rules)


def _record_runner_error(state: State, run: SuiteRun, error: str) -> State:
    """A suite that produced no results: counted per suite (a rerun gets one more chance,
    docs/design.md §1) and noted in the iteration; a cause a rerun cannot change is
    remembered as permanent."""
    suite = run.suite
    suite_errors = dict(state.suite_errors)
    n, _ = suite_errors.get(suite, (0, ""))
    why = _clip(error, MAX_NOTE)
    suite_errors[suite] = (n + 1, why)
    permanent = state.permanent_errors
    if run.permanent and suite not in permanent:
        permanent = (*permanent, suite)
    record = _current(state)
    record = replace(record, suite_errors=(*record.suite_errors, (suite, why)))
    state = replace(state, suite_errors=suite_errors, permanent_errors=permanent)
    return _with_current(state, record)


def _count_line_up(state: State, line: LineUp) -> State:
    """The suite produced results: its runner-error count starts over; a rerun that did
    not run its selection is counted and noted, its extra results counted as ignored."""
    suite_errors = dict(state.suite_errors)
    suite_errors.pop(line.suite, None)
    misses = dict(state.selection_misses)
    if rerun_ignored_selection(line):
        misses[line.suite] = misses.get(line.suite, 0) + 1
    record = _current(state)
    if line.message:  # bounded with the rest of the iteration's notes in _merge_results
        record = replace(record, notes=(*record.notes, line.message))
    state = replace(
        state,
        suite_errors=suite_errors,
        selection_misses=misses,
        ignored_results=state.ignored_results + len(line.extra),
    )
    return _with_current(state, record)


def _merge_results(
    spec: ValidationSpec,
    state: State,
    suite: str,
    results: Sequence[TestResult],
    tests: Mapping[str, TestRecord],
    rules: CompiledRules,
) -> State:
    """The results that count, diagnosed, into records. ``tests``: the records to merge
    into (vanished tests dropped, NotRerun ones added); ``state.tests`` still holds each
    test's previous record, its history in this round."""
    merged = dict(tests)
    flaky = dict(state.flaky)
    was_redeploy = state.last_action is ActionKind.REDEPLOY and state.iteration > 1
    failing_ids = {t.id for t in merged.values() if t.failing}
    suite_priority = _suite_priority(spec, suite)
    record = _current(state)
    ran, ran_passed, ran_failed = record.ran, record.ran_passed, record.ran_failed
    for result, diagnosis in diagnose_batch(results, rules, failing_ids=failing_ids):
        previous = state.tests.get(result.id)
        if diagnosis is not None:
            diagnosis = Diagnosis(
                diagnosis.failure_class, _clip(diagnosis.evidence), diagnosis.root_cause
            )
        merged[result.id] = _record_of(
            result, diagnosis, previous, suite, suite_priority, state.iteration
        )
        ran += 1
        if diagnosis is not None:
            ran_failed += 1
        elif result.outcome is Outcome.PASSED:
            ran_passed += 1
        _update_flaky(flaky, result, diagnosis, previous, suite, state.iteration, was_redeploy)
    record = replace(
        record,
        ran=ran,
        ran_passed=ran_passed,
        ran_failed=ran_failed,
        notes=_bounded(record.notes),
    )
    state = replace(state, tests=merged, flaky=flaky)
    return _with_current(state, record)


def _record_of(
    result: TestResult,
    diagnosis: Diagnosis | None,
    previous: TestRecord | None,
    suite: str,
    suite_priority: str,
    iteration: int,
) -> TestRecord:
    """A result's record: how it first failed in this round, and how often it failed."""
    first = previous.first_failure if previous is not None else None
    runs = previous.failed_runs if previous is not None else 0
    last = previous.last_failed if previous is not None else 0
    if diagnosis is not None:
        if first is None:
            first = FirstFailure(iteration, diagnosis.failure_class, diagnosis.evidence)
        runs += 1
        last = iteration
    return TestRecord(
        id=result.id,
        suite=suite,
        priority=result.priority or suite_priority,
        outcome=result.outcome,
        iteration=iteration,
        diagnosis=diagnosis,
        depends_on=result.depends_on,
        first_failure=first,
        failed_runs=runs,
        last_failed=last,
    )


def _update_flaky(
    flaky: dict[str, FlakyTest],
    result: TestResult,
    diagnosis: Diagnosis | None,
    previous: TestRecord | None,
    suite: str,
    iteration: int,
    was_redeploy: bool,
) -> None:
    """A failing test is not flaky; a test the runner itself reran to a pass is; and so is
    one that failed, had nothing redeployed, and passes now (docs/design.md §1)."""
    if diagnosis is not None:
        flaky.pop(result.id, None)
    elif result.flaky:
        flaky[result.id] = FlakyTest(
            result.id, suite, iteration, "failed, then passed on the runner's rerun"
        )
    elif previous is not None and previous.diagnosis is not None and not was_redeploy:
        # It failed, nothing was redeployed, and now it passes: flaky.
        flaky[result.id] = FlakyTest(result.id, suite, iteration, previous.diagnosis.evidence)
