"""The Markdown report: what a person would write after running the loop by hand.

Summary, per-priority table, failing tests by class with evidence, the why-chain for
each root cause, the action taken in each iteration, the next step, and progress
toward the goal. Pure: built from engine state and the object.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from greenloop.core import markdown
from greenloop.core.engine import (
    ActionKind,
    IterationRecord,
    Phase,
    Reason,
    State,
    TestRecord,
    failing,
)
from greenloop.core.fingerprint import short_id
from greenloop.core.model import FailureClass, StagingValidation
from greenloop.core.status import (
    approval,
    failing_roots,
    failing_tests,
    priorities,
    summary,
    timestamp,
)
from greenloop.core.words import plural

__all__ = [
    "MAX_FAILING_ROWS",
    "MAX_FLAKY_ROWS",
    "MAX_REPORT_BYTES",
    "MAX_WHY_LINES",
    "NEXT_STEPS",
    "add_why",
    "render",
]

NEXT_STEPS: dict[Reason, str] = {
    Reason.GOAL_MET: "Nothing: the goal is met.",
    Reason.AUTH_ERROR: (
        "Check the credentials the suites use (tokens, secrets, service accounts) and the "
        "target's auth configuration; fix them, then start a new round."
    ),
    Reason.TEST_CODE_ERROR: (
        "Fix the test code (imports, syntax, fixtures) shown in the evidence, "
        "then start a new round."
    ),
    Reason.ASSERTION: (
        "Read the assertion evidence: the service answers, but not what the tests expect. "
        "A code or data fix is needed; a redeploy of the same version will not help."
    ),
    Reason.SERVER_ERROR: (
        "Look at the target's logs for the 500s; deploy a fix, then start a new round."
    ),
    Reason.UNKNOWN: (
        "Read the evidence and the suite output; add a spec.classification rule if it recurs."
    ),
    Reason.REDEPLOY_INEFFECTIVE: (
        "The redeploy did not change the failures: inspect the target (logs, config, "
        "dependencies) — the cause is not cleared by a restart."
    ),
    Reason.REDEPLOY_FAILED: (
        "Fix the redeploy (command, webhook or rollout) shown above, then rerun."
    ),
    Reason.EXPECTED_TESTS_MISSING: (
        "Some expected tests never ran: check the suites' commands and selection, or lower "
        "spec.expectedTests if tests were removed on purpose."
    ),
    Reason.BUDGET_EXHAUSTED: (
        "The budget ran out with failures left: read the failing tests above; raise "
        "policy.maxIterations or policy.deadlineSeconds only if progress was still being made."
    ),
    Reason.RUNNER_ERROR: (
        "A suite produced no results twice: check its command, image, timeout and that it "
        "writes JUnit XML to $GREENLOOP_JUNIT_XML."
    ),
    Reason.NO_TESTS: "The suites ran but reported no tests: check their commands.",
    Reason.INTERRUPTED: "The run was interrupted; start it again to continue.",
    Reason.INTERNAL_ERROR: (
        "greenloop itself failed (the message above says where); what was known is "
        "reported. Please report it with this file."
    ),
    Reason.NOTHING_PASSED: "Every test reported was skipped: check the suites' commands and skips.",
    Reason.SELECTION_IGNORED: (
        "The suite's command did not run the tests greenloop selected: make it read the "
        "file $GREENLOOP_SELECT names and run exactly those ids (docs/design.md §4)."
    ),
}


Summary = dict[str, Any]  # status.summary's
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _collector_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Rendering makes millions of short strings beside a large state; each collection
    would walk the whole state (100k failing tests: 1.8 s with the collector, 1.1 s
    without). Nothing here makes reference cycles, so pausing it loses nothing."""

    @functools.wraps(function)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()

    return paused


# Size budget (docs/design.md §5): the operator stores the report in a ConfigMap (1 MiB).
MAX_REPORT_BYTES = 900 * 1024
MAX_FAILING_ROWS = 2000  # most critical first, as in status.failingTests
MAX_FLAKY_ROWS = 1000
MAX_WHY_LINES = 500


def _truncated(n: int, what: str) -> str:
    return f"… truncated, {n} more {what}"


@_collector_paused
def render(obj: StagingValidation, state: State, now: float) -> str:
    summ = summary(state, obj.spec.expected_tests)
    lines: list[str] = []
    add = lines.append
    _add_headline(add, obj, state, now, summ)
    _add_summary(add, summ)
    if state.fingerprint is not None:
        _add_fingerprint(add, state)
    _add_priorities(add, state)
    _add_failing(add, state)
    _add_flaky(add, state)
    _add_why_section(lines, state)
    _add_iterations(add, state)
    return _fit(lines, _next_step(obj, state))


