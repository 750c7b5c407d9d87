"""The status a user reads with ``kubectl get -o yaml``, field by field (docs/design.md §2).

An exact expected dict for one round that exercises every field: priorities reported out
of order, a chain of dependents, a runner-reported flaky test, an ordinary skip, previous
conditions, a report ConfigMap. Written to kill the mutants of ``core/status.py`` that
survived ``make mutate``: a renamed key, a lost sort, a count off by one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from greenloop.core import engine, spec
from greenloop.core.engine import State
from greenloop.core.model import Outcome, StagingValidation, TestResult
from greenloop.core.schema import validate
from greenloop.core.status import (
    build_status,
    conditions,
    history,
    invalid_spec_reported,
    invalid_spec_status,
    pending_status,
    status_object,
    summary,
    timestamp,
)
from tests.unit.scenario import ASSERT, HTTP_503, bad, dep_skip, make_spec, ok, play

SPEC = make_spec(
    ("extended", "P5"), ("critical", "P1"), ("aaa", "P9"), expected=10, max_iterations=1
)
OBJ = StagingValidation(name="shop", namespace="staging", generation=4, spec=SPEC)
NOT_ON_LINUX = TestResult(
    id="e4", name="e4", classname="", outcome=Outcome.SKIPPED, message="not on linux"
)
ROUND = [
    {
        # c9 says P9 although its suite is P1: the priorities table must still sort P1 first.
        "critical": [ok("c9", priority="P9"), ok("c1"), bad("c2", HTTP_503), ok("c3", flaky=True)],
        "extended": [bad("e1", ASSERT), dep_skip("e2", "c2"), dep_skip("e3", "e2"), NOT_ON_LINUX],
        "aaa": [bad("a1", ASSERT)],
    }
]
PREVIOUS = [
    {"type": "Stalled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
    {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
]
STALLED = "maxIterations (1) reached with failures left"


def condition(kind: str, status: str, since: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": "BudgetExhausted",
        "message": STALLED,
        "observedGeneration": 4,
        "lastTransitionTime": since,
    }


def failing(
    test_id: str, suite: str, priority: str, cls: str, evidence: str, root: str | None
) -> dict[str, Any]:
    return {
        "id": test_id,
        "suite": suite,
        "priority": priority,
        "class": cls,
        "evidence": evidence,
        "rootCause": root,
    }


ASSERT_EVIDENCE = "AssertionError: assert 'draft' == 'paid'"
EXPECTED: dict[str, Any] = {
    "observedGeneration": 4,
    "phase": "Stalled",
    "iteration": 1,
    "summary": {
        "expected": 10,
        "total": 9,
        "passed": 3,
        "failed": 5,
        "skipped": 1,
        "notRun": 1,
        "passRate": "33.3%",
    },
    "priorities": [
        {"priority": "P1", "passed": 2, "failed": 1, "total": 3},
        {"priority": "P5", "passed": 0, "failed": 3, "total": 4},
        {"priority": "P9", "passed": 1, "failed": 1, "total": 2},
    ],
    "failingTests": [
        failing("c2", "critical", "P1", "ServiceUnavailable", HTTP_503, None),
        failing("e1", "extended", "P5", "Assertion", ASSERT_EVIDENCE, None),
        failing(
            "e2",
            "extended",
            "P5",
            "Dependent",
            "greenloop: depends on c2, which did not pass",
            "c2",
        ),
        # e3 depends on e2, which depends on c2: the root cause is the test that failed.
        failing(
            "e3",
            "extended",
            "P5",
            "Dependent",
            "greenloop: depends on e2, which did not pass",
            "c2",
        ),
        failing("a1", "aaa", "P9", "Assertion", ASSERT_EVIDENCE, None),
    ],
    "flakyTests": [
        {
            "id": "c3",
            "suite": "critical",
            "iteration": 1,
            "evidence": "failed, then passed on the runner's rerun",
        }
    ],
    "history": [
        {
            "iteration": 1,
            "started": "1970-01-01T00:16:40Z",
            "passed": 3,
            "failed": 5,
            "action": "Stall",
            "finished": "1970-01-01T00:16:41Z",
            "reason": "BudgetExhausted",
        }
    ],
    "conditions": [
        # Ready changed (True before): it moves to now; Stalled did not: it keeps its time.
        condition("Ready", "False", "1970-01-01T00:17:40Z"),
        condition("Reconciling", "False", "1970-01-01T00:17:40Z"),
        condition("Stalled", "True", "2020-01-01T00:00:00Z"),
    ],
    "report": {"configMap": "shop-report"},
}


def stalled() -> State:
    return play(SPEC, ROUND).state


def test_every_status_field_of_a_stalled_round() -> None:
    status = build_status(
        OBJ, stalled(), 1060.0, previous_conditions=PREVIOUS, report_config_map="shop-report"
    )
    assert status == EXPECTED


def test_no_report_field_without_a_config_map() -> None:
    assert "report" not in build_status(OBJ, stalled(), 1060.0)


def test_flaky_tests_are_listed_by_id() -> None:
    spec = make_spec(("critical", "P1"))
    script = [{"critical": [ok(name, flaky=True) for name in ("m", "z", "a")]}]
    status = build_status(OBJ, play(spec, script).state, 1060.0)
    assert [f["id"] for f in status["flakyTests"]] == ["a", "m", "z"]


def test_status_object_is_what_kubectl_get_shows() -> None:
    status = {"phase": "Passed"}
    assert status_object(OBJ, status) == {
        "apiVersion": "greenloop.dev/v1alpha1",
        "kind": "StagingValidation",
        "metadata": {"name": "shop", "namespace": "staging", "generation": 4},
        "status": {"phase": "Passed"},
    }


def test_summary_of_no_tests_and_no_expectation() -> None:
    assert summary(State(), None) == {
        "expected": 0,
        "total": 0,
        "passed": 0,
        "failed": 0,
        "skipped": 0,
        "notRun": 0,
        "passRate": "0.0%",
    }


def test_an_iteration_in_progress_has_no_finish_and_no_reason() -> None:
    state = engine.begin(SPEC, 1000.0).state
    assert history(state) == [
        {"iteration": 1, "started": "1970-01-01T00:16:40Z", "passed": 0, "failed": 0, "action": ""}
    ]


def test_a_condition_reason_falls_back_to_the_phase() -> None:
    (ready, *_) = conditions(State(), 1, 0.0)
    assert (ready["reason"], ready["message"]) == ("Pending", "")


def test_a_previous_condition_without_a_time_gets_now() -> None:
    previous = [{"type": "Ready", "status": "False"}]
    (ready, *_) = conditions(State(), 1, 60.0, previous)
    assert ready["lastTransitionTime"] == "1970-01-01T00:01:00Z"


@pytest.fixture
def new_york() -> Iterator[None]:
    """A machine clock that is not UTC: status times must not follow it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_timestamps_are_utc_rfc3339_whatever_the_local_zone() -> None:
    assert timestamp(0.0) == "1970-01-01T00:00:00Z"
    assert timestamp(1_700_000_000.9) == "2023-11-14T22:13:20Z"


