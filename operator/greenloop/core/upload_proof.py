"""Which pod-token claims are accepted as an upload for which Job (docs/design.md §8).

A suite pod's results sidecar proves who it is with the pod's own bound ServiceAccount
token: a projected token with audience `greenloop.dev/results`, which the kubelet
requests for that pod and mounts into the sidecar alone. The results endpoint has the
API server review it (TokenReview) and then applies `upload_proof` here, the one rule:

- the review authenticated the token *for our audience* (a token meant for anything
  else - the API server, another service - proves nothing here);
- the user is a ServiceAccount of the upload's namespace and the token is bound to a
  pod (`authentication.kubernetes.io/pod-name`/`pod-uid`): a token minted for an
  account with no pod bound (TokenRequest, even with our audience) names no pod;
- that pod exists now with that uid, in that namespace, runs as that account, and its
  controller is the Job the upload names (owner uid = the Job's uid): a token of
  another pod, of another Job's pod, of a pod deleted and re-made under the same name,
  or of a Job re-made under the same name, is refused;
- the shard the upload is for is the one the pod's completion index says (0 when the
  Job is not Indexed); the sidecar does not get to say.

Nothing a tenant can read or mint is therefore accepted: the only tokens bound to a
Job's pod are the ones the kubelet (or an account allowed to mint tokens for the pod's
own ServiceAccount) requests for it.

`unverified_claims` is a look at a token before asking the API server anything: what
is not a JWT for our audience and not yet expired is refused without an API call, so
a flood of garbage costs no TokenReview. It decides nothing on its own - the signature
is only checked by the review.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUDIENCE",
    "COMPLETION_INDEX",
    "POD_NAME_EXTRA",
    "POD_UID_EXTRA",
    "Accepted",
    "PodClaims",
    "Refused",
    "claims_of_review",
    "token_precheck",
    "unverified_claims",
    "upload_proof",
]

AUDIENCE = "greenloop.dev/results"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_SA_PREFIX = "system:serviceaccount:"
#: A bound token is about 1 KiB; anything far longer is not one (and is not decoded).
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PodClaims:
    """What an authenticated review says: whose token it is and which pod it is bound to."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The upload is the Job's, for this shard index."""

    index: int


@dataclass(frozen=True, slots=True)
class Refused:
    """Why not: 401 (no valid pod token for our audience) or 403 (valid, not this Job's)."""

    status: int
    reason: str


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The JWT payload of `token`, signature NOT checked; None if it is not a JWT."""
    if len(token) > MAX_TOKEN_BYTES:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def token_precheck(token: str, now: float) -> Refused | float:
    """Refused, or the token's expiry (epoch seconds) when it may be worth a review: a
    JWT whose audience holds ours, bound to a pod, not expired."""
    claims = unverified_claims(token)
    if claims is None:
        return Refused(401, "not a pod token")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if AUDIENCE not in audiences:
        return Refused(401, f"not a token for {AUDIENCE}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        return Refused(401, "token expired")
    k8s = claims.get("kubernetes.io")
    if not (isinstance(k8s, dict) and isinstance(k8s.get("pod"), dict)):
        return Refused(401, "token not bound to a pod")
    return float(exp)


def _one(extra: Mapping[str, Any], key: str) -> str:
    values = extra.get(key)
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return ""


def claims_of_review(review: Mapping[str, Any]) -> PodClaims | Refused:
    """A TokenReview's answer as pod claims, or why it proves nothing."""
    status = review.get("status") or {}
    if status.get("authenticated") is not True:
        return Refused(401, "token not valid")
    audiences: Sequence[Any] = status.get("audiences") or ()
    if AUDIENCE not in audiences:
        return Refused(401, f"token not valid for {AUDIENCE}")
    user = status.get("user") or {}
    username = str(user.get("username", ""))
    account = username.removeprefix(_SA_PREFIX).split(":")
    if not username.startswith(_SA_PREFIX) or len(account) != 2 or not all(account):
        return Refused(401, "not a ServiceAccount's token")
    extra = user.get("extra") or {}
    pod_name, pod_uid = _one(extra, POD_NAME_EXTRA), _one(extra, POD_UID_EXTRA)
    if not (pod_name and pod_uid):
        return Refused(401, "token not bound to a pod")
    return PodClaims(account[0], account[1], pod_name, pod_uid)


def _controller_uid(meta: Mapping[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller") is True and ref.get("kind") == "Job":
            return str(ref.get("uid", ""))
    return ""


def _index(meta: Mapping[str, Any]) -> int | None:
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        return 0
    text = str(raw)
    return int(text) if text.isdigit() and len(text) <= 9 else None


def upload_proof(
    claims: PodClaims,
    namespace: str,
    job: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
) -> Accepted | Refused:
    """The rule: `claims` (a reviewed token) are accepted as an upload for `job` in
    `namespace` only from a pod that exists with the claimed uid, in that namespace,
    running as the claimed account, whose controller is that Job. `pod` is the pod the
    claims name, as read just now (None: not found)."""
    refused = Refused(403, "token not valid for this Job")
    job_meta = job.get("metadata") or {}
    if claims.namespace != namespace or job_meta.get("namespace") != namespace:
        return refused
    if pod is None:
        return refused
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    job_uid = str(job_meta.get("uid", ""))
    if not (
        meta.get("name") == claims.pod_name
        and meta.get("uid") == claims.pod_uid
        and meta.get("namespace") == namespace
        and spec.get("serviceAccountName", "default") == claims.service_account
        and job_uid
        and _controller_uid(meta) == job_uid
    ):
        return refused
    index = _index(meta)
    if index is None:
        return Refused(403, f"the pod's {COMPLETION_INDEX} is not an index")
    return Accepted(index)
