"""Engine state to and from plain data (JSON- and YAML-safe), and back.

The operator keeps everything it must remember in the object (status, or a ConfigMap it
owns), so a restarted operator resumes mid-round: it reads the snapshot, rebuilds the
State, and feeds the engine the next event as if it had never stopped. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenloop.core.engine import (
    FlakyTest,
    IterationRecord,
    Phase,
    State,
    SuiteSelection,
    TestRecord,
)
from greenloop.core.model import Diagnosis, FailureClass, Outcome

VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be read back (wrong version or shape)."""


def to_data(state: State) -> dict[str, Any]:
    return {
        "version": VERSION,
        "phase": state.phase.value,
        "iteration": state.iteration,
        "startedAt": state.started_at,
        "tests": [_test(t) for t in state.tests.values()],
        "flaky": [
            {"id": f.id, "suite": f.suite, "iteration": f.iteration, "evidence": f.evidence}
            for f in state.flaky.values()
        ],
        "suiteErrors": {
            s: {"count": n, "reason": why} for s, (n, why) in state.suite_errors.items()
        },
        "history": [_iteration(r) for r in state.history],
        "redeploys": state.redeploys,
        "retries": state.retries,
        "running": [_selection(s) for s in state.running],
        "pending": [[_selection(s) for s in group] for group in state.pending],
        "nextRun": [_selection(s) for s in state.next_run],
        "beforeRedeploy": None
        if state.before_redeploy is None
        else [list(pair) for pair in state.before_redeploy],
        "lastAction": state.last_action,
        "reason": state.reason,
        "message": state.message,
        "generation": state.generation,
    }


def from_data(data: Mapping[str, Any]) -> State:
    if data.get("version") != VERSION:
        raise SnapshotError(f"snapshot version {data.get('version')!r}, expected {VERSION}")
    try:
        tests = [_read_test(t) for t in data["tests"]]
        before = data["beforeRedeploy"]
        return State(
            phase=Phase(data["phase"]),
            iteration=int(data["iteration"]),
            started_at=data["startedAt"],
            tests={t.id: t for t in tests},
            flaky={
                f["id"]: FlakyTest(f["id"], f["suite"], int(f["iteration"]), f["evidence"])
                for f in data["flaky"]
            },
            suite_errors={
                s: (int(e["count"]), str(e["reason"])) for s, e in data["suiteErrors"].items()
            },
            history=tuple(_read_iteration(r) for r in data["history"]),
            redeploys=int(data["redeploys"]),
            retries=int(data["retries"]),
            running=tuple(_read_selection(s) for s in data["running"]),
            pending=tuple(tuple(_read_selection(s) for s in g) for g in data["pending"]),
            next_run=tuple(_read_selection(s) for s in data["nextRun"]),
            before_redeploy=None if before is None else tuple((a, b) for a, b in before),
            last_action=str(data["lastAction"]),
            reason=str(data["reason"]),
            message=str(data["message"]),
            generation=int(data["generation"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(f"unreadable snapshot: {type(err).__name__}: {err}") from err


def _test(t: TestRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "suite": t.suite,
        "priority": t.priority,
        "outcome": t.outcome.value,
        "iteration": t.iteration,
        "message": t.message,
        "dependsOn": list(t.depends_on),
    }
    if t.diagnosis is not None:
        out["class"] = t.diagnosis.failure_class.value
        out["evidence"] = t.diagnosis.evidence
        out["rootCause"] = t.diagnosis.root_cause
    return out


def _read_test(t: Mapping[str, Any]) -> TestRecord:
    diagnosis = None
    if "class" in t:
        diagnosis = Diagnosis(FailureClass(t["class"]), t["evidence"], t.get("rootCause"))
    return TestRecord(
        id=t["id"],
        suite=t["suite"],
        priority=t["priority"],
        outcome=Outcome(t["outcome"]),
        iteration=int(t["iteration"]),
        diagnosis=diagnosis,
        depends_on=tuple(t["dependsOn"]),
        message=t["message"],
    )


def _iteration(r: IterationRecord) -> dict[str, Any]:
    return {
        "iteration": r.iteration,
        "started": r.started,
        "finished": r.finished,
        "passed": r.passed,
        "failed": r.failed,
        "action": r.action,
        "reason": r.reason,
        "detail": r.detail,
        "ran": r.ran,
        "failures": [list(f) for f in r.failures],
        "observed": list(r.observed),
        "notes": list(r.notes),
        "suiteErrors": [list(e) for e in r.suite_errors],
    }


def _read_iteration(r: Mapping[str, Any]) -> IterationRecord:
    return IterationRecord(
        iteration=int(r["iteration"]),
        started=float(r["started"]),
        finished=None if r["finished"] is None else float(r["finished"]),
        passed=int(r["passed"]),
        failed=int(r["failed"]),
        action=r["action"],
        reason=r["reason"],
        detail=r["detail"],
        ran=int(r["ran"]),
        failures=tuple((a, b, c) for a, b, c in r["failures"]),
        observed=tuple(r["observed"]),
        notes=tuple(r["notes"]),
        suite_errors=tuple((a, b) for a, b in r["suiteErrors"]),
    )


def _selection(s: SuiteSelection) -> dict[str, Any]:
    return {"suite": s.suite, "tests": None if s.test_ids is None else list(s.test_ids)}


def _read_selection(s: Mapping[str, Any]) -> SuiteSelection:
    tests: Sequence[str] | None = s["tests"]
    return SuiteSelection(s["suite"], None if tests is None else tuple(tests))
