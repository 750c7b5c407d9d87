"""The results endpoint under a hostile or bursty load (issue 19 item 7, issue 17).

Each test reproduces a measured finding: a flood of bogus tokens, slow connections
(slowloris) with a real or spent credential, one namespace holding every slot, and a
burst beyond the slots. In each, a real upload must be stored on its first attempt.
Every request loop is bounded in count and time; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from greenloop.k8s.results import Limits
from tests.integration.test_results_endpoint import XML, Made, make_job, post, stored_results
from tests.support.results_endpoint import Endpoint, serve_results
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration

BODY = gzip.compress(XML)
FLOOD_WORKERS = 64
FLOOD_REQUESTS = 20  # per worker
FLOOD_SECONDS = 30.0  # after the real upload's answer
ANSWER_SECONDS = 10.0


@pytest.fixture
def endpoint(apiserver: ControlPlane) -> Iterator[Endpoint]:
    with serve_results(apiserver.kubeconfig) as ep:
        yield ep


@pytest.fixture
def second_namespace(apiserver: ControlPlane) -> Iterator[str]:
    name = f"t-fair-other-{uuid.uuid4().hex[:6]}"
    apiserver.create_namespace(name)
    yield name
    apiserver.kubectl("delete", "namespace", name, "--wait=false", check=False)


def slow_upload(ep: Endpoint, made: Made, *, sent: int = 20) -> socket.socket:
    """A connection that sends its headers and `sent` bytes of a 5,000-byte body, then
    nothing: what a slowloris client (or a stalled sidecar) looks like."""
    host, port = ep.url.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=ANSWER_SECONDS)
    head = (
        f"POST /v1/results/{made.run.owner.namespace}/{made.run.job_name} HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {made.token}\r\n"
        "Content-Type: application/gzip\r\n"
        "Content-Length: 5000\r\n\r\n"
    )
    raw.sendall(head.encode() + BODY[:sent])
    return raw


def status_of(raw: socket.socket) -> int:
    """The status code the endpoint answered on a raw connection (times out if none)."""
    line = raw.recv(4096).split(b"\r\n", 1)[0]
    return int(line.split()[1])


async def _flood(ep: Endpoint, made: Made, intruder: Made, stop: asyncio.Event) -> Counter[int]:
    """Bogus uploads from FLOOD_WORKERS clients, FLOOD_REQUESTS each at most, for a real
    Job or one that does not exist: a forged token, or a real pod token of another Job."""
    codes: Counter[int] = Counter()
    ns = made.run.owner.namespace

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        for i in range(FLOOD_REQUESTS):
            if stop.is_set():
                return
            job = made.run.job_name if (n + i) % 2 else f"no-such-{n}-{i}"
            token = uuid.uuid4().hex if (n + i) % 3 else intruder.token
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"}
            url = f"{ep.url}/v1/results/{ns}/{job}"
            response = await client.post(url, content=BODY, headers=headers)
            codes[response.status_code] += 1

    limits = httpx.Limits(max_connections=FLOOD_WORKERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client, n) for n in range(FLOOD_WORKERS)))
    return codes


def test_a_flood_of_bogus_tokens_takes_no_slot_and_a_real_upload_is_stored_first_time(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint
) -> None:
    victim = make_job(apiserver, namespace, "core")
    real = make_job(apiserver, namespace, "critical")
    intruder = make_job(apiserver, namespace, "intruder")

    async def scenario() -> tuple[Counter[int], int]:
        stop = asyncio.Event()
        flood = asyncio.create_task(_flood(endpoint, victim, intruder, stop))
        await asyncio.sleep(0.5)  # the flood is under way
        async with httpx.AsyncClient(timeout=ANSWER_SECONDS) as client:
            headers = {"Authorization": f"Bearer {real.token}", "Content-Type": "application/gzip"}
            url = f"{endpoint.url}/v1/results/{namespace}/{real.run.job_name}"
            answer = await client.post(url, content=BODY, headers=headers)
        try:
            async with asyncio.timeout(FLOOD_SECONDS):
                return await asyncio.shield(flood), answer.status_code
        except TimeoutError:
            stop.set()  # bounded in time as well as in count
            return await flood, answer.status_code

    async def bounded() -> tuple[Counter[int], int]:
        async with asyncio.timeout(120):
            return await scenario()

    codes, real_status = asyncio.run(bounded())
    print(f"flood answers: {dict(codes)}")
    assert real_status == 200, codes
    # never "busy": a refusal waits for no slot (401: no pod token; 403: not this Job's)
    assert set(codes) == {401, 403}, codes
    (cm,) = stored_results(apiserver, namespace)
    assert cm["metadata"]["name"] == real.run.results_name


def test_slow_connections_with_a_spent_token_are_refused_409_before_any_body(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint
) -> None:
    spent = make_job(apiserver, namespace, "core")
    assert post(endpoint, spent, BODY).status_code == 200
    real = make_job(apiserver, namespace, "critical")
    with ExitStack() as stack:
        slow = [stack.enter_context(slow_upload(endpoint, spent)) for _ in range(16)]
        assert post(endpoint, real, BODY).status_code == 200
        assert [status_of(raw) for raw in slow] == [409] * 16
    assert len(stored_results(apiserver, namespace)) == 2


def test_one_namespace_holding_slots_with_slow_bodies_cannot_keep_another_out(
    apiserver: ControlPlane, namespace: str, second_namespace: str, endpoint: Endpoint
) -> None:
    """16 slow uploads with 16 valid tokens in one namespace: at most half the slots are
    theirs, so another namespace's upload is stored at once."""
    tenant = [make_job(apiserver, namespace, f"s{i}") for i in range(16)]
    other = make_job(apiserver, second_namespace, "core")
    with ExitStack() as stack:
        for made in tenant:
            stack.enter_context(slow_upload(endpoint, made))
        answer = post(endpoint, other, BODY)
        assert answer.status_code == 200, answer.text
    assert stored_results(apiserver, namespace) == []
    assert len(stored_results(apiserver, second_namespace)) == 1


