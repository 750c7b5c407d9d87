"""k8s.slots.FairSlots: the results endpoint's bounded queue, on a real event loop (no
I/O): who waits, who goes when a slot frees, and where the queue says no."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from greenloop.k8s.slots import Busy, FairSlots


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(10):
            await scenario()

    asyncio.run(bounded())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_beyond_the_slots_uploads_wait_and_go_oldest_first_as_slots_free() -> None:
    async def scenario() -> None:
        slots = FairSlots(2, max_waiting=10, wait_seconds=5)
        await slots.acquire("a")
        await slots.acquire("b")
        order: list[str] = []

        async def wait(ns: str) -> None:
            await slots.acquire(ns)
            order.append(ns)

        tasks = [asyncio.create_task(wait(ns)) for ns in ("c", "d")]
        await settle()
        assert (order, slots.waiting) == ([], 2)
        slots.release("a")
        await settle()
        assert order == ["c"]
        slots.release("b")
        await asyncio.gather(*tasks)
        assert order == ["c", "d"] and slots.in_use == {"c": 1, "d": 1}

    run(scenario)


def test_a_namespace_at_half_the_slots_waits_while_another_goes_ahead() -> None:
    async def scenario() -> None:
        slots = FairSlots(4, max_waiting=10, wait_seconds=5)
        for _ in range(2):
            await slots.acquire("a")
        third_a = asyncio.create_task(slots.acquire("a"))
        await settle()
        assert not third_a.done() and slots.waiting == 1  # two slots free, but not for a
        await slots.acquire("b")  # b goes at once
        assert slots.in_use == {"a": 2, "b": 1}
        slots.release("a")
        await third_a
        assert slots.in_use == {"a": 2, "b": 1} and slots.waiting == 0

    run(scenario)


def test_a_full_queue_and_a_wait_that_runs_out_are_busy_and_leave_nothing_behind() -> None:
    async def scenario() -> None:
        slots = FairSlots(1, max_waiting=1, wait_seconds=0.2)
        await slots.acquire("a")
        waiter = asyncio.create_task(slots.acquire("b"))
        await settle()
        with pytest.raises(Busy, match="waiting already"):
            await slots.acquire("c")
        with pytest.raises(Busy, match="no upload slot within"):
            await waiter
        assert slots.waiting == 0 and slots.in_use == {"a": 1}
        slots.release("a")
        assert slots.in_use == {}

    run(scenario)


def test_a_waiter_cancelled_in_the_queue_takes_no_slot() -> None:
    async def scenario() -> None:
        slots = FairSlots(1, max_waiting=4, wait_seconds=5)
        await slots.acquire("a")
        waiter = asyncio.create_task(slots.acquire("b"))
        await settle()
        waiter.cancel()
        await settle()
        slots.release("a")
        assert slots.waiting == 0 and slots.in_use == {}

    run(scenario)


def test_a_waiter_cancelled_just_as_a_slot_frees_takes_no_slot() -> None:
    # The burst of issue 17 at N=1000: a waiter's timeout cancels its future, a release
    # runs before the waiter's handler does; the slot must not go to the cancelled one
    # (it leaked for good, and the release raised InvalidStateError: a 500).
    async def scenario() -> None:
        slots = FairSlots(1, max_waiting=10, wait_seconds=5)
        await slots.acquire("a")
        waiter = asyncio.create_task(slots.acquire("b"))
        await settle()
        waiter.cancel()  # its future is cancelled at once; its handler runs later
        slots.release("a")  # the slot frees in between
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (slots.in_use, slots.waiting) == ({}, 0)
        await slots.acquire("c")  # the one slot is free
        assert slots.in_use == {"c": 1}

    run(scenario)
