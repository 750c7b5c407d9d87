"""The operator's webhook and health calls (k8s/redeploy.py) against a real listener on
loopback: a Secret's value never comes back in a message, a URL the outbound policy
denies is not called, and an answer's body is not copied (issue 19, probes 1 and 4)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from greenloop.core.model import HeadersFrom, Health, Webhook
from greenloop.core.outbound import operator_policy
from greenloop.k8s import redeploy as rd
from greenloop.k8s.gateway import Gateway

SECRET_VALUE = "hunter2-0123456789abcdef"
ALLOW_LOOPBACK = operator_policy(allow=["127.0.0.1"])


class Listener:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.answer = 202
        self.reason = "Accepted"
        self.body = b""
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.calls.append(dict(self.headers))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(listener.answer, listener.reason)
                self.send_header("Content-Length", str(len(listener.body)))
                self.end_headers()
                self.wfile.write(listener.body)

            do_POST = do_GET = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def listener() -> Iterator[Listener]:
    got = Listener()
    thread = threading.Thread(target=got.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        got.server.shutdown()
        got.server.server_close()


class SecretGateway:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert (kind, namespace, name) == ("Secret", "ta", "db-creds")
        return {"data": self.data}


def webhook(url: str) -> Webhook:
    return Webhook(url, headers_from=HeadersFrom(secret_name="db-creds"), timeout_seconds=5)


def call(url: str, secret: dict[str, str], **kw: Any) -> tuple[bool, str]:
    gw = cast(Gateway, SecretGateway(secret))
    return asyncio.run(rd.call_webhook(gw, "ta", webhook(url), {"k": "v"}, **kw))


@pytest.mark.parametrize(
    "value",
    [SECRET_VALUE + "\n", SECRET_VALUE + "\r\nX-Injected: 1", "\n" + SECRET_VALUE],
    ids=["a trailing newline", "a header injection", "a leading newline"],
)
def test_a_secret_value_http_cannot_carry_is_refused_and_not_quoted(
    listener: Listener, value: str
) -> None:
    ok, message = call(listener.url, {"X-Db": value}, policy=ALLOW_LOOPBACK)
    assert not ok
    assert SECRET_VALUE not in message
    assert "'X-Db'" in message and "Secret ta/db-creds" in message
    assert listener.calls == []


def test_the_operator_default_refuses_a_loopback_webhook_and_sends_nothing(
    listener: Listener,
) -> None:
    ok, message = call(listener.url, {"Authorization": SECRET_VALUE})
    assert not ok
    assert "refused by the operator's outbound policy" in message
    assert "127.0.0.1, which is loopback" in message
    assert listener.calls == []
    assert SECRET_VALUE not in message


def test_a_name_that_resolves_to_a_denied_address_is_refused(listener: Listener) -> None:
    # Cluster names allowed, so "localhost" is judged by what it resolves to.
    url = listener.url.replace("127.0.0.1", "localhost")
    ok, message = call(url, {}, policy=operator_policy(allow_cluster=True))
    assert not ok
    assert "localhost resolves to" in message and "which is loopback" in message
    assert listener.calls == []


def test_the_connected_address_is_checked_again_before_a_byte_is_sent(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first lookup said a public address, the connection reached
    loopback; the check at connect refuses and the listener receives nothing."""

    async def public(url: str, policy: object, what: str) -> None:
        return None

    monkeypatch.setattr(rd, "refused", public)
    ok, message = call(listener.url, {"Authorization": SECRET_VALUE})
    assert not ok
    assert "loopback" in message and "refused" in message
    assert listener.calls == []


def test_an_answer_keeps_its_status_and_reason_not_its_body(listener: Listener) -> None:
    listener.answer, listener.reason = 500, "Internal \x1b[2J Error"
    listener.body = b"etcd says: {secret internal data}"
    ok, message = call(listener.url, {"Authorization": SECRET_VALUE}, policy=ALLOW_LOOPBACK)
    assert not ok
    assert "HTTP 500 Internal \\x1b[2J Error" in message
    assert "etcd" not in message and "\x1b" not in message
    assert listener.calls and listener.calls[0]["Authorization"] == SECRET_VALUE


def test_an_allowed_webhook_is_called_with_its_headers(listener: Listener) -> None:
    ok, message = call(listener.url, {"Authorization": SECRET_VALUE}, policy=ALLOW_LOOPBACK)
    assert ok, message
    assert message.endswith("answered HTTP 202 Accepted")
    assert listener.calls[0]["Authorization"] == SECRET_VALUE


def test_the_health_wait_refuses_a_denied_url_without_probing(listener: Listener) -> None:
    ok, message = asyncio.run(rd.wait_healthy(Health(listener.url, timeout_seconds=5)))
    assert not ok
    assert "target.health.url refused by the operator's outbound policy" in message
    assert listener.calls == []


def test_the_health_wait_probes_an_allowed_url(listener: Listener) -> None:
    listener.answer = 200
    health = Health(listener.url, timeout_seconds=5)
    ok, message = asyncio.run(rd.wait_healthy(health, policy=ALLOW_LOOPBACK))
    assert ok, message
    assert len(listener.calls) == 1
