"""The values of the Secrets a suite's pod reads, so that what greenloop writes of its
run masks them (docs/design.md §8; the masking itself is greenloop.core.secrets).

Each Secret is read by name (GET), never listed: the operator learns only the
Secrets the object names.
"""

from __future__ import annotations

import base64
import binascii

from greenloop.core.model import Suite
from greenloop.core.secrets import secret_refs
from greenloop.k8s.gateway import ApiError, Forbidden, Gateway

__all__ = ["Unreadable", "suite_secret_values"]


class Unreadable(Exception):
    """A Secret the pod reads could not be read to mask it (403, an outage): what the
    run printed cannot be shown safely."""


async def suite_secret_values(gw: Gateway, namespace: str, suite: Suite) -> tuple[str, ...]:
    """The values (as text) of every Secret key the suite's pod reads; a Secret or key
    that does not exist has none (the pod did not get it either). Raises Unreadable
    naming the Secret, never a value."""
    values: list[str] = []
    for name, key in secret_refs(suite):
        try:
            secret = await gw.find("Secret", namespace, name)
        except Forbidden:
            raise  # the object's account may not read it: Stalled/Forbidden, naming it
        except ApiError as err:
            raise Unreadable(
                f"Secret {namespace}/{name} could not be read to mask its values"
                f" ({err.status} {err.reason}); the run's output is withheld"
            ) from None
        data = (secret or {}).get("data") or {}
        raws = data.values() if key is None else [data.get(key)]
        for raw in raws:
            if not isinstance(raw, str):
                continue
            try:
                values.append(base64.b64decode(raw, validate=True).decode("utf-8", "replace"))
            except binascii.Error:
                continue
    return tuple(values)
