"""Whether a test pod can ever start (docs/design.md §8, "A test pod that can never
start"): the named rule :func:`never_starts`, which the operator applies to the waiting
reasons the kubelet gives the suite container.

A pod that waits for an image that is not there, or for a Secret or key that does not
exist, would wait until the Job's deadline doing nothing, and a rerun cannot change
that: the round stops at once with the kubelet's own reason. Pure core.
"""

from __future__ import annotations

__all__ = [
    "AFTER_RETRIES",
    "AT_ONCE",
    "RETRY_GRACE_SECONDS",
    "never_starts",
    "verdict_changes_at",
]

#: Reasons no retry can change: the image name cannot be parsed, or the pod may not pull.
AT_ONCE = frozenset({"InvalidImageName", "ErrImageNeverPull"})
#: Reasons a moment can change (a registry hiccup; a Secret created just after the
#: object): the kubelet retries them, so they count only past its first retries.
AFTER_RETRIES = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"})
#: The kubelet retries a pull after 10 s, then 20 s: by 25 s a pull has failed twice.
#: The operator looks again at that moment (:func:`verdict_changes_at`), so a round ends
#: about 25 s after the pod's start.
RETRY_GRACE_SECONDS = 25.0


def never_starts(reason: str | None, waited_seconds: float) -> bool:
    """True when a container waiting for ``reason`` since its pod started
    ``waited_seconds`` ago will never run."""
    if reason in AT_ONCE:
        return True
    return reason in AFTER_RETRIES and waited_seconds >= RETRY_GRACE_SECONDS


def verdict_changes_at(reason: str | None, started_at: float) -> float | None:
    """When :func:`never_starts` may turn for a container waiting for ``reason`` in a pod
    that started at ``started_at`` (epoch seconds, 0 when not yet), with no event to say
    so: the end of the kubelet's first retries for a reason a moment can change. None when
    time changes nothing: the verdict is already decided (at once, or never by time), or
    the pod has not started (its start is an event)."""
    if reason in AFTER_RETRIES and started_at > 0:
        return started_at + RETRY_GRACE_SECONDS
    return None
