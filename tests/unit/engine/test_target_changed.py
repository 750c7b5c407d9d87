"""A target changed by someone else (docs/design.md §1, §8): the round's first
fingerprint is its baseline; a different one while testing, passed or stalled starts a new
round (``TargetChanged``); digests learned mid-round are recorded."""

from __future__ import annotations

from dataclasses import replace

from greenloop.core import engine
from greenloop.core.engine import Phase, Reason, RunSuites, State
from greenloop.core.fingerprint import Entry, fingerprint
from tests.unit.engine.steps import API, GATED, V1, V2, one_suite, waiting
from tests.unit.scenario import ok


def test_a_digest_learned_mid_round_is_recorded_and_the_same_batch_is_asked_for() -> None:
    pulling = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
    pulled = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1", "sha256:ab")])
    start = engine.begin(API, 100.0)
    seen = engine.on_target_observed(API, start.state, pulling, 101.0)
    learned = engine.on_target_observed(API, seen.state, pulled, 102.0)
    assert learned.state.fingerprint == pulled
    assert learned.action == start.action


def test_a_target_change_keeps_the_generation_and_names_every_changed_workload() -> None:
    two = [
        Entry("Deployment/backend", "5d8f", "app", "app:v1"),
        Entry("Deployment/web", "1", "w", "w:1"),
    ]
    moved = [
        Entry("Deployment/backend", "7c9a", "app", "app:v2"),
        Entry("Deployment/web", "2", "w", "w:2"),
    ]
    start = replace(engine.begin(API, 100.0).state, generation=3)
    seen = engine.on_target_observed(API, start, fingerprint(two), 101.0)
    changed = engine.on_target_observed(API, seen.state, fingerprint(moved), 102.0)
    assert (changed.state.round, changed.state.generation) == (2, 3)
    assert changed.state.message == (
        "target changed, not by greenloop: Deployment/backend: app=app:v1 (pod template 5d8f) → "
        "app=app:v2 (pod template 7c9a); Deployment/web: w=w:1 (pod template 1) → w=w:2 "
        "(pod template 2); the results of round 1 (Testing, iteration 1) are stale: round 2 "
        "starts over"
    )


def test_a_target_change_message_is_one_note_long_at_most() -> None:
    long = "Deployment/" + "b" * 60
    before = fingerprint([Entry(f"{long}{n}", "1", "app", "app:v1") for n in range(8)])
    after = fingerprint([Entry(f"{long}{n}", "2", "app", "app:v2") for n in range(8)])
    seen = engine.on_target_observed(API, engine.begin(API, 100.0).state, before, 101.0)
    changed = engine.on_target_observed(API, seen.state, after, 102.0)
    assert len(changed.state.message) == engine.MAX_NOTE
    assert changed.state.message.endswith("…")


def test_a_first_fingerprint_on_a_finished_round_leaves_its_verdict_s_record_alone() -> None:
    done = one_suite(API, engine.begin(API, 100.0), 110.0, ok("a"))
    assert done.state.history[-1].finished is not None
    seen = engine.on_target_observed(API, done.state, V1, 111.0)
    assert seen.state.fingerprint == V1
    assert seen.state.history == done.state.history, "the verdict names what it saw"


def test_a_first_fingerprint_with_no_iteration_on_record_is_kept() -> None:
    bare = State(phase=Phase.TESTING, iteration=1, started_at=100.0)
    assert engine.on_target_observed(API, bare, V1, 101.0).state == replace(bare, fingerprint=V1)


def test_the_same_fingerprint_again_asks_for_the_action_in_flight() -> None:
    seen = engine.on_target_observed(API, engine.begin(API, 100.0).state, V1, 101.0)
    again = engine.on_target_observed(API, seen.state, V1, 102.0)
    assert again == seen
    assert isinstance(again.action, engine.RunSuites)


def test_a_target_change_while_waiting_starts_over_keeping_the_rerun_value() -> None:
    state = replace(waiting().state, rerun_seen="7")
    state = engine.on_target_observed(GATED, state, V1, 115.0).state  # the baseline
    assert state.phase is Phase.WAITING_APPROVAL
    changed = engine.on_target_observed(GATED, state, V2, 116.0)
    assert isinstance(changed.action, RunSuites) and changed.action.id == "r2-i1-s0"
    assert changed.state.round_reason is Reason.TARGET_CHANGED
    assert changed.state.rerun_seen == "7", "a TargetChanged round is no rerun request"
    assert engine.on_approved(changed.state, "r1-i1-s1").state == changed.state
