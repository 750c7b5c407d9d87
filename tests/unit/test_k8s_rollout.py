"""`kubectl rollout status` rules, one row per branch, on objects shaped as the API returns them."""

from __future__ import annotations

from typing import Any

import pytest

from greenloop.k8s.rollout import Progress, rollout_status


def deployment(
    *, gen: int = 2, observed: int = 2, want: int = 3, updated: int = 3, replicas: int = 3,
    available: int = 3, deadline_exceeded: bool = False,
) -> dict[str, Any]:  # fmt: skip
    conditions = []
    if deadline_exceeded:
        message = 'ReplicaSet "web-5d8" has timed out progressing.'
        conditions.append(
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": message}
        )  # fmt: skip
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": gen},
        "spec": {"replicas": want},
        "status": {"observedGeneration": observed, "updatedReplicas": updated,
                   "replicas": replicas, "availableReplicas": available,
                   "conditions": conditions},
    }  # fmt: skip


def statefulset(
    *, gen: int = 2, observed: int = 2, want: int = 3, ready: int = 3, updated: int = 3,
    current: str = "r2", update: str = "r2", partition: int | None = None,
    strategy: str = "RollingUpdate",
) -> dict[str, Any]:  # fmt: skip
    rolling = {"partition": partition} if partition is not None else {}
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": gen},
        "spec": {"replicas": want, "updateStrategy": {"type": strategy, "rollingUpdate": rolling}},
        "status": {"observedGeneration": observed, "readyReplicas": ready,
                   "updatedReplicas": updated, "currentRevision": current,
                   "updateRevision": update},
    }  # fmt: skip


def daemonset(
    *, gen: int = 2, observed: int = 2, desired: int = 2, updated: int = 2, available: int = 2,
    strategy: str = "RollingUpdate",
) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": gen},
        "spec": {"updateStrategy": {"type": strategy}},
        "status": {"observedGeneration": observed, "desiredNumberScheduled": desired,
                   "updatedNumberScheduled": updated, "numberAvailable": available},
    }  # fmt: skip


W, C, F = Progress.WAITING, Progress.COMPLETE, Progress.FAILED
CASES = [
    # (id, object, generation greenloop's patch returned, progress, words in the message)
    ("deploy-complete", deployment(), 2, C, "successfully rolled out"),
    ("deploy-not-observed", deployment(observed=1), 0, W, "spec update to be observed"),
    ("deploy-our-patch-not-observed", deployment(gen=2, observed=2), 3, W, "to be observed"),
    ("deploy-never-observed", deployment(observed=0, gen=0), 0, W, "to be observed"),
    ("deploy-deadline", deployment(deadline_exceeded=True, updated=1), 2, F,
     'exceeded its progress deadline: ReplicaSet "web-5d8" has timed out progressing.'),
    ("deploy-updating", deployment(updated=1), 2, W, "1 out of 3 new replicas"),
    ("deploy-old-pending", deployment(replicas=4), 2, W, "1 old replicas are pending"),
    ("deploy-unavailable", deployment(available=2), 2, W, "2 of 3 updated replicas"),
    ("deploy-scaled-to-zero", deployment(want=0, updated=0, replicas=0, available=0), 2, C,
     "successfully"),
    ("sts-complete", statefulset(), 2, C, "rolling update complete 3 pods at revision r2"),
    ("sts-not-observed", statefulset(observed=1), 0, W, "to be observed"),
    ("sts-not-ready", statefulset(ready=1), 2, W, "Waiting for 2 pods to be ready"),
    ("sts-revisions-differ", statefulset(current="r1"), 2, W, "at revision r2"),
    ("sts-partition-waiting", statefulset(partition=1, updated=1), 2, W, "1 out of 2 new pods"),
    ("sts-partition-done", statefulset(partition=1, updated=2, current="r1"), 2, C,
     "partitioned roll out complete"),
    ("sts-ondelete", statefulset(strategy="OnDelete"), 2, F, "updateStrategy OnDelete"),
    ("ds-complete", daemonset(), 2, C, 'daemon set "agent" successfully rolled out'),
    ("ds-not-observed", daemonset(observed=1), 0, W, "to be observed"),
    ("ds-updating", daemonset(updated=1), 2, W, "1 out of 2 new pods"),
    ("ds-unavailable", daemonset(available=1), 2, W, "1 of 2 updated pods"),
    ("ds-ondelete", daemonset(strategy="OnDelete"), 2, F, "updateStrategy OnDelete"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "generation", "progress", "words"),
    [pytest.param(o, g, p, w, id=i) for i, o, g, p, w in CASES],
)
def test_rollout_status_follows_kubectl(
    obj: dict[str, Any], generation: int, progress: Progress, words: str
) -> None:
    got = rollout_status(obj, min_generation=generation)
    assert got.progress is progress, got.message
    assert words in got.message
