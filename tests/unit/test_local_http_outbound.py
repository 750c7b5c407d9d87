"""Local mode's HTTP calls (local/http.py) under an outbound policy, against a real
listener on loopback: refused before a byte is sent, at resolve and at connect."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from greenloop.core.outbound import LOCAL_DEFAULT, local_policy
from greenloop.local import http
from tests.unit.test_k8s_webhook_outbound import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    got = Listener()
    threading.Thread(target=got.server.serve_forever, daemon=True).start()
    try:
        yield got
    finally:
        got.server.shutdown()
        got.server.server_close()


def test_the_default_local_policy_calls_loopback(listener: Listener) -> None:
    answer = http.request("POST", listener.url, seconds=5, content=b"{}")
    assert (answer.status, answer.reason) == (202, "Accepted")
    assert len(listener.calls) == 1


def test_deny_loopback_refuses_before_sending(listener: Listener) -> None:
    refused = re.escape("target.webhook.url refused by --deny-outbound")
    with pytest.raises(http.Refused, match=refused):
        http.request(
            "POST", listener.url, seconds=5, policy=local_policy(["loopback"]),
            what="target.webhook.url",
        )  # fmt: skip
    assert listener.calls == []


def test_the_connected_address_is_checked_again(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the check at resolve passed, the connection reached loopback."""
    monkeypatch.setattr(http, "check", lambda url, policy, what: None)
    with pytest.raises(http.Refused, match=re.escape("127.0.0.1, which is loopback")):
        http.request("GET", listener.url, seconds=5, policy=local_policy(["loopback"]))
    assert listener.calls == []
    assert LOCAL_DEFAULT.denied == ()
