"""`greenloop report upload`: the results sidecar's side of the upload (docs/design.md §4).

It runs beside the suite container as a native sidecar and waits; the kubelet sends it
SIGTERM once the suite container has exited, which is its cue. It then gzips the JUnit
XML and sends it to the results endpoint with the pod's own bound ServiceAccount token
(the projected file `upload_contract.TOKEN_PATH`, re-read on each attempt: the kubelet renews it,
and a retry near the deadline must not send a token that expired), retrying connection
errors, 5xx, 408 and 429 with full-jitter backoff (`core.admission.retry_delay`; an
endpoint's Retry-After is waited out first), and giving up at its deadline (which the
pod's terminationGracePeriodSeconds leaves room for). The deadline is sized for a burst
(`upload_contract.UPLOAD_DEADLINE_SECONDS`): a thousand suites ending within a minute queue at the
endpoint or are told to come back, and each comes back until it is stored. A 409 means
an earlier attempt of its own was stored and only the answer was lost: done.

It runs in every test pod, beside the suite starting on the same cores, so it imports the
standard library's ``http.client`` (one POST per attempt needs no more) and the upload
contract's constants, not httpx or the Job builder: ~0.3 s less CPU per pod
(tests/unit/test_pod_imports.py).
"""

from __future__ import annotations

import gzip
import http.client
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from greenloop.core.admission import retry_after_seconds, retry_delay
from greenloop.core.upload_proof import MAX_TOKEN_BYTES
from greenloop.k8s.upload_contract import (
    GZIP,
    MAX_COMPRESSED,
    TOKEN_PATH,
    UPLOAD_DEADLINE_SECONDS,
)

__all__ = ["Upload", "UploadResult", "upload", "wait_for_sigterm"]

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: The deadline is the real bound; the count only rules out a tight loop. It must not
#: end the retries first: at 8 attempts (backoff 0.5 s doubling to 8 s) a sidecar gave
#: up after ~32 s while a restarted operator took 32 s to answer, with 28 s left. Full
#: jitter draws some waits near 0, so the count is well above deadline / cap.
MAX_ATTEMPTS = 200
#: One attempt's bound: above the endpoint's queue wait (20 s) plus its store.
ATTEMPT_SECONDS = 45.0
#: Connecting is quick or not at all (a Service with no endpoint, an operator restarting).
CONNECT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Upload:
    file: Path
    url: str  # the endpoint's base URL, e.g. http://greenloop-results.greenloop:8081
    namespace: str
    job: str
    token_file: Path = Path(TOKEN_PATH)
    deadline_seconds: float = float(UPLOAD_DEADLINE_SECONDS)


@dataclass(frozen=True, slots=True)
class UploadResult:
    ok: bool
    message: str
    attempts: int


def wait_for_sigterm() -> None:
    """Block until SIGTERM (or SIGINT, for a person trying it)."""
    got = threading.Event()

    def handler(signum: int, frame: object) -> None:
        got.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not got.wait(1.0):
        pass


def _compress(path: Path) -> bytes:
    with path.open("rb") as src:
        return gzip.compress(src.read(), compresslevel=6, mtime=0)


def _token(path: Path) -> str:
    """The token as the kubelet last wrote it; "" when it cannot be read (bounded: a
    bound token is about 1 KiB)."""
    try:
        with path.open("rb") as src:
            return src.read(MAX_TOKEN_BYTES + 1).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def upload(job: Upload, *, log: IO[str] = sys.stderr) -> UploadResult:
    if not _token(job.token_file):
        return UploadResult(False, f"no token in {job.token_file}; nothing sent", 0)
    if not job.file.is_file():
        # The suite wrote nothing: the operator sees a Job without results (RunnerError).
        return UploadResult(False, f"{job.file} does not exist; nothing to upload", 0)
    body = _compress(job.file)
    if len(body) > MAX_COMPRESSED:
        return UploadResult(
            False, f"{job.file} is {len(body)} bytes gzipped, over {MAX_COMPRESSED}", 0
        )
    url = f"{job.url.rstrip('/')}/v1/results/{job.namespace}/{job.job}"
    return _send(job, url, body, log)


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, str, str | None]:
    """One POST: (status, the body's first 300 characters, Retry-After). A new
    connection each attempt (a retry follows a failure, when a kept one is suspect)."""
    parts = urlsplit(url)
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = factory(parts.netloc, timeout=min(CONNECT_SECONDS, timeout))
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(4096).decode("utf-8", "replace")[:300]
        return response.status, text, response.getheader("Retry-After")
    finally:
        conn.close()


def _send(job: Upload, url: str, body: bytes, log: IO[str]) -> UploadResult:
    deadline = time.monotonic() + job.deadline_seconds
    last = "not tried"
    tried = 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        tried = attempt
        retry_after = None
        headers = {"Authorization": f"Bearer {_token(job.token_file)}", "Content-Type": GZIP}
        try:
            status, text, retry = _post(url, body, headers, min(ATTEMPT_SECONDS, left))
        except (OSError, http.client.HTTPException) as err:
            # Refused, reset, DNS, a timeout (OSError), a malformed answer (HTTPException).
            last = f"{type(err).__name__}: {err}"
        else:
            if status == 200:
                return UploadResult(True, f"stored ({len(body)} bytes gzipped)", attempt)
            if status == 409 and attempt > 1:
                return UploadResult(True, "stored by an earlier attempt", attempt)
            last = f"HTTP {status}: {text}"
            if status not in RETRY_STATUS:
                return UploadResult(False, f"refused: {last}", attempt)
            retry_after = retry_after_seconds(retry, time.time())
        wait = retry_delay(attempt, random.random(), retry_after=retry_after)
        print(f"greenloop: upload attempt {attempt} failed ({last}); retrying", file=log)
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
    return UploadResult(False, f"gave up at the deadline; last answer: {last}", tried)
