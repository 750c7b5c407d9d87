"""Engine rules that survived ``make mutate`` (core/engine.py) after test_engine_pinned.py:
each test names the rule it pins and checks what a person reads (phase, reason, message,
counts, the rerun's selection)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from greenloop.core import engine, snapshot
from greenloop.core.engine import (
    Counts,
    Phase,
    Reason,
    RedeployDone,
    RedeployStarted,
    State,
    SuiteFinished,
    SuiteRun,
    SuiteSelection,
)
from greenloop.core.fingerprint import Entry, fingerprint
from greenloop.core.model import (
    Diagnosis,
    FailureClass,
    Outcome,
    RedeployPolicy,
    Target,
    TestResult,
    ValidationSpec,
)
from tests.unit.scenario import (
    ASSERT,
    HTTP_403,
    HTTP_503,
    IMPORT,
    RESTART,
    Script,
    bad,
    dep_skip,
    make_spec,
    ok,
    play,
)

Runner = Callable[[SuiteSelection, Sequence[TestResult]], Sequence[TestResult]]

SELECTION_HELP = (
    ": the rerun did not run the selected tests twice (it skipped them, did not report "
    "them, or reported tests that were not selected); fix the suite's command so it runs "
    "only the ids listed in the file $GREENLOOP_SELECT names, reporting each with the id it "
    "had (docs/design.md §4)"
)


def nothing_on_rerun(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full if sel.test_ids is None else []


def test_selection_ignored_names_every_suite_that_ignored_it_and_says_how_to_fix_it() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=3)
    first = {"api": [ok("a1"), bad("a2", ASSERT)], "web": [ok("w1"), bad("w2", ASSERT)]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert state.message == "suite api, web" + SELECTION_HELP
    assert state.history[-1].finished is not None  # the report's duration of the last one


def test_an_internal_error_keeps_a_whole_note_of_its_message() -> None:
    state = engine.begin(make_spec(("e2e", "P1")), 1000.0).state
    done = engine.internal_error(state, 1001.0, "x" * 1000)
    assert done.state.message == "x" * (engine.MAX_NOTE - 1) + "…"


def test_a_selected_test_with_no_record_is_not_rerun_with_its_suite_s_priority() -> None:
    # A state restored from elsewhere may select a test it holds no record of.
    spec = make_spec(("api", "P1"), ("web", "P3"))
    state = State(
        phase=Phase.TESTING,
        iteration=2,
        started_at=1000.0,
        running=(SuiteSelection("web", ("w9",)),),
        history=(engine.IterationRecord(iteration=2, started=1000.0),),
    )
    run = SuiteRun("web", tests=(), selected=("w9",))
    done = engine.on_suite(spec, state, SuiteFinished(state.action_id, run), 1001.0)
    record = done.state.tests["w9"]
    assert (record.suite, record.priority, record.outcome) == ("web", "P3", Outcome.SKIPPED)
    assert record.diagnosis is not None
    assert str(record.diagnosis.failure_class) == "NotRerun"
    assert (record.failed_runs, record.last_failed) == (1, 2)
    assert record.first_failure == engine.FirstFailure(
        2,
        record.diagnosis.failure_class,
        "selected for the rerun, but the rerun skipped it or did not report it",
    )


def test_a_test_not_rerun_keeps_its_own_priority_and_how_it_first_failed() -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=1)
    first = {"e2e": [ok("a"), bad("b", ASSERT, priority="P4", depends_on=("a",))]}
    state = play(spec, [first], runner=nothing_on_rerun).state
    record = state.tests["b"]
    assert record.diagnosis == Diagnosis(
        FailureClass.NOT_RERUN,
        "selected for the rerun, but the rerun skipped it or did not report it",
    )
    assert (record.priority, record.iteration, record.depends_on) == ("P4", 2, ("a",))
    assert record.first_failure is not None
    assert (record.first_failure.iteration, str(record.first_failure.failure_class)) == (
        1,
        "Assertion",
    )
    assert record.first_failure.evidence == ASSERT
    assert (record.failed_runs, record.last_failed) == (2, 2)
    # No retries left: the round stops on the NotRerun test, naming the suite at fault.
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert state.message == "suite e2e" + SELECTION_HELP


def test_selection_ignored_with_no_suite_on_record_says_unknown() -> None:
    # A state restored from elsewhere: a NotRerun test, but no selection miss recorded.
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=0)
    not_rerun = engine.TestRecord(
        id="w1",
        suite="web",
        priority="P2",
        outcome=Outcome.SKIPPED,
        iteration=1,
        diagnosis=Diagnosis(FailureClass.NOT_RERUN, "selected for the rerun, not reported"),
    )
    state = State(
        phase=Phase.TESTING,
        iteration=1,
        started_at=1000.0,
        tests={"w1": not_rerun},
        running=(SuiteSelection("api"),),
        history=(engine.IterationRecord(iteration=1, started=1000.0),),
    )
    run = SuiteRun("api", tests=(ok("a1"),))
    done = engine.on_suite(spec, state, SuiteFinished(state.action_id, run), 1001.0)
    assert (done.state.phase, done.state.reason) == (Phase.STALLED, Reason.SELECTION_IGNORED)
    assert done.state.message == "suite (unknown)" + SELECTION_HELP


def skipped(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED)


def errored(test_id: str) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.ERROR, message="boom")


@pytest.mark.parametrize(
    ("results", "counts"),
    [
        ([], Counts(0, 0, 0)),
        ([ok("a"), ok("b")], Counts(2, 0, 0)),
        ([bad("a", ASSERT), errored("b")], Counts(0, 2, 0)),
        ([skipped("a"), skipped("b")], Counts(0, 0, 2)),
        # A dependency skip fails with its root: the progress line counts it failed.
        ([bad("a", ASSERT), dep_skip("b", "a"), ok("c"), skipped("d")], Counts(1, 2, 1)),
    ],
    ids=["nothing", "passed", "failed and errors", "skipped", "a dependency skip fails"],
)
def test_a_suite_s_progress_line_counts_passed_failed_skipped(
    results: list[TestResult], counts: Counts
) -> None:
    assert engine.tally_results(results) == counts
    assert engine.tally_results(results).total == len(results)


def test_the_same_generation_again_changes_nothing_and_asks_for_the_same_batch() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    changed = engine.on_spec_changed(spec, engine.begin(spec, 1000.0).state, 2000.0, generation=2)
    same = engine.on_spec_changed(spec, changed.state, 3000.0, generation=2)
    assert same == changed
    assert isinstance(same.action, engine.RunSuites)
    assert [s.suite for s in same.action.suites] == ["api", "web"]


# ---------------------------------------------------------------------------
# How a rerun's results line up with its selection: the warning line a person reads


@pytest.mark.parametrize(
    ("test_ids", "results", "missing", "skips", "extra", "ran_extra", "message"),
    [
        (None, [ok("a"), skipped("b")], (), (), (), 0, ""),
        (("a", "b"), [ok("a"), bad("b", ASSERT)], (), (), (), 0, ""),
        # A dependency skip is a result: the test was run and its root failed.
        (("a", "b"), [bad("a", ASSERT), dep_skip("b", "a")], (), (), (), 0, ""),
        (
            ("c", "a", "b"),
            [ok("b")],
            ("c", "a"),
            (),
            (),
            0,
            "suite e2e: rerun of 3 selected tests: 2 not reported (counted as NotRerun)",
        ),
        (
            ("a", "b"),
            [skipped("a"), ok("b")],
            (),
            ("a",),
            (),
            0,
            "suite e2e: rerun of 2 selected tests: 1 reported as skipped (counted as NotRerun)",
        ),
        (
            ("a",),
            [ok("a"), ok("x"), skipped("y"), bad("z", ASSERT)],
            (),
            (),
            ("x", "y", "z"),
            2,
            "suite e2e: rerun of 1 selected test; 3 results for tests not selected ignored",
        ),
        (
            ("a", "b", "c"),
            [skipped("b"), ok("c"), skipped("x")],
            ("a",),
            ("b",),
            ("x",),
            0,
            "suite e2e: rerun of 3 selected tests: 1 not reported, 1 reported as skipped "
            "(counted as NotRerun); 1 result for tests not selected ignored",
        ),
    ],
    ids=[
        "a whole suite",
        "lined up",
        "a dependency skip",
        "not reported",
        "reported skipped",
        "extra results",
        "all at once",
    ],
)
def test_a_rerun_s_line_up_counts_what_was_not_run_and_what_was_not_selected(
    test_ids: tuple[str, ...] | None,
    results: list[TestResult],
    missing: tuple[str, ...],
    skips: tuple[str, ...],
    extra: tuple[str, ...],
    ran_extra: int,
    message: str,
) -> None:
    line = engine.line_up(SuiteSelection("e2e", test_ids), results)
    assert (line.suite, line.selected) == ("e2e", 0 if test_ids is None else len(test_ids))
    assert (line.missing, line.skipped, line.extra, line.ran_extra) == (
        missing,
        skips,
        extra,
        ran_extra,
    )
    assert line.message == message


def reruns_everything(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    return full


def deselected_skipped(sel: SuiteSelection, full: Sequence[TestResult]) -> Sequence[TestResult]:
    if sel.test_ids is None:
        return full
    return [t if t.id in sel.test_ids else skipped(t.id) for t in full]


@pytest.mark.parametrize(
    ("runner", "reason", "iterations", "ignored"),
    [
        # Tests that were not selected ran: the selection was ignored, twice is a stop.
        (reruns_everything, Reason.SELECTION_IGNORED, 3, 4),
        # Reported as skipped, they did not run: the selection held; the retries run out.
        (deselected_skipped, Reason.ASSERTION, 4, 6),
    ],
    ids=["not selected, yet run", "not selected, reported skipped"],
)
def test_a_rerun_that_runs_tests_not_selected_ignored_the_selection(
    runner: Runner, reason: Reason, iterations: int, ignored: int
) -> None:
    spec = make_spec(("e2e", "P1"), flake_retries=3)
    every = {"e2e": [ok("a"), ok("b"), bad("c", ASSERT)]}
    state = play(spec, [every], runner=runner).state
    assert (state.phase, state.reason, state.iteration) == (Phase.STALLED, reason, iterations)
    assert state.ignored_results == ignored


# ---------------------------------------------------------------------------
# A suite that produced no results


@pytest.mark.parametrize(
    ("script", "permanent", "iterations", "message"),
    [
        (
            [{"api": "command not found: 'jest'", "web": [ok("w1")]}],
            True,
            1,
            "no results: suite api: command not found: 'jest'",
        ),
        (
            [{"api": "x" * 1000, "web": [ok("w1")]}],
            True,
            1,
            "no results: suite api: " + "x" * (engine.MAX_NOTE - 1) + "…",
        ),
        (
            [{"api": "OOMKilled", "web": [ok("w1")]}],
            False,
            2,
            "no results twice: suite api: OOMKilled",
        ),
        (
            [{"api": "OOMKilled", "web": "wrote no JUnit XML"}],
            False,
            2,
            "no results twice: suite api: OOMKilled; suite web: wrote no JUnit XML",
        ),
    ],
    ids=["permanent", "a long error", "twice", "two suites twice"],
)
def test_a_suite_without_results_stops_the_round_once_a_rerun_cannot_help(
    script: Script, permanent: bool, iterations: int, message: str
) -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    state = play(spec, script, permanent=permanent).state
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.RUNNER_ERROR)
    assert (state.iteration, state.message) == (iterations, message)
    # Each iteration's record keeps what each suite said (status and report show it).
    why = message.split("suite api: ", 1)[1].split("; ", 1)[0]
    assert [record.suite_errors[0] for record in state.history] == [("api", why)] * iterations


def test_a_suite_that_produced_results_again_gets_its_retry_back() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=5)
    script = [
        {"api": "OOMKilled", "web": [bad("w1", ASSERT)]},
        {"api": [bad("a1", ASSERT)], "web": [bad("w1", ASSERT)]},
        {"api": "OOMKilled", "web": [bad("w1", ASSERT)]},
        {"api": [ok("a1")], "web": [ok("w1")]},
    ]
    state = play(spec, script).state
    assert (state.phase, state.reason, state.iteration) == (Phase.PASSED, Reason.GOAL_MET, 4)


def test_once_the_redeploy_is_done_the_state_says_testing_and_holds_no_redeploy_in_flight() -> None:
    spec = make_spec(("e2e", "P1"))
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("e2e", tests=(bad("a", HTTP_503), ok("b")))
    decided = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert isinstance(decided.action, engine.Redeploy)
    # The local shell names the redeploy's log by its iteration.
    assert (decided.action.iteration, decided.action.reason) == (1, "1 ServiceUnavailable")
    assert decided.action.token == decided.action.id == "r1-i1-s1"
    started = engine.on_redeploy_started(decided.state, RedeployStarted(decided.action.id))
    stored = snapshot.to_data(started.state)["redeploy"]
    assert stored == {"reason": "1 ServiceUnavailable", "started": True}
    done = engine.on_redeploy(
        spec, started.state, RedeployDone(True, "restarted", action_id=decided.action.id), 1002.0
    )
    # Testing again, and saying so: not "Redeploying" while the tests run.
    assert (done.state.phase, done.state.reason) == (Phase.TESTING, Reason.RUNNING_TESTS)
    assert done.state.message == "iteration 2: rerunning e2e (1 test)"
    data = snapshot.to_data(done.state)
    assert "redeploy" not in data
    assert "nextRun" not in data


def test_a_test_id_with_a_lone_surrogate_still_gets_a_redeploy_judged() -> None:
    # JSON (a results upload) can carry "\ud800": the id is odd, the decision is not.
    test_id = "tests/test_api.py::test_\udcff"
    spec = make_spec(("e2e", "P1"))
    played = play(spec, [{"e2e": [bad(test_id, HTTP_503), ok("b")]}])
    assert len(played.redeploys) == 1
    assert (played.state.reason, played.state.iteration) == (Reason.REDEPLOY_INEFFECTIVE, 2)


def test_goal_met_says_how_many_passed_of_how_many_expected() -> None:
    spec = make_spec(("e2e", "P1"), expected=2)
    state = play(spec, [{"e2e": [ok("a"), ok("b"), ok("c")]}]).state
    assert (state.reason, state.message) == (Reason.GOAL_MET, "3/2 tests passed")


def test_fail_fast_gives_each_priority_group_the_next_action_id_and_a_fresh_batch() -> None:
    spec = make_spec(("critical", "P1"), ("core", "P3"), ("extended", "P5"), fail_fast=True)
    ids: list[str] = []
    reported: list[tuple[str, ...]] = []
    decision = engine.begin(spec, 1000.0)
    while isinstance(decision.action, engine.RunSuites):
        ids.append(decision.action.id)
        reported.append(decision.state.reported)
        (sel,) = decision.action.suites
        run = SuiteRun(sel.suite, tests=(ok(sel.suite + "1"),))
        decision = engine.on_suite(
            spec, decision.state, SuiteFinished(decision.action.id, run), 1001.0
        )
    assert ids == ["r1-i1-s0", "r1-i1-s1", "r1-i1-s2"]
    assert reported == [(), (), ()]
    assert decision.state.reason is Reason.GOAL_MET


def _interrupted_while_redeploying() -> State:
    spec = make_spec(("critical", "P1"), ("core", "P3"), fail_fast=True)
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("critical", tests=(bad("c1", HTTP_503), ok("c2")))
    decided = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert isinstance(decided.action, engine.Redeploy)
    data = snapshot.to_data(decided.state)
    # failFast held "core" back: no group waits any more, no batch is in flight.
    for key in ("pending", "running", "reported"):
        assert key not in data, key
    assert data["nextRun"] == [{"suite": "critical", "tests": ["c1"]}, {"suite": "core"}]
    started = engine.on_redeploy_started(decided.state, RedeployStarted(decided.action.id))
    return engine.interrupt(started.state, 1002.0, "stopped").state


def _interrupted_while_testing() -> State:
    spec = make_spec(("critical", "P1"), ("core", "P3"), fail_fast=True)
    return engine.interrupt(engine.begin(spec, 1000.0).state, 1001.0, "stopped").state


def _interrupted_after_one_of_two_suites() -> State:
    spec = make_spec(("api", "P1"), ("web", "P1"))
    start = engine.begin(spec, 1000.0)
    run = SuiteRun("api", tests=(ok("a1"),))
    half = engine.on_suite(spec, start.state, SuiteFinished(start.state.action_id, run), 1001.0)
    assert half.state.reported == ("api",)
    return engine.interrupt(half.state, 1002.0, "stopped").state


@pytest.mark.parametrize(
    "ended",
    [
        _interrupted_while_redeploying,
        _interrupted_while_testing,
        _interrupted_after_one_of_two_suites,
    ],
    ids=["while redeploying", "while the first priority group runs", "with a suite reported"],
)
def test_a_finished_round_stores_nothing_in_flight(ended: Callable[[], State]) -> None:
    state = ended()
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.INTERRUPTED)
    data = snapshot.to_data(state)
    for key in ("running", "reported", "pending", "nextRun", "redeploy"):
        assert key not in data, key


def test_a_redeploy_is_recorded_with_each_class_counted() -> None:
    spec = make_spec(("e2e", "P1"))
    first = {
        "e2e": [bad("a", HTTP_503), bad("b", HTTP_503), dep_skip("c", "a"), ok("d")],
    }
    played = play(spec, [first])
    record = played.state.history[0]
    why = "2 ServiceUnavailable, 1 Dependent"
    assert (record.action, record.reason, record.detail) == (
        engine.ActionKind.REDEPLOY,
        Reason.REDEPLOYING,
        why,
    )
    assert played.redeploys[0].reason == why
    assert played.state.message == (
        "the redeploy changed nothing: the same 3 tests fail with the same classes "
        f"({why}); not redeploying again"
    )


def test_a_runner_error_alone_is_rerun_and_recorded_as_such() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=3)
    script = [{"api": "OOMKilled", "web": [ok("w1")]}, {"api": [ok("a1")], "web": [ok("w1")]}]
    played = play(spec, script)
    record = played.state.history[0]
    assert (record.action, record.reason, record.detail) == (
        engine.ActionKind.RERUN,
        Reason.RETRYING,
        "rerun 1/3 without redeploy (runner error)",
    )
    assert played.state.reason is Reason.GOAL_MET


def test_a_test_that_never_failed_has_no_failure_on_record() -> None:
    spec = make_spec(("e2e", "P1"))
    state = play(spec, [{"e2e": [ok("a"), bad("b", ASSERT)]}, {"e2e": [ok("b")]}]).state
    a = state.tests["a"]
    assert (a.failed_runs, a.last_failed, a.first_failure) == (0, 0, None)


def test_a_dependent_in_a_later_suite_finds_its_root_by_short_name() -> None:
    # The root failed in a suite reported earlier in the batch, named by its short name.
    spec = make_spec(("api", "P1"), ("web", "P2"), flake_retries=0, redeploy_on=())
    root = "tests/test_auth.py::test_login"
    script = [{"api": [bad(root, HTTP_503)], "web": [dep_skip("web::test_cart", "test_login")]}]
    state = play(spec, script).state
    diagnosis = state.tests["web::test_cart"].diagnosis
    assert diagnosis is not None
    assert (str(diagnosis.failure_class), diagnosis.root_cause) == ("Dependent", root)


def test_what_the_target_showed_is_kept_per_iteration_with_a_count_of_the_rest() -> None:
    spec = make_spec(("api", "P1"), ("web", "P2"))
    decision = engine.begin(spec, 1000.0)
    for suite in ("api", "web"):
        shown = tuple(f"{suite}: health 503 ({n})" for n in range(20))
        run = SuiteRun(suite, tests=(ok(suite + "1"),))
        event = SuiteFinished(decision.state.action_id, run, shown)
        decision = engine.on_suite(spec, decision.state, event, 1001.0)
    observed = decision.state.history[0].observed
    assert len(observed) == engine.MAX_NOTES
    assert observed[: engine.MAX_NOTES - 1] == tuple(
        f"api: health 503 ({n})" for n in range(engine.MAX_NOTES - 1)
    )
    assert observed[-1] == f"… and {40 - (engine.MAX_NOTES - 1)} more"


@pytest.mark.parametrize(
    ("shown", "kept"),
    [
        (3, ("x" * engine.MAX_NOTE,) * 3),
        # Exactly full: nothing to cut, so no count line either.
        (engine.MAX_NOTES, ("x" * engine.MAX_NOTE,) * engine.MAX_NOTES),
        (
            engine.MAX_NOTES + 1,
            ("x" * engine.MAX_NOTE,) * (engine.MAX_NOTES - 1) + ("… and 2 more",),
        ),
    ],
    ids=["a few", "exactly full", "one too many"],
)
def test_what_the_target_showed_is_kept_whole_up_to_the_limit_each_line_clipped(
    shown: int, kept: tuple[str, ...]
) -> None:
    spec = make_spec(("api", "P1"))
    decision = engine.begin(spec, 1000.0)
    run = SuiteRun("api", tests=(ok("a1"),))
    lines = ("x" * (engine.MAX_NOTE + 100),) * shown
    clipped = "x" * (engine.MAX_NOTE - 1) + "…"
    event = SuiteFinished(decision.state.action_id, run, lines)
    observed = engine.on_suite(spec, decision.state, event, 1001.0).state.history[0].observed
    assert observed == tuple(clipped if k.startswith("x") else k for k in kept)


# ---------------------------------------------------------------------------
# Rounds, the gate and the clock: what survived the run after the triggers and the
# fingerprint landed (README "Mutation testing").

V1 = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
V2 = fingerprint([Entry("Deployment/backend", "7c9a", "app", "app:v2")])
ONE = make_spec(("api", "P1"))


def one_suite(
    spec: ValidationSpec, decision: engine.Decision, now: float, *tests: TestResult
) -> engine.Decision:
    action = decision.action
    assert isinstance(action, engine.RunSuites)
    run = SuiteRun("api", tests=tuple(tests), selected=action.suites[0].test_ids)
    return engine.on_suite(spec, decision.state, SuiteFinished(action.id, run), now)


@pytest.mark.parametrize(("generation", "expected"), [(0, 1), (3, 3)])
def test_a_rerun_value_read_before_any_round_begins_round_one_with_it(
    generation: int, expected: int
) -> None:
    decision = engine.on_rerun(ONE, State(generation=generation), "x", 100.0)
    assert decision == engine.begin(ONE, 100.0, generation=expected, rerun="x")
    assert (decision.state.generation, decision.state.rerun_seen) == (expected, "x")


def test_the_same_rerun_value_again_asks_for_the_action_in_flight() -> None:
    start = engine.begin(ONE, 100.0, rerun="1")
    assert engine.on_rerun(ONE, start.state, "1", 200.0) == start


def test_a_rerun_request_says_its_value_clipped_to_64_characters() -> None:
    done = one_suite(ONE, engine.begin(ONE, 100.0, rerun=""), 110.0, ok("a"))
    after = engine.on_rerun(ONE, done.state, "v" * 100, 200.0)
    assert after.state.message == (
        f"round 2 (greenloop.dev/rerun changed to {'v' * 63 + '…'!r}): iteration 1: running 1 suite"
    )


def test_a_spec_change_says_its_generation_and_takes_the_fingerprint_seen_as_baseline() -> None:
    start = engine.on_target_observed(ONE, engine.begin(ONE, 100.0).state, V1, 101.0)
    changed = engine.on_spec_changed(ONE, start.state, 200.0, generation=2, fingerprint=V2)
    assert changed.state.message == (
        "round 2 (the spec changed: generation 2): iteration 1: running 1 suite"
    )
    assert changed.state.fingerprint == V2
    assert changed.state.history[-1].fingerprint == V2.digest


def test_a_digest_learned_mid_round_is_recorded_and_the_same_batch_is_asked_for() -> None:
    pulling = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1")])
    pulled = fingerprint([Entry("Deployment/backend", "5d8f", "app", "app:v1", "sha256:ab")])
    start = engine.begin(ONE, 100.0)
    seen = engine.on_target_observed(ONE, start.state, pulling, 101.0)
    learned = engine.on_target_observed(ONE, seen.state, pulled, 102.0)
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
    start = replace(engine.begin(ONE, 100.0).state, generation=3)
    seen = engine.on_target_observed(ONE, start, fingerprint(two), 101.0)
    changed = engine.on_target_observed(ONE, seen.state, fingerprint(moved), 102.0)
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
    seen = engine.on_target_observed(ONE, engine.begin(ONE, 100.0).state, before, 101.0)
    changed = engine.on_target_observed(ONE, seen.state, after, 102.0)
    assert len(changed.state.message) == engine.MAX_NOTE
    assert changed.state.message.endswith("…")


def test_a_first_fingerprint_on_a_finished_round_leaves_its_verdict_s_record_alone() -> None:
    done = one_suite(ONE, engine.begin(ONE, 100.0), 110.0, ok("a"))
    assert done.state.history[-1].finished is not None
    seen = engine.on_target_observed(ONE, done.state, V1, 111.0)
    assert seen.state.fingerprint == V1
    assert seen.state.history == done.state.history, "the verdict names what it saw"


def test_a_first_fingerprint_with_no_iteration_on_record_is_kept() -> None:
    bare = State(phase=Phase.TESTING, iteration=1, started_at=100.0)
    assert engine.on_target_observed(ONE, bare, V1, 101.0).state == replace(bare, fingerprint=V1)


@pytest.mark.parametrize(
    ("started_at", "finished", "due"),
    [(100.0, 150.0, 210.0), (100.0, None, 160.0), (None, None, 60.0)],
    ids=["its last iteration's end", "else its start", "else the epoch"],
)
def test_a_passed_round_is_revalidated_counting_from_when_it_ended(
    started_at: float | None, finished: float | None, due: float
) -> None:
    spec = replace(ONE, revalidate_every_seconds=60)
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


GATED = make_spec(("api", "P1"), redeploy=RedeployPolicy.REQUIRE_APPROVAL, deadline_seconds=600)


def gated_wait() -> engine.Decision:
    return one_suite(GATED, engine.begin(GATED, 100.0), 110.0, bad("a", HTTP_503))


def test_an_approved_redeploy_says_so_and_starts_from_not_started() -> None:
    waiting = replace(gated_wait().state, redeploy_started=True)  # restored from elsewhere
    approved = engine.on_approved(waiting, "r1-i1-s1")
    state = approved.state
    assert (state.phase, state.reason, state.redeploys) == (
        Phase.REDEPLOYING,
        Reason.REDEPLOYING,
        1,
    )
    assert state.message == "iteration 1: redeploying because of 1 ServiceUnavailable (approved)"
    assert state.redeploy_started is False
    assert isinstance(approved.action, engine.Redeploy) and not approved.action.started
    assert state.history[-1].reason is Reason.REDEPLOYING


def test_a_wait_outliving_the_deadline_ends_the_round_with_the_reason_on_record() -> None:
    waiting = gated_wait()
    ended = engine.on_tick(GATED, waiting.state, 700.0)
    message = (
        "deadlineSeconds (600) passed while the redeploy waited for approval (token r1-i1-s1); "
        "not redeploying"
    )
    assert (ended.state.phase, ended.state.reason, ended.state.message) == (
        Phase.STALLED,
        Reason.BUDGET_EXHAUSTED,
        message,
    )
    record = ended.state.history[-1]
    # The iteration's own end stays when its tests ended; the wait is the round's.
    assert (record.finished, record.action, record.reason) == (
        110.0,
        engine.ActionKind.STALL,
        Reason.BUDGET_EXHAUSTED,
    )
    assert record.detail == message


def test_a_failed_redeploy_stalls_the_round_keeping_the_iteration_s_own_end() -> None:
    spec = make_spec(("api", "P1"))
    waiting = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", HTTP_503))
    action = waiting.action
    assert isinstance(action, engine.Redeploy)
    started = engine.on_redeploy_started(waiting.state, RedeployStarted(action.id))
    failed = engine.on_redeploy(
        spec, started.state, RedeployDone(False, "exit 3", action_id=action.id), 130.0
    )
    assert (failed.state.phase, failed.state.reason) == (Phase.STALLED, Reason.REDEPLOY_FAILED)
    assert failed.state.history[-1].finished == 110.0
    assert failed.state.message == "exit 3"


def test_the_next_iteration_remembers_whether_a_redeploy_or_a_plain_rerun_came_before() -> None:
    # "The redeploy changed nothing" is judged only on the batch right after a redeploy.
    spec = make_spec(("api", "P1"), flake_retries=1)
    redeploy = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", HTTP_503))
    action = redeploy.action
    assert isinstance(action, engine.Redeploy)
    done = RedeployDone(True, "ok", action_id=action.id)
    after = engine.on_redeploy(spec, redeploy.state, done, 130.0)
    assert (after.state.iteration, after.state.last_action) == (2, engine.ActionKind.REDEPLOY)
    rerun = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", ASSERT))
    assert (rerun.state.iteration, rerun.state.last_action) == (2, engine.ActionKind.RERUN)


NO_TARGET = Target()


@pytest.mark.parametrize(
    ("message", "target", "reason", "hint"),
    [
        (HTTP_403, RESTART, "AuthError", "credentials are rejected; a redeploy cannot fix them"),
        (
            IMPORT,
            RESTART,
            "TestCodeError",
            "the test code itself is broken; a redeploy cannot fix it",
        ),
        (ASSERT, RESTART, "Assertion", "Assertion is not in policy.redeployOn"),
        (HTTP_403, NO_TARGET, "AuthError", "credentials are rejected; a redeploy cannot fix them"),
        (
            HTTP_503,
            NO_TARGET,
            "ServiceUnavailable",
            "no redeploy target this mode can use is configured (spec.target)",
        ),
    ],
    ids=["auth", "test code", "not in redeployOn", "auth, no target", "503, no target"],
)
def test_a_stall_says_why_a_redeploy_was_not_tried(
    message: str, target: Target, reason: str, hint: str
) -> None:
    spec = make_spec(("api", "P1"), target=target, flake_retries=0)
    state = one_suite(spec, engine.begin(spec, 100.0), 110.0, bad("a", message)).state
    assert (state.phase, str(state.reason)) == (Phase.STALLED, reason)
    assert state.message == f"1 {reason} still failing after 0 reruns without a redeploy: {hint}"


@pytest.mark.parametrize(
    ("items", "bounded"),
    [
        ((), ()),
        (("a",) * 12, ("a",) * 12),
        (("a",) * 13, ("a",) * 11 + ("… and 2 more",)),
        (("a",) * 11 + ("… and 5 more",), ("a",) * 11 + ("… and 5 more",)),
        (("a",) * 11 + ("… and 5 more", "b"), ("a",) * 11 + ("… and 6 more",)),
        (("a", "… and 1 more", "b"), ("a", "b", "… and 1 more")),
        (("… and 3 more",), ("… and 3 more",)),
        (("x" * 500,), ("x" * (engine.MAX_NOTE - 1) + "…",)),
        (("x" * engine.MAX_NOTE,), ("x" * engine.MAX_NOTE,)),
    ],
    ids=[
        "nothing",
        "exactly full",
        "one too many",
        "already bounded",
        "one more after a cut",
        "a count before notes goes last",
        "only a count",
        "each note clipped",
        "a note at the limit kept whole",
    ],
)
def test_notes_are_bounded_counting_what_an_earlier_cut_dropped(
    items: tuple[str, ...], bounded: tuple[str, ...]
) -> None:
    assert engine._bounded(items) == bounded
    assert engine._bounded(bounded) == bounded, "bounding twice changes nothing"


def test_an_error_with_no_iteration_on_record_still_gets_one_with_a_whole_note() -> None:
    bare = State(phase=Phase.TESTING, iteration=2, started_at=50.0)
    ended = engine.internal_error(bare, 60.0, "y" * 300).state
    (record,) = ended.history
    assert (record.iteration, record.started, record.finished) == (2, 50.0, 60.0)
    assert record.detail == "y" * 300, "a note is MAX_NOTE long, not one evidence line"
    never = engine.internal_error(State(phase=Phase.TESTING, iteration=1), 60.0, "z").state
    assert never.history[0].started == 0.0


def test_a_passed_round_names_a_long_fingerprint_within_one_note() -> None:
    entries = [Entry(f"Deployment/{'w' * 200}{n}", "1", "app", "app:v1") for n in range(8)]
    spec = make_spec(("api", "P1"))
    start = engine.begin(spec, 100.0, fingerprint=fingerprint(entries))
    done = one_suite(spec, start, 110.0, ok("a"))
    assert done.state.phase is Phase.PASSED
    assert len(done.state.message) == engine.MAX_NOTE
    assert done.state.message.startswith("1/1 tests passed on target fingerprint ")


def test_a_round_starts_running_tests_with_its_baseline_on_the_first_iteration() -> None:
    start = engine.begin(ONE, 100.0, fingerprint=V1).state
    assert (start.reason, start.last_action) == (Reason.RUNNING_TESTS, engine.ActionKind.RUN)
    assert start.history[0].fingerprint == V1.digest
    assert engine.begin(ONE, 100.0).state.history[0].fingerprint == ""


def test_the_root_of_a_chain_ending_in_a_cycle_is_found_in_bounded_steps() -> None:
    def dependent(test_id: str, root: str) -> engine.TestRecord:
        diagnosis = Diagnosis(FailureClass.DEPENDENT, f"depends on {root}", root)
        return engine.TestRecord(test_id, "api", "P1", Outcome.SKIPPED, 1, diagnosis)

    # a -> b -> c -> b: the cycle does not pass through the start.
    tests = {"a": dependent("a", "b"), "b": dependent("b", "c"), "c": dependent("c", "b")}
    state = State(phase=Phase.TESTING, iteration=1, tests=tests)
    assert engine.root_of(state, tests["a"]).id in {"b", "c"}


def test_the_same_fingerprint_again_asks_for_the_action_in_flight() -> None:
    seen = engine.on_target_observed(ONE, engine.begin(ONE, 100.0).state, V1, 101.0)
    again = engine.on_target_observed(ONE, seen.state, V1, 102.0)
    assert again == seen
    assert isinstance(again.action, engine.RunSuites)
