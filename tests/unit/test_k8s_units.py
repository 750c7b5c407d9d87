"""The operator's per-object units are keyed by uid (k8s/operator.py, docs/design.md §8):
a name deleted and recreated is two objects, and nothing that ends the old one's unit -
its last tick finding the name gone, its DELETED event arriving after the new object's
ADDED (kopf handles each uid in its own worker, so the order between two uids is not
kept) - stops the new one's. Issue 19, item 6: the recreated object got no status for
78 s."""

from __future__ import annotations

import asyncio
from typing import cast

from greenloop.k8s.operator import Units
from greenloop.k8s.reconcile import Reconciler, Tick


class FakeReconciler:
    """Ticks on demand: each tick of `uid` waits for `release[uid]`, and a tick of a uid
    listed in `gone` ends its unit (the name now finds another object, or none)."""

    def __init__(self) -> None:
        self.ticks: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.gone: set[str] = set()

    async def tick(self, namespace: str, name: str, uid: str = "") -> Tick:
        self.ticks.append(uid)
        gate = self.release.get(uid)
        if gate is not None:
            await gate.wait()
        if uid in self.gone:
            return Tick(0.0, stop=True, note="object gone")
        return Tick(3600.0, note="waiting")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_old_objects_last_tick_does_not_end_the_recreated_ones_unit() -> None:
    async def scenario() -> list[str]:
        fake = FakeReconciler()
        units = Units(cast(Reconciler, fake))
        fake.release["old"] = asyncio.Event()
        units.ensure("ns", "demo", "old")
        await settle()  # old's tick is under way, reading the name
        fake.gone.add("old")
        units.ensure("ns", "demo", "new")  # the recreated object's ADDED, mid-tick
        fake.release["old"].set()
        await settle()
        await asyncio.sleep(0.05)
        ticks = list(fake.ticks)
        await units.stop_all()
        return ticks

    assert asyncio.run(scenario()).count("new") == 1


def test_the_old_objects_late_deletion_does_not_stop_the_recreated_ones_unit() -> None:
    async def scenario() -> tuple[list[str], bool]:
        fake = FakeReconciler()
        units = Units(cast(Reconciler, fake))
        units.ensure("ns", "demo", "old")
        await settle()
        units.ensure("ns", "demo", "new")
        await settle()
        await units.stop("old")  # old's DELETED, handled after new's ADDED
        alive = any(not t.done() for t in units.tasks.values())
        units.poke_uid("new")  # a Job event for the new object still reaches its unit
        await settle()
        ticks = list(fake.ticks)
        await units.stop_all()
        return ticks, alive

    ticks, alive = asyncio.run(scenario())
    assert alive, "the recreated object's unit was stopped"
    assert ticks.count("new") == 2, ticks


def test_units_are_counted_and_forgotten_by_uid() -> None:
    async def scenario() -> tuple[int, int]:
        units = Units(cast(Reconciler, FakeReconciler()))
        units.ensure("ns", "demo", "old")
        units.ensure("ns", "demo", "new")
        both = len(units.tasks)
        await units.stop("old")
        left = len(units.tasks)
        await units.stop_all()
        return both, left

    assert asyncio.run(scenario()) == (2, 1)
