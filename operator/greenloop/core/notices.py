"""What a person would want told about a decision, one notice per decision at most.

The operator posts each notice as a Kubernetes Event on the object (`kubectl describe
sv`, `kubectl get events`; docs/design.md §8); which decisions deserve one, and whether
it is a Warning, is decided here, from the state before and after a step, so the rule is
pinned by unit tests and the handler only posts.
"""

from __future__ import annotations

from typing import NamedTuple

from greenloop.core.engine import (
    AwaitApproval,
    Decision,
    Finish,
    Phase,
    Redeploy,
    RunSuites,
    State,
)
from greenloop.core.fingerprint import missing
from greenloop.core.model import StagingValidation
from greenloop.core.status import approval_command

__all__ = ["Notice", "notices"]


class Notice(NamedTuple):
    reason: str  # the Event's reason: CamelCase, what `kubectl get events` shows first
    message: str
    warning: bool = False  # Warning: a person has to act; Normal: progress


def notices(before: State | None, decision: Decision, obj: StagingValidation) -> tuple[Notice, ...]:
    """The notices for a step (:func:`_step_notices`), and at a round's start a warning
    for each target that does not exist (:func:`_target_missing`)."""
    told = _step_notices(before, decision, obj)
    if before is None or before.round != decision.state.round:
        told += _target_missing(decision.state, obj)
    return told


def _target_missing(state: State, obj: StagingValidation) -> tuple[Notice, ...]:
    """Rule TargetMissing: a target workload that does not exist is told at the first
    visit of a round, not when a redeploy is first decided (it fails then)."""
    workloads = [f"{w.kind}/{w.name}" for w in obj.spec.target.workloads]
    if state.fingerprint is None or not workloads:
        return ()
    absent = missing(state.fingerprint, workloads)
    if not absent:
        return ()
    message = (
        f"{', '.join(absent)} not found in namespace {obj.namespace} (spec.target.workloads):"
        " a redeploy fails until it exists"
    )
    return (Notice("TargetMissing", message, warning=True),)


def _step_notices(
    before: State | None, decision: Decision, obj: StagingValidation
) -> tuple[Notice, ...]:
    """The notices for going from ``before`` (None: the object had no state yet) to
    ``decision``. A step that changes nothing a person tracks (one more suite of the
    same iteration finished, a repeated tick) gives none, so a restarted shell that
    repeats a step posts nothing twice."""
    state, action = decision.state, decision.action
    if before is not None and before.round != state.round:
        # A new round names what started it: SpecChanged, RerunRequested, Revalidating or
        # TargetChanged. All Normal: even a deploy by someone else (TargetChanged) is
        # expected, greenloop answers it with a fresh round, and nobody has to act.
        why = state.round_reason.value if state.round_reason else "RoundStarted"
        return (Notice(why, state.message),)
    if isinstance(action, AwaitApproval) and (
        before is None or before.phase is not Phase.WAITING_APPROVAL
    ):
        command = approval_command(obj.name, obj.namespace, action.token)
        message = (
            f"iteration {action.iteration}: redeploy because of {action.reason}; approve: {command}"
        )
        return (Notice("WaitingApproval", message),)
    if isinstance(action, Finish) and (before is None or before.phase is not state.phase):
        if action.phase is Phase.PASSED:
            return (Notice("Passed", action.message),)
        return (Notice(action.reason.value, action.message, warning=True),)
    if isinstance(action, Redeploy) and (before is None or before.phase is not Phase.REDEPLOYING):
        approved = before is not None and before.phase is Phase.WAITING_APPROVAL
        message = f"iteration {action.iteration}: {action.reason}" + (" (approved)" * approved)
        return (Notice("Redeploying", message),)
    if isinstance(action, RunSuites) and (before is None or before.iteration != state.iteration):
        return (Notice("IterationStarted", state.message),)
    return ()
