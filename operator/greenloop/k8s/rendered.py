"""What a decision writes, rendered in a worker thread (docs/design.md §8): the Markdown
report, the status merge patch with the compressed state snapshot, and what it adds to
the metrics. Pure but for the clock it is given; grows with the number of tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenloop.core import engine, mergepatch, snapshot
from greenloop.core.budget import too_many_tests
from greenloop.core.engine import Decision, State
from greenloop.core.model import StagingValidation
from greenloop.core.report import render
from greenloop.core.status import build_status
from greenloop.k8s import metrics

__all__ = ["Rendered", "rendered"]


@dataclass(frozen=True, slots=True)
class Rendered:
    decision: Decision  # what is written: the decision, or its TooManyTests stall
    report: str  # the Markdown report
    patch: dict[str, Any]  # the merge patch of /status
    engine: dict[str, Any]  # status.engine in full, as the next read returns it
    observed: metrics.Observed  # what the decision adds to the metrics


def rendered(
    obj: StagingValidation, before: State | None, decision: Decision, old: Mapping[str, Any],
    report_cm: str, now: float,
) -> Rendered:  # fmt: skip
    """What a decision writes: the Markdown report, the status patch with the state
    snapshot compressed in it, and what it adds to the metrics. A snapshot over the
    object's budget (`budget.too_many_tests`) is replaced by the engine's TooManyTests
    stall, which drops the test table. Grows with the number of tests: run in a worker
    thread."""
    data = snapshot.to_data(decision.state)
    if why := too_many_tests(len(decision.state.tests), snapshot.size(data)):
        decision = engine.on_too_many_tests(decision.state, why, now)
        data = snapshot.to_data(decision.state)
    state = decision.state
    new = build_status(
        obj,
        state,
        now,
        previous_conditions=old.get("conditions") or (),
        report_config_map=report_cm,
    )
    new["engine"] = data
    return Rendered(
        decision=decision,
        report=render(obj, state, now),
        patch=mergepatch.create(dict(old), new),
        engine=data,
        observed=metrics.observe_decision(before, state),
    )
