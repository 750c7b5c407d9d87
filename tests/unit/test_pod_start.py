"""When a waiting pod's verdict can next change (core/pod_start.py verdict_changes_at),
and how long the reconcile sleeps for it (k8s/suites.py Recheck, pure). `never_starts`
itself: tests/unit/test_pod_settings.py. The operator applying both to a one-pod Job's
pod and to every index's pod, on the real API server:
tests/integration/test_operator_pod_start.py."""

from __future__ import annotations

import pytest

from greenloop.core.pod_start import RETRY_GRACE_SECONDS, verdict_changes_at
from greenloop.k8s.suites import Recheck

STARTED = 1_800_000_000.0


@pytest.mark.parametrize(
    ("reason", "started", "expected"),
    [
        ("ImagePullBackOff", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("ErrImagePull", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("CreateContainerConfigError", STARTED, STARTED + RETRY_GRACE_SECONDS),
        ("InvalidImageName", STARTED, None),  # decided at once: no later change
        ("ContainerCreating", STARTED, None),  # a pod starting: the next event says more
        (None, STARTED, None),
        ("ImagePullBackOff", 0.0, None),  # not started yet: its startTime will wake us
    ],
)
def test_a_waiting_pod_s_verdict_changes_only_after_the_kubelet_s_retries(
    reason: str | None, started: float, expected: float | None
) -> None:
    assert verdict_changes_at(reason, started) == expected


@pytest.mark.parametrize(
    ("at", "now", "expected"),
    [(None, 100.0, 300.0), (125.0, 100.0, 25.0), (900.0, 100.0, 300.0), (90.0, 100.0, 0.05)],
)
def test_the_tick_sleeps_until_the_verdict_can_turn_at_most_its_idle_wait(
    at: float | None, now: float, expected: float
) -> None:
    assert Recheck(at).wait(now, idle=300.0) == expected


def test_the_earliest_time_to_look_again_is_kept() -> None:
    recheck = Recheck()
    for when in (None, 200.0, 150.0, None, 180.0):
        recheck.by(when)
    assert recheck.at == 150.0
