"""Uploads to the results endpoint, checked against the real API server.

The endpoint runs in this process (as it does inside `greenloop operator`); the Jobs,
their pods and the stored results are real objects, and every token is a real one
the API server issued (TokenRequest; bound to a pod object exactly as a kubelet's
projected token is) or signed with its own key. Every refused upload must leave no
results ConfigMap behind; a good one, sent by the real `greenloop report upload`
command with its pod's token, is stored owned by its Job before the 200.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from greenloop.core.model import Suite
from greenloop.core.shards import Shard
from greenloop.k8s.jobs import SuiteJob, build_job
from tests.support.owners import make_owner
from tests.support.pod_tokens import ensure_account, make_pod, mint, pod_token, resigned
from tests.support.results_endpoint import Endpoint, serve_results
from tools.cluster.client import KubectlError
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration

XML = b'<testsuite name="s" tests="1"><testcase classname="t" name="ok"/></testsuite>\n'
ACCOUNT = "suite"  # the account the suite pods run as
TENANT = "tenant"  # an account of the same namespace a tenant may mint tokens for


@pytest.fixture
def endpoint(apiserver: ControlPlane) -> Iterator[Endpoint]:
    with serve_results(apiserver.kubeconfig) as ep:
        yield ep


@dataclass
class Made:
    run: SuiteJob
    uid: str
    pod: dict[str, Any]
    token: str  # the pod's own token, as its kubelet would mount it for the sidecar


def make_job(
    cp: ControlPlane, namespace: str, suite: str, *, iteration: int = 1, shards: int = 0
) -> Made:
    """A greenloop Job (an Indexed one of `shards` shards when given) and the pod its
    controller would make (nothing runs either)."""
    run = SuiteJob(
        owner=make_owner(cp, namespace, f"checkout-{suite}"),
        iteration=iteration,
        suite=Suite(name=suite, command=("pytest",), image="localhost/e2e:dev"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://unused",
        service_account=ACCOUNT,
        shards=tuple(Shard(index=i, count=shards) for i in range(shards)),
        max_pods=max(shards, 1),
    )
    ensure_account(cp, namespace, ACCOUNT)
    created = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(build_job(run)))
    job = json.loads(created.stdout)
    pod = make_pod(cp, namespace, f"{run.job_name[:50]}-pod", ACCOUNT, job=job)
    return Made(run, job["metadata"]["uid"], pod, pod_token(cp, pod))


def stored_results(cp: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cp.get_json(
        "configmaps", "-n", namespace, "-l", "greenloop.dev/results"
    )["items"]
    return items


def post(
    ep: Endpoint,
    made: Made,
    body: bytes,
    *,
    token: str | None = None,
    job: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/gzip"}
    if token != "":
        headers["Authorization"] = f"Bearer {made.token if token is None else token}"
    url = f"{ep.url}/v1/results/{made.run.owner.namespace}/{job or made.run.job_name}"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def bomb(size: int) -> bytes:
    """`size` bytes of zeros, gzipped: a few KiB that unpack far past the cap."""
    return gzip.compress(b"\0" * size, compresslevel=9)


def sa_key(cp: ControlPlane) -> Path:
    """The key the API server signs ServiceAccount tokens with."""
    return cp.pki.dir / "service-account.key"


def tenants_own_pod(cp: ControlPlane, m: Made) -> dict[str, Any]:
    ensure_account(cp, m.run.owner.namespace, TENANT)
    return make_pod(cp, m.run.owner.namespace, "tenant-pod", TENANT)


def job_remade(cp: ControlPlane, m: Made) -> str:
    """The Job deleted and made again under its name (its old pod stays until a garbage
    collector, if one runs, removes it): the old pod's token is not the new Job's."""
    ns = m.run.owner.namespace
    cp.kubectl("delete", "job", m.run.job_name, "-n", ns, "--cascade=background", "--wait=false")
    cp.kubectl("wait", "--for=delete", f"job/{m.run.job_name}", "-n", ns, "--timeout=60s")
    cp.kubectl("create", "-f", "-", input=json.dumps(build_job(m.run)))
    return m.token


def a_key_of_its_own(cp: ControlPlane, m: Made, tmp: Path) -> str:
    key = tmp / "forger.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return resigned(m.token, key)


def expired(cp: ControlPlane, m: Made) -> str:
    """The pod's own token, signed by the cluster's key, but expired a minute ago."""
    now = int(time.time())
    return resigned(m.token, sa_key(cp), iat=now - 700, nbf=now - 700, exp=now - 60)


Forge = Callable[[ControlPlane, Made, Made, Path], dict[str, Any]]
CASES: list[tuple[str, Forge, int]] = [
    # (id, what the attacker sends, expected status): each a token a tenant could hold
    ("not-a-token", lambda cp, m, o, t: dict(token="f" * 64), 401),
    ("missing-token", lambda cp, m, o, t: dict(token=""), 401),
    ("token-of-a-pod-of-another-job", lambda cp, m, o, t: dict(token=o.token), 403),
    ("token-of-another-pod-same-account",
     lambda cp, m, o, t: dict(token=pod_token(cp, make_pod(
         cp, m.run.owner.namespace, "not-the-jobs", ACCOUNT))), 403),
    ("the-jobs-pod-without-the-audience",
     lambda cp, m, o, t: dict(token=mint(cp, m.run.owner.namespace, ACCOUNT, pod=m.pod,
                                         audience=None)), 401),
    ("tenants-own-account-with-the-audience-no-pod",
     lambda cp, m, o, t: dict(token=mint(cp, m.run.owner.namespace, TENANT)), 401),
    ("tenants-own-account-bound-to-its-own-pod",
     lambda cp, m, o, t: dict(token=pod_token(cp, tenants_own_pod(cp, m))), 403),
    ("the-jobs-own-account-with-the-audience-no-pod",
     lambda cp, m, o, t: dict(token=mint(cp, m.run.owner.namespace, ACCOUNT)), 401),
    ("expired", lambda cp, m, o, t: dict(token=expired(cp, m)), 401),
    ("signed-with-another-key", lambda cp, m, o, t: dict(token=a_key_of_its_own(cp, m, t)), 401),
    # 403 while the old pod stays; 401 once a garbage collector removed it (its bound
    # token dies with it): refused and nothing stored either way
    ("pod-of-an-older-job-of-the-same-name", lambda cp, m, o, t: dict(token=job_remade(cp, m)),
     (401, 403)),
    ("job-not-found", lambda cp, m, o, t: dict(job="no-such-job"), 403),
]  # fmt: skip


@pytest.mark.parametrize(("forge", "status"), [pytest.param(f, s, id=i) for i, f, s in CASES])
def test_upload_without_the_jobs_own_pod_token_is_refused_and_nothing_stored(
    apiserver: ControlPlane,
    namespace: str,
    endpoint: Endpoint,
    tmp_path: Path,
    forge: Forge,
    status: int | tuple[int, ...],
) -> None:
    ensure_account(apiserver, namespace, TENANT)
    mine = make_job(apiserver, namespace, "core")
    other = make_job(apiserver, namespace, "critical")
    response = post(endpoint, mine, gzip.compress(XML), **forge(apiserver, mine, other, tmp_path))
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.text
    assert stored_results(apiserver, namespace) == []
    assert endpoint.stored == []


def test_the_api_server_will_not_bind_a_tenants_account_to_the_jobs_pod(
    apiserver: ControlPlane, namespace: str
) -> None:
    """The one way left to a pod-bound token for the Job's pod is through its own
    account: a token for any other account cannot be bound to it."""
    ensure_account(apiserver, namespace, TENANT)
    mine = make_job(apiserver, namespace, "core")
    with pytest.raises(KubectlError) as refused:
        mint(apiserver, namespace, TENANT, pod=mine.pod)
    assert "pod running with different serviceaccount name" in refused.value.stderr


def test_an_expired_token_is_refused_by_the_api_server_too(
    apiserver: ControlPlane, namespace: str
) -> None:
    """The endpoint's own look at `exp` saves a review; the review refuses it as well."""
    mine = make_job(apiserver, namespace, "core")
    for token, authenticated in [(mine.token, True), (expired(apiserver, mine), False)]:
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": ["greenloop.dev/results"]},
        }
        made = apiserver.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
        assert json.loads(made.stdout)["status"].get("authenticated", False) is authenticated