# -- a spec greenloop refuses though the API server took it ------------------------------


def test_an_invalid_spec_is_stalled_naming_the_field_and_valid_for_the_crd() -> None:
    message = "spec.classification[0].pattern: (?=x) is not RE2: invalid perl operator"
    status = invalid_spec_status(3, message, 0.0)
    assert status["phase"] == "Stalled"
    assert status["observedGeneration"] == 3
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "False", "InvalidSpec"),
        ("Reconciling", "False", "InvalidSpec"),
        ("Stalled", "True", "InvalidSpec"),
    ]
    assert {c["message"] for c in status["conditions"]} == {message}
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"1970-01-01T00:00:00Z"}
    assert validate(status, spec.spec_schema()["properties"]["status"]) == []
    # Reported once per generation: a repeated tick writes nothing; a new spec is judged anew.
    assert invalid_spec_reported(status, 3)
    assert not invalid_spec_reported(status, 4)
    assert not invalid_spec_reported({}, 3)
    cleared = {"conditions": [dict(c, status="False") for c in status["conditions"]]}
    assert not invalid_spec_reported(cleared, 3)
    other = {"conditions": [dict(c, reason="RunnerError") for c in status["conditions"]]}
    assert not invalid_spec_reported(other, 3)


def test_an_invalid_spec_s_message_is_clipped_to_what_a_condition_holds() -> None:
    long = invalid_spec_status(1, "x" * 5000, 0.0)
    assert {len(c["message"]) for c in long["conditions"]} == {2000}


# -- the first status, written the moment greenloop sees a new object ----------------------


def test_the_first_status_is_pending_and_reconciling_and_valid_for_the_crd() -> None:
    status = pending_status(4, 0.0)
    assert status["phase"] == "Pending"
    assert status["observedGeneration"] == 4
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "False", "Pending"),
        ("Reconciling", "True", "Pending"),
        ("Stalled", "False", "Pending"),
    ]
    assert {c["observedGeneration"] for c in status["conditions"]} == {4}
    assert validate(status, spec.spec_schema()["properties"]["status"]) == []
    # the same condition statuses a Pending engine state gets: the round's first write
    # (Testing, Reconciling still True) keeps Reconciling's lastTransitionTime
    flags = [(c["type"], c["status"]) for c in conditions(State(), 4, 0.0)]
    assert flags == [(c["type"], c["status"]) for c in status["conditions"]]
    first = build_status(OBJ, State(), 60.0, previous_conditions=status["conditions"])
    (reconciling,) = [c for c in first["conditions"] if c["type"] == "Reconciling"]
    assert reconciling["lastTransitionTime"] == "1970-01-01T00:00:00Z"
