"""The row shapes the rule files share, and the one check each shape gets.

Each ``test_<rule>.py`` holds the rows of its rule and runs them through these checks:
a :class:`Case` is a scenario checked the way a user reads status (phase, reason,
iterations, redeploys, flaky list), and again across a restart between any two steps; a
:class:`Row` is a scenario that also checks the status built from it; an :class:`End` is
how a round ends, read as its reason and message. Scenarios go through
tests/unit/scenario.py, the driver that plays the shell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from greenloop.core.engine import Phase
from greenloop.core.model import Outcome, StagingValidation, TestResult, ValidationSpec
from greenloop.core.status import build_status
from tests.unit.scenario import Script, ok, play

TWO_SUITES = (("critical", "P1"), ("extended", "P5"))
GREEN = {"critical": [ok("c1"), ok("c2")], "extended": [ok("e1"), ok("e2")]}
ONE = (("critical", "P1"),)
TWO = (("critical", "P1"), ("extended", "P5"))
ONE_SUITE = (("critical", "P1"),)
CONNECTION_REFUSED = "httpx.ConnectError: [Errno 111] Connection refused"


def skipped(test_id: str) -> TestResult:
    return TestResult(
        id=test_id, name=test_id, classname="", outcome=Outcome.SKIPPED, message="not on linux"
    )


@dataclass(frozen=True)
class Case:
    name: str
    spec: ValidationSpec
    script: Script
    phase: Phase
    reason: str
    iterations: int
    redeploys: int
    flaky: tuple[str, ...] = ()


def check_scenario(case: Case) -> None:
    played = play(case.spec, case.script)
    state = played.state
    assert (state.phase, str(state.reason)) == (case.phase, case.reason), state.message
    assert state.iteration == case.iterations
    assert len(played.redeploys) == state.redeploys == case.redeploys
    assert tuple(sorted(state.flaky)) == case.flaky
    assert played.finish.phase is case.phase
    # Every iteration is closed with the action that followed it.
    assert all(rec.finished is not None and rec.action for rec in state.history)
    assert [rec.iteration for rec in state.history] == list(range(1, case.iterations + 1))


def check_restart_changes_nothing(case: Case) -> None:
    """State survives a restart: snapshot to JSON after every step, resume from it alone."""
    straight = play(case.spec, case.script)
    restarted = play(case.spec, case.script, restart_between_steps=True)
    assert restarted.state == straight.state
    assert restarted.runs == straight.runs
    assert restarted.redeploys == straight.redeploys
    assert restarted.finish == straight.finish


#: A row has a case's fields; it is checked against the status built from it too.
Row = Case


def check_row(row: Row) -> None:
    played = play(row.spec, row.script)
    state = played.state
    assert (state.phase, str(state.reason)) == (row.phase, row.reason), state.message
    assert state.iteration == row.iterations
    assert len(played.redeploys) == row.redeploys
    assert tuple(sorted(state.flaky)) == row.flaky
    obj = StagingValidation(name="pinned", spec=row.spec)
    status = build_status(obj, state, now=5000.0)
    assert [f["id"] for f in status["flakyTests"]] == list(row.flaky)
    assert status["phase"] == row.phase.value


@dataclass(frozen=True)
class End:
    name: str
    spec: ValidationSpec
    script: Script
    reason: str
    message: str


def check_end(end: End) -> None:
    state = play(end.spec, end.script).state
    assert (str(state.reason), state.message) == (end.reason, end.message)
    assert state.history[-1].finished is not None


Check = Callable[..., None]


def scenario_tests(cases: Sequence[Case]) -> tuple[Check, Check]:
    """A rule file's two case tests: as a user reads status, and across restarts."""
    ids = [c.name for c in cases]

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_scenario(case: Case) -> None:
        check_scenario(case)

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_a_restart_between_any_two_steps_changes_nothing(case: Case) -> None:
        check_restart_changes_nothing(case)

    return test_scenario, test_a_restart_between_any_two_steps_changes_nothing


def row_tests(rows: Sequence[Row]) -> Check:
    @pytest.mark.timeout(10)
    @pytest.mark.parametrize("row", rows, ids=[r.name for r in rows])
    def test_engine_rule(row: Row) -> None:
        check_row(row)

    return test_engine_rule


def end_tests(ends: Sequence[End]) -> Check:
    @pytest.mark.parametrize("end", ends, ids=[e.name for e in ends])
    def test_how_a_round_ends_reads(end: End) -> None:
        check_end(end)

    return test_how_a_round_ends_reads
