"""Whether a test pod can ever start (docs/design.md §8, "A test pod that can never
start"): the named rule :func:`never_starts`, which the operator applies to the waiting
reasons the kubelet gives the suite container.

A pod that waits for an image that is not there, or for a Secret or key that does not
exist, would wait until the Job's deadline doing nothing, and a rerun cannot change
that: the round stops at once with the kubelet's own reason. Pure core.
"""

from __future__ import annotations

__all__ = ["AFTER_RETRIES", "AT_ONCE", "RETRY_GRACE_SECONDS", "never_starts"]

#: Reasons no retry can change: the image name cannot be parsed, or the pod may not pull.
AT_ONCE = frozenset({"InvalidImageName", "ErrImageNeverPull"})
#: Reasons a moment can change (a registry hiccup; a Secret created just after the
#: object): the kubelet retries them, so they count only past its first retries.
AFTER_RETRIES = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"})
#: The kubelet retries a pull after 10 s, then 20 s: by 25 s a pull has failed twice.
#: With the operator's 10 s poll a round ends within 40 s of the pod's start.
RETRY_GRACE_SECONDS = 25.0


def never_starts(reason: str | None, waited_seconds: float) -> bool:
    """True when a container waiting for ``reason`` since its pod started
    ``waited_seconds`` ago will never run."""
    if reason in AT_ONCE:
        return True
    return reason in AFTER_RETRIES and waited_seconds >= RETRY_GRACE_SECONDS
