"""The verdict rule (docs/design.md §7): a test counts as passing only when a result from
the latest run that selected it says passed. How a rerun's results line up with its
selection (:func:`line_up`), which of them count, and the ``NotRerun`` record of a
selected test the rerun skipped or did not report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from greenloop.core.classify import is_failing
from greenloop.core.engine.events import SuiteSelection
from greenloop.core.engine.history import _suite_priority
from greenloop.core.engine.state import FirstFailure, State, TestRecord
from greenloop.core.model import Diagnosis, FailureClass, Outcome, TestResult, ValidationSpec
from greenloop.core.words import plural


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


def rerun_ignored_selection(line: LineUp) -> bool:
    """A rerun did not run what it selected: selected tests missing or skipped, or tests
    that were not selected actually ran. The second time for a suite stops the round
    (``rules.selection_ignored_twice``)."""
    return bool(line.missing or line.skipped or line.ran_extra)


def results_that_count(
    results: Iterable[TestResult], chosen: tuple[str, ...], line: LineUp
) -> list[TestResult]:
    """Of a rerun's results, those the verdict reads: for a selected test, and not
    reported as skipped (those are NotRerun). Results for tests not selected are
    ignored, so a runner that reports deselected tests as skipped overwrites nothing."""
    wanted = set(chosen)  # once: a set per result made a rerun of 30,000 tests take 41 s
    skips = set(line.skipped)
    return [t for t in results if t.id in wanted and t.id not in skips]


def not_rerun_records(
    spec: ValidationSpec, state: State, suite: str, line: LineUp
) -> dict[str, TestRecord]:
    """A failing ``NotRerun`` record for each selected test the rerun skipped or did not
    report: never passing, and never a reason to redeploy."""
    return {
        test_id: _not_rerun(spec, state, suite, test_id, state.tests.get(test_id))
        for test_id in sorted(set(line.missing) | set(line.skipped))
    }


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
