"""Engine state to and from plain data (JSON- and YAML-safe), and back.

The operator keeps everything it must remember in the object (docs/design.md §5), so a
restarted operator resumes mid-round: it reads the snapshot, rebuilds the State, and
feeds the engine the next event as if it had never stopped. Pure: no I/O.

Merge-patch safe (RFC 7386): a snapshot never holds ``null`` (a merge patch deletes a
key set to null) nor empty values, and every absent key reads back as its default, so a
snapshot written as a merge patch over an older one reads back as the state it came from.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Mapping
from typing import Any

from greenloop.core.engine import (
    ActionKind,
    FirstFailure,
    FlakyTest,
    IterationRecord,
    Phase,
    Reason,
    State,
    SuiteSelection,
    TestRecord,
)
from greenloop.core.engine.state import MAX_COUNTER
from greenloop.core.fingerprint import EMPTY_HASH, NONE, Entry, Fingerprint, fingerprint
from greenloop.core.model import (
    DEFAULT_PRIORITY,
    Diagnosis,
    FailureClass,
    Outcome,
    ValidationSpec,
)

__all__ = [
    "ENCODE_CHUNK", "INLINE_TESTS_MAX", "MAX_COUNTER", "VERSION", "SnapshotError", "compact_json",
    "from_data", "problem", "size", "table_from_json", "to_data",
]  # fmt: skip

VERSION = 2
# The test table is kept readable up to this size; past it, it is stored compressed
# ("testsZ": zlib, then base64), which keeps 5,000 failing tests well inside the state's
# 256 KiB budget (docs/design.md §5): ids and evidence repeat a lot.
INLINE_TESTS_MAX = 64 * 1024


class SnapshotError(ValueError):
    """A snapshot that cannot be read back (wrong version or shape)."""


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Drop None and empty values: absent means default on the way back."""
    return {k: v for k, v in data.items() if v is not None and v != "" and v != [] and v != {}}


def to_data(state: State) -> dict[str, Any]:
    return _compact(
        {
            "version": VERSION,
            "phase": state.phase.value,
            "iteration": state.iteration,
            "round": state.round,
            "step": state.step,
            "startedAt": state.started_at,
            **_tests(state),
            "flaky": {
                f.id: {"suite": f.suite, "iteration": f.iteration, "evidence": f.evidence}
                for f in state.flaky.values()
            },
            "suiteErrors": {
                s: {"count": n, "reason": why} for s, (n, why) in state.suite_errors.items()
            },
            "history": [_iteration(r) for r in state.history],
            "redeploys": state.redeploys,
            "retries": state.retries,
            "running": [_selection(s) for s in state.running],
            "reported": list(state.reported),
            "pending": [[_selection(s) for s in group] for group in state.pending],
            "nextRun": [_selection(s) for s in state.next_run],
            # Present (possibly empty) only while a redeploy's effect is being judged.
            "beforeRedeploy": state.before_redeploy,
            "lastAction": state.last_action.value if state.last_action else None,
            "reason": state.reason.value if state.reason else None,
            "message": state.message,
            "generation": state.generation,
            "redeploy": _compact(
                {"reason": state.redeploy_reason, "started": state.redeploy_started or None}
            ),
            "selectionMisses": dict(state.selection_misses),
            "shardOverheads": {s: [list(p) for p in v] for s, v in state.shard_overheads.items()},
            "ignoredResults": state.ignored_results,
            "permanentErrors": list(state.permanent_errors),
            "fingerprint": _fingerprint(state.fingerprint),
            # Kept even when "" (the annotation is absent): absent means "never looked".
            "rerun": None if state.rerun_seen is None else {"seen": state.rerun_seen},
            "roundReason": state.round_reason.value if state.round_reason else None,
        }
    )


