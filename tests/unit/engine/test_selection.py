"""What a rerun runs (docs/design.md §1): ``rerun: Failed`` → the failing tests and
their dependents (and dependents of dependents), per suite; suites that produced nothing run
whole; ``rerun: All`` → every suite whole. Rule: ``engine.rules.rerun_selection``."""

from __future__ import annotations

from greenloop.core.model import RerunMode
from tests.unit.engine.cases import GREEN, ONE, TWO, TWO_SUITES
from tests.unit.scenario import HTTP_503, bad, dep_skip, make_spec, ok, play, selected


def test_rerun_failed_selects_failures_and_their_dependents_only() -> None:
    spec = make_spec(*TWO_SUITES, expected=4)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), dep_skip("e2", "c2")],
    }
    played = play(spec, [first, GREEN])
    assert selected(played.runs[0]) == {"critical": None, "extended": None}
    assert selected(played.runs[1]) == {"critical": ("c2",), "extended": ("e2",)}
    assert played.redeploys[0].reason == "1 ServiceUnavailable, 1 Dependent"


def test_a_passing_dependent_of_a_failing_test_reruns_with_it() -> None:
    spec = make_spec(*TWO_SUITES)
    first = {
        "critical": [ok("c1"), bad("c2", HTTP_503)],
        "extended": [ok("e1"), ok("e2", depends_on=("c2",))],
    }
    played = play(spec, [first, GREEN])
    assert selected(played.runs[1]) == {"critical": ("c2",), "extended": ("e2",)}


def test_rerun_all_runs_every_suite_whole() -> None:
    spec = make_spec(*TWO_SUITES, rerun=RerunMode.ALL)
    first = {"critical": [ok("c1"), bad("c2", HTTP_503)], "extended": GREEN["extended"]}
    played = play(spec, [first, GREEN])
    assert selected(played.runs[1]) == {"critical": None, "extended": None}


def test_a_rerun_says_what_it_reruns() -> None:
    messages: list[str] = []
    spec = make_spec(*TWO)
    script = [
        {"critical": [bad("c1", HTTP_503), ok("c2")], "extended": "timed out after 900 s"},
        {"critical": [ok("c1")], "extended": [ok("e1")]},
    ]
    play(spec, script, observe=lambda state: messages.append(state.message))
    assert "iteration 2: rerunning critical (1 test), extended" in messages


def test_dependents_of_dependents_rerun_with_the_failure() -> None:
    spec = make_spec(*ONE)
    first = {
        # e3 comes first: finding it needs a second pass over the dependents.
        "critical": [
            ok("e3", depends_on=("e2",)),
            ok("e2", depends_on=("c2",)),
            bad("c2", HTTP_503),
        ]
    }
    played = play(spec, [first, {"critical": [ok("c2"), ok("e2"), ok("e3")]}])
    assert selected(played.runs[1]) == {"critical": ("c2", "e2", "e3")}
