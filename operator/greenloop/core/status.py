"""The object's status (docs/design.md §2) and its kstatus conditions, computed from engine state.

Both modes write this shape: the operator patches it into the object, local mode prints
it with ``--json``. Times come in as epoch seconds; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from greenloop.core.crd import API_VERSION, KIND
from greenloop.core.engine import (
    MAX_HISTORY,
    Phase,
    State,
    TestRecord,
    counts,
    failing,
    roots_of,
    tally,
)
from greenloop.core.model import PRIORITIES, StagingValidation

__all__ = [
    "APPROVE_ANNOTATION",
    "MAX_FAILING",
    "MAX_FINGERPRINT",
    "MAX_FLAKY",
    "MAX_HISTORY",
    "RERUN_ANNOTATION",
    "approval",
    "approval_command",
    "build_status",
    "conditions",
    "failing_roots",
    "failing_tests",
    "fingerprint",
    "flaky_tests",
    "history",
    "invalid_spec_reported",
    "invalid_spec_status",
    "pending_status",
    "priorities",
    "stalled_reported",
    "stalled_status",
    "status_object",
    "summary",
    "timestamp",
]

# The CRD's maxItems (crds/stagingvalidation.yaml): a longer list and the API server
# refuses the whole status. The full lists are in the report.
MAX_FAILING = 50
MAX_FLAKY = 50
MAX_FINGERPRINT = 20  # entries of status.fingerprint; the report lists up to 40
# The annotations a person sets on the object (docs/design.md §8): approve the redeploy
# waiting in WaitingApproval; start a new round.
APPROVE_ANNOTATION = "greenloop.dev/approve"
RERUN_ANNOTATION = "greenloop.dev/rerun"


def approval_command(name: str, namespace: str, token: str) -> str:
    """The command that approves the redeploy waiting on ``token``."""
    return f"kubectl annotate sv/{name} -n {namespace} {APPROVE_ANNOTATION}={token} --overwrite"


def approval(obj: StagingValidation, state: State) -> dict[str, str] | None:
    """``status.approval`` while a redeploy waits for one, else None."""
    if state.phase is not Phase.WAITING_APPROVAL:
        return None
    token = state.action_id
    return {"token": token, "command": approval_command(obj.name, obj.namespace, token)}


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(state: State, expected: int | None) -> dict[str, Any]:
    passed, failed, skipped = counts(state)
    total = passed + failed + skipped
    not_run = max(expected - total, 0) if expected is not None else 0
    rate = f"{100.0 * passed / total:.1f}%" if total else "0.0%"
    return {
        "expected": expected if expected is not None else total,
        "total": total,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "notRun": not_run,
        "passRate": rate,
    }


def priorities(state: State) -> list[dict[str, Any]]:
    groups: dict[str, list[Any]] = {}
    for record in state.tests.values():
        groups.setdefault(record.priority, []).append(record)
    order = {p: i for i, p in enumerate(PRIORITIES)}
    out = []
    for p in sorted(groups, key=lambda p: order.get(p, len(order))):
        c = tally(groups[p])
        out.append({"priority": p, "passed": c.passed, "failed": c.failed, "total": c.total})
    return out


def failing_roots(state: State) -> dict[str, TestRecord]:
    """Every failing test's root (``engine.root_of`` of each), found in one pass by
    ``engine.roots_of``: asking root_of of each test walked a chain of n Dependents n
    times."""
    return roots_of(state, failing(state))


def failing_tests(state: State, limit: int | None = MAX_FAILING) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(PRIORITIES)}
    records = sorted(failing(state), key=lambda t: (order.get(t.priority, 99), t.suite, t.id))
    root_by_id = failing_roots(state)
    out: list[dict[str, Any]] = []
    for record in records[:limit]:
        assert record.diagnosis is not None
        root = root_by_id[record.id]
        out.append(
            {
                "id": record.id,
                "suite": record.suite,
                "priority": record.priority,
                "class": record.diagnosis.failure_class.value,
                "evidence": record.diagnosis.evidence,
                "rootCause": root.id if root.id != record.id else record.diagnosis.root_cause,
            }
        )
    return out


def flaky_tests(state: State, limit: int | None = MAX_FLAKY) -> list[dict[str, Any]]:
    ordered = sorted(state.flaky.values(), key=lambda f: f.id)
    return [
        {"id": f.id, "suite": f.suite, "iteration": f.iteration, "evidence": f.evidence}
        for f in ordered[:limit]
    ]


def conditions(
    state: State,
    generation: int,
    now: float,
    previous: Sequence[Mapping[str, Any]] = (),
    message: str | None = None,
) -> list[dict[str, Any]]:
    """kstatus conditions: Ready (normal-true), Reconciling and Stalled (abnormal-true).

    lastTransitionTime moves only when a condition's status changes, as kstatus expects.
    WaitingApproval is Reconciling (the round is in progress, paused on a person, and
    bounded by deadlineSeconds), not Stalled: nothing is wrong, and approving resumes it.
    """
    phase = state.phase
    wanted = {
        "Ready": phase is Phase.PASSED,
        "Reconciling": phase
        in (Phase.PENDING, Phase.TESTING, Phase.WAITING_APPROVAL, Phase.REDEPLOYING),
        "Stalled": phase is Phase.STALLED,
    }
    before = {c.get("type"): c for c in previous}
    out = []
    for kind, on in wanted.items():
        status = "True" if on else "False"
        old = before.get(kind)
        since = timestamp(now)
        if old is not None and old.get("status") == status:
            since = str(old.get("lastTransitionTime", since))
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": state.reason.value if state.reason else phase.value,
                "message": state.message if message is None else message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        )
    return out


def history(state: State, limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
    out = []
    for record in state.history[-limit:]:
        entry: dict[str, Any] = {
            "iteration": record.iteration,
            "started": timestamp(record.started),
            "passed": record.passed,
            "failed": record.failed,
            "action": record.action.value if record.action else "",
        }
        if record.finished is not None:
            entry["finished"] = timestamp(record.finished)
        if record.reason:
            entry["reason"] = record.reason.value
        if record.fingerprint:
            entry["fingerprint"] = record.fingerprint
        out.append(entry)
    return out


def fingerprint(state: State, limit: int = MAX_FINGERPRINT) -> dict[str, Any] | None:
    """What the targets ran for this round's results (docs/design.md §8): the digest that
    ``Passed`` names, and per workload container its image and digest (the image
    reference where the node reports no digest)."""
    fp = state.fingerprint
    if fp is None:
        return None
    entries = [
        {
            "workload": e.workload,
            "revision": e.revision,
            "container": e.container,
            "image": e.image,
            "imageID": e.shown_id,
        }
        for e in fp.entries[:limit]
    ]
    out: dict[str, Any] = {"digest": fp.digest, "entries": entries}
    more = len(fp.entries) - len(entries) + fp.more
    if more:
        out["more"] = more
    return out


def build_status(
    obj: StagingValidation,
    state: State,
    now: float,
    *,
    previous_conditions: Sequence[Mapping[str, Any]] = (),
    report_config_map: str | None = None,
) -> dict[str, Any]:
    gate = approval(obj, state)
    # While a redeploy waits, every condition's message says how to approve it.
    message = f"{state.message}; approve with: {gate['command']}" if gate else None
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "phase": state.phase.value,
        "iteration": state.iteration,
        "summary": summary(state, obj.spec.expected_tests),
        "priorities": priorities(state),
        "failingTests": failing_tests(state),
        "flakyTests": flaky_tests(state),
        "history": history(state),
        "conditions": conditions(state, obj.generation, now, previous_conditions, message),
    }
    if gate:
        status["approval"] = gate
    if report_config_map:
        status["report"] = {"configMap": report_config_map}
    fp = fingerprint(state)
    if fp is not None:
        status["fingerprint"] = fp
    return status


def status_object(obj: StagingValidation, status: Mapping[str, Any]) -> dict[str, Any]:
    """The object as ``kubectl get -o json`` would show it, for local mode's ``--json``."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": obj.name, "namespace": obj.namespace, "generation": obj.generation},
        "status": dict(status),
    }


