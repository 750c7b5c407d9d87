"""Kubernetes Events for the object: one per decision (`kubectl describe sv` and
`kubectl get events` tell the story). Pure builder plus one gateway call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from greenloop.core import crd
from greenloop.k8s.gateway import ApiError, Gateway

__all__ = ["build_event", "post_event"]

log = logging.getLogger("greenloop.events")
MAX_MESSAGE = 1024


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(
    obj: dict[str, Any], reason: str, message: str, *, warning: bool = False, stamp: str = ""
) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = stamp or _now()
    text = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name'][:200]}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", crd.API_VERSION),
            "kind": obj.get("kind", crd.KIND),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": text,
        "type": "Warning" if warning else "Normal",
        "source": {"component": "greenloop"},
        "reportingComponent": "greenloop.dev/operator",
        "reportingInstance": "greenloop",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post_event(
    gw: Gateway, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False
) -> None:
    """Post an Event; a failure is logged, never fatal (the status says the same)."""
    try:
        await gw.create(build_event(obj, reason, message, warning=warning))
    except ApiError as err:
        log.warning("could not post event %s on %s: %s", reason, obj["metadata"]["name"], err)
