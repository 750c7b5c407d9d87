"""When is a rollout complete? `kubectl rollout status`'s rules as a pure function.

No API calls: given the workload object as the API server returned it, say whether its
rollout is done, still going, or failed, with kubectl's own wording (docs/design.md §8).
These rules are Kubernetes' semantics, not greenloop's decisions, so they live in the
k8s shell rather than in the core - but in a module of their own that does no I/O, so a
table of objects tests every branch.

`min_generation` is the generation greenloop's own patch produced: the controller must
have observed at least that (and at least the object's current generation, as kubectl
requires) before the counts mean anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Progress", "RolloutStatus", "rollout_status"]


class Progress(StrEnum):
    WAITING = "Waiting"
    COMPLETE = "Complete"
    FAILED = "Failed"  # will not complete by waiting: a person or a new change must act


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    progress: Progress
    message: str

    @property
    def done(self) -> bool:
        return self.progress is not Progress.WAITING


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _observed(obj: Mapping[str, Any], min_generation: int) -> bool:
    generation = max(_int(obj.get("metadata", {}).get("generation")), min_generation)
    observed = _int(obj.get("status", {}).get("observedGeneration"))
    return observed > 0 and observed >= generation


def _waiting(message: str) -> RolloutStatus:
    return RolloutStatus(Progress.WAITING, message)


def rollout_status(obj: Mapping[str, Any], *, min_generation: int = 0) -> RolloutStatus:
    kind = obj.get("kind")
    name = obj.get("metadata", {}).get("name", "?")
    if kind == "Deployment":
        return _deployment(obj, name, min_generation)
    if kind == "StatefulSet":
        return _statefulset(obj, name, min_generation)
    if kind == "DaemonSet":
        return _daemonset(obj, name, min_generation)
    return RolloutStatus(Progress.FAILED, f"cannot tell the rollout status of a {kind}")


def _deployment(obj: Mapping[str, Any], name: str, min_generation: int) -> RolloutStatus:
    if not _observed(obj, min_generation):
        return _waiting(f'Waiting for deployment "{name}" spec update to be observed...')
    status = obj.get("status", {})
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            detail = cond.get("message") or "no progress within progressDeadlineSeconds"
            return RolloutStatus(
                Progress.FAILED, f'deployment "{name}" exceeded its progress deadline: {detail}'
            )
    want = _int(obj.get("spec", {}).get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < want:
        return _waiting(
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{updated} out of {want} new replicas have been updated..."
        )
    if replicas > updated:
        return _waiting(
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return _waiting(
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{available} of {updated} updated replicas are available..."
        )
    return RolloutStatus(Progress.COMPLETE, f'deployment "{name}" successfully rolled out')


def _rolling(obj: Mapping[str, Any], kind: str) -> RolloutStatus | None:
    strategy = (obj.get("spec", {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return RolloutStatus(
            Progress.FAILED,
            f"{kind} uses updateStrategy {strategy}: a pod-template change is not rolled out "
            "by itself; use RollingUpdate or delete the pods",
        )
    return None


def _statefulset(obj: Mapping[str, Any], name: str, min_generation: int) -> RolloutStatus:
    refused = _rolling(obj, "StatefulSet")
    if refused:
        return refused
    if not _observed(obj, min_generation):
        return _waiting("Waiting for statefulset spec update to be observed...")
    spec, status = obj.get("spec", {}), obj.get("status", {})
    want = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < want:
        return _waiting(f"Waiting for {want - ready} pods to be ready...")
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
    partition = rolling.get("partition")
    updated = _int(status.get("updatedReplicas"))
    if isinstance(partition, int) and partition > 0:
        if updated < want - partition:
            return _waiting(
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {want - partition} new pods have been updated..."
            )
        return RolloutStatus(
            Progress.COMPLETE,
            f"partitioned roll out complete: {updated} new pods have been updated",
        )
    revision = status.get("updateRevision")
    if revision != status.get("currentRevision"):
        return _waiting(
            f"waiting for statefulset rolling update to complete {updated} pods "
            f"at revision {revision}..."
        )
    return RolloutStatus(
        Progress.COMPLETE,
        f"statefulset rolling update complete {ready} pods at revision {revision}",
    )


def _daemonset(obj: Mapping[str, Any], name: str, min_generation: int) -> RolloutStatus:
    refused = _rolling(obj, "DaemonSet")
    if refused:
        return refused
    if not _observed(obj, min_generation):
        return _waiting(f'Waiting for daemon set "{name}" spec update to be observed...')
    status = obj.get("status", {})
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    if updated < desired:
        return _waiting(
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{updated} out of {desired} new pods have been updated..."
        )
    if available < desired:
        return _waiting(
            f'Waiting for daemon set "{name}" rollout to finish: '
            f"{available} of {desired} updated pods are available..."
        )
    return RolloutStatus(Progress.COMPLETE, f'daemon set "{name}" successfully rolled out')
