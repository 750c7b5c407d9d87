"""What GitOps tools read from live StagingValidations the operator wrote (docs/gitops.md).

At each point of a round, the object as the API server holds it goes through kstatus
(sigs.k8s.io/cli-utils' status.Compute: Flux's health checks, Helm 4's --wait), the
healthCheckExprs docs/gitops.md gives Flux (kustomize-controller's CEL evaluator) and
config/argocd/health.lua run by gopher-lua as Argo CD runs it (tests/support/gitops.py):

    point                               kstatus      Flux exprs   Argo CD
    Testing / Redeploying               InProgress   InProgress   Progressing
    WaitingApproval                     InProgress   InProgress   Suspended
    Passed                              Current      Current      Healthy
    Stalled                             Failed       Failed       Degraded (reason: message)
    spec edited, not yet observed       InProgress   InProgress   Progressing
    no status yet (operator not there)  Current      Unknown      Progressing
                                        ^ kstatus' blind spot; Flux waits on Unknown

and `kubectl wait --for=condition=Reconciling=False` - the wait for either verdict that
docs/gitops.md shows - returns on Passed and on Stalled, and does not return while the
object has no status or its status is of an older generation.

Same set-up as test_operator_loop.py: the operator on the host, the suite Jobs get no
pods on kwok, the test plays the results sidecar. With GREENLOOP_CAPTURE_ARGOCD=DIR the
objects are also written to DIR as Argo CD testdata (how config/argocd/testdata was made).
"""

from __future__ import annotations

import datetime
import http.server
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_operator_loop import (
    TARGET,
    Sidecar,
    condition,
    run_until_done,
    serve_until,
    sv,
)
from tests.support.gitops import argocd_health, docs_flux_exprs, flux_health, kstatus
from tests.support.sidecar import FAIL, PASS, core_answer, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator
from tools.cluster.procs import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WAIT_EITHER = "--for=condition=Reconciling=False"
VERDICTS = ("Passed", "Stalled")
# (kstatus, Flux healthCheckExprs, Argo CD): the rows of the table above.
RUNNING = ("InProgress", "InProgress", "Progressing")
WAITING = ("InProgress", "InProgress", "Suspended")
PASSED = ("Current", "Current", "Healthy")
STALLED = ("Failed", "Failed", "Degraded")
UNOBSERVED = ("InProgress", "InProgress", "Progressing")
NO_STATUS = ("Current", "Unknown", "Progressing")


def live(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = cp.get_json("sv", name, "-n", namespace)
    return obj


def capture(obj: dict[str, Any], case: str, how: str) -> None:
    """Keep `obj` as Argo CD testdata when GREENLOOP_CAPTURE_ARGOCD names a folder."""
    folder = os.environ.get("GREENLOOP_CAPTURE_ARGOCD")
    if not folder:
        return
    shown = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# {how}\n"
        f"# Captured {when} from the live object greenloop's operator wrote (kwok control plane,\n"
        f"# tests/integration/test_kstatus.py with GREENLOOP_CAPTURE_ARGOCD; kubectl get -o yaml\n"
        f"# without managedFields).\n"
    )
    text = yaml.safe_dump(shown, sort_keys=False, width=100)
    (Path(folder) / f"{case}.yaml").write_text(header + text)


def seen(
    cp: ControlPlane,
    namespace: str,
    name: str,
    says: tuple[str, str, str],
    case: str = "",
    how: str = "",
) -> dict[str, Any]:
    """The live object through kstatus, Flux's expressions and Argo CD's check, which
    must say `says`; returns Argo CD's health."""
    obj = live(cp, namespace, name)
    found = (kstatus(obj), flux_health(obj, docs_flux_exprs()), argocd_health(obj))
    status = obj.get("status") or {}
    where = f"phase {status.get('phase')!r}, generation {obj['metadata'].get('generation')}"
    assert tuple(f.get("status") for f in found) == says, f"{where}: {found}"
    health = found[2]
    if case:
        capture(obj, case, how)
    return health


def wait_either(cp: ControlPlane, namespace: str, name: str, seconds: int) -> int:
    """`kubectl wait` for a verdict, Ready or Stalled; its exit code."""
    proc = cp.kubectl(
        "wait", WAIT_EITHER, f"sv/{name}", "-n", namespace, f"--timeout={seconds}s",
        check=False, timeout=seconds + 30,
    )  # fmt: skip
    return proc.returncode


class Health(http.server.BaseHTTPRequestHandler):
    """The target's health URL: 503 until the test says the target is up."""

    up = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200 if self.up.is_set() else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[tuple[str, threading.Event]]:
    up = threading.Event()
    handler = type("Health", (Health,), {"up": up})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_ports(1)[0]), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health", up
    finally:
        server.shutdown()
        server.server_close()


