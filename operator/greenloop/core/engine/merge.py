"""One suite's results merged into state: one record per test, never one per iteration
(docs/design.md §5), under the verdict rule (§7, ``verdict.py``). A suite without results
is counted as a runner error; a test that passes after failing without a redeploy is
listed as flaky."""

from __future__ import annotations

import math
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
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult, ValidationSpec

# A duration kept for balancing is capped at a day: a runner's nonsense (time="1e300")
# must not make one test outweigh a suite forever.
_MAX_SECONDS = 86_400.0


def _merge(
    spec: ValidationSpec,
    state: State,
    selection: SuiteSelection,
    run: SuiteRun,
    rules: CompiledRules,
) -> State:
    """One suite's results into state, under the verdict rule (docs/design.md §7): only a
    result from the run that selected a test says whether it passes. A sharded suite some
    of whose shards produced nothing (``run.shard_error``) merges what the others
    reported; the failed shards' tests are RunnerErrors (:func:`_record_unrun`)."""
    if run.error is not None:
        return _record_runner_error(state, run, run.error)
    state = _note_overhead(spec, state, run)
    state = _note_shards(state, run)
    prior = state.suite_errors.get(run.suite)  # a shard error again counts as twice
    chosen = selection.test_ids
    unrun = set(run.unrun)
    if chosen is None and run.shard_error is None:
        # A whole-suite run is the new truth for that suite: vanished tests go.
        tests = {k: v for k, v in state.tests.items() if v.suite != run.suite}
        line, results = LineUp(run.suite, 0), list(run.tests)
        if run.split_ignored:
            split = LineUp(run.suite, len(run.split_ignored), missing=run.split_ignored)
            tests.update(not_rerun_records(spec, state, run.suite, split))
    elif chosen is None:
        # Part of a whole-suite run is missing, so it is no new truth: the suite's known
        # tests no shard reported were the failed shard's (the runner chose), not run.
        reported = {t.id for t in run.tests}
        unrun |= {k for k, v in state.tests.items() if v.suite == run.suite} - reported
        tests = dict(state.tests)
        line, results = LineUp(run.suite, 0), list(run.tests)
    else:
        # The failed shards' tests are not the runner's selection misses: lined up
        # without them, they are RunnerErrors below, not NotRerun.
        ran = SuiteSelection(selection.suite, tuple(t for t in chosen if t not in unrun))
        line = line_up(ran, run.tests)
        results = results_that_count(run.tests, ran.test_ids or (), line)
        tests = {**state.tests, **not_rerun_records(spec, state, run.suite, line)}
    state = _count_line_up(state, line)
    if run.split_ignored:
        state = _count_split_ignored(state, run)
    state = _merge_results(spec, state, run.suite, results, tests, rules)
    if run.shard_error is not None:
        if prior is not None:
            state = replace(state, suite_errors={**state.suite_errors, run.suite: prior})
        state = _record_unrun(spec, state, run, run.shard_error, sorted(unrun))
    return state


# An overhead above this is not start-up (a shard that waited for room on a busy cluster).
_MAX_OVERHEAD = 600.0


def _note_overhead(spec: ValidationSpec, state: State, run: SuiteRun) -> State:
    """Keep how long the run took beyond its tests at its width (docs/design.md §4.1):
    the latest per width, the last two widths, newest first. An unsharded run's is its
    start to finish beyond its tests' seconds; a sharded run's the merge measured.
    Shards run in waves (more than policy.parallelism) end later by design: not kept;
    nor for a suite of one shard, which has no width to choose."""
    if not any(s.name == run.suite and s.shards > 1 for s in spec.suites):
        return state
    width = run.width or 1
    overhead = run.overhead
    if not run.width and run.started > 0 and run.finished >= run.started:
        tests = math.fsum(t.time for t in run.tests if math.isfinite(t.time) and t.time > 0)
        overhead = max(0.0, run.finished - run.started - tests)
    if overhead is None or overhead > _MAX_OVERHEAD or width > spec.policy.parallelism:
        return state
    older = [(k, o) for k, o in state.shard_overheads.get(run.suite, ()) if k != width]
    kept = ((width, round(overhead, 2)), *older[:1])
    return replace(state, shard_overheads={**state.shard_overheads, run.suite: kept})


