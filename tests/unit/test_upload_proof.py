"""core.upload_proof: which pod-token claims are accepted as an upload for which Job."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from greenloop.core.upload_proof import (
    AUDIENCE,
    Accepted,
    PodClaims,
    Refused,
    claims_of_review,
    token_precheck,
    upload_proof,
)

NS = "ta"
JOB_UID = "11111111-0000-4000-8000-000000000001"
POD_UID = "22222222-0000-4000-8000-000000000002"
NOW = 1_800_000_000.0


def job() -> dict[str, Any]:
    return {"metadata": {"name": "checkout-1-core-x", "namespace": NS, "uid": JOB_UID}}


def pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "checkout-1-core-x-abcde",
            "namespace": NS,
            "uid": POD_UID,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "checkout-1-core-x",
                    "uid": JOB_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                },
            ],
        },
        "spec": {"serviceAccountName": "tests"},
    }


def claims(**changes: str) -> PodClaims:
    fields = {"namespace": NS, "service_account": "tests",
              "pod_name": "checkout-1-core-x-abcde", "pod_uid": POD_UID}  # fmt: skip
    return PodClaims(**{**fields, **changes})


def edited(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    p = copy.deepcopy(pod())
    change(p)
    return p


def test_the_jobs_own_pod_is_accepted_as_shard_zero() -> None:
    assert upload_proof(claims(), NS, job(), pod()) == Accepted(0)


def test_the_shard_is_the_pods_completion_index() -> None:
    indexed = edited(
        lambda p: p["metadata"].update(
            annotations={"batch.kubernetes.io/job-completion-index": "3"}
        )
    )
    assert upload_proof(claims(), NS, job(), indexed) == Accepted(3)
    bad = edited(
        lambda p: p["metadata"].update(
            annotations={"batch.kubernetes.io/job-completion-index": "-1"}
        )
    )
    assert isinstance(upload_proof(claims(), NS, job(), bad), Refused)


OTHER_UID = "33333333-0000-4000-8000-000000000003"
REFUSED: list[tuple[str, PodClaims, Callable[[dict[str, Any]], None] | None]] = [
    # (id, claims, how the pod read now differs; None: no such pod)
    ("pod-gone", claims(), None),
    ("pod-remade-same-name", claims(), lambda p: p["metadata"].update(uid=OTHER_UID)),
    ("claims-name-another-pod", claims(pod_name="other-pod"), lambda p: None),
    ("pod-of-another-job", claims(),
     lambda p: p["metadata"]["ownerReferences"][0].update(uid=OTHER_UID)),
    ("owner-not-controller", claims(),
     lambda p: p["metadata"]["ownerReferences"][0].update(controller=False)),
    ("owner-not-a-job", claims(),
     lambda p: p["metadata"]["ownerReferences"][0].update(kind="ReplicaSet")),
    ("no-owner", claims(), lambda p: p["metadata"].pop("ownerReferences")),
    ("token-of-another-namespace", claims(namespace="tb"), lambda p: None),
    ("pod-in-another-namespace", claims(), lambda p: p["metadata"].update(namespace="tb")),
    ("token-of-another-account", claims(service_account="tenant"), lambda p: None),
]  # fmt: skip


@pytest.mark.parametrize(("who", "change"), [pytest.param(c, ch, id=i) for i, c, ch in REFUSED])
def test_anything_but_the_jobs_own_pod_is_refused(
    who: PodClaims, change: Callable[[dict[str, Any]], None] | None
) -> None:
    now = None if change is None else edited(change)
    assert upload_proof(who, NS, job(), now) == Refused(403, "token not valid for this Job")


def test_a_job_of_another_namespace_is_refused() -> None:
    other = job()
    other["metadata"]["namespace"] = "tb"
    assert isinstance(upload_proof(claims(), NS, other, pod()), Refused)


def review(**status: Any) -> dict[str, Any]:
    user = {
        "username": "system:serviceaccount:ta:tests",
        "extra": {
            "authentication.kubernetes.io/pod-name": ["checkout-1-core-x-abcde"],
            "authentication.kubernetes.io/pod-uid": [POD_UID],
        },
    }
    base = {"authenticated": True, "audiences": [AUDIENCE], "user": user}
    return {"status": {**base, **status}}


def test_a_reviewed_pod_token_gives_its_account_and_pod() -> None:
    assert claims_of_review(review()) == claims()


REVIEWS = [
    ("not-authenticated", review(authenticated=False)),
    ("error", {"status": {"error": "invalid bearer token"}}),
    ("other-audience", review(audiences=["https://kubernetes.default.svc"])),
    ("a-user-not-an-account", review(user={"username": "alice", "extra": {}})),
    ("account-bound-to-no-pod", review(user={"username": "system:serviceaccount:ta:tenant"})),
    ("two-pod-names", review(user={
        "username": "system:serviceaccount:ta:tests",
        "extra": {"authentication.kubernetes.io/pod-name": ["a", "b"],
                  "authentication.kubernetes.io/pod-uid": [POD_UID]}})),
]  # fmt: skip


@pytest.mark.parametrize("answer", [pytest.param(r, id=i) for i, r in REVIEWS])
def test_a_review_that_names_no_pod_for_our_audience_proves_nothing(answer: dict[str, Any]) -> None:
    refused = claims_of_review(answer)
    assert isinstance(refused, Refused) and refused.status == 401


def jwt(payload: dict[str, Any]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2ln"


BOUND = {"aud": [AUDIENCE], "exp": NOW + 600, "kubernetes.io": {"pod": {"name": "p", "uid": "u"}}}
PRECHECKS = [
    ("not-a-jwt", "f" * 64),
    ("garbage-payload", "a.!!!.c"),
    ("other-audience", jwt({**BOUND, "aud": ["https://kubernetes.default.svc"]})),
    ("expired", jwt({**BOUND, "exp": NOW - 1})),
    ("no-expiry", jwt({k: v for k, v in BOUND.items() if k != "exp"})),
    ("bound-to-no-pod", jwt({**BOUND, "kubernetes.io": {"namespace": NS}})),
    ("huge", jwt({**BOUND, "pad": "x" * 20_000})),
]


@pytest.mark.parametrize("token", [pytest.param(t, id=i) for i, t in PRECHECKS])
def test_what_cannot_be_a_pod_token_for_us_costs_no_review(token: str) -> None:
    refused = token_precheck(token, NOW)
    assert isinstance(refused, Refused) and refused.status == 401


def test_a_token_that_may_be_one_is_reviewed_until_its_expiry() -> None:
    assert token_precheck(jwt(BOUND), NOW) == NOW + 600
    assert token_precheck(jwt({**BOUND, "aud": AUDIENCE}), NOW) == NOW + 600
