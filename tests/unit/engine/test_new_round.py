"""What starts a new round (docs/design.md §1, last rule; §6): a spec change (a new
generation), the ``greenloop.dev/rerun`` annotation, ``revalidateEvery``; each keeps the
flaky list for suites that still exist and abandons what was in flight. Pure transitions,
as the operator feeds them from the object, annotations and the clock."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from greenloop.core import engine, mergepatch, snapshot
from greenloop.core.engine import (
    Decision,
    Finish,
    Phase,
    Reason,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.model import ValidationSpec
from tests.unit.engine.cases import ONE, TWO
from tests.unit.engine.steps import API, GATED, V1, V2, feed, finished, one_suite, waiting
from tests.unit.scenario import HTTP_503, bad, make_spec, ok, play


def passed(spec_: ValidationSpec, now: float = 100.0) -> Decision:
    return feed(spec_, engine.begin(spec_, now, rerun=""), now + 10, ok("a"))


def test_a_new_generation_starts_a_new_round_keeping_the_flaky_list() -> None:
    spec = make_spec(*TWO, flake_retries=1)
    script = [
        {"critical": [ok("c1"), bad("c2", "AssertionError: flaky")], "extended": [ok("e1")]},
        {"critical": [ok("c1"), ok("c2")], "extended": [ok("e1")]},
    ]
    played = play(spec, script)
    assert set(played.state.flaky) == {"c2"}
    changed = engine.on_spec_changed(spec, played.state, 50.0, generation=2)
    assert isinstance(changed.action, RunSuites)
    assert (changed.action.id, changed.state.iteration, changed.state.generation) == (
        "r2-i1-s0",
        1,
        2,
    )
    assert set(changed.state.flaky) == {"c2"}
    assert changed.state.tests == {}
    same = engine.on_spec_changed(spec, changed.state, 51.0, generation=2)
    assert same.state == changed.state


def test_a_suite_removed_mid_run_is_dropped_cleanly() -> None:
    spec = make_spec(*TWO)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    smaller = make_spec(("critical", "P1"))
    # The shell feeds the new spec before it noticed the change: nothing waits for
    # "extended", nothing looks it up.
    done = engine.on_suite(smaller, start.state, finished(start.action, "critical", ok("c1")), 1.0)
    assert isinstance(done.action, Finish) and done.action.phase is Phase.PASSED
    # And a new round with the new spec runs only what exists.
    mid = engine.on_suite(
        spec, start.state, finished(start.action, "critical", bad("c1", HTTP_503)), 1.0
    )
    changed = engine.on_spec_changed(smaller, mid.state, 2.0, generation=2)
    assert isinstance(changed.action, RunSuites)
    assert [s.suite for s in changed.action.suites] == ["critical"]


def test_a_rerun_of_a_suite_the_spec_no_longer_has_is_not_looked_up() -> None:
    spec = make_spec(*TWO, flake_retries=1)
    start = engine.begin(spec, 0.0)
    assert isinstance(start.action, RunSuites)
    state = engine.on_suite(
        spec, start.state, finished(start.action, "critical", ok("c1")), 1.0
    ).state
    smaller = make_spec(("critical", "P1"), flake_retries=1)
    # extended fails in the old spec; the rerun selection is built under the new one.
    decision = engine.on_suite(
        smaller, state, finished(start.action, "extended", bad("e1", "AssertionError: x")), 2.0
    )
    assert isinstance(decision.action, (RunSuites, Finish))


def test_a_spec_change_starts_a_new_round_at_that_time() -> None:
    spec = make_spec(*ONE, deadline_seconds=60, max_iterations=10)
    state = engine.begin(spec, 1000.0, generation=1).state
    changed = engine.on_spec_changed(spec, state, 5000.0, generation=2)
    assert changed.state.started_at == 5000.0
    assert changed.state.generation == 2
    assert changed.state.round == state.round + 1
    same = engine.on_spec_changed(spec, changed.state, 6000.0, generation=2)
    assert same.state == changed.state


def test_the_same_generation_again_changes_nothing_and_asks_for_the_same_batch() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    changed = engine.on_spec_changed(spec, engine.begin(spec, 1000.0).state, 2000.0, generation=2)
    same = engine.on_spec_changed(spec, changed.state, 3000.0, generation=2)
    assert same == changed
    assert isinstance(same.action, engine.RunSuites)
    assert [s.suite for s in same.action.suites] == ["api", "web"]


@pytest.mark.parametrize(("generation", "expected"), [(0, 1), (3, 3)])
def test_a_rerun_value_read_before_any_round_begins_round_one_with_it(
    generation: int, expected: int
) -> None:
    decision = engine.on_rerun(API, State(generation=generation), "x", 100.0)
    assert decision == engine.begin(API, 100.0, generation=expected, rerun="x")
    assert (decision.state.generation, decision.state.rerun_seen) == (expected, "x")


def test_the_same_rerun_value_again_asks_for_the_action_in_flight() -> None:
    start = engine.begin(API, 100.0, rerun="1")
    assert engine.on_rerun(API, start.state, "1", 200.0) == start


def test_a_rerun_request_says_its_value_clipped_to_64_characters() -> None:
    done = one_suite(API, engine.begin(API, 100.0, rerun=""), 110.0, ok("a"))
    after = engine.on_rerun(API, done.state, "v" * 100, 200.0)
    assert after.state.message == (
        f"round 2 (greenloop.dev/rerun changed to {'v' * 63 + '…'!r}): iteration 1: running 1 suite"
    )


def test_a_spec_change_says_its_generation_and_takes_the_fingerprint_seen_as_baseline() -> None:
    start = engine.on_target_observed(API, engine.begin(API, 100.0).state, V1, 101.0)
    changed = engine.on_spec_changed(API, start.state, 200.0, generation=2, fingerprint=V2)
    assert changed.state.message == (
        "round 2 (the spec changed: generation 2): iteration 1: running 1 suite"
    )
    assert changed.state.fingerprint == V2
    assert changed.state.history[-1].fingerprint == V2.digest


@pytest.mark.parametrize(
    ("started_at", "finished", "due"),
    [(100.0, 150.0, 210.0), (100.0, None, 160.0), (None, None, 60.0)],
    ids=["its last iteration's end", "else its start", "else the epoch"],
)
def test_a_passed_round_is_revalidated_counting_from_when_it_ended(
    started_at: float | None, finished: float | None, due: float
) -> None:
    spec = replace(API, revalidate_every_seconds=60)
    record = engine.IterationRecord(iteration=1, started=started_at or 0.0, finished=finished)
    state = State(phase=Phase.PASSED, iteration=1, started_at=started_at, history=(record,))
    assert engine.wake_at(spec, state) == due
    assert engine.on_tick(spec, state, due - 1).state == state
    revalidated = engine.on_tick(spec, state, due)
    assert revalidated.state.round_reason is Reason.REVALIDATING
    assert revalidated.state.message == (
        "round 2 (revalidateEvery: 60 seconds since the last round passed): iteration 1: "
        "running 1 suite"
    )


def test_a_round_starts_running_tests_with_its_baseline_on_the_first_iteration() -> None:
    start = engine.begin(API, 100.0, fingerprint=V1).state
    assert (start.reason, start.last_action) == (Reason.RUNNING_TESTS, engine.ActionKind.RUN)
    assert start.history[0].fingerprint == V1.digest
    assert engine.begin(API, 100.0).state.history[0].fingerprint == ""


@pytest.mark.parametrize(
    ("seen", "value", "new_round"),
    [
        (None, "", False),  # the first look records it
        (None, "1", False),
        ("", "", False),
        ("", "1", True),
        ("1", "1", False),
        ("1", "2", True),
        ("1", "", False),  # removing the annotation asks for nothing
    ],
)
@pytest.mark.parametrize("when", ["finished", "mid-run", "waiting"])
def test_a_new_rerun_value_starts_a_new_round(
    seen: str | None, value: str, new_round: bool, when: str
) -> None:
    the_spec = GATED
    if when == "finished":
        before = passed(the_spec).state
    elif when == "mid-run":
        before = engine.begin(the_spec, 100.0).state
    else:
        before = waiting().state
    before = replace(before, rerun_seen=seen, flaky={"a": engine.FlakyTest("a", "core", 1, "x")})
    after = engine.on_rerun(the_spec, before, value, 200.0)
    assert after.state.rerun_seen == value
    if not new_round:
        assert after.state == replace(before, rerun_seen=value)
        return
    assert isinstance(after.action, RunSuites)
    assert after.action.id == "r2-i1-s0"
    assert (after.state.round, after.state.iteration, after.state.phase) == (2, 1, Phase.TESTING)
    assert after.state.round_reason is Reason.RERUN_REQUESTED
    assert f"greenloop.dev/rerun changed to {value!r}" in after.state.message
    assert set(after.state.flaky) == {"a"}, "the flaky list is kept"
    assert after.state.tests == {}
    # Results of the abandoned round's Jobs change nothing.
    late = SuiteFinished("r1-i1-s0", SuiteRun("core", (bad("a", HTTP_503),)))
    assert engine.on_suite(the_spec, after.state, late, 201.0).state == after.state


def test_a_spec_change_with_a_new_rerun_value_is_one_round() -> None:
    state = replace(passed(GATED).state, rerun_seen="1")
    changed = engine.on_spec_changed(GATED, state, 200.0, generation=2, rerun="2")
    assert (changed.state.round, changed.state.rerun_seen) == (2, "2")
    assert changed.state.round_reason is Reason.SPEC_CHANGED
    assert engine.on_rerun(GATED, changed.state, "2", 201.0).state == changed.state
    # Without a value the recorded one is carried over.
    kept = engine.on_spec_changed(GATED, state, 200.0, generation=2)
    assert kept.state.rerun_seen == "1"


def test_without_revalidate_every_a_passed_round_stays_passed() -> None:
    state = passed(GATED).state
    assert engine.wake_at(GATED, state) is None
    assert engine.on_tick(GATED, state, 10.0**9).state == state


@pytest.mark.parametrize(
    ("now", "new_round"),
    [(110.0, False), (169.9, False), (170.0, True), (10_000.0, True)],
)
def test_a_passed_round_is_revalidated_after_revalidate_every(now: float, new_round: bool) -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    state = passed(every).state  # ended at 110
    assert state.phase is Phase.PASSED
    assert engine.wake_at(every, state) == 170.0
    after = engine.on_tick(every, state, now)
    if not new_round:
        assert after.state == state
        return
    assert isinstance(after.action, RunSuites) and after.action.id == "r2-i1-s0"
    assert after.state.round_reason is Reason.REVALIDATING
    assert "revalidateEvery: 60 seconds since the last round passed" in after.state.message
    assert after.state.rerun_seen == state.rerun_seen
    # The new round is no longer due for revalidation until it passes again: only its
    # deadline can end it by time alone.
    assert engine.wake_at(every, after.state) == now + every.policy.deadline_seconds


def test_a_stalled_round_is_not_revalidated() -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    state = engine.on_tick(every, waiting().state, 700.0).state
    assert state.phase is Phase.STALLED
    assert engine.wake_at(every, state) is None
    assert engine.on_tick(every, state, 10.0**9).state == state


def test_every_trigger_state_round_trips_through_merge_patches() -> None:
    """Waiting, approved, a rerun recorded as "" and as a value, a revalidated round: each
    written as a merge patch over the previous snapshot reads back as the same state."""
    every = replace(GATED, revalidate_every_seconds=60)
    w = waiting()
    approved = engine.on_approved(w.state, "r1-i1-s1").state
    finished = engine.on_tick(GATED, w.state, 700.0).state
    p = passed(every).state
    states: list[State] = [
        engine.begin(GATED, 100.0).state,  # never looked at the annotation
        w.state,
        approved,
        finished,
        p,
        engine.on_rerun(every, replace(p, rerun_seen=None), "", 120.0).state,
        engine.on_rerun(every, p, "x", 130.0).state,
        engine.on_rerun(every, engine.on_rerun(every, p, "x", 130.0).state, "", 131.0).state,
        engine.on_tick(every, p, 1000.0).state,
        w.state,
    ]
    stored: dict[str, Any] = {}
    for state in states:
        new = json.loads(json.dumps(snapshot.to_data(state)))
        stored = mergepatch.apply(stored, mergepatch.create(stored, new))
        assert stored == new
        assert snapshot.from_data(stored) == state
    assert snapshot.to_data(states[5])["rerun"] == {"seen": ""}
    assert "rerun" not in snapshot.to_data(states[0])


def test_a_rerun_or_revalidation_keeps_the_fingerprint_as_its_baseline() -> None:
    every = replace(GATED, revalidate_every_seconds=60)
    done = engine.on_target_observed(every, passed(every).state, V1, 111.0).state
    assert done.fingerprint == V1
    for new in (
        engine.on_rerun(every, done, "1", 120.0).state,
        engine.on_tick(every, done, 1000.0).state,
    ):
        assert new.round == 2 and new.fingerprint == V1
        # The same targets seen again: no TargetChanged round on top.
        assert engine.on_target_observed(every, new, V1, 1001.0).state.round == 2
