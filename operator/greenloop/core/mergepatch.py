"""JSON merge patch (RFC 7386): what the operator sends to write engine state.

A merge patch cannot say "make this key absent" except with ``null``, and it replaces
lists whole. :func:`create` gives the patch that turns one document into another (keys
gone from the new one as ``null``); :func:`apply` is the receiver's side, as the API
server does it. Snapshots hold no nulls (:mod:`greenloop.core.snapshot`), so a ``null`` in
a patch always means "removed".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["apply", "create"]


def create(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = create(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = value
    return patch


def apply(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return patch
    out: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply(out.get(key), value)
    return out
