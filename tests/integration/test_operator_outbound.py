"""The operator's outbound calls (issue 19, probes 1 and 4), on the real API server:
a webhook URL the outbound policy denies is not called and the object ends Stalled with
a reason naming the policy; a Secret header value HTTP cannot carry is refused, and
its value reaches neither status nor an Event.

Same set-up as test_operator_loop.py: the operator on the host, the suite Jobs get no
pods on kwok, the test plays the results sidecar. The listener is on 127.0.0.1; the
operator runs with its default policy (which denies loopback) or, for the Secret case,
with loopback allowed so that the header rule alone is what refuses.
"""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.integration.listener import Calls, listening
from tests.integration.test_operator_loop import TARGET, Sidecar, condition, run_until_done, sv
from tests.support.owners import ensure_crd
from tests.support.sidecar import core_answer
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET_VALUE = "hunter2-0123456789abcdef"


@pytest.fixture
def listener() -> Iterator[tuple[str, Calls]]:
    with listening() as served:
        yield served


def run_round(
    cluster: ControlPlane, namespace: str, tmp_path: Path, webhook: dict[str, Any],
    outbound: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    ensure_crd(cluster)
    roll_out(cluster, namespace, "backend")
    port = free_ports(1)[0]
    op = Operator(
        cluster, namespace, tmp_path / "operator.log", f"http://127.0.0.1:{port}", port,
        outbound=outbound,
    )  # fmt: skip
    op.start()
    try:
        obj = sv("checkout", ["core"], expectedTests=2, target={**TARGET, "webhook": webhook})
        cluster.apply(obj, namespace=namespace)
        return run_until_done(cluster, op, Sidecar(cluster, op, core_answer, tmp_path), "checkout")
    finally:
        op.kill(signal.SIGTERM)


def test_a_webhook_to_a_denied_address_stalls_naming_the_policy_and_sends_nothing(
    cluster: ControlPlane,
    namespace: str,
    tmp_path: Path,
    listener: tuple[str, Calls],
) -> None:
    url, calls = listener
    status = run_round(cluster, namespace, tmp_path, {"url": url}, outbound=())
    assert status["phase"] == "Stalled", status
    stalled = condition(status, "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert "target.webhook.url refused by the operator's outbound policy" in stalled["message"]
    assert "127.0.0.1, which is loopback" in stalled["message"]
    assert calls == []


def test_a_secret_header_value_with_a_newline_is_refused_and_never_written(
    cluster: ControlPlane,
    namespace: str,
    tmp_path: Path,
    listener: tuple[str, Calls],
) -> None:
    url, calls = listener
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-creds"},
        "data": {"X-Db": base64.b64encode(f"{SECRET_VALUE}\n".encode()).decode()},
    }
    cluster.apply(secret, namespace=namespace)
    webhook = {"url": url, "headersFrom": {"secretName": "db-creds"}}
    status = run_round(
        cluster, namespace, tmp_path, webhook, outbound=("--allow-outbound", "127.0.0.1")
    )
    assert status["phase"] == "Stalled", status
    stalled = condition(status, "Stalled")
    assert stalled["reason"] == "RedeployFailed"
    assert "'X-Db'" in stalled["message"] and "line break" in stalled["message"]
    assert calls == []
    written = json.dumps(status) + json.dumps(cluster.get_json("events", "-n", namespace))
    assert SECRET_VALUE not in written
