"""k8s.results.TokenReviews: who an upload's token is, with the API server's reviews
bounded - garbage never reviewed, an answer reused for the same token only within its
life and a minute, the cache bounded, a slow review cut (a stand-in gateway, no I/O)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from greenloop.core.upload_proof import AUDIENCE, PodClaims, Refused
from greenloop.k8s import results
from greenloop.k8s.results import TokenReviews

NOW = 1_800_000_000.0


def jwt(n: int, exp: float = NOW + 600) -> str:
    payload = {"aud": [AUDIENCE], "exp": exp, "n": n,
               "kubernetes.io": {"pod": {"name": "p", "uid": "u"}}}  # fmt: skip
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


class Reviewer:
    """Answers every review as the pod `p`'s token; counts them; may stall."""

    def __init__(self, stall: float = 0.0) -> None:
        self.reviews = 0
        self.stall = stall

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        assert (method, path) == ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
        assert kw["body"]["spec"]["audiences"] == [AUDIENCE]
        self.reviews += 1
        await asyncio.sleep(self.stall)
        user = {"username": "system:serviceaccount:ta:suite",
                "extra": {"authentication.kubernetes.io/pod-name": ["p"],
                          "authentication.kubernetes.io/pod-uid": ["u"]}}  # fmt: skip
        return {"status": {"authenticated": True, "audiences": [AUDIENCE], "user": user}}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def reviews(reviewer: Reviewer, clock: Clock) -> TokenReviews:
    return TokenReviews(reviewer, clock=clock)  # type: ignore[arg-type]


def test_garbage_costs_no_review_and_a_token_is_reviewed_once_within_a_minute() -> None:
    reviewer, clock = Reviewer(), Clock()
    tr = reviews(reviewer, clock)

    async def scenario() -> None:
        assert isinstance(await tr.claims("f" * 64), Refused)
        assert reviewer.reviews == 0
        claims = PodClaims("ta", "suite", "p", "u")
        assert await tr.claims(jwt(1)) == claims
        assert await tr.claims(jwt(1)) == claims
        assert reviewer.reviews == 1
        clock.now += results.REVIEW_CACHE_SECONDS + 1
        assert await tr.claims(jwt(1)) == claims
        assert reviewer.reviews == 2

    asyncio.run(scenario())


def test_an_answer_is_never_reused_past_the_tokens_expiry() -> None:
    reviewer, clock = Reviewer(), Clock()
    tr = reviews(reviewer, clock)
    token = jwt(1, exp=NOW + 5)

    async def scenario() -> None:
        assert isinstance(await tr.claims(token), PodClaims)
        clock.now += 6
        refused = await tr.claims(token)
        assert isinstance(refused, Refused) and refused.status == 401
        assert reviewer.reviews == 1

    asyncio.run(scenario())


def test_the_cache_holds_a_bounded_number_of_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "REVIEW_CACHE_SIZE", 3)
    reviewer, clock = Reviewer(), Clock()
    tr = reviews(reviewer, clock)

    async def scenario() -> None:
        for n in range(10):
            await tr.claims(jwt(n))
        assert len(tr._cache) == 3
        await tr.claims(jwt(0))  # evicted long ago: reviewed again
        assert reviewer.reviews == 11

    asyncio.run(scenario())


def test_a_review_that_does_not_answer_in_time_is_a_503_to_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(results, "REVIEW_SECONDS", 0.05)
    tr = reviews(Reviewer(stall=5.0), Clock())

    async def scenario() -> None:
        with pytest.raises(results._Refused) as refused:
            await tr.claims(jwt(1))
        assert refused.value.status == 503 and refused.value.retry_after is not None

    asyncio.run(scenario())
