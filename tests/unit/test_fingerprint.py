"""The environment fingerprint in the pure core (docs/design.md §8): what counts as a
change, how the engine answers one (a new round, TargetChanged) or its own redeploy (a
new baseline), and that status, report and snapshot carry it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from greenloop.core import engine, mergepatch, snapshot, spec
from greenloop.core.capabilities import Capabilities, of_target
from greenloop.core.engine import (
    Decision,
    Finish,
    Phase,
    Reason,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
)
from greenloop.core.fingerprint import Entry, Fingerprint, changes, fingerprint, missing, refine
from greenloop.core.model import StagingValidation, Target, Workload
from greenloop.core.report import render
from greenloop.core.schema import validate
from greenloop.core.status import build_status
from tests.unit.scenario import HTTP_503, bad, make_spec, ok

CAPS = Capabilities(workloads=True)
SPEC = make_spec(("core", "P1"), flake_retries=1)
DIGEST_1 = "localhost/demo-app@sha256:" + "1" * 64
DIGEST_2 = "localhost/demo-app@sha256:" + "2" * 64


def fp(image: str = "demo-app:v1", image_id: str = "", revision: str = "5d8f") -> Fingerprint:
    return fingerprint([Entry("Deployment/backend", revision, "app", image, image_id)])


V1 = fp()
V2 = fp("demo-app:v2", revision="7c9a")


# -- what counts as a change ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        (V1, fp(), ()),
        (V1, fp(image_id=DIGEST_1), ()),  # a digest learned as the pod starts
        (fp(image_id=DIGEST_1), fp(), ()),  # a pod still pulling knows none yet
        (
            V1,
            V2,
            ("Deployment/backend: app=demo-app:v1 (pod template 5d8f) → "
             "app=demo-app:v2 (pod template 7c9a)",),
        ),
        (
            fp(image_id=DIGEST_1),
            fp(image_id=DIGEST_2),  # same tag, a new digest (a mutable tag re-pulled)
            ("Deployment/backend: app=demo-app:v1@sha256:111111111111 (pod template 5d8f) → "
             "app=demo-app:v1@sha256:222222222222 (pod template 5d8f)",),
        ),
        (V1, fp(revision="9e0b"), ("Deployment/backend: app=demo-app:v1 (pod template 5d8f) → "
                                   "app=demo-app:v1 (pod template 9e0b)",)),  # restartedAt
        (V1, fingerprint([]),
         ("Deployment/backend: app=demo-app:v1 (pod template 5d8f) → absent",)),
    ],
    ids=["same", "digest learned", "digest not known yet", "new image", "new digest",
         "new pod template", "workload gone"],
)  # fmt: skip
def test_what_counts_as_a_target_change(
    old: Fingerprint, new: Fingerprint, changed: tuple[str, ...]
) -> None:
    assert changes(old, new) == changed
    assert (old.digest == new.digest) == (old == new)


def test_refine_keeps_known_digests_and_entries_are_sorted_and_bounded() -> None:
    known = fp(image_id=DIGEST_1)
    assert refine(known, V1) == known
    assert refine(V1, known) == known
    many = fingerprint(
        Entry(f"Deployment/w{n:02d}", "h", "app", "img:1") for n in reversed(range(45))
    )
    assert [e.workload for e in many.entries][:2] == ["Deployment/w00", "Deployment/w01"]
    assert (len(many.entries), many.more) == (40, 5)
    assert "w00" in many.describe() and "42 more" in many.describe()


def test_only_the_operator_fingerprints_workloads() -> None:
    target = Target(workloads=(Workload("Deployment", "backend"),), command=("./restart",))
    assert of_target(target, "operator").fingerprint
    assert not of_target(target, "local").fingerprint


# -- the engine's answers --------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Feed one event; ``fingerprint`` is what the shell saw then."""

    kind: str  # "suite" (results, pass or fail) | "redeploy" | "observe"
    fingerprint: Fingerprint | None
    passing: bool = True


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    phase: Phase
    reason: Reason
    round: int
    fingerprint: Fingerprint | None
    message_has: tuple[str, ...] = ()


