"""Engine state as plain data: what the operator will keep in the object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from greenloop.core import engine, mergepatch, snapshot
from greenloop.core.engine import Phase, State
from tests.unit.engine import (
    test_budget,
    test_flaky_rerun,
    test_goal,
    test_redeploy,
    test_runner_error,
)
from tests.unit.engine.cases import Case
from tests.unit.scenario import HTTP_503, bad, dep_skip, make_spec, ok, play


def mid_round() -> State:
    spec = make_spec(("critical", "P1"), ("extended", "P5"), max_iterations=1)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    }
    return play(spec, [first]).state


def test_a_snapshot_is_plain_json_and_reads_back_equal() -> None:
    state = mid_round()
    text = json.dumps(snapshot.to_data(state))
    assert snapshot.from_data(json.loads(text)) == state


def test_a_snapshot_carries_class_evidence_and_root_cause() -> None:
    data = snapshot.to_data(mid_round())
    tests = data["tests"]
    assert tests["c2"]["class"] == "ServiceUnavailable"
    assert "503" in tests["c2"]["evidence"]
    assert (tests["e2"]["class"], tests["e2"]["rootCause"]) == ("Dependent", "c2")
    assert "class" not in tests["c1"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 99}, "snapshot version 99, expected 2"),
        ({"version": 2}, "unreadable snapshot: KeyError"),
        ({**snapshot.to_data(State()), "phase": "Sleeping"}, "unreadable snapshot: ValueError"),
    ],
    ids=["newer version", "missing fields", "unknown phase"],
)
def test_an_unreadable_snapshot_is_a_clear_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(snapshot.SnapshotError, match=message):
        snapshot.from_data(data)


def test_a_state_that_has_not_begun_has_no_action() -> None:
    with pytest.raises(ValueError, match="call begin"):
        engine.current_action(State(phase=Phase.PENDING))


# -- merge-patch safety (RFC 7386) ----------------------------------------------------------


def _walk_nulls(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_walk_nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_walk_nulls(v) for v in value)
    return False


def test_a_snapshot_holds_no_nulls_and_reads_back_after_a_merge_patch_onto_nothing() -> None:
    # Before: beforeRedeploy: null was deleted by the patch -> SnapshotError KeyError.
    state = mid_round()
    data = snapshot.to_data(state)
    assert not _walk_nulls(data)
    assert snapshot.from_data(mergepatch.apply({}, data)) == state


def test_absent_keys_read_as_defaults() -> None:
    assert snapshot.from_data({"version": snapshot.VERSION, "phase": "Pending"}) == State()


# Every scenario of the rule files (tests/unit/engine/).
CASES = [
    *test_goal.CASES,
    *test_redeploy.CASES,
    *test_flaky_rerun.CASES,
    *test_runner_error.CASES,
    *test_budget.CASES,
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_scenario_round_trips_through_merge_patches(case: Case) -> None:
    """Each state of the round, written as a merge patch over the previous snapshot (as
    the operator writes status), reads back as that state."""
    seen: list[State] = []
    stored_prev: dict[str, Any] = {}

    def observe(state: State) -> None:
        nonlocal stored_prev
        new = json.loads(json.dumps(snapshot.to_data(state)))
        patch = mergepatch.create(stored_prev, new)
        applied = mergepatch.apply(stored_prev, patch)
        assert applied == new
        assert snapshot.from_data(applied) == state
        stored_prev = applied
        seen.append(state)

    played = play(case.spec, case.script, observe=observe)
    assert seen and seen[-1] == played.state


@pytest.mark.parametrize(
    ("entries", "chunk"),
    [
        (0, 3),  # {}
        (2, 3),  # one call
        (3, 3),  # exactly a chunk
        (7, 3),  # chunks and a remainder
        (9, 3),  # whole chunks
    ],
)
def test_the_test_table_is_encoded_in_chunks_as_json_dumps_would(entries: int, chunk: int) -> None:
    """Rule: the snapshot's table is the text one json.dumps would make, encoded a chunk
    at a time (so a 100k-test table never holds the GIL for seconds in one call)."""
    table = {
        f's::t{i} ü"': {"suite": "s", "outcome": "failed", "n": i, "why": [None, 1.5]}
        for i in range(entries)
    }
    expected = json.dumps(table, separators=(",", ":"), ensure_ascii=False)
    assert snapshot.compact_json(table, chunk) == expected


def test_a_big_test_table_is_encoded_one_chunk_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    encode = snapshot._COMPACT.encode

    def counted(value: Any) -> str:
        calls.append(len(value))
        return encode(value)

    monkeypatch.setattr(snapshot._COMPACT, "encode", counted)
    table = {f"t{i}": {"n": i} for i in range(2500)}
    assert json.loads(snapshot.compact_json(table, 1000)) == table
    assert calls == [1000, 1000, 500]


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        " { } ",
        '{"a":1}',
        '{"s::t ü\\"":{"n":[1,null,1.5],"x":{"y":"z"}},"b":true}',
        '\n{ "a" : 1 ,\t"b" : [ ] }\n',
        '{"a":1,"a":2}',  # the last one wins, as in json.loads
    ],
)
def test_the_test_table_is_decoded_an_entry_at_a_time_as_json_loads_would(text: str) -> None:
    assert snapshot.table_from_json(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting an object"),
        ("[1]", "Expecting an object"),
        ('{"a":1', "Expecting ',' delimiter"),
        ('{"a" 1}', "Expecting ':' delimiter"),
        ("{a:1}", "Expecting a property name"),
        ('{"a":1,}', "Expecting a property name"),
        ('{"a":}', "Expecting value"),
        ('{"a":1} x', "Extra data"),
    ],
)
def test_a_malformed_test_table_is_a_decode_error(text: str, message: str) -> None:
    with pytest.raises(json.JSONDecodeError, match=message):
        snapshot.table_from_json(text)
