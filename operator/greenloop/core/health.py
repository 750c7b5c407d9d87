"""The health wait after a redeploy (docs/design.md §1 `target.health`): when to probe
the URL next, how long a probe may take, and when to give up — one rule for both shells.

A URL has no watch, so the wait polls; the rule keeps the poll bounded both ways:
- the first probe goes at once, the next ones back off (0.1 s doubling to 1 s, so a
  target that comes up quickly is seen quickly and a slow one costs one request a second);
- no probe runs past the deadline: each may take ``min(call timeout, time left)``, and the
  last one starts just before the deadline rather than up to one delay before it;
- the wait gives up when less than ``MIN_PROBE_SECONDS`` is left (a probe that short
  cannot be answered, so it would be a request for nothing).

Pure: the shells (`local/redeploy.py`, `k8s/reconcile.py`) own the clock, the sleep and
the HTTP call, and ask :func:`next_step` after each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CALL_TIMEOUT_SECONDS",
    "FIRST_DELAY_SECONDS",
    "MAX_DELAY_SECONDS",
    "MIN_PROBE_SECONDS",
    "GiveUp",
    "Probe",
    "Sleep",
    "Step",
    "delay_after",
    "gave_up_message",
    "healthy_note",
    "next_step",
]

#: How long one probe may take when the deadline is further away.
CALL_TIMEOUT_SECONDS = 5.0
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 1.0
#: Less time than this left: no probe (it could not be answered), the wait is over.
MIN_PROBE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Probe:
    """Probe now; the call must be over after ``timeout`` seconds (by the deadline)."""

    timeout: float


@dataclass(frozen=True, slots=True)
class Sleep:
    """Nothing to do for ``seconds``; then ask again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The deadline leaves no time for another probe."""


Step = Probe | Sleep | GiveUp


def delay_after(probes: int) -> float:
    """The pause after the ``probes``-th failed probe (1-based): 0.1, 0.2, 0.4, 0.8, 1, 1 ..."""
    return min(FIRST_DELAY_SECONDS * 2.0 ** min(max(probes - 1, 0), 16), MAX_DELAY_SECONDS)


def next_step(
    timeout_seconds: float,
    elapsed: float,
    probes: int,
    last_probe_end: float = 0.0,
    *,
    call_timeout: float = CALL_TIMEOUT_SECONDS,
) -> Step:
    """What a health wait of ``timeout_seconds`` does next, ``elapsed`` seconds after it
    began, having made ``probes`` probes, the last of which ended at ``last_probe_end``
    (seconds since the start; ignored before the first probe)."""
    left = timeout_seconds - elapsed
    last_start = timeout_seconds - MIN_PROBE_SECONDS  # the latest a probe may start
    if probes > 0:
        if last_probe_end >= last_start:
            return GiveUp()  # the last probe, the one at the deadline, has been made
        # A back-off step never skips the end of the wait: the last pause is cut short.
        due = min(last_probe_end + delay_after(probes), last_start)
        if elapsed < due:
            return Sleep(due - elapsed)
    if left < MIN_PROBE_SECONDS:
        return GiveUp()
    return Probe(min(call_timeout, left))


def healthy_note(url: str, status: int, took: float) -> str:
    return f"health {url}: HTTP {status} after {took:.1f} s"


def gave_up_message(url: str, timeout_seconds: float, last: str) -> str:
    return f"{url} not healthy after {timeout_seconds:g} s (last: {last})"
