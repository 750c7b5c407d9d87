"""Who uploads next, and when a refused sidecar tries again (docs/design.md §8).

Two rules the results endpoint and its sidecar share, pure so they can be read and
tested on their own; the shells (`k8s/results.py`, `k8s/upload.py`) own the clock, the
randomness and the sockets.

- **Fair slots** (:func:`next_admitted`): an upload holds one of the endpoint's slots
  while its body is read and stored. Waiting uploads are served first come, first served,
  except that no namespace holds more than :func:`namespace_cap` of the slots — half,
  so one tenant's burst (or its slow connections) always leaves the other half to the
  rest, and a waiting upload from another namespace is admitted ahead of it.
- **Backoff with full jitter** (:func:`retry_delay`): a sidecar waits a random time in
  ``[0, min(cap, base · 2^attempt))`` so a thousand sidecars refused together do not come
  back together; an endpoint's ``Retry-After`` is a floor the jitter is added to.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping, Sequence

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "namespace_cap",
    "next_admitted",
    "retry_after_seconds",
    "retry_delay",
]

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 10.0
#: A Retry-After further away than this is read as this (a sidecar's deadline is minutes).
MAX_RETRY_AFTER_SECONDS = 60.0


def namespace_cap(slots: int) -> int:
    """The most slots one namespace may hold at once: half of them, at least one."""
    return max(1, slots // 2)


def next_admitted(waiting: Sequence[str], in_use: Mapping[str, int], slots: int) -> int | None:
    """The index in `waiting` (each waiter's namespace, oldest first) of the upload to
    admit now, or None: no slot is free, or every waiter's namespace holds its cap."""
    if sum(in_use.values()) >= slots:
        return None
    cap = namespace_cap(slots)
    for index, namespace in enumerate(waiting):
        if in_use.get(namespace, 0) < cap:
            return index
    return None


def retry_delay(
    attempt: int,
    unit: float,
    *,
    retry_after: float | None = None,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...), `unit` a
    random draw in [0, 1): full jitter over the doubling window, on top of the
    endpoint's Retry-After when it sent one."""
    window = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 32))
    floor = min(max(retry_after or 0.0, 0.0), MAX_RETRY_AFTER_SECONDS)
    return floor + unit * window


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) as seconds from `now` (epoch
    seconds), or None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text[:6]), int(MAX_RETRY_AFTER_SECONDS)))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