def _count_split_ignored(state: State, run: SuiteRun) -> State:
    """A whole-suite run whose shards each reported the same tests (the runner ignored
    GREENLOOP_SHARD_INDEX/COUNT, docs/design.md §4.1) is counted as a rerun that ignored
    its selection: a selection miss (the second stops the round as SelectionIgnored),
    and a note; its tests are NotRerun."""
    ids = run.split_ignored
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    note = (
        f"suite {run.suite}: {len(ids)} test(s) reported by more than one shard ({shown}):"
        " the runner ignored GREENLOOP_SHARD_INDEX and GREENLOOP_SHARD_COUNT; not counted"
        " (NotRerun)"
    )
    misses = {**state.selection_misses, run.suite: state.selection_misses.get(run.suite, 0) + 1}
    record = _current(state)
    record = replace(record, notes=(*record.notes, note))
    return _with_current(replace(state, selection_misses=misses), record)


def _note_shards(state: State, run: SuiteRun) -> State:
    """One note per shard of a sharded suite (duration, tests, pod or process), bounded
    with the iteration's other notes."""
    if not run.shard_lines:
        return state
    record = _current(state)
    lines = tuple(f"suite {run.suite}: {line}" for line in run.shard_lines)
    return _with_current(state, replace(record, notes=_bounded((*record.notes, *lines))))


def _record_unrun(
    spec: ValidationSpec, state: State, run: SuiteRun, error: str, unrun: Sequence[str]
) -> State:
    """The tests of shards that produced nothing: each a failing RunnerError (its test
    not run: never passed, docs/design.md §4.1), and the suite's runner error counted as
    for a suite without results: retried once (its failing tests, these among them),
    twice needs a person."""
    evidence = _clip(f"not run: {error}")
    tests = dict(state.tests)
    for test_id in unrun:
        prev = tests.get(test_id)
        first = prev.first_failure if prev is not None else None
        if first is None:
            first = FirstFailure(state.iteration, FailureClass.RUNNER_ERROR, evidence)
        tests[test_id] = TestRecord(
            id=test_id,
            suite=run.suite,
            priority=prev.priority if prev is not None else _suite_priority(spec, run.suite),
            outcome=Outcome.SKIPPED,
            iteration=state.iteration,
            diagnosis=Diagnosis(FailureClass.RUNNER_ERROR, evidence),
            depends_on=prev.depends_on if prev is not None else (),
            first_failure=first,
            failed_runs=(prev.failed_runs if prev is not None else 0) + 1,
            last_failed=state.iteration,
            seconds=prev.seconds if prev is not None else 0.0,
        )
    return _record_runner_error(replace(state, tests=tests), run, error)


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
    seconds = result.time if math.isfinite(result.time) and result.time > 0 else 0.0
    if not seconds and previous is not None:
        seconds = previous.seconds  # a runner that stopped measuring: the last known
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
        seconds=min(seconds, _MAX_SECONDS),
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
    elif (why := _failed_before(previous)) and not was_redeploy:
        # It failed, nothing was redeployed, and now it passes: flaky.
        flaky[result.id] = FlakyTest(result.id, suite, iteration, why)


def _failed_before(previous: TestRecord | None) -> str:
    """How the test last failed by itself ("": it did not). A RunnerError of a lost
    shard is no failure of the test (it did not run): what counts is how it failed
    before it was lost, if it did (docs/design.md §4.1)."""
    if previous is None or previous.diagnosis is None:
        return ""
    if previous.diagnosis.failure_class is not FailureClass.RUNNER_ERROR:
        return previous.diagnosis.evidence
    first = previous.first_failure
    if first is None or first.failure_class is FailureClass.RUNNER_ERROR:
        return ""
    return first.evidence
