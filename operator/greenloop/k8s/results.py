"""The results endpoint: where each Job's sidecar uploads its JUnit XML (docs/design.md §4, §8).

    POST /v1/results/{namespace}/{job}
    Authorization: Bearer <the pod's projected ServiceAccount token, audience greenloop.dev/results>
    (an Indexed Job's shard index is its pod's completion index, which the token proves)
    Content-Type: application/gzip
    <gzipped JUnit XML>

An upload is stored only when every check holds, in this order, and nothing is written
otherwise. First what costs nothing but a look, before the upload waits for anything or
reads a byte of body: a token is present, the body is declared gzip and not too long
(401, 415, 413); the token is a pod-bound JWT for our audience, not expired (401, no API
call); the API server's TokenReview authenticates it for our audience and names the pod
it is bound to (401; reviews are bounded: a timeout, a few at a time, and a small cache
keyed by the token's hash for at most a minute of its life); the Job is greenloop's and
that pod exists with that uid, runs as the token's account and is the Job's own pod
(403, `core.upload_proof`, which also says which shard index the pod proves); its
results are not stored yet (409 — a credential is spent once they are); no other upload
for that Job is in progress (429). So a flood of forged or spent credentials costs
lookups, never a slot.

Then the upload takes a slot (`slots.FairSlots`: 16, no namespace above half; beyond
them a bounded queue, and 503 with Retry-After beyond the queue) and must send its whole
body within `Limits.body_seconds` (408 otherwise: a trickle holds a slot for a bounded
time). The body must be complete gzip within both size caps, counted while it streams
so a gzip bomb costs no memory (413, 400). The results are then stored as a ConfigMap
owned by the Job, *before* the 200 — so "200" means "stored". An upload that raced past
the 409 check finds that ConfigMap at create and gets 409 too (the sidecar treats 409
after its own earlier attempt as done). A broken or cut upload stored nothing, so its
retry is simply a new upload. Every refusal closes the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from greenloop.core.upload_proof import (
    AUDIENCE,
    Accepted,
    PodClaims,
    Refused,
    claims_of_review,
    token_precheck,
    upload_proof,
)
from greenloop.k8s import failpoints
from greenloop.k8s.gateway import ApiError, Conflict, Gateway
from greenloop.k8s.jobs import (
    ANNOTATION_VALIDATION,
    LABEL_ITERATION,
    LABEL_MANAGED_BY,
    LABEL_ROUND,
    LABEL_SUITE,
    LABEL_VALIDATION_UID,
    names_of_job,
    shard_results_name,
)
from greenloop.k8s.metrics import UPLOADS_BY_CODE, upload_code
from greenloop.k8s.slots import Busy, FairSlots
from greenloop.k8s.upload_contract import GZIP, MAX_COMPRESSED

__all__ = [
    "BODY_SECONDS",
    "MAX_COMPRESSED",
    "MAX_XML",
    "RESULTS_KEY",
    "Limits",
    "ResultsServer",
    "Stored",
    "TokenReviews",
    "results_app",
]

log = logging.getLogger("greenloop.results")

#: The XML itself; counted while decompressing, never held in memory.
MAX_XML = 64 * 1024 * 1024
RESULTS_KEY = "junit.xml.gz"
MAX_CONCURRENT = 16
#: A burst of 1,000 suites ending within a minute waits here rather than being refused.
MAX_WAITING = 256
WAIT_SECONDS = 20.0
BODY_SECONDS = 30.0
CHECK_SECONDS = 15.0
#: What a refused-for-now sidecar is told; it adds its own jitter on top.
RETRY_AFTER_SECONDS = 2
#: TokenReview: one review's bound, how many at once, and how long (at most, and never
#: past the token's own expiry) an answer is reused for the same token.
REVIEW_SECONDS = 5.0
MAX_REVIEWS = 8
REVIEW_CACHE_SECONDS = 60.0
REFUSAL_CACHE_SECONDS = 10.0
REVIEW_CACHE_SIZE = 1024
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Stored:
    """One upload that was stored: what the operator's loop is told."""

    namespace: str
    job: str
    job_uid: str
    configmap: str
    validation: str
    validation_uid: str
    iteration: int
    suite: str
    xml_bytes: int
    #: The shard index of an Indexed Job's upload (its pod's completion index); None otherwise.
    index: int | None = None


