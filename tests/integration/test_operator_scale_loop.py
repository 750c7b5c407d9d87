"""One object's huge result does not hold up the others (issue 17), with `greenloop
operator` on the kwok cluster watching two namespaces.

Same set-up as test_operator_loop.py: the operator runs on the host, the suite Jobs get
no pods on kwok, and the test plays each Job's results sidecar with the real upload code.
While object `big` (namespace A) uploads as many message-less failing tests as an
object's state holds (`budget.MAX_TESTS`, 100k: Go-style subtests, the shape whose
classification was quadratic) and the operator reads, classifies and reports them -
the issue measured 250k, which now ends `Stalled`/`TooManyTests` once merged, before
the classification, report and snapshot that 100k go through - a person asks for a
rerun of object `quick` in namespace B. The issue's requirement, asserted as its bound:
the rerun is acted on (quick's status shows the new round) within 1 s, and /healthz
answers every probe within the chart's liveness timeout all along. The latencies are
printed (-s) beside the same rerun measured with nothing else going on.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from greenloop.core import crd
from greenloop.core.budget import MAX_TESTS
from tests.support.operator_bench import api_request
from tests.support.sidecar import PASS, Sidecar, Snapshot, junit
from tools.cluster.controlplane import ControlPlane
from tools.cluster.crds import ensure_crd
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BIG = MAX_TESTS - 1  # with their parent: as many as an object's state holds
RERUN_BOUND = 1.0  # issue 17: "another namespace's rerun annotation is acted on within 1 s"
LIVENESS_TIMEOUT = 5.0  # charts/greenloop/values.yaml livenessProbe.timeoutSeconds
IDLE_RERUNS = 8


def message_less_subtests(n: int) -> bytes:
    """A failing Go test and n failing subtests under it, none with a message."""
    fail = '<testcase classname="shop/orders" name="{n}"><failure/></testcase>'
    return junit(
        fail.format(n="TestOrders"), *(fail.format(n=f"TestOrders/c{i}") for i in range(n))
    )


def sv(name: str, **policy: Any) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": "no-such-account",  # no pods on kwok: the test uploads
            "suites": [{"name": "core", "command": ["go", "test"], "image": "localhost/e2e:dev"}],
            "policy": {"flakeRetries": 0, **policy},
        },
    }


def status_of(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    code, body = cp.get(f"/apis/{crd.API_VERSION}/namespaces/{namespace}/{crd.PLURAL}/{name}")
    status: dict[str, Any] = (json.loads(body).get("status") or {}) if code == 200 else {}
    return status


def round_of(status: dict[str, Any]) -> int:
    return int((status.get("engine") or {}).get("round", 0))


@dataclass
class Probes:
    """/healthz every 100 ms in a thread: each answer's latency, or why there was none."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    slow: list[tuple[float, float]] = field(default_factory=list)  # (began, seconds) over 1 s
    stop: threading.Event = field(default_factory=threading.Event)

    def answers(self) -> bool:
        with urllib.request.urlopen(self.url, timeout=LIVENESS_TIMEOUT) as answer:
            answer.read()
        return True

    def run(self) -> None:
        while not self.stop.wait(0.1):
            began = time.monotonic()
            try:
                self.answers()
                self.latencies.append(time.monotonic() - began)
            except OSError as err:
                self.failures.append(f"{time.monotonic() - began:.1f} s: {err}")
            if time.monotonic() - began > 1:
                self.slow.append((began, time.monotonic() - began))


def serve(cp: ControlPlane, car: Sidecar, namespace: str, op: Operator, done: Any) -> None:
    """Play the sidecar until `done()` (bounded; fails at once if the operator exits)."""

    def served() -> bool:
        if op.proc is None or op.proc.poll() is not None:
            pytest.fail(f"the operator exited:\n{op.tail()}")
        car.serve(Snapshot.take(cp, namespace))
        return bool(done())

    wait_until("the sidecar's work", served, timeout=300, interval=0.3)


def rerun_seconds(cp: ControlPlane, namespace: str, name: str, value: str) -> float:
    """Seconds from the rerun annotation being stored to the object's status showing
    the round it asked for (polled every 20 ms)."""
    before = round_of(status_of(cp, namespace, name))
    patch = {"metadata": {"annotations": {"greenloop.dev/rerun": value}}}
    path = f"/apis/{crd.API_VERSION}/namespaces/{namespace}/{crd.PLURAL}/{name}"
    code, body = api_request(cp, "PATCH", path, patch, "application/merge-patch+json")
    assert code == 200, body[:300]
    stored = time.monotonic()
    wait_until(
        "the rerun acted on",
        lambda: round_of(status_of(cp, namespace, name)) > before,
        timeout=120, interval=0.02,
    )  # fmt: skip
    return time.monotonic() - stored


