"""core.admission: who takes the results endpoint's next slot, and how long a refused
sidecar waits before it tries again (docs/design.md §8)."""

from __future__ import annotations

import email.utils

import pytest

from greenloop.core.admission import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    namespace_cap,
    next_admitted,
    retry_after_seconds,
    retry_delay,
)


@pytest.mark.parametrize(("slots", "cap"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8), (17, 8)])
def test_one_namespace_holds_at_most_half_the_slots_and_always_at_least_one(
    slots: int, cap: int
) -> None:
    assert namespace_cap(slots) == cap


ADMISSION = [
    # (id, waiting oldest first, in use per namespace, slots, admitted index)
    ("nobody-waits", [], {}, 4, None),
    ("a-free-slot-goes-to-the-oldest", ["a", "b"], {}, 4, 0),
    ("no-free-slot", ["b"], {"a": 2, "b": 2}, 4, None),
    ("a-namespace-at-its-cap-is-passed-over", ["a", "a", "b"], {"a": 2}, 4, 2),
    ("every-waiter-at-its-cap", ["a", "a"], {"a": 8}, 16, None),
    ("under-the-cap-first-come-first-served", ["a", "b"], {"a": 1, "b": 1}, 4, 0),
    ("one-slot-one-namespace", ["a"], {}, 1, 0),
    ("one-slot-taken", ["b"], {"a": 1}, 1, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("waiting", "in_use", "slots", "admitted"),
    [pytest.param(w, u, s, a, id=i) for i, w, u, s, a in ADMISSION],
)
def test_next_admitted_is_the_oldest_waiter_whose_namespace_is_under_its_cap(
    waiting: list[str], in_use: dict[str, int], slots: int, admitted: int | None
) -> None:
    assert next_admitted(waiting, in_use, slots) == admitted


def test_one_namespace_flooding_leaves_half_the_slots_to_the_others() -> None:
    """Admit greedily from a queue of 100 uploads of `a` then one of `b`: `a` stops at
    half, `b` gets in although it came last."""
    waiting = ["a"] * 100 + ["b"]
    in_use: dict[str, int] = {}
    while (index := next_admitted(waiting, in_use, 16)) is not None:
        ns = waiting.pop(index)
        in_use[ns] = in_use.get(ns, 0) + 1
    assert in_use == {"a": 8, "b": 1}


@pytest.mark.parametrize("unit", [0.0, 0.5, 0.999999])
@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10, 100, 10**6])
def test_the_wait_is_a_draw_over_a_doubling_window_capped(attempt: int, unit: float) -> None:
    window = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt - 1, 32))
    assert retry_delay(attempt, unit) == pytest.approx(unit * window)
    assert 0.0 <= retry_delay(attempt, unit) < BACKOFF_CAP_SECONDS


@pytest.mark.parametrize(
    ("retry_after", "floor"), [(2.0, 2.0), (0.0, 0.0), (-5.0, 0.0), (1e9, 60.0)]
)
def test_retry_after_is_a_floor_the_jitter_is_added_to(retry_after: float, floor: float) -> None:
    assert retry_delay(1, 0.0, retry_after=retry_after) == floor
    assert retry_delay(1, 0.5, retry_after=retry_after) == floor + 0.5 * BACKOFF_BASE_SECONDS


NOW = 1_800_000_000.0
RETRY_AFTER = [
    ("absent", None, None),
    ("empty", "", None),
    ("seconds", "2", 2.0),
    ("seconds-with-space", " 7 ", 7.0),
    ("seconds-too-far", "99999999999", MAX_RETRY_AFTER_SECONDS),
    ("negative-is-not-digits", "-1", None),
    ("garbage", "soon", None),
    ("http-date-ahead", email.utils.formatdate(NOW + 5, usegmt=True), 5.0),
    ("http-date-past", email.utils.formatdate(NOW - 500, usegmt=True), 0.0),
    ("http-date-far", email.utils.formatdate(NOW + 86400, usegmt=True), MAX_RETRY_AFTER_SECONDS),
]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "seconds"), [pytest.param(v, s, id=i) for i, v, s in RETRY_AFTER]
)
def test_retry_after_reads_seconds_or_a_date_bounded(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, NOW) == seconds
