"""Observe the targets' environment fingerprint (docs/design.md §8): for each target
workload, the pod-template hash of its current revision and the image and digest
(`imageID`) of each container of that revision's pods.

Only the current revision counts: mid-rollout, the old ReplicaSet's pods are on their
way out and say nothing about what the next test will reach. The current revision is
what the workload's controller names it — a Deployment's ReplicaSet with the
Deployment's `deployment.kubernetes.io/revision` (its `pod-template-hash` label), a
StatefulSet's `status.updateRevision`, a DaemonSet's newest ControllerRevision (its
`controller-revision-hash`). A revision without pods yet (scaled to zero, still
scheduling) contributes its template's images with no digest. Bounded: at most 20 pods
and 10 containers per pod are read per workload. Read through a `Reader`: the operator's
watch-fed store (no request), or the API when a read must be fresh (docs/design.md §8.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from greenloop.core.fingerprint import Entry, Fingerprint, fingerprint
from greenloop.core.model import Workload
from greenloop.k8s.gateway import ApiError, Gateway
from greenloop.k8s.store import Reader, reader_of, selector_string

__all__ = ["MAX_CONTAINERS", "MAX_PODS", "observe_fingerprint", "selector"]

log = logging.getLogger("greenloop.fingerprint")
MAX_PODS = 20
MAX_CONTAINERS = 10
MAX_REVISIONS = 200  # ReplicaSets / ControllerRevisions read to find the current one
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"


def selector(obj: Mapping[str, Any]) -> str:
    """The workload's `spec.selector` as a label selector string ("" when it has none)."""
    return selector_string(obj.get("spec", {}).get("selector"))


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or ()
    return any(ref.get("uid") == uid for ref in refs)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


async def _deployment_hash(rd: Reader, namespace: str, obj: Mapping[str, Any], sel: str) -> str:
    meta = obj["metadata"]
    wanted = (meta.get("annotations") or {}).get(DEPLOYMENT_REVISION)
    found = await rd.select("ReplicaSet", namespace, sel, limit=MAX_REVISIONS)
    owned = [rs for rs in found if _owned_by(rs, meta.get("uid", ""))]
    if not owned:
        return ""

    def revision(rs: Mapping[str, Any]) -> int:
        return _int((rs["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION))

    current = [rs for rs in owned if wanted is not None and str(revision(rs)) == wanted]
    chosen = current[0] if current else max(owned, key=revision)
    return str((chosen["metadata"].get("labels") or {}).get(POD_TEMPLATE_HASH, ""))


async def _daemonset_hash(rd: Reader, namespace: str, obj: Mapping[str, Any], sel: str) -> str:
    meta = obj["metadata"]
    found = await rd.select("ControllerRevision", namespace, sel, limit=MAX_REVISIONS)
    owned = [cr for cr in found if _owned_by(cr, meta.get("uid", ""))]
    if not owned:
        return ""
    newest = max(owned, key=lambda cr: _int(cr.get("revision")))
    labels = newest["metadata"].get("labels") or {}
    if labels.get(CONTROLLER_REVISION_HASH):
        return str(labels[CONTROLLER_REVISION_HASH])
    name = str(newest["metadata"].get("name", ""))
    return name.removeprefix(f"{meta['name']}-")


async def _revision(
    rd: Reader, namespace: str, kind: str, obj: Mapping[str, Any], sel: str
) -> tuple[str, str]:
    """(the current revision, the pod label that carries it)."""
    if kind == "Deployment":
        return await _deployment_hash(rd, namespace, obj, sel), POD_TEMPLATE_HASH
    if kind == "StatefulSet":
        status = obj.get("status") or {}
        rev = status.get("updateRevision") or status.get("currentRevision") or ""
        return str(rev), CONTROLLER_REVISION_HASH
    return await _daemonset_hash(rd, namespace, obj, sel), CONTROLLER_REVISION_HASH


def _pod_entries(workload: str, revision: str, pods: Sequence[Mapping[str, Any]]) -> list[Entry]:
    entries: list[Entry] = []
    for pod in pods[:MAX_PODS]:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue  # on its way out
        statuses = {
            cs.get("name"): cs for cs in (pod.get("status") or {}).get("containerStatuses") or ()
        }
        for container in (pod.get("spec") or {}).get("containers", ())[:MAX_CONTAINERS]:
            name = str(container.get("name", ""))
            image_id = str((statuses.get(name) or {}).get("imageID") or "")
            entries.append(
                Entry(workload, revision, name, str(container.get("image", "")), image_id)
            )
    return entries


def _template_entries(workload: str, revision: str, obj: Mapping[str, Any]) -> list[Entry]:
    spec = (obj.get("spec", {}).get("template") or {}).get("spec") or {}
    return [
        Entry(workload, revision, str(c.get("name", "")), str(c.get("image", "")))
        for c in spec.get("containers", ())[:MAX_CONTAINERS]
    ]


async def _workload_entries(rd: Reader, namespace: str, w: Workload) -> list[Entry]:
    obj = await rd.find(w.kind, namespace, w.name)
    if obj is None:
        return []  # shown as "absent": its appearing is a change too
    label = f"{w.kind}/{w.name}"
    sel = selector(obj)
    revision, pod_label = await _revision(rd, namespace, w.kind, obj, sel)
    pods: list[dict[str, Any]] = []
    if sel and revision:
        pods = await rd.select("Pod", namespace, f"{sel},{pod_label}={revision}", limit=MAX_PODS)
    entries = _pod_entries(label, revision, pods)
    return entries or _template_entries(label, revision, obj)


async def observe_fingerprint(
    source: Reader | Gateway, namespace: str, workloads: Sequence[Workload]
) -> Fingerprint | None:
    """The targets' fingerprint now (from the store, or the API given a Gateway); None
    when the API could not be read (the engine then compares nothing: an outage is not
    a target change)."""
    rd = reader_of(source)
    entries: list[Entry] = []
    try:
        for w in workloads:
            entries.extend(await _workload_entries(rd, namespace, w))
    except ApiError as err:
        log.warning("fingerprint of the targets in %s not observed: %s", namespace, err)
        return None
    return fingerprint(entries)