def test_the_shard_is_the_one_the_pods_completion_index_proves(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint
) -> None:
    mine = make_job(apiserver, namespace, "core", shards=3)
    job = apiserver.get_json("job", mine.run.job_name, "-n", namespace)
    shard = make_pod(
        apiserver, namespace, "shard-2", ACCOUNT, job=job,
        annotations={"batch.kubernetes.io/job-completion-index": "2"},
    )  # fmt: skip
    answer = post(endpoint, mine, gzip.compress(XML), token=pod_token(apiserver, shard))
    assert answer.status_code == 200, answer.text
    assert [(s.job_uid, s.index) for s in endpoint.stored] == [(mine.uid, 2)]
    (stored,) = stored_results(apiserver, namespace)
    assert stored["metadata"]["name"] == f"{mine.run.results_name}-2"
    replay = post(endpoint, mine, gzip.compress(XML), token=pod_token(apiserver, shard))
    assert replay.status_code == 409


BODIES = [
    ("oversized-body", lambda: b"\x1f\x8b" + b"x" * (800 * 1024), 413),
    ("gzip-bomb", lambda: bomb(80 * 1024 * 1024), 413),
    ("not-gzip", lambda: XML, 400),
    ("truncated-gzip", lambda: gzip.compress(XML)[:-12], 400),
    ("empty-xml", lambda: gzip.compress(b""), 400),
]  # fmt: skip


