"""kopf's peering rule as greenloop's units apply it (greenloop/k8s/peering.py): a unit
pauses while another live peer has this priority or a higher one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from greenloop.k8s.peering import outranked

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def record(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - timedelta(seconds=seen_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("status", "paused"),
    [
        ({}, False),
        ({"me": record(10, 0)}, False),  # only itself
        ({"me": record(10, 0), "b": record(5, 1)}, False),  # a lower peer
        ({"me": record(10, 0), "b": record(20, 1)}, True),  # a higher live peer
        ({"me": record(10, 0), "b": record(10, 1)}, True),  # the same: kopf pauses all
        ({"me": record(10, 0), "b": record(20, 61)}, False),  # higher but dead (60 s)
        ({"me": record(10, 0), "b": record(20, 11, lifetime=10)}, False),  # its own lifetime
        ({"me": record(10, 0), "b": record(20, 9, lifetime=10)}, True),
        ({"me": record(10, 0), "b": {"priority": 20}}, False),  # not kopf's record
        ({"me": record(10, 0), "b": "junk"}, False),
        ({"me": record(10, 0), "b": {**record(20, 1), "lastseen": "2026-12-01T11:59:59"}}, True),
    ],
)
def test_a_unit_pauses_only_while_a_live_peer_outranks_it(
    status: dict[str, Any], paused: bool
) -> None:
    assert outranked(status, "me", 10, NOW) is paused