FLOWS = [
    Flow("same fingerprint: the round goes on",
         (Step("suite", V1, passing=False), Step("redeploy", V1), Step("suite", V1)),
         Phase.PASSED, Reason.GOAL_MET, 1, V1,
         (f"1/1 tests passed on target fingerprint {V1.digest}",)),
    Flow("changed mid-round by someone else: a fresh round",
         (Step("suite", V1, passing=False), Step("redeploy", V1), Step("suite", V2)),
         Phase.TESTING, Reason.TARGET_CHANGED, 2, V2,
         ("target changed, not by greenloop", "app=demo-app:v1", "→ app=demo-app:v2",
          "round 2 starts over")),
    Flow("changed by greenloop's own redeploy: the new baseline",
         (Step("suite", V1, passing=False), Step("redeploy", V2), Step("suite", V2)),
         Phase.PASSED, Reason.GOAL_MET, 1, V2, ("demo-app:v2", V2.digest)),
    Flow("changed while Jobs run, seen on an idle tick",
         (Step("observe", V1), Step("observe", V2)),
         Phase.TESTING, Reason.TARGET_CHANGED, 2, V2, ("→ app=demo-app:v2",)),
    Flow("a Passed object whose target changes later: a new round",
         (Step("suite", V1), Step("observe", V1), Step("observe", V2)),
         Phase.TESTING, Reason.TARGET_CHANGED, 2, V2, ("round 1 (Passed, iteration 1)",)),
    Flow("digests learned after the first look: not a change",
         (Step("observe", V1), Step("suite", fp(image_id=DIGEST_1))),
         Phase.PASSED, Reason.GOAL_MET, 1, fp(image_id=DIGEST_1), ("sha256:111111111111",)),
    Flow("no fingerprint (local mode): nothing compared",
         (Step("suite", None, passing=False), Step("redeploy", None), Step("suite", None)),
         Phase.PASSED, Reason.GOAL_MET, 1, None, ("1/1 tests passed",)),
    Flow("the first look is the baseline, whenever it comes",
         (Step("suite", None, passing=False), Step("redeploy", None), Step("suite", V2)),
         Phase.PASSED, Reason.GOAL_MET, 1, V2, (V2.digest,)),
    Flow("an unreadable look (None) is not a change",
         (Step("observe", V1), Step("observe", None), Step("suite", V1)),
         Phase.PASSED, Reason.GOAL_MET, 1, V1, ()),
]  # fmt: skip


def run_flow(steps: tuple[Step, ...], *, through_snapshots: bool = False) -> Decision:
    decision = engine.begin(SPEC, 1000.0)
    for n, step in enumerate(steps):
        now = 1001.0 + n
        state, action = decision.state, decision.action
        if step.kind == "observe":
            decision = engine.on_target_observed(SPEC, state, step.fingerprint, now)
        elif step.kind == "suite":
            assert isinstance(action, RunSuites), action
            result = ok("t1") if step.passing else bad("t1", HTTP_503)
            run = SuiteRun("core", tests=(result,), selected=action.suites[0].test_ids)
            event = SuiteFinished(action.id, run, fingerprint=step.fingerprint)
            decision = engine.on_suite(SPEC, state, event, now, caps=CAPS)
        else:
            assert isinstance(action, Redeploy), action
            state = engine.on_redeploy_started(state, RedeployStarted(action.id)).state
            # Anything seen while greenloop's own rollout is in flight is its own doing.
            assert engine.on_target_observed(SPEC, state, V2, now).state is state
            done = RedeployDone(
                True, "rolled out", action_id=action.id, fingerprint=step.fingerprint
            )
            decision = engine.on_redeploy(SPEC, state, done, now)
        if through_snapshots:
            stored = snapshot.from_data(json.loads(json.dumps(snapshot.to_data(decision.state))))
            assert stored == decision.state
            decision = Decision(stored, engine.current_action(stored))
    return decision


