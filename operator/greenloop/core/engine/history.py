"""The iteration record and the steps every transition takes on it: open an iteration
(its batches grouped by priority), note in it, close it, end the round; and the bounds
that keep what a suite prints inside the storage budget (docs/design.md §5)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from greenloop.core.engine.events import ActionKind, Phase, Reason, RunSuites, SuiteSelection
from greenloop.core.engine.state import (
    MAX_EVIDENCE,
    MAX_HISTORY,
    MAX_NOTE,
    MAX_NOTES,
    Decision,
    IterationRecord,
    State,
    counts,
    current_action,
)
from greenloop.core.model import DEFAULT_PRIORITY, ValidationSpec
from greenloop.core.words import plural


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