def test_a_rerun_elsewhere_and_healthz_do_not_wait_for_a_100k_test_result(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    idle: list[float] = []
    other = cluster.create_namespace(f"{namespace[:50]}-b")
    ensure_crd(cluster)
    port, metrics_port = free_ports(2)
    op = Operator(
        cluster, namespace, tmp_path / "operator.log", f"http://127.0.0.1:{port}", port,
        metrics_port=metrics_port, args=("-n", other),
    )  # fmt: skip
    op.start()
    probes = Probes(f"{op.url}/healthz")
    poller = threading.Thread(target=probes.run, daemon=True)
    try:
        wait_until("/healthz", probes.answers, timeout=120, interval=0.2)
        passing = junit(PASS.format(c="shop/cart", n="TestCart"))
        quick = Sidecar(other, op.url, lambda job: passing, tmp_path / "b")
        (tmp_path / "b").mkdir()
        cluster.apply(sv("quick"), namespace=other)

        def quick_passed() -> bool:
            return status_of(cluster, other, "quick").get("phase") == "Passed"

        serve(cluster, quick, other, op, quick_passed)
        # The same rerun with nothing else going on, for comparison.
        for value in range(IDLE_RERUNS):
            idle.append(rerun_seconds(cluster, other, "quick", f"idle-{value}"))
            time.sleep(0.5)
        serve(cluster, quick, other, op, quick_passed)

        body = message_less_subtests(BIG)
        big = Sidecar(namespace, op.url, lambda job: body, tmp_path / "a", deadline=300)
        (tmp_path / "a").mkdir()
        cluster.apply(sv("big", maxIterations=1), namespace=namespace)
        poller.start()
        serve(cluster, big, namespace, op, lambda: big.results)
        assert not big.failed(), big.failed()
        # Stored and acknowledged: the operator now reads, classifies and reports 100k
        # tests. A person asks for a rerun of quick again and again meanwhile (each asks
        # for a new round, in flight or not: engine.on_rerun), half a second apart.
        asked, asked_at = time.monotonic(), time.strftime("%H:%M:%S")
        busy: list[float] = []
        slow_reruns: list[str] = []  # when (after the 200) each rerun over the bound began
        while status_of(cluster, namespace, "big").get("phase") == "Testing" and len(busy) < 200:
            began = time.monotonic() - asked
            busy.append(rerun_seconds(cluster, other, "quick", str(len(busy) + 2)))
            if busy[-1] > RERUN_BOUND:
                slow_reruns.append(f"{busy[-1]:.2f} s at +{began:.1f} s")
            time.sleep(0.5)
        wait_until(
            "big's verdict",
            lambda: status_of(cluster, namespace, "big").get("phase") in ("Stalled", "Passed"),
            timeout=600, interval=0.2,
        )  # fmt: skip
        big_seconds = time.monotonic() - asked
    finally:
        probes.stop.set()
        if poller.is_alive():
            poller.join(LIVENESS_TIMEOUT + 5)
        op.kill(signal.SIGTERM)
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
    big_status = status_of(cluster, namespace, "big")
    ordered = sorted(probes.latencies) or [float("nan")]
    print(
        f"\n(big's upload answered at {asked_at}; {op.log})\n"
        f"rerun acted on: idle median {statistics.median(idle):.2f} s, max {max(idle):.2f} s; "
        f"{len(busy)} times while big's {BIG:,} tests "
        f"were read ({big_seconds:.1f} s from its upload's 200 to its verdict): median "
        f"{statistics.median(busy or [0.0]):.2f} s, max {max(busy or [0.0]):.2f} s; "
        f"/healthz {len(ordered)} answers, p50 {ordered[len(ordered) // 2]:.3f} s, p95 "
        f"{ordered[int(len(ordered) * 0.95)]:.3f} s, max {ordered[-1]:.3f} s, "
        f"{sum(1 for t in ordered if t > 1)} over 1 s, "
        f"{len(probes.failures)} over {LIVENESS_TIMEOUT:.0f} s or failed; load average "
        f"{os.getloadavg()[0]:.1f}\n  reruns over {RERUN_BOUND:.0f} s: {slow_reruns}\n  "
        f"/healthz over 1 s: {[f'{t:.1f} s at +{b - asked:.1f} s' for b, t in probes.slow]}"
    )
    assert (big_status.get("summary") or {}).get("failed") == BIG + 1, big_status.get("summary")
    assert busy, "big's results were read before the first rerun: it measured nothing"
    assert probes.failures == [], probes.failures[:5]
    assert not slow_reruns, f"reruns that waited for another object's result: {slow_reruns}"