@pytest.mark.parametrize("through_snapshots", [False, True], ids=["in memory", "restarted"])
@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_how_the_engine_answers_a_fingerprint(flow: Flow, through_snapshots: bool) -> None:
    decision = run_flow(flow.steps, through_snapshots=through_snapshots)
    state = decision.state
    assert (state.phase, state.reason, state.round) == (flow.phase, flow.reason, flow.round)
    assert state.fingerprint == flow.fingerprint
    for text in flow.message_has:
        assert text in state.message, state.message
    if flow.reason is Reason.TARGET_CHANGED:
        # The stale results are gone; iteration 1 of the new round runs every suite.
        assert state.tests == {} and state.iteration == 1
        assert isinstance(decision.action, RunSuites)
        assert decision.action.suites[0].test_ids is None
        assert state.history[-1].notes == (state.message,)
    if isinstance(decision.action, Finish):
        assert state.history[-1].fingerprint == (
            flow.fingerprint.digest if flow.fingerprint else ""
        )


def test_a_target_change_keeps_the_flaky_list_like_a_spec_change() -> None:
    decision = engine.begin(SPEC, 1000.0, fingerprint=V1)
    for n, result in enumerate([bad("t1", "AssertionError: flaked"), ok("t1")]):
        action = decision.action
        assert isinstance(action, RunSuites)
        run = SuiteRun("core", tests=(result,), selected=action.suites[0].test_ids)
        event = SuiteFinished(action.id, run, fingerprint=V1)
        decision = engine.on_suite(SPEC, decision.state, event, 1001.0 + n, caps=CAPS)
    assert decision.state.phase is Phase.PASSED and set(decision.state.flaky) == {"t1"}
    changed = engine.on_target_observed(SPEC, decision.state, V2, 2000.0)
    assert changed.state.reason is Reason.TARGET_CHANGED
    assert set(changed.state.flaky) == {"t1"}
    # The new round's ids differ: a late event of the old round changes nothing.
    assert changed.state.action_id != decision.state.action_id
    late = SuiteFinished(decision.state.action_id, SuiteRun("core", tests=(ok("t1"),)))
    assert engine.on_suite(SPEC, changed.state, late, 2001.0).state == changed.state


def test_a_failed_redeploy_still_takes_its_own_fingerprint_as_the_baseline() -> None:
    decision = run_flow((Step("suite", V1, passing=False),))
    action = decision.action
    assert isinstance(action, Redeploy)
    done = RedeployDone(False, "webhook answered 500", action_id=action.id, fingerprint=V2)
    stalled = engine.on_redeploy(SPEC, decision.state, done, 1100.0).state
    assert (stalled.phase, stalled.fingerprint) == (Phase.STALLED, V2)
    # Its own rollout finishing later is no reason for a new round (no TargetChanged loop).
    assert engine.on_target_observed(SPEC, stalled, V2, 1200.0).state is stalled
    # Someone else's change is: a fix deployed to a Stalled object starts a new round.
    fixed = engine.on_target_observed(SPEC, stalled, fp("demo-app:v3", revision="1a2b"), 1300.0)
    assert fixed.state.reason is Reason.TARGET_CHANGED and fixed.state.round == 2


def test_a_finished_round_keeps_the_fingerprint_its_verdict_names() -> None:
    passed = run_flow((Step("suite", V1),)).state
    assert passed.phase is Phase.PASSED
    assert engine.on_target_observed(SPEC, passed, fp(image_id=DIGEST_1), 1100.0).state is passed


# -- status, report, snapshot ----------------------------------------------------------------

STATUS_SCHEMA = spec.spec_schema()["properties"]["status"]


def obj_for(state: State) -> StagingValidation:
    return StagingValidation(name="demo", spec=SPEC)


def test_status_and_report_name_the_fingerprint_a_pass_was_proven_on() -> None:
    known = fp("demo-app:v2", DIGEST_2, "7c9a")
    state = run_flow((Step("suite", V1, passing=False), Step("redeploy", known),
                      Step("suite", known))).state  # fmt: skip
    status = build_status(obj_for(state), state, 2000.0)
    assert status["fingerprint"] == {
        "digest": known.digest,
        "entries": [{"workload": "Deployment/backend", "revision": "7c9a", "container": "app",
                     "image": "demo-app:v2", "imageID": DIGEST_2}],
    }  # fmt: skip
    assert [h.get("fingerprint") for h in status["history"]] == [V1.digest, known.digest]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (
        known.digest in ready["message"] and "demo-app:v2@sha256:222222222222" in ready["message"]
    )
    assert [f"{e.path}: {e.message}" for e in validate(status, STATUS_SCHEMA, "status")] == []
    report = render(obj_for(state), state, 2000.0)
    assert f"## Target fingerprint `{known.digest}`" in report
    assert "The results in this report were proven on these images:" in report
    assert "| Deployment/backend | `7c9a` | app | `demo-app:v2` | `sha256:222222222222` |" in report