def test_a_round_through_approval_and_redeploy_to_passed(
    cluster: ControlPlane,
    namespace: str,
    operator: Operator,
    tmp_path: Path,
    health_url: tuple[str, threading.Event],
) -> None:
    url, up = health_url
    roll_out(cluster, namespace, "backend")

    obj = sv("checkout", ["core"], expectedTests=2,
             target={**TARGET, "health": {"url": url, "timeoutSeconds": 120}})  # fmt: skip
    obj["spec"]["policy"]["redeploy"] = "RequireApproval"
    cluster.apply(obj, namespace=namespace)
    car = Sidecar(cluster, operator, core_answer, tmp_path)

    serve_until(operator, None, "checkout", lambda s: s.get("phase") == "Testing",
                what="Testing", timeout=60)  # fmt: skip
    seen(
        cluster,
        namespace,
        "checkout",
        RUNNING,
        case="testing",
        how="Testing, iteration 1: its suite Job runs (waits for its upload).",
    )

    status = serve_until(operator, car, "checkout", lambda s: s.get("phase") == "WaitingApproval",
                         what="WaitingApproval", timeout=60)  # fmt: skip
    health = seen(
        cluster,
        namespace,
        "checkout",
        WAITING,
        case="waiting-approval",
        how="WaitingApproval: an HTTP 503 calls for a redeploy; policy.redeploy RequireApproval.",
    )
    assert status["approval"]["command"] in health["message"]

    cluster.kubectl(*status["approval"]["command"].split()[1:])
    serve_until(operator, None, "checkout", lambda s: s.get("phase") == "Redeploying",
                what="Redeploying", timeout=60)  # fmt: skip
    seen(
        cluster,
        namespace,
        "checkout",
        RUNNING,
        case="redeploying",
        how="Redeploying, approved: the Deployment rolled out; its health URL answers 503.",
    )

    up.set()
    status = run_until_done(cluster, operator, car, "checkout", timeout=90)
    assert status["phase"] == "Passed", status
    seen(
        cluster,
        namespace,
        "checkout",
        PASSED,
        case="passed",
        how="Passed after one approved redeploy (iteration 2).",
    )
    assert wait_either(cluster, namespace, "checkout", 30) == 0


def test_a_stalled_round_is_failed_and_degraded_and_ends_the_wait(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    def answer(job: dict[str, Any]) -> bytes:
        return junit(
            PASS.format(c="cart", n="add"),
            FAIL.format(c="cart", n="total", m="AssertionError: assert 41 == 42"),
        )

    cluster.apply(sv("cart", ["core"]), namespace=namespace)
    status = run_until_done(
        cluster, operator, Sidecar(cluster, operator, answer, tmp_path), "cart", timeout=90
    )
    assert status["phase"] == "Stalled", status
    stalled = condition(status, "Stalled")
    health = seen(
        cluster,
        namespace,
        "cart",
        STALLED,
        case="stalled",
        how="Stalled: an assertion failure, flakeRetries 0.",
    )
    assert health["message"] == f"{stalled['reason']}: {stalled['message']}"
    assert kstatus(live(cluster, namespace, "cart"))["message"] == stalled["message"]

    # The wait for either verdict returns; waiting for Ready alone runs to its timeout.
    assert wait_either(cluster, namespace, "cart", 30) == 0
    ready = cluster.kubectl("wait", "--for=condition=Ready", "sv/cart", "-n", namespace,
                            "--timeout=3s", check=False)  # fmt: skip
    assert ready.returncode != 0 and "timed out" in ready.stderr, ready.stderr


def test_before_greenloop_looks_only_kstatus_says_current_and_nothing_ends_the_wait(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    def answer(job: dict[str, Any]) -> bytes:
        return junit(PASS.format(c="core", n="ok"))

    car = Sidecar(cluster, operator, answer, tmp_path)
    cluster.apply(sv("edited", ["core"]), namespace=namespace)
    assert run_until_done(cluster, operator, car, "edited", timeout=90)["phase"] == "Passed"

    # With the operator away, nothing observes what happens next.
    operator.kill(signal.SIGTERM)
    cluster.apply(sv("fresh", ["core"]), namespace=namespace)
    cluster.kubectl("patch", "sv/edited", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"policy":{"maxIterations":3}}}')  # fmt: skip

    health = seen(
        cluster,
        namespace,
        "fresh",
        NO_STATUS,
        case="no-status",
        how="No status yet: created while no operator ran.",
    )
    assert health["message"] == "Waiting for greenloop: no status yet"
    health = seen(
        cluster,
        namespace,
        "edited",
        UNOBSERVED,
        case="generation-behind",
        how="Passed at generation 1, then its spec edited while no operator ran.",
    )
    assert health["message"] == (
        "Waiting for greenloop to observe generation 2 (status is of generation 1)"
    )
    # Neither an object with no status nor a verdict of an older generation ends the wait.
    assert wait_either(cluster, namespace, "fresh", 2) != 0
    assert wait_either(cluster, namespace, "edited", 2) != 0

    def verdict_on(generation: int) -> Callable[[dict[str, Any]], bool]:
        def done(s: dict[str, Any]) -> bool:
            return s.get("observedGeneration") == generation and s.get("phase") in VERDICTS

        return done

    operator.start()
    for name, generation in (("fresh", 1), ("edited", 2)):
        status = serve_until(operator, car, name, verdict_on(generation),
                             what=f"a verdict on generation {generation}", timeout=90)  # fmt: skip
        assert status["phase"] == "Passed", status
        seen(cluster, namespace, name, PASSED)
        assert wait_either(cluster, namespace, name, 30) == 0
