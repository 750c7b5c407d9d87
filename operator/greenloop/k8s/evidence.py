"""What the cluster shows about the targets when a suite's results arrive: the why-chain's
evidence (docs/design.md §8). Unavailable replicas, pods that restart or wait, recent
Warning events on the workload and its pods — a few bounded lines, never a dump."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenloop.core.model import Workload
from greenloop.k8s.gateway import ApiError, Forbidden, Gateway
from greenloop.k8s.store import Reader, reader_of

__all__ = ["observe_targets"]

MAX_LINES = 8
MAX_LINE = 300
MAX_PODS = 20


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def _selector(obj: Mapping[str, Any]) -> str:
    labels = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _workload_line(w: Workload, obj: Mapping[str, Any]) -> str:
    status = obj.get("status", {})
    if w.kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberAvailable", 0)
    else:
        want = obj.get("spec", {}).get("replicas", 1)
        ready = status.get("availableReplicas", status.get("readyReplicas", 0)) or 0
    return f"{w.kind} {w.name}: {ready}/{want} available"


def _pod_lines(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for pod in pods[:MAX_PODS]:
        name = pod["metadata"]["name"]
        for cs in pod.get("status", {}).get("containerStatuses") or ():
            waiting = (cs.get("state") or {}).get("waiting")
            last = (cs.get("lastState") or {}).get("terminated")
            restarts = cs.get("restartCount", 0)
            if waiting:
                lines.append(f"pod {name}: {cs['name']} waiting: {waiting.get('reason', '')}")
            elif restarts:
                why = f", last: {last.get('reason')} exit {last.get('exitCode')}" if last else ""
                lines.append(f"pod {name}: {cs['name']} restarted {restarts}x{why}")
    return lines


async def _warnings(gw: Gateway, namespace: str, names: set[str]) -> list[str]:
    events = await gw.request(
        "GET", f"/api/v1/namespaces/{namespace}/events", query={"fieldSelector": "type=Warning"}
    )
    items = [e for e in events.get("items") or [] if e["involvedObject"].get("name") in names]
    items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return [
        f"event {e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}: "
        f"{e.get('reason')}: {e.get('message', '')}"
        for e in items[-3:]
    ]


async def observe_targets(
    gw: Gateway, namespace: str, workloads: Sequence[Workload], reader: Reader | None = None
) -> tuple[str, ...]:
    """A few lines of what the targets look like now; an API error is one line too.
    Workloads and pods through `reader` (the API when None); Events from the API."""
    rd = reader_of(reader or gw)
    lines: list[str] = []
    names: set[str] = set()
    try:
        for w in workloads:
            obj = await rd.find(w.kind, namespace, w.name)
            if obj is None:
                lines.append(f"{w.kind} {w.name}: not found")
                continue
            names.add(w.name)
            lines.append(_workload_line(w, obj))
            selector = _selector(obj)
            if selector:
                pods = await rd.select("Pod", namespace, selector)
                names.update(p["metadata"]["name"] for p in pods[:MAX_PODS])
                lines.extend(_pod_lines(pods))
        if names:
            lines.extend(await _warnings(gw, namespace, names))
    except Forbidden:
        raise  # the object's account may not read it: the object stalls, naming it
    except ApiError as err:
        lines.append(f"cluster evidence unavailable: {err}")
    return tuple(_cut(line) for line in lines[:MAX_LINES])
