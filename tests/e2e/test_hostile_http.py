"""Health and webhook calls end by a wall-clock deadline and read a bounded body,
whatever the server does (issue 8, Severe 3); header values and URLs httpx refuses
are clean errors, never tracebacks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from greenloop.core.health import delay_after
from greenloop.core.model import Health
from greenloop.core.outbound import operator_policy
from greenloop.k8s import redeploy as k8s_redeploy
from greenloop.local import redeploy as local_redeploy
from tests.e2e.cli import free_port, greenloop
from tests.e2e.hostile import JUNIT_ONE_FAILING, peak_rss_mib, stalled, suite_spec

LOOPBACK_ALLOWED = operator_policy(allow=["127.0.0.0/8"])

pytestmark = pytest.mark.e2e

HUGE = 512 << 20  # what the server offers; before: 984 MB RSS for this webhook body


def serve(mode: str) -> Iterator[str]:
    """A loopback HTTP server that misbehaves: ``trickle-head`` sends its status line one
    byte every 0.2 s, ``trickle-body`` a body the same way, ``huge-*`` a 512 MiB body."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.settimeout(5)
            try:
                conn.recv(65536)
                status = b"200 OK" if mode.endswith("200") else b"503 Service Unavailable"
                if mode == "trickle-head":
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 2000:
                        conn.sendall(bytes([byte]))
                        time.sleep(0.2)
                    return
                head = b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n"
                if mode == "trickle-body":
                    conn.sendall(head % 1000)
                    for _ in range(1000):
                        conn.sendall(b"x")
                        time.sleep(0.2)
                    return
                conn.sendall(head % HUGE)
                chunk = b"\0" * (1 << 20)
                for _ in range(HUGE >> 20):
                    conn.sendall(chunk)
            except OSError:
                return  # the client hung up: what a bounded client does

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def proxy(seen: list[bytes]) -> Iterator[str]:
    """A loopback forward proxy that answers 200 to every request and records its
    request line (absolute-form for a proxy: ``POST http://host/path HTTP/1.1``)."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.settimeout(5)
            try:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except OSError:
                return

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bad_server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from serve(request.param)


def health_spec(folder: Path, url: str) -> None:
    suite_spec(
        folder,
        "health",
        JUNIT_ONE_FAILING,
        f"""\
        target:
          command: ["true"]
          health: {{url: "{url}", timeoutSeconds: 2}}
        """,
    )


def webhook_spec(folder: Path, url: str, headers: str = "") -> None:
    suite_spec(
        folder,
        "webhook",
        JUNIT_ONE_FAILING,
        f"""\
        target:
          webhook: {{url: "{url}", timeoutSeconds: 2{headers}}}
        """,
    )


@pytest.mark.parametrize("bad_server", ["trickle-head", "trickle-body"], indirect=True)
def test_a_trickling_health_endpoint_is_given_up_on_at_its_timeout(
    tmp_path: Path, bad_server: str
) -> None:
    health_spec(tmp_path, bad_server)
    # Before: 62.8 s for a 5 s probe; with this server, well past the 60 s below.
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "not healthy after 2 s (last: " in condition["message"]


@pytest.mark.parametrize("bad_server", ["trickle-head", "trickle-body"], indirect=True)
def test_a_trickling_webhook_fails_at_its_timeout(tmp_path: Path, bad_server: str) -> None:
    webhook_spec(tmp_path, bad_server)
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "failed: no complete answer within 2 s" in condition["message"]


@pytest.mark.parametrize("bad_server", ["huge-200"], indirect=True)
def test_a_huge_health_body_is_not_read(tmp_path: Path, bad_server: str) -> None:
    health_spec(tmp_path, bad_server)
    assert peak_rss_mib("run", "validation.yaml", cwd=tmp_path) < 150


@pytest.mark.parametrize("bad_server", ["huge-503"], indirect=True)
def test_a_huge_webhook_body_is_cut(tmp_path: Path, bad_server: str) -> None:
    webhook_spec(tmp_path, bad_server)
    assert peak_rss_mib("run", "validation.yaml", cwd=tmp_path) < 150
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "answered HTTP 503: " + "\\u0000" * 3 in json.dumps(condition["message"])
    assert len(condition["message"]) < 400


def test_a_non_ascii_webhook_header_value_is_a_clean_failed_redeploy(tmp_path: Path) -> None:
    webhook_spec(
        tmp_path,
        f"http://127.0.0.1:{free_port()}/deploy",
        ", headersFrom: {env: {Authorization: DEPLOY_TOKEN}}",
    )
    proc = greenloop(
        "run",
        "validation.yaml",
        "--json",
        cwd=tmp_path,
        env={"DEPLOY_TOKEN": "Bearer jeton-\u00e9"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "webhook header 'Authorization'" in condition["message"]
    assert "not printable ASCII" in condition["message"]


@pytest.mark.parametrize("where", ["webhook", "health"])
def test_a_url_httpx_refuses_at_run_time_is_a_clean_failed_redeploy(
    tmp_path: Path, where: str
) -> None:
    url = "http://[::1/deploy"
    (webhook_spec if where == "webhook" else health_spec)(tmp_path, url)
    proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 2:  # validate refuses it (the core's half): fine too
        assert "url" in proc.stderr
        return
    assert proc.returncode == 1, proc.stderr
    condition = stalled(proc.stdout)
    assert condition["reason"] == "RedeployFailed"
    assert "InvalidURL" in condition["message"]


def test_the_health_wait_tries_until_its_timeout_not_up_to_2_s_before(tmp_path: Path) -> None:
    """Healthy 2.5 s after the first look, timeout 3 s: the wait must see it. Before, the
    back-off (0.1, 0.2 ... 1.6 s) gave up at 1.5 s, saying 'not healthy after 3 s'."""
    first_look: list[float] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            first_look.append(time.monotonic())
            ready = time.monotonic() - first_look[0] >= 2.5
            status = b"200 OK" if ready else b"503 Service Unavailable"
            self.request.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    script = """\
