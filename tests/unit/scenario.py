"""A scenario driver for the engine: plays the shell, honouring the engine's selection
like a real runner would. Shared by the engine, status and report tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from greenloop.core import engine, snapshot
from greenloop.core.engine import (
    Decision,
    Finish,
    Phase,
    Redeploy,
    RedeployDone,
    RedeployStarted,
    RunSuites,
    State,
    SuiteFinished,
    SuiteRun,
    SuiteSelection,
)
from greenloop.core.model import Outcome, Policy, Rule, Suite, Target, TestResult, ValidationSpec

HTTP_503 = "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'http://app/ws'"
HTTP_403 = "httpx.HTTPStatusError: Client error '403 Forbidden' for url 'http://app/api/me'"
ASSERT = "AssertionError: assert 'draft' == 'paid'"
IMPORT = "ModuleNotFoundError: No module named 'checkout_client'"


def ok(test_id: str, **kw: object) -> TestResult:
    return TestResult(id=test_id, name=test_id, classname="", outcome=Outcome.PASSED, **kw)  # type: ignore[arg-type]


def bad(test_id: str, message: str, **kw: object) -> TestResult:
    return TestResult(
        id=test_id,
        name=test_id,
        classname="",
        outcome=Outcome.FAILED,
        message=message,
        **kw,  # type: ignore[arg-type]
    )


def dep_skip(test_id: str, root: str) -> TestResult:
    return TestResult(
        id=test_id,
        name=test_id,
        classname="",
        outcome=Outcome.SKIPPED,
        message=f"greenloop: depends on {root}, which did not pass",
        depends_on=(root,),
    )


RESTART = Target(command=("./restart",))


def make_spec(
    *suites: tuple[str, str],
    expected: int | None = None,
    target: Target = RESTART,
    rules: Sequence[Rule] = (),
    **policy: object,
) -> ValidationSpec:
    return ValidationSpec(
        suites=tuple(Suite(name=n, command=("pytest",), priority=p) for n, p in suites),
        target=target,
        policy=replace(Policy(), **policy),  # type: ignore[arg-type]
        classification=tuple(rules),
        expected_tests=expected,
    )


# A script: for each iteration, each suite's full results (or a runner error string).
Script = Sequence[Mapping[str, Sequence[TestResult] | str]]


@dataclass
class Played:
    state: State
    finish: Finish
    runs: list[RunSuites] = field(default_factory=list)
    redeploys: list[Redeploy] = field(default_factory=list)


def play(
    spec: ValidationSpec,
    script: Script,
    *,
    redeploy_ok: bool = True,
    clock: Callable[[int], float] = lambda step: 1000.0 + step,
    restart_between_steps: bool = False,
    runner: Callable[[SuiteSelection, Sequence[TestResult]], Sequence[TestResult]] | None = None,
    observe: Callable[[State], None] = lambda state: None,
    permanent: bool = False,
) -> Played:
    """Play the shell: one SuiteFinished per suite, as the operator feeds Jobs. With
    ``restart_between_steps`` the state goes through a JSON snapshot after every event
    and the next action is recomputed from it alone, as a restarted operator would.
    ``runner`` turns a selection and a suite's full results into what it reports
    (default: exactly the selected ones, as a runner honouring the contract does).
    ``permanent``: a suite's runner error is one a rerun cannot fix."""
    step = 0
    decision = engine.begin(spec, clock(step))
    if restart_between_steps:
        decision = _restarted(decision)
    observe(decision.state)
    played = Played(decision.state, Finish("", Phase.PENDING, engine.Reason.GOAL_MET, ""))
    while not isinstance(decision.action, Finish):
        step += 1
        action = decision.action
        if isinstance(action, RunSuites):
            played.runs.append(action)
            results = script[min(action.iteration, len(script)) - 1]
            for sel in action.suites:
                reported = results.get(sel.suite, ())
                if isinstance(reported, str):
                    run = SuiteRun(
                        sel.suite, error=reported, selected=sel.test_ids, permanent=permanent
                    )
                else:
                    if runner is not None:
                        wanted = list(runner(sel, reported))
                    else:
                        wanted = [
                            t for t in reported if sel.test_ids is None or t.id in sel.test_ids
                        ]
                    run = SuiteRun(sel.suite, tests=tuple(wanted), selected=sel.test_ids)
                event = SuiteFinished(action.id, run)
                decision = engine.on_suite(spec, decision.state, event, clock(step))
                observe(decision.state)
                if restart_between_steps:
                    decision = _restarted(decision)
                    # A restarted shell delivers the same event again: it changes nothing.
                    again = engine.on_suite(spec, decision.state, event, clock(step))
                    assert again.state == decision.state
        else:
            assert isinstance(action, Redeploy)
            played.redeploys.append(action)
            started = engine.on_redeploy_started(decision.state, RedeployStarted(action.id))
            observe(started.state)
            if restart_between_steps:
                started = _restarted(started)
                assert isinstance(started.action, Redeploy) and started.action.started
                assert started.action.token == action.token
            done = RedeployDone(
                redeploy_ok, "restarted" if redeploy_ok else "exit code 3", action_id=action.id
            )
            decision = engine.on_redeploy(spec, started.state, done, clock(step))
            observe(decision.state)
            if restart_between_steps:
                decision = _restarted(decision)
        assert step < 100, "the engine looped"
    played.state = decision.state
    played.finish = decision.action
    return played


def selected(run: RunSuites) -> dict[str, tuple[str, ...] | None]:
    return {s.suite: s.test_ids for s in run.suites}


def _restarted(decision: Decision) -> Decision:
    data = json.loads(json.dumps(snapshot.to_data(decision.state)))
    state = snapshot.from_data(data)
    return Decision(state, engine.current_action(state))
