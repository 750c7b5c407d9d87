"""The transitions a batch and a redeploy go through (docs/design.md §6): a suite's
results (:func:`on_suite`), the redeploy started and done, the approval, and the two
ends a shell calls (:func:`interrupt`, :func:`internal_error`). An event whose
``action_id`` is not the action in flight changes nothing."""

from __future__ import annotations

from dataclasses import replace

from greenloop.core.budget import too_many_tests
from greenloop.core.capabilities import Capabilities, of_target
from greenloop.core.classify import CompiledRules, compile_rules
from greenloop.core.engine.decide import _batch_done
from greenloop.core.engine.events import (
    Phase,
    Reason,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    SuiteFinished,
    SuiteSelection,
)
from greenloop.core.engine.history import (
    _bounded,
    _clip,
    _current,
    _finish,
    _start_iteration,
    _with_current,
)
from greenloop.core.engine.merge import _merge
from greenloop.core.engine.rounds import _check_target, on_too_many_tests
from greenloop.core.engine.state import MAX_NOTE, Decision, State, current_action
from greenloop.core.model import ValidationSpec


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
    if why := too_many_tests(len(state.tests)):
        return on_too_many_tests(state, why, now)
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


def _caps(spec: ValidationSpec, caps: Capabilities | None) -> Capabilities:
    return caps if caps is not None else of_target(spec.target, None)


def _remaining(spec: ValidationSpec, state: State) -> tuple[SuiteSelection, ...]:
    """Suites of the batch still out; a suite the spec no longer has is not waited for."""
    names = {s.name for s in spec.suites}
    return tuple(s for s in state.running if s.suite not in state.reported and s.suite in names)