INVALID_SPEC = "InvalidSpec"
MAX_CONDITION_MESSAGE = 2000


def invalid_spec_status(
    generation: int, message: str, now: float, reason: str = INVALID_SPEC
) -> dict[str, Any]:
    """The status of an object whose spec greenloop refuses though the API server took it
    (a CRD older than the operator, say; rules over their memory budget, ``reason``
    RulesTooLarge): Stalled, naming the field, until the spec changes. ``message`` is
    the spec error, which names the field."""
    return stalled_status(generation, reason, message, now)


def invalid_spec_reported(
    status: Mapping[str, Any], generation: int, reason: str = INVALID_SPEC
) -> bool:
    """Whether ``status`` already says this generation's spec is invalid for ``reason``
    (so a repeated tick writes and posts nothing)."""
    return stalled_reported(status, generation, reason)


def stalled_status(generation: int, reason: str, message: str, now: float) -> dict[str, Any]:
    """A status that stops the object where the engine cannot go on - an invalid spec, no
    account to act as, an account refused (`greenloop.core.tenancy.refusal_condition`):
    Stalled with ``reason`` and ``message`` (bounded) in all three conditions. The
    engine's state is left as it is, so the object resumes once the cause is gone."""
    stamp = timestamp(now)
    text = message[:MAX_CONDITION_MESSAGE]
    return {
        "phase": Phase.STALLED.value,
        "observedGeneration": generation,
        "conditions": [
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": text,
                "observedGeneration": generation,
                "lastTransitionTime": stamp,
            }
            for kind, value in (("Ready", "False"), ("Reconciling", "False"), ("Stalled", "True"))
        ],
    }


def pending_status(generation: int, now: float) -> dict[str, Any]:
    """The first status of a new object, written the moment greenloop sees it and before
    anything is read: Pending, Reconciling. Until an object has a status, kstatus (Flux,
    Helm 4's --wait) calls it Current; this closes that window without waiting for the
    first round's reads and writes (docs/gitops.md). Its conditions are the ones
    `conditions` makes for a Pending state, so the round's first write keeps
    Reconciling's lastTransitionTime."""
    stamp = timestamp(now)
    return {
        "phase": Phase.PENDING.value,
        "observedGeneration": generation,
        "conditions": [
            {
                "type": kind,
                "status": value,
                "reason": Phase.PENDING.value,
                "message": "greenloop has seen the object; its round starts",
                "observedGeneration": generation,
                "lastTransitionTime": stamp,
            }
            for kind, value in (("Ready", "False"), ("Reconciling", "True"), ("Stalled", "False"))
        ],
    }


def stalled_reported(
    status: Mapping[str, Any], generation: int, reason: str, message: str | None = None
) -> bool:
    """Whether ``status`` already says this (``reason``, and ``message`` when given) for
    this generation, so a repeated tick writes and posts nothing."""
    return any(
        c.get("type") == "Stalled"
        and c.get("status") == "True"
        and c.get("reason") == reason
        and c.get("observedGeneration") == generation
        and (message is None or c.get("message") == message[:MAX_CONDITION_MESSAGE])
        for c in status.get("conditions") or ()
    )
