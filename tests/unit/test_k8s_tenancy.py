"""The reconciler acts as the object's account (docs/design.md §8 "Tenancy"): with no
account nothing is asked of the API as anyone; a refusal for the account stops the
object Stalled naming it, once per generation and cause, and nothing else is done."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from greenloop.core import crd
from greenloop.core.tenancy import Account, Refusal
from greenloop.k8s.gateway import Forbidden
from greenloop.k8s.reconcile import REFUSED_SECONDS, Reconciler, Settings


def validation(account: str | None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "suites": [{"name": "core", "command": ["pytest"], "image": "e2e:1"}],
    }
    if account:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": "checkout", "namespace": "ta", "uid": "u-1", "generation": 1,
                     "resourceVersion": "7"},
        "spec": spec,
        "status": status or {},
    }  # fmt: skip


class Actor:
    """The impersonating view: refuses whatever is asked, records that it was asked."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.asked: list[str] = []

    def _refuse(self, verb: str, resource: str) -> Forbidden:
        self.asked.append(verb)
        return Forbidden(Refusal(self.account, verb, resource), "Forbidden", "no")

    async def create_or_adopt(self, obj: dict[str, Any]) -> Any:
        raise self._refuse("create", "configmaps")

    async def find(self, *_: Any) -> Any:
        raise self._refuse("get", "jobs.batch")


class Operator:
    """The operator's own identity: reads the object, writes status and Events."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.actors: list[Actor] = []

    def acting_as(self, account: Account) -> Actor:
        actor = Actor(account)
        self.actors.append(actor)
        return actor

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.raw

    async def patch_status(self, kind: str, ns: str, name: str, status: Any, **_: Any) -> None:
        self.statuses.append(status)
        self.raw = {**self.raw, "status": status}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


def tick(gw: Operator, default: str | None = None) -> Any:
    settings = Settings("greenloop:dev", "http://x", default_service_account=default)
    reconciler = Reconciler(gw, settings, clock=lambda: 1000.0)  # type: ignore[arg-type]
    return asyncio.run(reconciler.tick("ta", "checkout", "u-1"))


def stalled(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Stalled")


def test_no_account_stalls_no_service_account_and_nothing_is_asked_as_anyone() -> None:
    gw = Operator(validation(None))
    result = tick(gw)
    assert gw.actors == []
    (status,) = gw.statuses
    assert (status["phase"], stalled(status)["reason"]) == ("Stalled", "NoServiceAccount")
    assert [e["reason"] for e in gw.events] == ["NoServiceAccount"]
    assert result.wait == REFUSED_SECONDS


@pytest.mark.parametrize(("named", "default"), [("tests", None), (None, "tests")])
def test_a_refusal_stalls_forbidden_naming_account_verb_and_resource(
    named: str | None, default: str | None
) -> None:
    gw = Operator(validation(named))
    tick(gw, default)
    (actor,) = gw.actors
    assert actor.account == Account("ta", "tests")
    assert actor.asked == ["create"]  # the first refusal ends the tick: nothing after it
    (status,) = gw.statuses
    condition = stalled(status)
    assert condition["reason"] == "Forbidden"
    assert condition["message"].startswith("serviceaccount ta/tests cannot create configmaps")
    assert [e["reason"] for e in gw.events] == ["Forbidden"]
    assert "engine" not in status  # the engine's state is left as it was


def test_the_same_refusal_is_written_and_told_once() -> None:
    gw = Operator(validation("tests"))
    tick(gw)
    again = tick(gw)
    assert len(gw.statuses) == len(gw.events) == 1
    assert again.wait == REFUSED_SECONDS and again.note.startswith("stalled: ")
