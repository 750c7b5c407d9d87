"""Engine state as plain data: what the operator will keep in the object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from greenloop.core import engine, snapshot
from greenloop.core.engine import Phase, State
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
    tests = {t["id"]: t for t in data["tests"]}
    assert tests["c2"]["class"] == "ServiceUnavailable"
    assert "503" in tests["c2"]["evidence"]
    assert (tests["e2"]["class"], tests["e2"]["rootCause"]) == ("Dependent", "c2")
    assert "class" not in tests["c1"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 99}, "snapshot version 99, expected 1"),
        ({"version": 1}, "unreadable snapshot: KeyError"),
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
