"""The operator reads from its watch-fed store (k8s/store.py, docs/design.md §8.1), on a
kwok control plane of this module's own, started with an audit log (every request the
operator makes is counted by the API server, not by the operator) and restarted mid-round.

- A running suite costs no requests per minute: while one object's suite runs for 60 s,
  the operator sends at most a handful of requests (before the store: the object, the
  target's fingerprint, the Job twice, the results ConfigMap and the Job's pods every
  10 s, 48 a minute); the upload still ends the round at once (the store wakes the unit).
- An API server restart mid-round (every watch and connection breaks; the store lists
  again and replaces) ends the two-suite demo exactly as a round without the fault does.

kwok's node runs no pods: the test plays each Job's results sidecar
(tests/support/sidecar.py), as tests/integration/test_operator_loop.py does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.sidecar import (
    PASS,
    Sidecar,
    Snapshot,
    junit,
    labels_of,
    two_suite_answer,
    two_suite_demo,
)
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator, on_loopback
from tools.cluster.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUIET_SECONDS = 60.0
#: Requests the operator may send while one suite runs for QUIET_SECONDS: a watch the
#: API server ended and the store re-opened, at most (each lasts 300-360 s).
QUIET_REQUESTS = 3
#: The operator's clients, by user agent: kubernetes.aio (greenloop's Gateway) and kopf.
OPERATOR_AGENTS = ("OpenAPI-Generator", "kopf")


@pytest.fixture(scope="module")
def audited() -> Iterator[ControlPlane]:
    cp = ControlPlane.start(controllers=True, build=False, audit=True)
    try:
        yield cp
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)


def _stamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()


def operator_requests(cp: ControlPlane, start: float, end: float) -> list[dict[str, Any]]:
    """The operator's requests received between two wall-clock times (the audit log)."""
    return [
        e
        for e in cp.audit_events()
        if str(e.get("userAgent", "")).startswith(OPERATOR_AGENTS) and start <= _stamp(e) < end
    ]


def breakdown(events: list[dict[str, Any]]) -> dict[str, int]:
    def what(e: dict[str, Any]) -> str:
        ref = e.get("objectRef") or {}
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        return f"{e['verb']} {ref.get('resource', e.get('requestURI', '?'))}{sub}"

    return dict(Counter(what(e) for e in events).most_common())


def drive(
    cp: ControlPlane, op: Operator, car: Sidecar, name: str, timeout: float = 240
) -> dict[str, Any]:
    """Play the sidecar until the object has a verdict; its status."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if op.exited() is not None:
            pytest.fail(f"the operator exited ({op.exits}):\n{op.tail()}")
        try:
            seen = Snapshot.take(cp, op.namespace)
        except (AssertionError, OSError):
            time.sleep(0.5)  # the API server is restarting
            continue
        car.serve(seen)
        status = seen.status(name)
        if status.get("phase") in ("Passed", "Stalled"):
            car.finish()
            return status
        time.sleep(0.5)
    pytest.fail(f"no verdict after {timeout}s: {json.dumps(status)[:2000]}\n{op.tail()}")


def resumed_jobs(cp: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = Snapshot.take(cp, namespace).jobs
    return [j for j in jobs if j["spec"].get("suspend") is False]


def outcome(cp: ControlPlane, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
    """What a round ended with, without the times and names that differ between runs."""
    jobs = sorted(
        (labels_of(j)["greenloop.dev/iteration"], labels_of(j)["greenloop.dev/suite"])
        for j in cp.get_json("jobs", "-n", namespace)["items"]
    )
    replicasets = cp.get_json("replicasets", "-n", namespace, "-l", "app=backend")["items"]
    return {
        "phase": status.get("phase"),
        "iteration": status.get("iteration"),
        "summary": status.get("summary"),
        "conditions": sorted(
            (c["type"], c["status"], c.get("reason")) for c in status.get("conditions") or ()
        ),
        "jobs": jobs,
        "rollouts": len(replicasets) - 1,
    }


def test_a_running_suite_costs_no_requests_per_minute(
    audited: ControlPlane, tmp_path: Path
) -> None:
    cp = audited
    namespace = cp.create_namespace("store-quiet")
    roll_out(cp, namespace, "backend")
    with on_loopback(cp, namespace, tmp_path / "operator.log") as op:
        cp.apply(two_suite_demo("quiet", ("core",), tests=1), namespace=namespace)
        wait_until("the suite's Job resumed", lambda: resumed_jobs(cp, namespace), timeout=60)
        time.sleep(5)  # the start's own writes (status, report, Events) are done
        start = time.time()
        time.sleep(QUIET_SECONDS)
        quiet = operator_requests(cp, start, time.time())
        counted = [e for e in quiet if e["verb"] != "watch"]
        print(f"\noperator requests in {QUIET_SECONDS:.0f} s of a running suite: "
              f"{len(counted)} {breakdown(quiet)}")  # fmt: skip
        assert len(counted) <= QUIET_REQUESTS, breakdown(quiet)

        # Nothing polls, and yet the upload ends the round at once: the store wakes it.
        uploaded = time.time()
        car = Sidecar(namespace, op.url, lambda _: junit(PASS.format(c="c", n="t")), tmp_path)
        status = drive(cp, op, car, "quiet", timeout=60)
        assert status["phase"] == "Passed", json.dumps(status)[:2000]
        assert car.failed() == []
        took = time.time() - uploaded
        print(f"upload → Passed: {took:.1f} s; the round's requests after the upload: "
              f"{breakdown(operator_requests(cp, uploaded, time.time()))}")  # fmt: skip


def test_an_api_server_restart_mid_round_ends_as_a_round_without_it(
    audited: ControlPlane, tmp_path: Path
) -> None:
    cp = audited
    outcomes = {}
    for fault in (False, True):
        namespace = cp.create_namespace(f"store-restart-{str(fault).lower()}")
        roll_out(cp, namespace, "backend")
        log = tmp_path / f"operator-{fault}.log"
        with on_loopback(cp, namespace, log) as op:
            cp.apply(two_suite_demo("demo"), namespace=namespace)
            car = Sidecar(namespace, op.url, two_suite_answer, tmp_path)
            if fault:
                # Mid-round: both Jobs of iteration 1 run; nothing is uploaded yet.
                wait_until(
                    "iteration 1's Jobs resumed",
                    lambda: len(resumed_jobs(cp, namespace)) == 2,  # noqa: B023
                    timeout=60,
                )
                cp.restart_apiserver()
            status = drive(cp, op, car, "demo")
            assert car.failed() == []
            outcomes[fault] = outcome(cp, namespace, status)
            if fault:
                text = log.read_text(errors="replace")
                assert "listed again" in text, op.tail(80)  # the store relisted
    assert outcomes[True] == outcomes[False]
    assert outcomes[False]["phase"] == "Passed" and outcomes[False]["rollouts"] == 1
