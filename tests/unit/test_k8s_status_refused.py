"""A status write the API server refuses for good (rule ``budget.status_refusal``) is
written once more as the engine's small ``Stalled``/``StatusRejected`` stall, with a
Warning Event; refused again, it is not retried until the unit is woken; a refusal that
may pass next time is raised for the unit's backoff, as before (k8s/reconcile.py
``_write``, docs/design.md §5). The API server's side: test_operator_wedges.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from greenloop.core import crd, engine
from greenloop.core.engine import SuiteFinished, SuiteRun
from greenloop.core.spec import from_object
from greenloop.k8s.gateway import ApiError
from greenloop.k8s.reconcile import FINISHED_SECONDS, Reconciler, Settings
from tests.unit.scenario import ok

TOO_LARGE = (500, "etcdserver: request is too large")


class RefusingGateway:
    """Refuses the first `refusals` status patches with `answer`; keeps what was sent."""

    def __init__(self, refusals: int, answer: tuple[int, str] = TOO_LARGE) -> None:
        self.refusals = refusals
        self.answer = answer
        self.patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def patch_status(self, *args: Any, **_: Any) -> None:
        self.patches.append(args[3])
        if len(self.patches) <= self.refusals:
            code, message = self.answer
            raise ApiError(code, "Error", message)

    async def create_or_adopt(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return obj, True

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


def written(gw: RefusingGateway) -> Any:
    raw = {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {
            "name": "checkout", "namespace": "staging", "uid": "u-1", "generation": 1,
            "resourceVersion": "7",
        },
        "spec": {"suites": [{"name": "api", "image": "shop-tests:1", "command": ["pytest"]}]},
    }  # fmt: skip
    obj = from_object(raw, source="staging/checkout", mode="operator")
    started = engine.begin(obj.spec, 1000.0)
    tests = tuple(ok(f"t{i}") for i in range(3))
    event = SuiteFinished(started.state.action_id, SuiteRun(suite="api", tests=tests))
    decision = engine.on_suite(obj.spec, started.state, event, 1010.0)
    reconciler = Reconciler(gw, Settings("greenloop:dev", "http://x"), clock=lambda: 1010.0)  # type: ignore[arg-type]
    return asyncio.run(reconciler._write(gw, raw, obj, started.state, decision))


def test_a_refused_status_is_written_as_a_small_stall_with_an_event() -> None:
    gw = RefusingGateway(refusals=1)
    tick = written(gw)
    assert len(gw.patches) == 2
    stall = gw.patches[1]
    assert stall["phase"] == "Stalled" and "tests" not in stall["engine"]
    cond = next(c for c in stall["conditions"] if c["type"] == "Stalled")
    assert (cond["status"], cond["reason"]) == ("True", "StatusRejected")
    assert cond["message"] == (
        "the API server refused the status as too large (HTTP 500: etcdserver: request is too"
        " large)"
    )
    assert [(e["reason"], e["type"]) for e in gw.events] == [("StatusRejected", "Warning")]
    assert tick.note.startswith("Stalled: the API server refused")


def test_a_stall_refused_again_is_not_retried_until_woken() -> None:
    gw = RefusingGateway(refusals=2)
    tick = written(gw)
    assert len(gw.patches) == 2 and gw.events == []
    assert tick.wait == FINISHED_SECONDS and tick.note.startswith("status refused:")


def test_a_refusal_that_may_pass_next_time_is_raised_for_the_backoff() -> None:
    gw = RefusingGateway(refusals=1, answer=(500, "etcdserver: leader changed"))
    with pytest.raises(ApiError):
        written(gw)
    assert len(gw.patches) == 1 and gw.events == []