def test_without_a_digest_status_shows_the_image_reference_and_the_report_says_so() -> None:
    state = run_flow((Step("suite", V1),)).state
    status = build_status(obj_for(state), state, 2000.0)
    assert status["fingerprint"]["entries"][0]["imageID"] == "demo-app:v1"
    assert "| `demo-app:v1` | (not reported) |" in render(obj_for(state), state, 2000.0)


def test_local_mode_status_and_report_have_no_fingerprint() -> None:
    state = run_flow((Step("suite", None),)).state
    assert "fingerprint" not in build_status(obj_for(state), state, 2000.0)
    assert "fingerprint" not in render(obj_for(state), state, 2000.0).lower()


def test_status_fingerprint_is_capped_at_the_crds_max_items() -> None:
    many = fingerprint(Entry(f"Deployment/w{n:02d}", "h", "app", "img:1") for n in range(45))
    state = engine.begin(SPEC, 1000.0, fingerprint=many).state
    status = build_status(obj_for(state), state, 2000.0)
    assert (len(status["fingerprint"]["entries"]), status["fingerprint"]["more"]) == (20, 25)
    assert [f"{e.path}: {e.message}" for e in validate(status, STATUS_SCHEMA, "status")] == []


def _through_patches(states: list[State]) -> None:
    stored: dict[str, Any] = {}
    for state in states:
        new = json.loads(json.dumps(snapshot.to_data(state)))
        stored = mergepatch.apply(stored, mergepatch.create(stored, new))
        assert snapshot.from_data(stored) == state


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_fingerprints_round_trip_through_merge_patches(flow: Flow) -> None:
    states: list[State] = []
    for n in range(len(flow.steps) + 1):
        states.append(run_flow(flow.steps[:n]).state)
    # A fingerprint that goes away (local mode after operator mode) is deleted by null.
    states.append(engine.begin(SPEC, 3000.0).state)
    _through_patches(states)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["fingerprint"].update(digest="0" * 12),
        lambda d: d["fingerprint"]["entries"].__setitem__(0, ["Deployment/backend"]),
    ],
    ids=["digest does not match", "short entry"],
)
def test_an_unreadable_fingerprint_is_a_clear_snapshot_error(
    tamper: Callable[[dict[str, Any]], None],
) -> None:
    data = json.loads(json.dumps(snapshot.to_data(engine.begin(SPEC, 1.0, fingerprint=V1).state)))
    tamper(data)
    with pytest.raises(snapshot.SnapshotError, match="unreadable snapshot"):
        snapshot.from_data(data)


# ---------------------------------------------------------------------------
# No target found: the fingerprint reads "none", and each missing workload is named


def test_an_empty_fingerprint_reads_none_not_the_hash_of_nothing() -> None:
    empty = fingerprint([])
    assert empty.digest == "none"
    assert empty.describe() == "none (no workloads found)"


def test_a_state_stored_with_the_old_empty_digest_still_reads() -> None:
    state = engine.begin(make_spec(("api", "P1")), 0.0, fingerprint=fingerprint([])).state
    data = snapshot.to_data(state)
    data["fingerprint"]["digest"] = "e3b0c44298fc"  # written before "none"
    read = snapshot.from_data(data).fingerprint
    assert read is not None and read.digest == "none"


def test_missing_names_the_workloads_without_an_entry() -> None:
    found = fp()  # Deployment/backend only
    assert missing(found, ["Deployment/backend", "StatefulSet/db"]) == ("StatefulSet/db",)
    assert missing(fingerprint([]), ["Deployment/backend"]) == ("Deployment/backend",)
    # Entries were cut at MAX_ENTRIES: absence proves nothing.
    assert missing(replace(found, more=3), ["StatefulSet/db"]) == ()