def size(data: Mapping[str, Any]) -> int:
    """Bytes of a snapshot as compact JSON: what it adds to the object (the budget of
    docs/design.md §5 counts these)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def from_data(data: Mapping[str, Any]) -> State:
    if not isinstance(data, Mapping):
        raise SnapshotError(f"unreadable snapshot: expected an object, got {type(data).__name__}")
    if data.get("version") != VERSION:
        raise SnapshotError(f"snapshot version {data.get('version')!r}, expected {VERSION}")
    try:
        tests = [_read_test(k, t) for k, t in _read_tests(data).items()]
        before = data.get("beforeRedeploy")
        redeploy = data.get("redeploy", {})
        last_action = data.get("lastAction")
        reason = data.get("reason")
        rerun = data.get("rerun")
        round_reason = data.get("roundReason")
        return State(
            phase=Phase(data["phase"]),
            iteration=int(data.get("iteration", 0)),
            round=int(data.get("round", 1)),
            step=int(data.get("step", 0)),
            started_at=_float_or_none(data.get("startedAt")),
            tests={t.id: t for t in tests},
            flaky={
                k: FlakyTest(k, f["suite"], int(f.get("iteration", 0)), f.get("evidence", ""))
                for k, f in data.get("flaky", {}).items()
            },
            suite_errors={
                s: (int(e.get("count", 1)), str(e.get("reason", "")))
                for s, e in data.get("suiteErrors", {}).items()
            },
            history=tuple(_read_iteration(r) for r in data.get("history", ())),
            redeploys=int(data.get("redeploys", 0)),
            retries=int(data.get("retries", 0)),
            running=tuple(_read_selection(s) for s in data.get("running", ())),
            reported=tuple(str(s) for s in data.get("reported", ())),
            pending=tuple(tuple(_read_selection(s) for s in g) for g in data.get("pending", ())),
            next_run=tuple(_read_selection(s) for s in data.get("nextRun", ())),
            before_redeploy=None if before is None else str(before),
            last_action=ActionKind(last_action) if last_action else None,
            reason=Reason(reason) if reason else None,
            message=str(data.get("message", "")),
            generation=int(data.get("generation", 0)),
            redeploy_reason=str(redeploy.get("reason", "")),
            redeploy_started=bool(redeploy.get("started", False)),
            selection_misses={str(k): int(v) for k, v in data.get("selectionMisses", {}).items()},
            shard_overheads=_overheads(data.get("shardOverheads", {})),
            ignored_results=int(data.get("ignoredResults", 0)),
            permanent_errors=tuple(str(s) for s in data.get("permanentErrors", ())),
            fingerprint=_read_fingerprint(data.get("fingerprint")),
            rerun_seen=None if rerun is None else str(rerun.get("seen", "")),
            round_reason=Reason(round_reason) if round_reason else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise SnapshotError(f"unreadable snapshot: {type(err).__name__}: {err}") from err


#: Tests encoded per call of the C encoder in `compact_json`: each call holds the GIL
#: throughout (a 100k-test table at once: seconds in which the operator's event loop,
#: waiting on a worker that encodes it, could not run); a chunk takes milliseconds.
ENCODE_CHUNK = 1000
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def compact_json(table: Mapping[str, Any], chunk: int = ENCODE_CHUNK) -> str:
    """``json.dumps(table, separators=(",", ":"), ensure_ascii=False)``, the same text,
    encoded ``chunk`` entries at a time so other threads run between chunks."""
    items = list(table.items())
    if len(items) <= chunk:
        return _COMPACT.encode(dict(items))
    parts = [_COMPACT.encode(dict(items[i : i + chunk]))[1:-1] for i in range(0, len(items), chunk)]
    return "{" + ",".join(parts) + "}"


_DECODER = json.JSONDecoder()


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":  # JSON's whitespace (none as written)
        i += 1
    return i


def table_from_json(text: str) -> dict[str, Any]:
    """``json.loads(text)`` for a JSON object, decoded one entry per call of the C
    decoder, so other threads run between entries (one call for a 100k-test table
    holds the GIL throughout, as `compact_json`'s encoding would)."""
    decode = _DECODER.raw_decode
    table: dict[str, Any] = {}
    i = _skip_space(text, 0)
    if text[i : i + 1] != "{":
        raise json.JSONDecodeError("Expecting an object", text, i)
    i = _skip_space(text, i + 1)
    if text[i : i + 1] != "}":
        while True:
            if text[i : i + 1] != '"':
                raise json.JSONDecodeError("Expecting a property name in double quotes", text, i)
            key, i = decode(text, i)
            i = _skip_space(text, i)
            if text[i : i + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            table[key], i = decode(text, _skip_space(text, i + 1))
            i = _skip_space(text, i)
            if text[i : i + 1] != ",":
                break
            i = _skip_space(text, i + 1)
        if text[i : i + 1] != "}":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
    end = _skip_space(text, i + 1)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return table


def _tests(state: State) -> dict[str, Any]:
    table = {t.id: _test(t) for t in state.tests.values()}
    text = compact_json(table)
    if len(text) <= INLINE_TESTS_MAX:
        return {"tests": table}
    packed = zlib.compress(text.encode(), 9)
    return {"testsZ": base64.b64encode(packed).decode("ascii")}


def _read_tests(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "testsZ" not in data:
        table: Mapping[str, Any] = data.get("tests", {})
        return table
    try:
        # Bounded: a state never holds more than a few MiB of tests uncompressed.
        raw = zlib.decompressobj().decompress(base64.b64decode(data["testsZ"]), 64 << 20)
        loaded: Mapping[str, Any] = table_from_json(raw.decode())
    except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SnapshotError(f"unreadable snapshot: testsZ: {err}") from err
    return loaded


def _seconds(value: Any) -> float:
    """A stored duration, 0 when it is not a usable one (a hand-edited state)."""
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _test(t: TestRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "suite": t.suite,
        "priority": None if t.priority == DEFAULT_PRIORITY else t.priority,
        "outcome": t.outcome.value,
        "iteration": t.iteration,
        "dependsOn": list(t.depends_on),
        "failedRuns": t.failed_runs or None,
        "lastFailed": t.last_failed or None,
        "seconds": round(t.seconds, 3) or None,
    }
    if t.diagnosis is not None:
        out["class"] = t.diagnosis.failure_class.value
        out["evidence"] = t.diagnosis.evidence
        out["rootCause"] = t.diagnosis.root_cause
    if t.first_failure is not None:
        # Most tests fail the same way each time: store only what differs from now.
        f = t.first_failure
        same = t.diagnosis is not None and t.diagnosis.failure_class is f.failure_class
        first: dict[str, Any] = {"iteration": f.iteration}
        if not same:
            first["class"] = f.failure_class.value
        if t.diagnosis is None or t.diagnosis.evidence != f.evidence:
            first["evidence"] = f.evidence  # even "": absent means "as now"
        out["first"] = first
    return _compact(out)


def _read_test(test_id: str, t: Mapping[str, Any]) -> TestRecord:
    diagnosis = None
    if "class" in t:
        diagnosis = Diagnosis(FailureClass(t["class"]), t.get("evidence", ""), t.get("rootCause"))
    first = None
    if "first" in t:
        f = t["first"]
        cls = f.get("class", t.get("class"))
        evidence = f.get("evidence", t.get("evidence", ""))
        first = FirstFailure(int(f["iteration"]), FailureClass(cls), evidence)
    return TestRecord(
        id=test_id,
        suite=t["suite"],
        priority=t.get("priority", DEFAULT_PRIORITY),
        outcome=Outcome(t["outcome"]),
        iteration=int(t.get("iteration", 0)),
        diagnosis=diagnosis,
        depends_on=tuple(t.get("dependsOn", ())),
        first_failure=first,
        failed_runs=int(t.get("failedRuns", 0)),
        last_failed=int(t.get("lastFailed", 0)),
        seconds=_seconds(t.get("seconds", 0.0)),
    )


def _iteration(r: IterationRecord) -> dict[str, Any]:
    return _compact(
        {
            "iteration": r.iteration,
            "started": r.started,
            "finished": r.finished,
            "passed": r.passed,
            "failed": r.failed,
            "action": r.action.value if r.action else None,
            "reason": r.reason.value if r.reason else None,
            "detail": r.detail,
            "ran": r.ran,
            "ranPassed": r.ran_passed,
            "ranFailed": r.ran_failed,
            "observed": list(r.observed),
            "notes": list(r.notes),
            "suiteErrors": [list(e) for e in r.suite_errors],
            "fingerprint": r.fingerprint,
        }
    )


def _read_iteration(r: Mapping[str, Any]) -> IterationRecord:
    finished = r.get("finished")
    action = r.get("action")
    reason = r.get("reason")
    return IterationRecord(
        iteration=int(r["iteration"]),
        started=float(r.get("started", 0.0)),
        finished=None if finished is None else float(finished),
        passed=int(r.get("passed", 0)),
        failed=int(r.get("failed", 0)),
        action=ActionKind(action) if action else None,
        reason=Reason(reason) if reason else None,
        detail=str(r.get("detail", "")),
        ran=int(r.get("ran", 0)),
        ran_passed=int(r.get("ranPassed", 0)),
        ran_failed=int(r.get("ranFailed", 0)),
        observed=tuple(r.get("observed", ())),
        notes=tuple(r.get("notes", ())),
        suite_errors=tuple((str(a), str(b)) for a, b in r.get("suiteErrors", ())),
        fingerprint=str(r.get("fingerprint", "")),
    )


def _fingerprint(fp: Fingerprint | None) -> dict[str, Any] | None:
    # Entries as short lists (workload, revision, container, image, imageID): a list is
    # replaced whole by a merge patch, and "" inside it is kept as "".
    if fp is None:
        return None
    out: dict[str, Any] = {
        "digest": fp.digest,
        "entries": [[e.workload, e.revision, e.container, e.image, e.image_id] for e in fp.entries],
    }
    if fp.more:
        out["more"] = fp.more
    return out


def _read_fingerprint(data: Any) -> Fingerprint | None:
    if data is None:
        return None
    entries = [Entry(*(str(x) for x in e)) for e in data.get("entries", ())]
    read = fingerprint(entries, more=int(data.get("more", 0)))
    stored = data.get("digest")
    if read.digest == NONE and stored == EMPTY_HASH:
        return read  # written before an empty fingerprint read "none"
    if read.digest != stored:
        raise ValueError(f"fingerprint digest {data.get('digest')!r} does not match its entries")
    return read


def _selection(s: SuiteSelection) -> dict[str, Any]:
    # "tests" absent: the whole suite; present (maybe empty): exactly these.
    out: dict[str, Any] = {"suite": s.suite}
    if s.test_ids is not None:
        out["tests"] = list(s.test_ids)
    return out


def _read_selection(s: Mapping[str, Any]) -> SuiteSelection:
    if "tests" in s:
        return SuiteSelection(s["suite"], tuple(s["tests"]))
    return SuiteSelection(s["suite"])


def problem(state: State, spec: ValidationSpec) -> str:
    """Why a decoded snapshot cannot be the state of this spec's round, naming the field
    under ``status.engine`` ("": it can). A snapshot written by greenloop for this
    generation always passes; a hand-edited one (a suite that does not exist, an
    iteration of 1e70) would wait for Jobs forever or make a label over 63 bytes.
    Only for a state of the spec's own generation: on a spec change the engine itself
    drops what the new spec no longer has."""
    limits = (
        ("iteration", state.iteration, spec.policy.max_iterations),
        ("round", state.round, MAX_COUNTER),
        ("step", state.step, MAX_COUNTER),
    )
    for name, value, most in limits:
        if not 0 <= value <= most:
            return f"status.engine.{name}: {_shown(value)} is not between 0 and {most}"
    suites = {s.name for s in spec.suites}
    batches = (
        ("running", state.running),
        ("nextRun", state.next_run),
        *((f"pending[{i}]", group) for i, group in enumerate(state.pending)),
    )
    for where, selections in batches:
        for i, selection in enumerate(selections):
            if selection.suite not in suites:
                return (
                    f"status.engine.{where}[{i}].suite: {_shown(selection.suite)} is not a "
                    "suite of spec.suites"
                )
    for i, suite in enumerate(state.reported):
        if suite not in suites:
            return f"status.engine.reported[{i}]: {_shown(suite)} is not a suite of spec.suites"
    return ""


def _shown(value: object) -> str:
    """A value as a message shows it: repr, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _overheads(data: Mapping[str, object]) -> dict[str, tuple[tuple[int, float], ...]]:
    """Suite -> ((shards, seconds), ...), keeping only pairs a plan can use (a status edited
    by hand must not stop the planning: a suite without them gets the default)."""
    out: dict[str, tuple[tuple[int, float], ...]] = {}
    if not isinstance(data, Mapping):
        return out
    for suite, pairs in data.items():
        kept: list[tuple[int, float]] = []
        for pair in pairs if isinstance(pairs, list) else ():
            if not (isinstance(pair, list) and len(pair) == 2):
                continue
            width, seconds = pair
            if not (isinstance(width, int) and width >= 1 and isinstance(seconds, int | float)):
                continue
            if math.isfinite(seconds) and seconds >= 0:
                kept.append((width, float(seconds)))
        if kept:
            out[str(suite)] = tuple(kept[:2])
    return out