class _Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _results_configmap(job: dict[str, Any], name: str, body: bytes) -> dict[str, Any]:
    meta = job["metadata"]
    labels = {
        k: v
        for k, v in (meta.get("labels") or {}).items()
        if k in (LABEL_MANAGED_BY, LABEL_VALIDATION_UID, LABEL_ROUND, LABEL_ITERATION, LABEL_SUITE)
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**labels, "greenloop.dev/results": "junit"},
            "annotations": {"greenloop.dev/job": meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "binaryData": {RESULTS_KEY: base64.b64encode(body).decode()},
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """How the endpoint bounds its work (docs/design.md §8); `greenloop operator` takes
    the defaults, tests shrink them."""

    #: Uploads whose bodies are read and stored at once (memory: slots x max_compressed).
    slots: int = MAX_CONCURRENT
    #: Authenticated uploads that may wait for a slot, and how long each may wait.
    max_waiting: int = MAX_WAITING
    wait_seconds: float = WAIT_SECONDS
    #: The whole body must arrive within this, once the upload holds a slot: a body that
    #: trickles (slowloris) is cut with 408 and its slot freed.
    body_seconds: float = BODY_SECONDS
    #: The checks against the API server (TokenReview, Job, pod, stored results) together.
    check_seconds: float = CHECK_SECONDS


@dataclass(frozen=True, slots=True)
class _Checked:
    """An upload whose credentials held: the Job, and where it goes."""

    namespace: str
    job: dict[str, Any]
    job_uid: str
    iteration: int
    suite: str
    results: str
    index: int | None


def _index_of_job(job: dict[str, Any], index: int | None) -> bool:
    """Whether ``index`` is one this Job has: an Indexed Job's uploads each name an index
    below its completions; any other Job's name none."""
    spec = job.get("spec") or {}
    if spec.get("completionMode") != "Indexed":
        return index is None
    completions = spec.get("completions")
    return index is not None and isinstance(completions, int) and index < completions


def _answer_of(refused: _Refused) -> web.Response:
    response = web.json_response({"error": refused.message}, status=refused.status)
    if refused.retry_after is not None:
        response.headers["Retry-After"] = str(refused.retry_after)
    # The body may be unread (refused before it) or half read: never reuse the connection.
    response.force_close()
    return response


class TokenReviews:
    """Who a token is, as the API server says (TokenReview for our audience), bounded:
    each review within `REVIEW_SECONDS`, at most `MAX_REVIEWS` at once, and an answer
    reused for the same token (by its SHA-256, never the token itself) for at most
    `REVIEW_CACHE_SECONDS` and never past the token's expiry; a refusal for
    `REFUSAL_CACHE_SECONDS`. The cache holds `REVIEW_CACHE_SIZE` answers, oldest out."""

    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] = time.time) -> None:
        self.gateway = gateway
        self.clock = clock
        self._reviews = asyncio.Semaphore(MAX_REVIEWS)
        self._cache: OrderedDict[str, tuple[float, PodClaims | Refused]] = OrderedDict()

    async def claims(self, token: str) -> PodClaims | Refused:
        now = self.clock()
        expiry = token_precheck(token, now)
        if isinstance(expiry, Refused):
            return expiry
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._reviews:
            try:
                async with asyncio.timeout(REVIEW_SECONDS):
                    review = await self.gateway.request(
                        "POST",
                        "/apis/authentication.k8s.io/v1/tokenreviews",
                        body={
                            "apiVersion": "authentication.k8s.io/v1",
                            "kind": "TokenReview",
                            "spec": {"token": token, "audiences": [AUDIENCE]},
                        },
                    )
            except TimeoutError:
                raise _Refused(
                    503, "cannot check the token now, retry", RETRY_AFTER_SECONDS
                ) from None
        answer = claims_of_review(review)
        keep = REFUSAL_CACHE_SECONDS if isinstance(answer, Refused) else REVIEW_CACHE_SECONDS
        self._cache[key] = (min(now + keep, expiry), answer)
        self._cache.move_to_end(key)
        while len(self._cache) > REVIEW_CACHE_SIZE:
            self._cache.popitem(last=False)
        return answer


