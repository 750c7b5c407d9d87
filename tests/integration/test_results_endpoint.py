"""Uploads to the results endpoint, checked against the real API server.

The endpoint runs in this process (as it does inside `greenloop operator`); the Jobs,
Secrets and the stored results are real objects. Every refused upload must leave no
results ConfigMap behind; a good one, sent by the real `greenloop report upload`
command, is stored owned by its Job before the 200.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from greenloop.core.model import Suite
from greenloop.k8s.jobs import SuiteJob, build_job, build_token_secret
from tests.support.owners import make_owner
from tests.support.results_endpoint import Endpoint, serve_results
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration

XML = b'<testsuite name="s" tests="1"><testcase classname="t" name="ok"/></testsuite>\n'


@pytest.fixture
def endpoint(apiserver: ControlPlane) -> Iterator[Endpoint]:
    with serve_results(apiserver.kubeconfig) as ep:
        yield ep


@dataclass
class Made:
    run: SuiteJob
    uid: str
    token: str


def make_job(cp: ControlPlane, namespace: str, suite: str, *, iteration: int = 1) -> Made:
    run = SuiteJob(
        owner=make_owner(cp, namespace, f"checkout-{suite}"),
        iteration=iteration,
        suite=Suite(name=suite, command=("pytest",), image="localhost/e2e:dev"),
        reporter_image="localhost/greenloop:dev",
        results_url="http://unused",
    )
    created = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(build_job(run)))
    uid = json.loads(created.stdout)["metadata"]["uid"]
    token = uuid.uuid4().hex + uuid.uuid4().hex
    secret = build_token_secret(run, job_uid=uid, token=token)
    cp.kubectl("create", "-f", "-", input=json.dumps(secret))
    return Made(run, uid, token)


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
    uid: str | None = None,
    job: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/gzip"}
    if token != "":
        headers["Authorization"] = f"Bearer {made.token if token is None else token}"
    headers["X-Greenloop-Job-Uid"] = made.uid if uid is None else uid
    url = f"{ep.url}/v1/results/{made.run.owner.namespace}/{job or made.run.job_name}"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def bomb(size: int) -> bytes:
    """`size` bytes of zeros, gzipped: a few KiB that unpack far past the cap."""
    return gzip.compress(b"\0" * size, compresslevel=9)


CASES = [
    # (id, what to send, expected status)
    ("forged-token", lambda m, o: dict(token="f" * 64), 403),
    ("token-of-another-job", lambda m, o: dict(token=o.token), 403),
    ("another-jobs-uid-and-token", lambda m, o: dict(token=o.token, uid=o.uid), 403),
    ("stale-job-uid", lambda m, o: dict(uid=str(uuid.uuid4())), 403),
    ("missing-token", lambda m, o: dict(token=""), 401),
    ("job-not-found", lambda m, o: dict(job="no-such-job"), 403),
]  # fmt: skip


@pytest.mark.parametrize(("make_args", "status"), [pytest.param(a, s, id=i) for i, a, s in CASES])
def test_upload_without_the_jobs_own_credentials_is_refused_and_nothing_stored(
    apiserver: ControlPlane, namespace: str, endpoint: Endpoint, make_args: Any, status: int
) -> None:
    mine = make_job(apiserver, namespace, "core")
    other = make_job(apiserver, namespace, "critical")
    response = post(endpoint, mine, gzip.compress(XML), **make_args(mine, other))
    assert response.status_code == status, response.text
    assert stored_results(apiserver, namespace) == []
    assert endpoint.stored == []


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
    assert response.status_code == status, response.text
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
            f"X-Greenloop-Job-Uid: {made.uid}\r\nContent-Type: application/gzip\r\n"
            "Content-Length: 5000\r\n\r\n"
        )
        raw.sendall(head.encode() + gzip.compress(XML)[:20])
    assert stored_results(apiserver, namespace) == []

    env = {"GREENLOOP_RESULTS_TOKEN": made.token, "GREENLOOP_JOB_UID": made.uid, "PATH": ""}
    cli = [sys.executable, "-m", "greenloop.cli", "report", "upload", "--now", "--file", str(junit)]
    args = ["--url", endpoint.url, "--namespace", namespace, "--job", made.run.job_name]
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
    args = ["--url", endpoint.url, "--namespace", namespace, "--job", made.run.job_name]
    env = {"GREENLOOP_RESULTS_TOKEN": "wrong", "GREENLOOP_JOB_UID": made.uid}
    missing = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    junit.write_bytes(XML)
    refused = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr, refused.stderr
    assert stored_results(apiserver, namespace) == []