def test_a_body_that_trickles_is_cut_with_408_and_its_credential_is_one_upload_at_a_time(
    apiserver: ControlPlane, namespace: str
) -> None:
    limits = Limits(slots=1, body_seconds=2.0)
    with serve_results(apiserver.kubeconfig, limits) as ep:
        slow = make_job(apiserver, namespace, "core")
        waiting = make_job(apiserver, namespace, "critical")
        with slow_upload(ep, slow) as trickle:
            second = post(ep, slow, BODY)  # the same credential while the first runs
            assert second.status_code == 429 and second.headers["Retry-After"] == "2"
            # The one slot is the trickle's until it is cut; this upload waits for it.
            assert post(ep, waiting, BODY).status_code == 200
            assert status_of(trickle) == 408
        # Cut, not spent: the sidecar's retry is a new upload.
        assert post(ep, slow, BODY).status_code == 200
    assert len(stored_results(apiserver, namespace)) == 2


def test_beyond_the_slots_an_upload_waits_its_turn_and_beyond_the_queue_is_told_when_to_retry(
    apiserver: ControlPlane, namespace: str
) -> None:
    limits = Limits(slots=1, max_waiting=1, wait_seconds=20.0, body_seconds=30.0)
    with serve_results(apiserver.kubeconfig, limits) as ep:
        first, queued, refused = (make_job(apiserver, namespace, s) for s in ("a", "b", "c"))

        async def scenario() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:

                async def send(made: Made, after: float) -> int:
                    await asyncio.sleep(after)
                    headers = {
                        "Authorization": f"Bearer {made.token}",
                        "Content-Type": "application/gzip",
                    }
                    url = f"{ep.url}/v1/results/{namespace}/{made.run.job_name}"
                    answer = await client.post(url, content=BODY, headers=headers)
                    if answer.status_code == 503:
                        assert answer.headers["Retry-After"] == "2"
                    return answer.status_code

                loop = asyncio.get_running_loop()
                with slow_upload(ep, first, sent=len(BODY) // 2) as holder:
                    holder.setblocking(False)
                    tasks = [
                        asyncio.create_task(send(queued, 0.3)),
                        asyncio.create_task(send(refused, 0.8)),
                    ]
                    late = await tasks[1]  # the queue (1) is full: told to come back
                    await asyncio.sleep(0.5)
                    rest = BODY[len(BODY) // 2 :] + b"\0" * (5000 - len(BODY))
                    await loop.sock_sendall(holder, rest)
                    return [late, await tasks[0]]

        async def bounded() -> list[int]:
            async with asyncio.timeout(60):
                return await scenario()

        assert asyncio.run(bounded()) == [503, 200]