@pytest.mark.parametrize(("make_body", "status"), [pytest.param(b, s, id=i) for i, b, s in BODIES])
def test_a_body_that_is_too_big_or_not_a_whole_gzip_is_refused_and_nothing_stored(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint, make_body: Any, status: int
) -> None:
    made = make_job(apiserver, namespace, "core")
    response = post(endpoint, made, make_body())
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.text
    assert stored_results(apiserver, namespace) == []


def test_good_upload_from_the_cli_is_stored_owned_by_the_job_and_a_replay_is_refused(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    made = make_job(apiserver, namespace, "core", iteration=2)
    junit = tmp_path / "junit.xml"
    junit.write_bytes(XML)
    # A connection that breaks mid-body stores nothing, so the sidecar's retry succeeds.
    host, port = endpoint.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        head = (
            f"POST /v1/results/{namespace}/{made.run.job_name} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {made.token}\r\n"
            "Content-Type: application/gzip\r\n"
            "Content-Length: 5000\r\n\r\n"
        )
        raw.sendall(head.encode() + gzip.compress(XML)[:20])
    assert stored_results(apiserver, namespace) == []

    token = tmp_path / "token"
    token.write_text(made.token)
    env = {"PATH": ""}
    cli = [sys.executable, "-m", "greenloop.cli", "report", "upload", "--now", "--file", str(junit)]
    args = ["--url", endpoint.url, "--namespace", namespace, "--job", made.run.job_name]
    args += ["--token-file", str(token)]
    proc = subprocess.run(
        [*cli, *args, "--deadline", "30"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "stored" in proc.stderr

    (cm,) = stored_results(apiserver, namespace)
    assert cm["metadata"]["name"] == made.run.results_name
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", made.run.job_name, made.uid)
    assert gzip.decompress(base64.b64decode(cm["binaryData"]["junit.xml.gz"])) == XML
    assert [(s.job, s.iteration, s.suite) for s in endpoint.stored] == [
        (made.run.job_name, 2, "core")
    ]

    replay = post(endpoint, made, gzip.compress(b"<testsuite/>"))
    assert replay.status_code == 409
    (again,) = stored_results(apiserver, namespace)
    assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]


def test_sidecar_reports_failure_when_the_endpoint_refuses_and_when_no_xml_exists(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    made = make_job(apiserver, namespace, "core")
    junit = tmp_path / "junit.xml"
    cli = [sys.executable, "-m", "greenloop.cli", "report", "upload", "--now", "--file", str(junit)]
    token = tmp_path / "token"
    token.write_text(mint(apiserver, namespace, ACCOUNT))  # the account's, bound to no pod
    args = ["--url", endpoint.url, "--namespace", namespace, "--job", made.run.job_name]
    args += ["--token-file", str(token)]
    env: dict[str, str] = {}
    missing = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    junit.write_bytes(XML)
    refused = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr, refused.stderr
    assert stored_results(apiserver, namespace) == []
