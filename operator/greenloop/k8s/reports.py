"""The report ConfigMap: where `kubectl get cm` finds the Markdown report of an object
(docs/design.md §5, §8). A pure builder and one idempotent write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greenloop.k8s.gateway import Gateway
from greenloop.k8s.jobs import Owner

__all__ = ["MAX_REPORT", "build_report_configmap", "write_report"]

#: A ConfigMap holds at most 1 MiB; the core keeps its report within 900 KiB
#: (core/report.py), and this guard holds whatever it is handed to the same bound.
MAX_REPORT = 900 * 1024
KEY = "report.md"


def bounded(text: str) -> str:
    """``text`` if it fits, else its first MAX_REPORT bytes (never half a character) and
    a line saying it was cut."""
    data = text.encode()
    if len(data) <= MAX_REPORT:
        return text
    return data[:MAX_REPORT].decode(errors="ignore") + "\n\n(truncated)\n"


def build_report_configmap(owner: Owner, name: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {"app.kubernetes.io/managed-by": "greenloop"},
            "ownerReferences": [owner.reference()],
        },
        "data": {KEY: bounded(text)},
    }


async def write_report(gw: Gateway, owner: Owner, name: str, text: str) -> None:
    """Create the ConfigMap, or adopt it and patch its text only when it changed (a
    repeated tick writes nothing)."""
    cm = build_report_configmap(owner, name, text)
    existing, created = await gw.create_or_adopt(cm)
    data: Mapping[str, Any] = existing.get("data") or {}
    if not created and data.get(KEY) != cm["data"][KEY]:
        await gw.patch("ConfigMap", owner.namespace, name, {"data": cm["data"]})
