"""The object's status (docs/design.md §2) and its kstatus conditions, computed from engine state.

Both modes write this shape: the operator patches it into the object, local mode prints
it with ``--json``. Times come in as epoch seconds; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from greenloop.core.engine import Phase, State, counts, failing, root_of
from greenloop.core.model import PRIORITIES, Outcome, StagingValidation

MAX_FAILING = 50
MAX_HISTORY = 20
API_VERSION = "greenloop.dev/v1alpha1"
KIND = "StagingValidation"


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
    table: dict[str, dict[str, int]] = {}
    for record in state.tests.values():
        row = table.setdefault(record.priority, {"passed": 0, "failed": 0, "total": 0})
        row["total"] += 1
        if record.failing:
            row["failed"] += 1
        elif record.outcome is Outcome.PASSED:
            row["passed"] += 1
    order = {p: i for i, p in enumerate(PRIORITIES)}
    return [
        {"priority": p, **table[p]} for p in sorted(table, key=lambda p: order.get(p, len(order)))
    ]


def failing_tests(state: State, limit: int | None = MAX_FAILING) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(PRIORITIES)}
    records = sorted(failing(state), key=lambda t: (order.get(t.priority, 99), t.suite, t.id))
    out: list[dict[str, Any]] = []
    for record in records[:limit]:
        assert record.diagnosis is not None
        root = root_of(state, record)
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


def conditions(
    state: State,
    generation: int,
    now: float,
    previous: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """kstatus conditions: Ready (normal-true), Reconciling and Stalled (abnormal-true).

    lastTransitionTime moves only when a condition's status changes, as kstatus expects.
    """
    phase = state.phase
    wanted = {
        "Ready": phase is Phase.PASSED,
        "Reconciling": phase in (Phase.PENDING, Phase.TESTING, Phase.REDEPLOYING),
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
                "reason": str(state.reason) or phase.value,
                "message": state.message,
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
            "action": record.action,
        }
        if record.finished is not None:
            entry["finished"] = timestamp(record.finished)
        if record.reason:
            entry["reason"] = record.reason
        out.append(entry)
    return out


def build_status(
    obj: StagingValidation,
    state: State,
    now: float,
    *,
    previous_conditions: Sequence[Mapping[str, Any]] = (),
    report_config_map: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "observedGeneration": obj.generation,
        "phase": state.phase.value,
        "iteration": state.iteration,
        "summary": summary(state, obj.spec.expected_tests),
        "priorities": priorities(state),
        "failingTests": failing_tests(state),
        "flakyTests": [
            {"id": f.id, "suite": f.suite, "iteration": f.iteration, "evidence": f.evidence}
            for f in sorted(state.flaky.values(), key=lambda f: f.id)
        ],
        "history": history(state),
        "conditions": conditions(state, obj.generation, now, previous_conditions),
    }
    if report_config_map:
        status["report"] = {"configMap": report_config_map}
    return status


def status_object(obj: StagingValidation, status: Mapping[str, Any]) -> dict[str, Any]:
    """The object as ``kubectl get -o json`` would show it, for local mode's ``--json``."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": obj.name, "namespace": obj.namespace, "generation": obj.generation},
        "status": dict(status),
    }
