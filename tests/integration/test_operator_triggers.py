"""The approval gate and the triggers for a new round (docs/design.md §8) with
`greenloop operator` on the kwok cluster: a person's annotations and the clock.

Same set-up as test_operator_loop.py (whose helpers this reuses): the operator runs on
the host, the suite Jobs get no pods on kwok, and the test plays the results sidecar.
Rollouts are counted from the Deployment's ReplicaSets, as a person would check them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_operator_loop import (
    TARGET,
    Sidecar,
    condition,
    events,
    replicasets,
    run_until_done,
    serve_until,
    status_of,
    sv,
)
from tests.support.sidecar import FAIL, PASS, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator

# The first test of a session also pays for the control plane start: the same bound as
# test_operator_loop.py; each wait inside is bounded on its own.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def ticks_waiting(op: Operator, token: str) -> int:
    """How many ticks the operator has logged as waiting for this token."""
    return op.log.read_text(errors="replace").count(f"waiting for approval of {token}")


def round_of(status: dict[str, Any]) -> int:
    return int((status.get("engine") or {}).get("round", 0))


def test_the_approval_gate_waits_ignores_a_wrong_token_and_rolls_out_once_on_the_right_one(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    roll_out(cluster, namespace, "backend")

    def answer(job: dict[str, Any]) -> bytes:
        if job["metadata"]["labels"]["greenloop.dev/iteration"] == "1":
            return junit(FAIL.format(c="core", n="ws", m="HTTP 503 Service Unavailable"))
        return junit(PASS.format(c="core", n="ws"))

    gated = sv("gate", ["core"], target=TARGET)
    gated["spec"]["policy"]["redeploy"] = "RequireApproval"
    cluster.apply(gated, namespace=namespace)
    car = Sidecar(cluster, operator, answer, tmp_path)
    status = serve_until(
        operator, car, "gate", lambda s: s.get("phase") == "WaitingApproval",
        what="WaitingApproval", timeout=60,
    )  # fmt: skip

    token = status["approval"]["token"]
    command = status["approval"]["command"]
    assert command == (
        f"kubectl annotate sv/gate -n {namespace} greenloop.dev/approve={token} --overwrite"
    )
    reconciling = condition(status, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "WaitingApproval")
    assert command in reconciling["message"]
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Stalled")["status"] == "False"
    waits = [m for r, m in events(cluster, namespace) if r == "WaitingApproval"]
    assert len(waits) == 1 and command in waits[0], waits
    assert replicasets(cluster, namespace, "backend") == 1, "no rollout before the approval"

    # A wrong (stale) token: the operator looks at it and goes on waiting.
    seen = ticks_waiting(operator, token)
    cluster.kubectl(
        "annotate", "sv/gate", "-n", namespace, "greenloop.dev/approve=r0-i1-s1", "--overwrite"
    )
    deadline = time.monotonic() + 30
    while ticks_waiting(operator, token) <= seen and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ticks_waiting(operator, token) > seen, f"the annotation woke no tick\n{operator.tail()}"
    assert status_of(cluster, namespace, "gate")["phase"] == "WaitingApproval"
    assert replicasets(cluster, namespace, "backend") == 1, "a wrong token rolled out"

    # The command from status, run as a person would run it.
    cluster.kubectl(*command.split()[1:])
    status = run_until_done(cluster, operator, car, "gate", timeout=90)
    assert status["phase"] == "Passed", status
    assert status["iteration"] == 2
    assert "approval" not in status
    assert replicasets(cluster, namespace, "backend") == 2, "exactly one rollout"
    redeploys = [m for r, m in events(cluster, namespace) if r == "Redeploying"]
    assert redeploys and "(approved)" in redeploys[0], redeploys


def test_a_new_rerun_annotation_on_a_passed_object_runs_a_new_round(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    cluster.apply(sv("again", ["core"]), namespace=namespace)
    car = Sidecar(cluster, operator, lambda job: junit(PASS.format(c="core", n="ok")), tmp_path)
    status = run_until_done(cluster, operator, car, "again", timeout=60)
    assert (status["phase"], round_of(status)) == ("Passed", 1)
    assert len(car.jobs()) == 1

    cluster.kubectl("annotate", "sv/again", "-n", namespace, "greenloop.dev/rerun=1")
    status = serve_until(
        operator, car, "again", lambda s: round_of(s) == 2 and s.get("phase") == "Passed",
        what="round 2 Passed", timeout=60,
    )  # fmt: skip
    jobs = car.jobs()
    assert len(jobs) == 2, [j["metadata"]["name"] for j in jobs]
    assert sorted(j["metadata"]["labels"]["greenloop.dev/round"] for j in jobs) == ["1", "2"]
    assert condition(status, "Ready")["status"] == "True"
    reruns = [m for r, m in events(cluster, namespace) if r == "RerunRequested"]
    assert len(reruns) == 1 and "greenloop.dev/rerun changed to '1'" in reruns[0], reruns
    # The same value again asks for nothing: no third round.
    cluster.kubectl("annotate", "sv/again", "-n", namespace, "greenloop.dev/rerun=1", "--overwrite")
    cluster.kubectl("label", "sv/again", "-n", namespace, "touched=yes")  # wakes the unit
    time.sleep(3)
    assert round_of(status_of(cluster, namespace, "again")) == 2


def test_revalidate_every_starts_a_new_round_by_itself(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    cluster.apply(sv("every", ["core"], revalidateEvery="3s"), namespace=namespace)
    car = Sidecar(cluster, operator, lambda job: junit(PASS.format(c="core", n="ok")), tmp_path)
    status = serve_until(
        operator, car, "every", lambda s: round_of(s) >= 2 and s.get("phase") == "Passed",
        what="round 2 Passed", timeout=60,
    )  # fmt: skip
    rounds = {j["metadata"]["labels"]["greenloop.dev/round"] for j in car.jobs()}
    assert {"1", "2"} <= rounds, rounds
    assert condition(status, "Ready")["status"] == "True"
    revalidations = [m for r, m in events(cluster, namespace) if r == "Revalidating"]
    assert revalidations and "revalidateEvery: 3 seconds" in revalidations[0], revalidations
