"""The results endpoint: where each Job's sidecar uploads its JUnit XML (docs/design.md §4, §8).

    POST /v1/results/{namespace}/{job}
    Authorization: Bearer <the token from the Job's Secret>
    X-Greenloop-Job-Uid: <the Job's uid>
    X-Greenloop-Shard-Index: <the pod's completion index; an Indexed Job's uploads only>
    Content-Type: application/gzip
    <gzipped JUnit XML>

An upload is stored only when every check holds, in this order, and nothing is written
otherwise. First what costs nothing but a look, before the upload waits for anything or
reads a byte of body: a token is present, the body is declared gzip and not too long
(401, 415, 413); the Job exists, is greenloop's and has the uid the sidecar names (403 —
a Job deleted and re-made under the same name has a new uid); the token matches,
compared in constant time, the one in the Secret owned by that Job and bound to its uid
and iteration (403); its results are not stored yet (409 — a credential is spent once
they are); no other upload for that Job is in progress (429). So a flood of forged or
spent credentials costs lookups, never a slot.

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
import hmac
import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from greenloop.k8s import failpoints
from greenloop.k8s.gateway import ApiError, Conflict, Gateway
from greenloop.k8s.jobs import (
    ANNOTATION_VALIDATION,
    GZIP,
    LABEL_ITERATION,
    LABEL_MANAGED_BY,
    LABEL_ROUND,
    LABEL_SUITE,
    LABEL_VALIDATION_UID,
    MAX_COMPRESSED,
    SHARD_HEADER,
    TOKEN_KEY,
    UID_HEADER,
    names_of_job,
    shard_results_name,
)
from greenloop.k8s.metrics import UPLOADS_BY_CODE, upload_code
from greenloop.k8s.slots import Busy, FairSlots

__all__ = [
    "BODY_SECONDS",
    "MAX_COMPRESSED",
    "MAX_XML",
    "RESULTS_KEY",
    "Limits",
    "ResultsServer",
    "Stored",
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
    index: int | None = None  # the shard index of an Indexed Job's upload


class _Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _secret_value(secret: dict[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


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
    #: The checks against the API server (Job, Secret, stored results) together.
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
    index: int | None = None


def _shard_index(request: web.Request) -> int | None:
    """The shard index the upload names (docs/design.md §4.1); None: not sharded."""
    raw = request.headers.get(SHARD_HEADER, "").strip()
    if not raw:
        return None
    if not (raw.isdigit() and len(raw) <= 2):
        raise _Refused(400, f"{SHARD_HEADER} must be a shard index")
    return int(raw)


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
        self.slots = FairSlots(
            self.limits.slots,
            max_waiting=self.limits.max_waiting,
            wait_seconds=self.limits.wait_seconds,
        )
        #: Job uids with an upload past its checks: one at a time per Job.
        self._in_flight: set[str] = set()

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
        namespace, job_name, job_uid, token = self._credentials(request)
        index = _shard_index(request)
        try:
            async with asyncio.timeout(self.limits.check_seconds):
                checked = await self._authorize(namespace, job_name, job_uid, token, index)
                await self._refuse_if_stored(checked)
        except TimeoutError:
            raise _Refused(503, "cannot check the upload now, retry", RETRY_AFTER_SECONDS) from None
        flight = job_uid if index is None else f"{job_uid}/{index}"
        if flight in self._in_flight:
            raise _Refused(429, "an upload for this Job is in progress", RETRY_AFTER_SECONDS)
        self._in_flight.add(flight)
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
            self._in_flight.discard(flight)

    def _credentials(self, request: web.Request) -> tuple[str, str, str, str]:
        namespace, job_name = request.match_info["namespace"], request.match_info["job"]
        if not (_DNS.match(namespace) and _DNS.match(job_name)):
            raise _Refused(400, "namespace and job must be DNS labels")
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        job_uid = request.headers.get(UID_HEADER, "").strip()
        if not token or not job_uid:
            raise _Refused(401, f"missing bearer token or {UID_HEADER}")
        # A gzip *file* as the body, not a Content-Encoding: the HTTP layer would then
        # inflate it before the size checks below could count it.
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        if request.content_type != GZIP or encoding != "identity":
            raise _Refused(415, f"send the JUnit XML gzipped as Content-Type: {GZIP}")
        if (request.content_length or 0) > self.max_compressed:
            raise _Refused(413, f"body over {self.max_compressed} bytes")
        return namespace, job_name, job_uid, token

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

    async def _authorize(
        self, namespace: str, job_name: str, job_uid: str, token: str, index: int | None = None
    ) -> _Checked:
        forbidden = _Refused(403, "token not valid for this Job")
        job = await self.gateway.find("Job", namespace, job_name)
        if job is None:
            raise forbidden
        meta = job["metadata"]
        labels = meta.get("labels") or {}
        names = names_of_job(job)
        if (
            meta.get("uid") != job_uid
            or labels.get(LABEL_MANAGED_BY) != "greenloop"
            or names is None
            or not _index_of_job(job, index)
        ):
            raise forbidden
        iteration, suite = int(labels[LABEL_ITERATION]), str(labels[LABEL_SUITE])
        secret = await self.gateway.find("Secret", namespace, names.secret)
        if secret is None:
            raise forbidden
        owners = secret["metadata"].get("ownerReferences") or []
        bound = (
            any(o.get("kind") == "Job" and o.get("uid") == job_uid for o in owners)
            and _secret_value(secret, "job-uid") == job_uid
            and _secret_value(secret, "iteration") == str(iteration)
        )
        expected = _secret_value(secret, TOKEN_KEY)
        # Compare even when unbound, so timing says nothing about which check failed.
        same = hmac.compare_digest(token.encode(), expected.encode())
        if not (bound and expected and same):
            raise forbidden
        results = shard_results_name(names.results, index)
        return _Checked(namespace, job, job_uid, iteration, suite, results, index)

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
