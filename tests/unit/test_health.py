"""The health wait's rule (core/health.py): when to probe, how long a probe may take, when
to give up — the one schedule both shells follow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenloop.core.health import (
    CALL_TIMEOUT_SECONDS,
    MIN_PROBE_SECONDS,
    GiveUp,
    Probe,
    Sleep,
    Step,
    delay_after,
    gave_up_message,
    next_step,
)


@pytest.mark.parametrize(
    ("probes", "delay"),
    [(0, 0.1), (1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (6, 1.0), (10_000, 1.0)],
)
def test_the_pause_after_a_failed_probe_backs_off_to_one_second(probes: int, delay: float) -> None:
    assert delay_after(probes) == pytest.approx(delay)


# (timeout, elapsed, probes made, when the last one ended) -> the step
CASES: list[tuple[str, tuple[float, float, int, float], Step]] = [
    ("the first probe goes at once", (300, 0.0, 0, 0.0), Probe(CALL_TIMEOUT_SECONDS)),
    ("a short wait's first probe ends by the deadline", (2, 0.0, 0, 0.0), Probe(2.0)),
    ("a started wait's first probe has what is left", (2, 0.5, 0, 0.0), Probe(1.5)),
    ("no time for even one probe", (300, 299.95, 0, 0.0), GiveUp()),
    ("after a failed probe, a pause", (300, 0.01, 1, 0.01), Sleep(0.1)),
    ("the pause is counted from the probe's end", (300, 0.05, 1, 0.01), Sleep(0.06)),
    ("the pause over: probe", (300, 0.11, 1, 0.01), Probe(CALL_TIMEOUT_SECONDS)),
    ("the pause doubles", (300, 1.0, 3, 1.0), Sleep(0.4)),
    ("the pause stops growing at a second", (300, 50.0, 60, 50.0), Sleep(1.0)),
    ("a probe near the deadline gets only what is left", (300, 298.0, 60, 297.0), Probe(2.0)),
    ("the last probe starts just before the deadline", (3, 2.5, 5, 2.5), Sleep(0.4)),
    ("... and may take what is left", (3, 2.9, 5, 2.5), Probe(0.1)),
    ("the last probe ended at the deadline: give up", (3, 3.0, 6, 3.0), GiveUp()),
    ("a last probe refused at once is not repeated", (3, 2.9, 6, 2.9), GiveUp()),
    ("a probe refused just before the last: one more", (3, 2.85, 6, 2.85), Sleep(0.05)),
    ("a shell that overslept gives up, never probes late", (3, 3.4, 5, 2.5), GiveUp()),
    ("a slow probe that ended past its pause: the next at once", (300, 10.5, 3, 10.0), Probe(5.0)),
]


@pytest.mark.parametrize(("args", "step"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_the_next_step(args: tuple[float, float, int, float], step: Step) -> None:
    got = next_step(*args)
    assert type(got) is type(step)
    if isinstance(step, Probe):
        assert isinstance(got, Probe)
        assert got.timeout == pytest.approx(step.timeout)
    if isinstance(step, Sleep):
        assert isinstance(got, Sleep)
        assert got.seconds == pytest.approx(step.seconds)


def test_a_caller_may_give_a_shorter_call_timeout() -> None:
    assert next_step(300, 0.0, 0, call_timeout=1.0) == Probe(1.0)


@given(
    timeout=st.integers(min_value=1, max_value=600),
    # how much of each probe's allowance the endpoint uses before failing (0: refused at
    # once, 1: trickles to the end), and how late each sleep wakes
    uses=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50),
    late=st.floats(min_value=0.0, max_value=0.05),
)
def test_a_wait_on_a_never_healthy_endpoint_ends_by_its_deadline(
    timeout: int, uses: list[float], late: float
) -> None:
    """Walked to its end against an endpoint that never answers well: every probe is over
    by the deadline, the last one starts within a pause of it, and the wait gives up."""
    now, probes, last_end, last_start = 0.0, 0, 0.0, 0.0
    for _ in range(100_000):
        step = next_step(timeout, now, probes, last_end)
        if isinstance(step, GiveUp):
            break
        if isinstance(step, Sleep):
            assert step.seconds > 0
            now += step.seconds + late
            continue
        assert MIN_PROBE_SECONDS <= step.timeout <= min(CALL_TIMEOUT_SECONDS, timeout - now)
        last_start = now
        now += step.timeout * uses[probes % len(uses)]
        assert now <= timeout
        probes, last_end = probes + 1, now
    else:
        pytest.fail("the wait never ended")
    assert probes >= 1
    # Nothing left unprobed at the end: the last probe covers up to the deadline, or
    # started within one pause (plus the shell's lateness) of it.
    assert last_start >= timeout - CALL_TIMEOUT_SECONDS - 1.0 - late - MIN_PROBE_SECONDS


def test_giving_up_names_the_url_the_timeout_and_the_last_answer() -> None:
    assert gave_up_message("http://api/health", 3, "HTTP 503") == (
        "http://api/health not healthy after 3 s (last: HTTP 503)"
    )