import os
first = not os.path.exists("ran")
open("ran", "a").close()
failure = '<failure message="HTTP 503 Service Unavailable"/>' if first else ""
open(os.environ["GREENLOOP_JUNIT_XML"], "w").write(
    f'<testsuite><testcase classname="t" name="a">{failure}</testcase></testsuite>')
"""
    suite_spec(
        tmp_path,
        "slowstart",
        script,
        f"""\
        target:
          command: ["true"]
          health: {{url: "{url}", timeoutSeconds: 3}}
        """,
    )
    try:
        # The probe after the first batch is the first look; the wait starts right after.
        proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr


def test_the_webhook_goes_through_the_proxy_the_environment_names(tmp_path: Path) -> None:
    """HTTP_PROXY / HTTPS_PROXY / NO_PROXY are honoured, as httpx does by default (before:
    the deadline transport made httpx ignore them, so a staging host reachable only
    through a proxy was never reached)."""
    seen: list[bytes] = []
    with proxy(seen) as proxy_url:
        webhook_spec(tmp_path, "http://staging.invalid/deploy")
        env = {"HTTP_PROXY": proxy_url, "http_proxy": proxy_url, "NO_PROXY": "", "no_proxy": ""}
        proc = greenloop("run", "validation.yaml", "--json", cwd=tmp_path, env=env, timeout=60)
        assert "Traceback" not in proc.stderr
    assert b"POST http://staging.invalid/deploy HTTP/1.1" in seen, proc.stderr


# Both shells' health waits follow one rule (core/health.py); the operator's is called
# directly here, as its reconcile step does, with the same servers as local mode's.
def wait_in(shell: str, health: Health) -> tuple[bool, str]:
    """One health wait in ``shell``'s own code, ended by a guard far past any deadline
    (before, the operator's wait never ended on a trickling server)."""
    if shell == "operator":
        # The servers are on loopback, which the operator's default outbound policy denies.
        wait = k8s_redeploy.wait_healthy(health, policy=LOOPBACK_ALLOWED)
        return asyncio.run(asyncio.wait_for(wait, GUARD_SECONDS))
    done: list[tuple[bool, str]] = []
    waiter = threading.Thread(
        target=lambda: done.append(astuple(local_redeploy.wait_healthy(health))[:2]), daemon=True
    )
    waiter.start()
    waiter.join(GUARD_SECONDS)
    assert done, f"the local health wait did not end within {GUARD_SECONDS} s"
    return done[0]


GUARD_SECONDS = 30


@pytest.mark.parametrize("shell", ["local", "operator"])
@pytest.mark.parametrize("bad_server", ["trickle-head", "trickle-body"], indirect=True)
def test_each_shells_health_wait_gives_up_on_a_trickling_endpoint(
    shell: str, bad_server: str
) -> None:
    ok, message = wait_in(shell, Health(url=bad_server, timeout_seconds=2))
    assert not ok
    assert message.startswith(f"{bad_server} not healthy after 2 s (last: "), message


@pytest.mark.parametrize("shell", ["local", "operator"])
def test_each_shells_health_wait_probes_on_the_same_schedule(shell: str) -> None:
    """Healthy from the 4th request: each shell makes exactly 4 (back-off 0.1, 0.2, 0.4 s),
    and says it was healthy."""
    requests: list[float] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            requests.append(time.monotonic())
            status = b"200 OK" if len(requests) >= 4 else b"503 Service Unavailable"
            self.request.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        ok, message = wait_in(shell, Health(url=url, timeout_seconds=30))
    finally:
        server.shutdown()
        server.server_close()
    assert ok, message
    assert len(requests) == 4
    # Each pause at least the rule's, from the end of one probe to the next.
    gaps = [b - a for a, b in itertools.pairwise(requests)]
    assert all(gap >= delay_after(n) for n, gap in enumerate(gaps, start=1)), gaps