def _add_headline(
    add: Callable[[str], None], obj: StagingValidation, state: State, now: float, summ: Summary
) -> None:
    add(f"# greenloop report: {obj.name}")
    add("")
    elapsed = (now - state.started_at) if state.started_at is not None else 0.0
    headline = {
        Phase.PASSED: "Passed",
        Phase.STALLED: f"Stalled ({state.reason})",
    }.get(state.phase, state.phase.value)
    add(
        f"**{headline}** after {plural(state.iteration, 'iteration')} and "
        f"{plural(state.redeploys, 'redeploy')} in {elapsed:.1f} s — {_text(state.message)}"
    )
    add("")
    add(f"Progress toward the goal: {_bar(summ['passed'], summ['expected'])}")
    add("")


def _add_summary(add: Callable[[str], None], summ: Summary) -> None:
    add("## Summary")
    add("")
    add("| Expected | Ran | Passed | Failed | Skipped | Not run | Pass rate |")
    add("|---:|---:|---:|---:|---:|---:|---:|")
    add(
        f"| {summ['expected']} | {summ['total']} | {summ['passed']} | {summ['failed']} | "
        f"{summ['skipped']} | {summ['notRun']} | {summ['passRate']} |"
    )
    add("")


def _add_priorities(add: Callable[[str], None], state: State) -> None:
    add("## By priority")
    add("")
    add("| Priority | Passed | Failed | Total | |")
    add("|---|---:|---:|---:|---|")
    for row in priorities(state):
        mark = "ok" if row["failed"] == 0 and row["passed"] == row["total"] else "FAILING"
        if row["failed"] == 0 and row["passed"] < row["total"]:
            mark = "skipped tests"
        add(f"| {row['priority']} | {row['passed']} | {row['failed']} | {row['total']} | {mark} |")
    add("")


def _add_failing(add: Callable[[str], None], state: State) -> None:
    """The failing tests by class, the most critical first, at most MAX_FAILING_ROWS."""
    add("## Failing tests")
    add("")
    all_rows = failing_tests(state, limit=None)
    rows = all_rows[:MAX_FAILING_ROWS]
    if not rows:
        add("None.")
        add("")
        return
    by_class: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_class.setdefault(str(row["class"]), []).append(row)
    for cls in [c.value for c in FailureClass if c.value in by_class]:
        group = by_class[cls]
        add(f"### {cls} ({len(group)})")
        add("")
        add("| Test | Suite | Priority | Evidence | Root cause |")
        add("|---|---|---|---|---|")
        for row in group:
            root = _code(str(row["rootCause"]), cell=True) if row["rootCause"] else ""
            add(
                f"| {_code(str(row['id']), cell=True)} | {_cell(str(row['suite']))} | "
                f"{row['priority']} | {_code(str(row['evidence']), cell=True)} | {root} |"
            )
        add("")
    if len(all_rows) > len(rows):
        more = len(all_rows) - len(rows)
        add(_truncated(more, "failing tests (the most critical are shown)"))
        add("")


def _add_flaky(add: Callable[[str], None], state: State) -> None:
    if not state.flaky:
        return
    add("### Flaky (failed, then passed without a redeploy)")
    add("")
    flaky = sorted(state.flaky.values(), key=lambda f: f.id)
    for f in flaky[:MAX_FLAKY_ROWS]:
        add(
            f"- {_code(f.id)} ({_text(f.suite)}): passed again in iteration {f.iteration}; "
            f"had failed with {_code(f.evidence)}"
        )
    if len(flaky) > MAX_FLAKY_ROWS:
        add(_truncated(len(flaky) - MAX_FLAKY_ROWS, "flaky tests"))
    add("")


def _add_why_section(lines: list[str], state: State) -> None:
    lines.extend(("## Why", ""))
    why: list[str] = []
    add_why(why, state)
    lines.extend(why[:MAX_WHY_LINES])
    if len(why) > MAX_WHY_LINES:
        lines.append(_truncated(len(why) - MAX_WHY_LINES, "root causes"))
    lines.append("")


