"""A snapshot that decodes but cannot be this spec's round (core/snapshot.py `problem`):
a hand-edited `status.engine` naming a suite that does not exist waited "for Jobs"
forever, and an iteration of 1e70 made a label over 63 bytes (issue 19, item 5). Each
problem names the field; what greenloop itself writes always passes."""

from __future__ import annotations

from typing import Any

import pytest

from greenloop.core import engine, snapshot
from tests.unit.scenario import make_spec

SPEC = make_spec(("critical", "P1"), ("extended", "P2"), max_iterations=5)
WRITTEN = snapshot.to_data(engine.begin(SPEC, 1000.0, rerun="").state)

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("as written", {}, ""),
    (
        "an unknown suite running",
        {"running": [{"suite": "nope"}]},
        "status.engine.running[0].suite: 'nope' is not a suite of spec.suites",
    ),
    (
        "an unknown suite reported",
        {"reported": ["critical", "ghost"]},
        "status.engine.reported[1]: 'ghost' is not a suite of spec.suites",
    ),
    (
        "an unknown suite after a redeploy",
        {"nextRun": [{"suite": "x"}]},
        "status.engine.nextRun[0].suite: 'x' is not a suite of spec.suites",
    ),
    (
        "an absurd iteration",
        {"iteration": 1e70},
        "status.engine.iteration: 1000000000000000072531436381529235126... is not between 0 and 5",
    ),
    (
        "an iteration past the budget",
        {"iteration": 6},
        "status.engine.iteration: 6 is not between 0 and 5",
    ),
    ("a negative round", {"round": -1}, "status.engine.round: -1 is not between 0 and 1000000"),
    (
        "an absurd step",
        {"step": 10**7},
        "status.engine.step: 10000000 is not between 0 and 1000000",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_decoded_snapshot_that_cannot_be_the_round_names_the_field(
    edit: dict[str, Any], message: str
) -> None:
    state = snapshot.from_data({**WRITTEN, **edit})
    assert snapshot.problem(state, SPEC) == message


@pytest.mark.parametrize(
    "edit",
    [{"iteration": "many"}, {"running": "core"}, {"phase": "Sleeping"}],
    ids=["a string iteration", "a string batch", "an unknown phase"],
)
def test_wrong_types_do_not_decode(edit: dict[str, Any]) -> None:
    with pytest.raises(snapshot.SnapshotError):
        snapshot.from_data({**WRITTEN, **edit})


def test_an_invalid_state_stalls_within_bounds_and_a_rerun_recovers_it() -> None:
    tampered = snapshot.from_data({**WRITTEN, "iteration": 1e70, "running": [{"suite": "x"}]})
    why = snapshot.problem(tampered, SPEC)
    stalled = engine.on_invalid_state(SPEC, tampered, why, 2000.0)
    assert (stalled.state.phase, str(stalled.state.reason)) == (
        engine.Phase.STALLED,
        "InvalidState",
    )
    assert stalled.state.message == why and isinstance(stalled.action, engine.Finish)
    assert snapshot.problem(stalled.state, SPEC) == ""  # what is written reads back valid
    assert snapshot.from_data(snapshot.to_data(stalled.state)) == stalled.state
    rerun = engine.on_rerun(SPEC, stalled.state, "1", 2001.0)
    assert isinstance(rerun.action, engine.RunSuites)
    assert (rerun.state.iteration, rerun.state.round) == (1, 2)
