"""The results endpoint's upload slots: a bounded queue served fairly per namespace.

An authenticated upload waits here for a slot (the slot bounds the bodies held in
memory and the stores in flight); which waiter goes next is `core.admission`'s rule
(first come, first served, no namespace above half the slots). The queue is bounded
twice: at most `max_waiting` uploads wait, each at most `wait_seconds`; beyond either
the upload is refused with a Retry-After (`Busy`) and the sidecar comes back later.
"""

from __future__ import annotations

import asyncio

from greenloop.core.admission import next_admitted

__all__ = ["Busy", "FairSlots"]


class Busy(Exception):
    """No slot within the bounds: the queue is full, or the wait ran out."""


class FairSlots:
    def __init__(self, slots: int, *, max_waiting: int, wait_seconds: float) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.in_use: dict[str, int] = {}
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, namespace: str) -> None:
        """Hold a slot for `namespace` (give it back with `release`), or raise Busy."""
        # Invariant: after every change `_admit` has run, so no waiter could go now;
        # a newcomer that can go goes without overtaking anyone who could.
        if next_admitted([namespace], self.in_use, self.slots) == 0:
            self._take(namespace)
            return
        if len(self._waiting) >= self.max_waiting:
            raise Busy(f"{len(self._waiting)} uploads are waiting already")
        entry = (namespace, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await entry[1]
        except BaseException as exc:
            if entry[1].done() and not entry[1].cancelled():
                if isinstance(exc, TimeoutError):
                    return  # admitted just as the wait ran out: the slot is ours
                self.release(namespace)  # admitted, then cancelled: give it back
            else:
                # A release may have dropped it already (its future was cancelled first).
                if entry in self._waiting:
                    self._waiting.remove(entry)
                entry[1].cancel()
            if isinstance(exc, TimeoutError):
                raise Busy(f"no upload slot within {self.wait_seconds:g} s") from None
            raise

    def release(self, namespace: str) -> None:
        left = self.in_use.get(namespace, 0) - 1
        if left > 0:
            self.in_use[namespace] = left
        else:
            self.in_use.pop(namespace, None)
        self._admit()

    def _take(self, namespace: str) -> None:
        self.in_use[namespace] = self.in_use.get(namespace, 0) + 1

    def _admit(self) -> None:
        while self._waiting:
            index = next_admitted([ns for ns, _ in self._waiting], self.in_use, self.slots)
            if index is None:
                return
            namespace, future = self._waiting.pop(index)
            if future.done():
                # Cancelled (its wait ran out, or its upload went) before its handler
                # ran: it takes no slot; the next waiter is looked at instead.
                continue
            self._take(namespace)
            future.set_result(None)
