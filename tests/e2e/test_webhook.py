"""Redeploy through a webhook: a real HTTP receiver on loopback that restarts the demo."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import greenloop

pytestmark = pytest.mark.e2e


@dataclass
class Receiver:
    url: str
    answer: int = 202
    restart: list[str] = field(default_factory=list)  # command run on each call
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.calls.append({"headers": dict(self.headers), "body": json.loads(body)})
            if state.restart:
                subprocess.run(state.restart, check=True, capture_output=True, timeout=60)
            self.send_response(state.answer)
            self.end_headers()
            self.wfile.write(b'{"pipeline": "started"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/deploy"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def use_webhook(demo: Path, url: str) -> Path:
    """The demo's spec with its redeploy command swapped for a webhook."""
    spec = demo / "validation.yaml"
    text = spec.read_text()
    start = text.index("    command: [python, app/ctl.py, restart")
    end = text.index("    health:")
    webhook = (
        f"    webhook:\n      url: {url}\n"
        "      headersFrom: {env: {Authorization: DEPLOY_TOKEN}}\n"
    )
    spec.write_text(text[:start] + webhook + text[end:])
    return spec


def port_of(demo: Path) -> str:
    text = (demo / "validation.yaml").read_text()
    return text.split("http://127.0.0.1:")[1].split("/")[0].split('"')[0]


def test_a_webhook_redeploy_converges_and_carries_the_token(
    demo: Path, tmp_path: Path, receiver: Receiver
) -> None:
    port = port_of(demo)
    receiver.restart = [sys.executable, str(demo / "app" / "ctl.py"), "restart", "--port", port]
    use_webhook(demo, receiver.url)
    proc = greenloop(
        "run", "demo/validation.yaml", "--json", cwd=tmp_path, env={"DEPLOY_TOKEN": "Bearer s3cret"}
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"]["phase"] == "Passed"
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call["headers"]["Authorization"] == "Bearer s3cret"
    assert call["body"] == {
        "validation": "demo",
        "namespace": "default",
        "iteration": 1,
        "reason": "3 ServiceUnavailable, 1 Dependent",
        # The redeploy action's id (round 1, iteration 1, step 1): a receiver can tell a
        # repeated call (a restarted operator) from a new deploy.
        "token": "r1-i1-s1",
    }
    assert f"webhook POST {receiver.url} answered HTTP 202" in proc.stderr


@pytest.mark.parametrize(
    ("answer", "token", "message"),
    [
        (500, "Bearer x", "answered HTTP 500"),
        (202, None, "needs environment variable DEPLOY_TOKEN"),
    ],
    ids=["pipeline refuses", "token missing"],
)
def test_a_failed_webhook_stalls_as_redeploy_failed(
    demo: Path,
    tmp_path: Path,
    receiver: Receiver,
    answer: int,
    token: str | None,
    message: str,
) -> None:
    receiver.answer = answer
    use_webhook(demo, receiver.url)
    env = {"DEPLOY_TOKEN": token} if token else {}
    proc = greenloop("run", "demo/validation.yaml", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    status = json.loads(proc.stdout)["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert message in stalled["message"]


def test_a_webhook_the_outbound_policy_denies_is_not_called_and_stalls_naming_it(
    demo: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """Issue 19 probe 4 in local mode: with --deny-outbound loopback, a webhook on
    127.0.0.1 is refused before a byte is sent, and the Stalled reason names the
    policy."""
    use_webhook(demo, receiver.url)
    proc = greenloop(
        "run", "demo/validation.yaml", "--json", "--deny-outbound", "loopback",
        cwd=tmp_path, env={"DEPLOY_TOKEN": "Bearer s3cret"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert receiver.calls == []
    status = json.loads(proc.stdout)["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert "target.webhook.url refused by --deny-outbound" in stalled["message"]
    assert "127.0.0.1, which is loopback" in stalled["message"]
    assert "s3cret" not in proc.stdout + proc.stderr


def test_a_deny_outbound_value_that_is_not_a_class_cidr_or_host_is_a_usage_error(
    demo: Path, tmp_path: Path
) -> None:
    proc = greenloop("run", "demo/validation.yaml", "--deny-outbound", "not a host!", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--deny-outbound" in proc.stderr and "not a host!" in proc.stderr


@pytest.mark.parametrize(
    "flags",
    [("--allow-outbound", "not a host!"), ("--cluster-cidr", "10.0.0.0/99")],
    ids=["allow", "cluster-cidr"],
)
def test_an_operator_outbound_flag_that_is_not_a_cidr_or_host_is_a_usage_error(
    tmp_path: Path, flags: tuple[str, str]
) -> None:
    proc = greenloop("operator", "--kubeconfig", str(tmp_path / "none"), *flags, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert flags[1] in proc.stderr
