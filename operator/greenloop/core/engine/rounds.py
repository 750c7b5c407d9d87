"""What starts a round (docs/design.md §1, last rule; §6): :func:`begin`, a spec change,
the greenloop.dev/rerun annotation, a target changed by someone else, and what time alone
changes (:func:`on_tick`: revalidation, an approval or a suite run that outlived the
deadline)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from greenloop.core.engine.events import ActionKind, Phase, Reason, RunSuites, SuiteSelection
from greenloop.core.engine.history import (
    _annotate,
    _clip,
    _current,
    _finish,
    _priority_groups,
    _with_current,
)
from greenloop.core.engine.rules import round_deadline
from greenloop.core.engine.state import (
    MAX_COUNTER,
    MAX_NOTE,
    Decision,
    FlakyTest,
    IterationRecord,
    State,
    current_action,
)
from greenloop.core.fingerprint import Fingerprint, changes, refine
from greenloop.core.model import ValidationSpec
from greenloop.core.words import plural


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
        why=f"greenloop.dev/rerun changed to {_clip(value, 64)!r}",
        trigger=Reason.RERUN_REQUESTED,
        fingerprint=state.fingerprint,  # the targets are as they were: the same baseline
        rerun=value,
    )


def wake_at(spec: ValidationSpec, state: State) -> float | None:
    """When time alone next changes this state (:func:`on_tick`), or None: the deadline of
    a round running suites or waiting for approval; the revalidation of a Passed round."""
    if state.phase in (Phase.TESTING, Phase.WAITING_APPROVAL):
        return round_deadline(spec, state)
    if state.phase is Phase.PASSED and spec.revalidate_every_seconds:
        return _ended_at(state) + spec.revalidate_every_seconds
    return None


def on_tick(spec: ValidationSpec, state: State, now: float) -> Decision:
    """Time passed. A redeploy still waiting for approval when ``deadlineSeconds`` is
    spent ends the round ``Stalled``/``BudgetExhausted``: waiting counts against the
    deadline like any other step, so nothing waits forever. A Passed round is revalidated
    (a new round) ``revalidateEvery`` after it ended. Suites still running when the
    deadline passes end the round the same way: the shell stops their runs, and their
    late results are ignored (the action they answer is over). Anything else changes
    nothing."""
    due = wake_at(spec, state)
    if due is None or now < due:
        return Decision(state, current_action(state))
    if state.phase in (Phase.WAITING_APPROVAL, Phase.TESTING):
        if state.phase is Phase.WAITING_APPROVAL:
            message = (
                f"deadlineSeconds ({spec.policy.deadline_seconds}) passed while the redeploy "
                f"waited for approval (token {state.action_id}); not redeploying"
            )
        else:
            ran = ", ".join(s.suite for s in state.running if s.suite not in state.reported)
            message = (
                f"deadlineSeconds ({spec.policy.deadline_seconds}) passed while suites ran "
                f"({ran}); their runs were stopped"
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


def on_invalid_state(spec: ValidationSpec, state: State, why: str, now: float) -> Decision:
    """A stored state that cannot be this spec's round (``snapshot.problem`` says why,
    naming the field) ends ``Stalled``/``InvalidState``: nothing it names is run or
    waited for, and its counters are brought back within bounds. A new round (the
    rerun annotation, a spec change) starts from it as from any stalled round."""
    state = replace(
        state,
        iteration=min(max(state.iteration, 0), spec.policy.max_iterations),
        round=min(max(state.round, 1), MAX_COUNTER),
        step=min(max(state.step, 0), MAX_COUNTER - 1),
    )
    return _finish(state, now, Phase.STALLED, Reason.INVALID_STATE, _clip(why, MAX_NOTE))


def on_too_many_tests(state: State, why: str, now: float) -> Decision:
    """A state over the object's budget (``budget.too_many_tests`` says why, naming the
    limit) ends ``Stalled``/``TooManyTests``; see :func:`_outgrown`."""
    return _outgrown(state, now, Reason.TOO_MANY_TESTS, why)


def on_status_rejected(state: State, why: str, now: float) -> Decision:
    """A status the API server refused for good (``budget.status_refusal`` says why)
    ends ``Stalled``/``StatusRejected``; see :func:`_outgrown`."""
    return _outgrown(state, now, Reason.STATUS_REJECTED, why)


def _outgrown(state: State, now: float, reason: Reason, why: str) -> Decision:
    """Stalled, with what grows with the test count dropped (the test table, the flaky
    tests), so the stall itself is small enough to write; the iteration's record keeps
    how many passed and failed. Nothing runs until a new round (the rerun annotation, a
    spec change), which would meet the same limit unless the spec changed."""
    decision = _finish(state, now, Phase.STALLED, reason, _clip(why, MAX_NOTE))
    small = replace(decision.state, tests={}, flaky={}, before_redeploy=None)
    return Decision(small, current_action(small))


def _ended_at(state: State) -> float:
    """When the round ended: its last iteration's end."""
    finished = _current(state).finished
    if finished is not None:
        return finished
    return state.started_at or 0.0


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