def _add_iterations(add: Callable[[str], None], state: State) -> None:
    add("## Iterations")
    add("")
    # Ran, Passed and Failed count that iteration's results alone; "Passing overall" is
    # the round's total after it, earlier iterations' passes included.
    add("| # | Started | Took | Ran | Passed | Failed | Passing overall | Action | Why |")
    add("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for rec in state.history:
        took = f"{rec.finished - rec.started:.1f} s" if rec.finished is not None else "…"
        overall = str(rec.passed) if rec.finished is not None else "…"
        add(
            f"| {rec.iteration} | {timestamp(rec.started)} | {took} | {rec.ran} | "
            f"{rec.ran_passed} | {rec.ran_failed} | {overall} | "
            f"{rec.action.value if rec.action else 'in progress'} | {_cell(rec.detail)} |"
        )
    notes = [
        (rec.iteration, n)
        for rec in state.history
        for n in (*(f"target: {o}" for o in rec.observed), *rec.notes, *_errors(rec))
    ]
    if notes:
        add("")
        add("What greenloop saw and did:")
        add("")
        for iteration, note in notes:
            add(f"- iteration {iteration}: {_text(note)}")
    add("")


def _next_step(obj: StagingValidation, state: State) -> list[str]:
    """The report's last section, kept whatever the size limit cuts."""
    tail = ["## Next step", ""]
    if state.phase in (Phase.PASSED, Phase.STALLED):
        reason = state.reason or Reason.INTERNAL_ERROR
        tail.append(NEXT_STEPS.get(reason, f"Look at the failing tests above ({reason.value})."))
    elif (gate := approval(obj, state)) is not None:
        tail.append(
            f"Approve the redeploy ({_text(state.redeploy_reason)}) when it may happen: "
            f"{_code(gate['command'])}. Until then nothing is redeployed; the round stops at "
            "deadlineSeconds."
        )
    else:
        tail.append(f"greenloop is working: {_text(state.message)}")
    tail.append("")
    return tail


def _add_fingerprint(add: Callable[[str], None], state: State) -> None:
    """What the targets ran (docs/design.md §8): the results above hold for this only."""
    fp = state.fingerprint
    assert fp is not None
    verb = "proven on" if state.phase is Phase.PASSED else "gathered on"
    add(f"## Target fingerprint {_code(fp.digest)}")
    add("")
    add(f"The results in this report were {verb} these images:")
    add("")
    if not fp.entries:
        add("No target workload was found.")
    else:
        add("| Workload | Pod template | Container | Image | Digest |")
        add("|---|---|---|---|---|")
        for e in fp.entries:
            digest = _code(short_id(e.image_id), cell=True) if e.image_id else "(not reported)"
            add(
                f"| {_cell(e.workload)} | {_code(e.revision, cell=True) if e.revision else ''} | "
                f"{_cell(e.container)} | {_code(e.image, cell=True)} | {digest} |"
            )
    if fp.more:
        add(_truncated(fp.more, "images"))
    add("")


def _fit(body: list[str], tail: list[str], limit: int = MAX_REPORT_BYTES) -> str:
    """The report within ``limit`` bytes: the body cut at a line, with a line saying how
    much was cut, and the next step always kept."""
    tail_text = "\n".join(tail)
    room = limit - len(tail_text.encode()) - 200
    size = 0
    for n, line in enumerate(body):
        size += len(line.encode()) + 1
        if size > room:
            cut = [*body[:n], "", _truncated(len(body) - n, "lines (the report's size limit)"), ""]
            return "\n".join([*cut, tail_text])
    return "\n".join([*body, tail_text])


def add_why(lines: list[str], state: State) -> None:
    """One chain per root cause: test -> class (evidence) -> dependents -> what the target
    showed -> what greenloop did -> how it ended."""
    roots: dict[str, list[str]] = {}
    root_by_id = failing_roots(state)
    for record in failing(state):
        root = root_by_id[record.id]
        if record.id != root.id:
            roots.setdefault(root.id, []).append(record.id)
        else:
            roots.setdefault(root.id, [])
    resolved = _resolved(state)
    if not roots and not resolved:
        lines.append("Every test passed on its first run.")
        return
    by_iteration = {r.iteration: r for r in state.history}
    entries: list[_Entry] = []
    for root_id, dependents in sorted(roots.items()):
        root = state.tests[root_id]
        if root.diagnosis is None:
            continue
        tail = (*_observed(by_iteration.get(root.last_failed)), _fate(state, root))
        entries.append(
            (root_id, root.diagnosis.failure_class.value, root.diagnosis.evidence, dependents, tail)
        )
    resolved_dependents: dict[str, list[str]] = {}
    for t, (c, _, _, _) in resolved.items():
        if c == FailureClass.DEPENDENT.value:
            for root_id in dict.fromkeys(state.tests[t].depends_on):
                resolved_dependents.setdefault(root_id, []).append(t)
    for test_id, (cls, evidence, first, how) in sorted(resolved.items()):
        current = state.tests[test_id]
        if cls == FailureClass.DEPENDENT.value and any(d in resolved for d in current.depends_on):
            continue  # told with its root
        dependents = resolved_dependents.get(test_id, [])
        tail = (*_observed(by_iteration.get(first)), how)
        entries.append((test_id, cls, evidence, sorted(dependents), tail))
    _add_grouped(lines, entries)


# (test id, class, evidence, dependent ids, the rest of the chain)
_Entry = tuple[str, str, str, list[str], tuple[str, ...]]
MAX_GROUP_IDS = 5


def _add_grouped(lines: list[str], entries: list[_Entry]) -> None:
    """One line per root cause; tests without dependents that share the class and the
    rest of the chain (the app was simply down: 14 tests, one story) share one line."""
    groups: dict[tuple[str, tuple[str, ...]], list[_Entry]] = {}
    order: list[tuple[str, tuple[str, ...]] | str] = []
    for entry in entries:
        test_id, cls, evidence, dependents, tail = entry
        if dependents:
            order.append(test_id)
            groups[(test_id, ())] = [entry]
            continue
        key = (cls, tail)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(entry)
    for item in order:
        group = groups[(item, ())] if isinstance(item, str) else groups[item]
        test_id, cls, evidence, dependents, tail = group[0]
        if len(group) == 1:
            chain = _chain(test_id, cls, evidence, dependents)
        else:
            shown = ", ".join(_code(e[0]) for e in group[:MAX_GROUP_IDS])
            more = len(group) - MAX_GROUP_IDS
            shown += f", and {more} more" if more > 0 else ""
            chain = [
                f"{len(group)} tests ({shown}) failed → **{cls}**, evidence e.g. {_code(evidence)}"
            ]
        lines.append("- " + " → ".join([*chain, *tail]))


def _chain(test_id: str, cls: str, evidence: str, dependents: list[str]) -> list[str]:
    chain = [f"{_code(test_id)} failed → **{cls}**, evidence {_code(evidence)}"]
    if dependents:
        chain.append(
            f"{plural(len(dependents), 'dependent test')} failed with it "
            f"({', '.join(_code(d) for d in dependents)})"
        )
    return chain


def _observed(rec: IterationRecord | None) -> list[str]:
    if rec is None or not rec.observed:
        return []
    # One probe per suite gives near-identical lines that differ only in latency: show each
    # distinct observation once, the first of its kind.
    seen: dict[str, str] = {}
    for o in rec.observed:
        head, sep, tail = o.rpartition(" in ")
        key = head if sep and tail.endswith(" ms") and tail[:-3].isdigit() else o
        seen.setdefault(key, o)
    return ["meanwhile the target showed " + "; ".join(_code(o) for o in seen.values())]


def _resolved(state: State) -> dict[str, tuple[str, str, int, str]]:
    """Tests that failed in this round and pass now: how they failed first, in which
    iteration, and what made them pass."""
    out: dict[str, tuple[str, str, int, str]] = {}
    by_iteration = {r.iteration: r for r in state.history}
    for test_id, current in state.tests.items():
        first = current.first_failure
        if first is None or current.failing:
            continue
        if test_id in state.flaky:
            again = state.flaky[test_id].iteration
            how = f"passed on a rerun without redeploy in iteration {again} (flaky)"
        else:
            rec = by_iteration.get(current.last_failed)
            redeployed = rec is not None and rec.action is ActionKind.REDEPLOY
            verb = "redeployed" if redeployed else "reran"
            how = (
                f"{verb} after iteration {current.last_failed} → passed in iteration "
                f"{current.iteration}"
            )
        out[test_id] = (first.failure_class.value, first.evidence, first.iteration, how)
    return out


def _fate(state: State, record: TestRecord) -> str:
    first = record.first_failure.iteration if record.first_failure else record.last_failed
    redeploys = [
        r.iteration
        for r in state.history
        if r.action is ActionKind.REDEPLOY and first <= r.iteration <= record.last_failed
    ]
    parts = []
    if redeploys:
        parts.append(f"redeployed after iteration {', '.join(map(str, redeploys))}")
    parts.append(f"still failing after {plural(max(record.failed_runs, 1), 'run')}")
    return " → ".join(parts)


def _errors(rec: IterationRecord) -> Iterable[str]:
    return (f"suite {suite} produced no results: {why}" for suite, why in rec.suite_errors)


def _bar(done: int, goal: int, width: int = 30) -> str:
    goal = max(goal, 1)
    filled = min(width, round(width * done / goal))
    return f"`[{'#' * filled}{'.' * (width - filled)}]` {done}/{goal} ({100.0 * done / goal:.1f}%)"


def _code(text: str, *, cell: bool = False) -> str:
    return markdown.code(text, cell=cell)


def _text(text: str) -> str:
    return markdown.text(text)


def _cell(text: str) -> str:
    return markdown.text(text, cell=True)
