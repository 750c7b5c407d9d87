"""Real bound ServiceAccount tokens for tests, from the API server itself (TokenRequest).

A kubelet's projected token is a TokenRequest bound to its pod; the API server issues
the same for any pod object, so on a control plane with no kubelet (kwok, or the API
server alone) a test holds exactly what a suite pod's sidecar would: `pod_token`. The
other helpers make what a hostile tenant could hold instead: a token for its own
account, with or without a pod, with or without our audience, and the forms no API
server would issue (`resigned`: an expired copy signed with the cluster's real key).
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from greenloop.core.upload_proof import AUDIENCE
from tools.cluster.controlplane import ControlPlane

__all__ = [
    "AUDIENCE",
    "ensure_account",
    "job_pod",
    "make_pod",
    "mint",
    "pod_for",
    "pod_token",
    "resigned",
]

#: The account a stand-in pod runs as (see `pod_for`).
STAND_IN_ACCOUNT = "greenloop-test-sidecar"


def ensure_account(cp: ControlPlane, namespace: str, name: str) -> None:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(account))


def _controller(job: dict[str, Any]) -> dict[str, Any]:
    """The owner reference the Job controller puts on its pods."""
    jm = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": jm["name"], "uid": jm["uid"],
            "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def make_pod(
    cp: ControlPlane,
    namespace: str,
    name: str,
    account: str,
    *,
    job: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod object (nothing runs it), owned by `job` as the Job controller's pods are."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    if job is not None:
        jm = job["metadata"]
        meta["labels"] = {"batch.kubernetes.io/controller-uid": jm["uid"]}
        meta["ownerReferences"] = [_controller(job)]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            "containers": [{"name": "suite", "image": "localhost/e2e:dev"}],
        },
    }
    made = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(pod))
    created: dict[str, Any] = json.loads(made.stdout)
    return created


def mint(
    cp: ControlPlane,
    namespace: str,
    account: str,
    *,
    pod: dict[str, Any] | None = None,
    audience: str | None = AUDIENCE,
) -> str:
    """`kubectl create token`: a TokenRequest for `account`, bound to `pod` if given.
    Raises KubectlError when the API server will not issue it."""
    args = ["create", "token", account, "-n", namespace, "--duration=10m"]
    if audience:
        args.append(f"--audience={audience}")
    if pod is not None:
        args += [
            "--bound-object-kind=Pod",
            f"--bound-object-name={pod['metadata']['name']}",
            f"--bound-object-uid={pod['metadata']['uid']}",
        ]
    return cp.kubectl(*args).stdout.strip()


def pod_token(cp: ControlPlane, pod: dict[str, Any]) -> str:
    """What the kubelet mounts into the pod's sidecar: its account's token, bound to it,
    for the results endpoint's audience."""
    meta = pod["metadata"]
    return mint(cp, meta["namespace"], pod["spec"].get("serviceAccountName", "default"), pod=pod)


def job_pod(pods: list[dict[str, Any]], job_uid: str) -> dict[str, Any] | None:
    """The pod the Job controller made for the Job with this uid, if any yet."""
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("controller") and ref.get("uid") == job_uid:
                return pod
    return None


def _exists(cp: ControlPlane, path: str) -> bool:
    code, _ = cp.get(path, timeout=20.0)
    return code == 200


def pod_for(
    cp: ControlPlane, namespace: str, job: dict[str, Any], pods: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The pod whose sidecar uploads for `job`: the one the Job controller made; or,
    when it never can (the kwok tests run Jobs as an account that does not exist, so
    that they stay active instead of finishing at once), a stand-in made here as the
    Job controller would have made it - owned by the Job, with its labels, so the Job
    controller adopts it - held Pending by a scheduling gate so nothing runs or
    finishes it. None while the Job controller may still make its own."""
    uid = job["metadata"]["uid"]
    found = job_pod(pods, uid)
    if found is not None:
        return found
    account = job["spec"]["template"]["spec"].get("serviceAccountName", "default")
    if _exists(cp, f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}"):
        return None
    name = f"{job['metadata']['name'][:50]}-stand-in"
    code, body = cp.get(f"/api/v1/namespaces/{namespace}/pods/{name}", timeout=20.0)
    if code == 200:
        pod: dict[str, Any] = json.loads(body)
        return pod if job_pod([pod], uid) else None
    if not _exists(cp, f"/api/v1/namespaces/{namespace}/serviceaccounts/{STAND_IN_ACCOUNT}"):
        ensure_account(cp, namespace, STAND_IN_ACCOUNT)
    labels = {
        **(job["spec"]["template"]["metadata"].get("labels") or {}),
        **((job["spec"].get("selector") or {}).get("matchLabels") or {}),
    }
    stand_in = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [_controller(job)],
        },
        "spec": {
            "serviceAccountName": STAND_IN_ACCOUNT,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "schedulingGates": [{"name": "greenloop.dev/test-stand-in"}],
            "containers": [{"name": "suite", "image": "localhost/e2e:dev"}],
        },
    }
    made = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(stand_in), check=False)
    if made.returncode != 0:
        return None  # made by a concurrent look, or the Job is going: try again later
    created: dict[str, Any] = json.loads(made.stdout)
    return created


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def resigned(token: str, key: Path, **claims: Any) -> str:
    """`token` with `claims` changed, signed RS256 with `key` (`openssl dgst`): with the
    cluster's own key, a token the API server would have signed but never issued."""
    head, payload, _ = token.split(".")
    body = {**json.loads(_unb64(payload)), **claims}
    signed = f"{head}.{_b64(json.dumps(body).encode())}"
    with tempfile.NamedTemporaryFile() as data:
        data.write(signed.encode())
        data.flush()
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(key), data.name],
            capture_output=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    return f"{signed}.{_b64(signature)}"
