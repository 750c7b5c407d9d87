"""Whether this operator may act: kopf's peering rule, applied to greenloop's own units.

With `--peering NAME`, kopf pauses its watches while a peer of higher priority (or of
the same one: then every peer pauses) has a fresh record in the peering object — but
greenloop's per-object units are its own asyncio tasks, which kopf knows nothing of. A
standby that was working when a higher-priority operator appeared would go on ticking.
So each unit asks `Peers.may_act` before a tick; correctness never rests on it (two
operators acting at once still make one Job and one rollout, docs/design.md §8), it is
what keeps a standby idle.

The record is kopf's: `status[identity] = {priority, lifetime, lastseen}`, dead once
`lastseen + lifetime` has passed. `outranked` is that rule as a pure function.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from greenloop.k8s.gateway import Gateway

__all__ = ["Peers", "outranked"]

#: How long one reading of the peering object is trusted: a unit checks before every
#: tick, the object changes every few seconds at most.
CACHE_SECONDS = 2.0


def outranked(status: Mapping[str, Any], me: str, priority: int, now: datetime) -> bool:
    """True while another live peer has this priority or a higher one."""
    for identity, record in status.items():
        if identity == me or not isinstance(record, Mapping):
            continue
        try:
            theirs = int(record.get("priority", 0))
            lifetime = timedelta(seconds=int(record.get("lifetime", 60)))
            seen = datetime.fromisoformat(str(record["lastseen"]))
        except (KeyError, TypeError, ValueError):
            continue  # not a record kopf wrote: kopf ignores it as well
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        if seen + lifetime > now and theirs >= priority:
            return True
    return False


class Peers:
    """This operator's view of its peers, by namespace (None: cluster-wide)."""

    def __init__(
        self, gw: Gateway, name: str, identity: str, priority: int, *, clusterwide: bool
    ) -> None:
        self.gw = gw
        self.name = name
        self.identity = identity
        self.priority = priority
        self.clusterwide = clusterwide
        self._read: dict[str | None, tuple[float, bool]] = {}

    async def may_act(self, namespace: str) -> bool:
        where = None if self.clusterwide else namespace
        cached = self._read.get(where)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        kind = "ClusterKopfPeering" if where is None else "KopfPeering"
        obj = await self.gw.find(kind, where, self.name)
        status = (obj or {}).get("status") or {}
        ok = not outranked(status, self.identity, self.priority, datetime.now(UTC))
        self._read[where] = (time.monotonic(), ok)
        return ok