class ResultsServer:
    """Checks and stores uploads; `on_stored` is awaited after each stored upload."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        on_stored: Callable[[Stored], Awaitable[None]] | None = None,
        max_compressed: int = MAX_COMPRESSED,
        max_xml: int = MAX_XML,
        limits: Limits | None = None,
    ) -> None:
        self.gateway = gateway
        self.on_stored = on_stored
        self.max_compressed = max_compressed
        self.max_xml = max_xml
        self.limits = limits or Limits()
        self.reviews = TokenReviews(gateway)
        self.slots = FairSlots(
            self.limits.slots,
            max_waiting=self.limits.max_waiting,
            wait_seconds=self.limits.wait_seconds,
        )
        #: (Job uid, shard index) with an upload past its checks: one at a time each.
        self._in_flight: set[tuple[str, int | None]] = set()

    async def handle(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        UPLOADS_BY_CODE.labels(upload_code(response.status)).inc()
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            stored = await self._accept(request)
        except _Refused as refused:
            log.info("upload refused (%s): %s", refused.status, refused.message)
            return _answer_of(refused)
        except ApiError as err:
            log.warning("upload not stored: the API server answered %s", err)
            return _answer_of(_Refused(503, "cannot store now, retry", RETRY_AFTER_SECONDS))
        if self.on_stored is not None:
            try:
                await self.on_stored(stored)
            except Exception:  # the upload is stored; the loop re-reads it on its own tick
                log.exception("after storing %s/%s", stored.namespace, stored.job)
        return web.json_response({"stored": stored.configmap}, status=200)

    async def _accept(self, request: web.Request) -> Stored:
        """Every refusal that costs nothing but a look (headers, the credential, results
        already stored) comes before the upload takes a slot or reads a byte of body."""
        namespace, job_name, token = self._credentials(request)
        try:
            async with asyncio.timeout(self.limits.check_seconds):
                checked = await self._authorize(namespace, job_name, token)
                await self._refuse_if_stored(checked)
        except TimeoutError:
            raise _Refused(503, "cannot check the upload now, retry", RETRY_AFTER_SECONDS) from None
        shard = (checked.job_uid, checked.index)
        if shard in self._in_flight:
            raise _Refused(429, "an upload for this Job is in progress", RETRY_AFTER_SECONDS)
        self._in_flight.add(shard)
        try:
            try:
                await self.slots.acquire(namespace)
            except Busy as busy:
                raise _Refused(503, f"busy: {busy}; retry", RETRY_AFTER_SECONDS) from None
            try:
                return await self._read_and_store(request, checked)
            finally:
                self.slots.release(namespace)
        finally:
            self._in_flight.discard(shard)

    def _credentials(self, request: web.Request) -> tuple[str, str, str]:
        namespace, job_name = request.match_info["namespace"], request.match_info["job"]
        if not (_DNS.match(namespace) and _DNS.match(job_name)):
            raise _Refused(400, "namespace and job must be DNS labels")
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not token:
            raise _Refused(401, "missing bearer token")
        # A gzip *file* as the body, not a Content-Encoding: the HTTP layer would then
        # inflate it before the size checks below could count it.
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        if request.content_type != GZIP or encoding != "identity":
            raise _Refused(415, f"send the JUnit XML gzipped as Content-Type: {GZIP}")
        if (request.content_length or 0) > self.max_compressed:
            raise _Refused(413, f"body over {self.max_compressed} bytes")
        return namespace, job_name, token

    async def _refuse_if_stored(self, checked: _Checked) -> None:
        """A credential is spent once its results are stored: 409 before any body."""
        stored = await self.gateway.find("ConfigMap", checked.namespace, checked.results)
        if stored is not None:
            raise _Refused(409, "results for this Job are already stored")

    async def _read_and_store(self, request: web.Request, checked: _Checked) -> Stored:
        try:
            async with asyncio.timeout(self.limits.body_seconds):
                body, xml_bytes = await self._read(request)
        except TimeoutError:
            raise _Refused(
                408, f"the body did not arrive within {self.limits.body_seconds:g} s"
            ) from None
        meta = checked.job["metadata"]
        labels = meta.get("labels") or {}
        try:
            await self.gateway.create(_results_configmap(checked.job, checked.results, body))
        except Conflict:
            raise _Refused(409, "results for this Job are already stored") from None
        failpoints.hit("results-stored")  # stored, not answered: the sidecar retries
        return Stored(
            namespace=checked.namespace,
            job=meta["name"],
            job_uid=checked.job_uid,
            configmap=checked.results,
            validation=(meta.get("annotations") or {}).get(ANNOTATION_VALIDATION, ""),
            validation_uid=labels.get(LABEL_VALIDATION_UID, ""),
            iteration=checked.iteration,
            suite=checked.suite,
            xml_bytes=xml_bytes,
            index=checked.index,
        )

    async def _authorize(self, namespace: str, job_name: str, token: str) -> _Checked:
        """The token's claims (TokenReview), then `core.upload_proof` against the Job
        the upload names and the pod the claims name, both read now."""
        claims = await self.reviews.claims(token)
        if isinstance(claims, Refused):
            raise _Refused(claims.status, claims.reason)
        forbidden = _Refused(403, "token not valid for this Job")
        if claims.namespace != namespace:
            raise forbidden
        job = await self.gateway.find("Job", namespace, job_name)
        if job is None:
            raise forbidden
        meta = job["metadata"]
        labels = meta.get("labels") or {}
        names = names_of_job(job)
        if labels.get(LABEL_MANAGED_BY) != "greenloop" or names is None:
            raise forbidden
        pod = await self.gateway.find("Pod", namespace, claims.pod_name)
        proof = upload_proof(claims, namespace, job, pod)
        if not isinstance(proof, Accepted):
            raise _Refused(proof.status, proof.reason)
        # The pod's completion index is the shard it uploads for; a Job that is not
        # Indexed has one upload, stored under the run's own results name.
        indexed = (job.get("spec") or {}).get("completionMode") == "Indexed"
        index = proof.index if indexed else None
        if not _index_of_job(job, index):
            raise forbidden
        iteration, suite = int(labels[LABEL_ITERATION]), str(labels[LABEL_SUITE])
        results = shard_results_name(names.results, index)
        return _Checked(namespace, job, str(meta["uid"]), iteration, suite, results, index)

    async def _read(self, request: web.Request) -> tuple[bytes, int]:
        """The complete gzip body (≤ max_compressed) and the size of the XML inside
        (≤ max_xml), decompressed in bounded pieces and thrown away as it is counted."""
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        body = bytearray()
        xml_bytes = 0
        while True:
            chunk = await request.content.read(_CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > self.max_compressed:
                raise _Refused(413, f"body over {self.max_compressed} bytes")
            data = chunk
            while data and not inflater.eof:
                try:
                    out = inflater.decompress(data, _CHUNK)
                except zlib.error as err:
                    raise _Refused(400, f"not gzip: {err}") from None
                xml_bytes += len(out)
                if xml_bytes > self.max_xml:
                    raise _Refused(413, f"JUnit XML over {self.max_xml} bytes once unpacked")
                data = inflater.unconsumed_tail
        if not inflater.eof:
            raise _Refused(400, "incomplete gzip stream; send the whole file again")
        if not xml_bytes:
            raise _Refused(400, "empty JUnit XML")
        return bytes(body), xml_bytes


def results_app(server: ResultsServer) -> web.Application:
    # client_max_size bounds aiohttp's own buffering; the handler streams and caps itself.
    app = web.Application(client_max_size=MAX_COMPRESSED + 1024)
    app.router.add_post("/v1/results/{namespace}/{job}", server.handle)
    app.router.add_get("/healthz", _healthz)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")
