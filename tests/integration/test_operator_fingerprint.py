"""The environment fingerprint on the kwok cluster (docs/design.md §8): someone else's
`kubectl set image` on a target makes the results gathered before it stale — the round
starts over (`TargetChanged`) — and `Passed` names the image it was proven on.

As in test_operator_loop.py, the suite Jobs get no pods (their service account does not
exist) and this test plays their results sidecar; the target Deployment's pods run on
kwok's fake node, which reports no `imageID`: what is checked here is the fallback to
the image reference (the real node's digests are checked on the real node).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_operator_loop import (
    TARGET,
    Sidecar,
    condition,
    events,
    replicasets,
    serve_until,
    status_of,
    sv,
)
from tests.support.sidecar import FAIL, PASS, junit
from tests.support.workloads import roll_out
from tools.cluster.controlplane import ControlPlane
from tools.cluster.operator import Operator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def labels(job: dict[str, Any]) -> tuple[str, str, str]:
    """(round, iteration, suite) of a suite Job."""
    got = job["metadata"]["labels"]
    return got["greenloop.dev/round"], got["greenloop.dev/iteration"], got["greenloop.dev/suite"]


def set_image(cluster: ControlPlane, namespace: str, image: str) -> None:
    """Someone else deploys: a new image, as a CD pipeline or a person would."""
    cluster.kubectl("set", "image", "deployment/backend", f"app={image}", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/backend", "-n", namespace, "--timeout=60s")


def image_of(status: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (e["workload"], e["container"], e["image"], e["imageID"])
        for e in status["fingerprint"]["entries"]
    ]


def test_a_target_changed_mid_round_restarts_the_round_and_passed_names_the_new_image(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    roll_out(cluster, namespace, "backend")
    held: list[str] = []

    def answer(job: dict[str, Any]) -> bytes | None:
        round_, iteration, suite = labels(job)
        if round_ == "1" and iteration == "2":
            held.append(job["metadata"]["name"])
            return None  # never answered: the target changes while it runs
        if suite == "critical":
            return junit(PASS.format(c="crit", n="login"))
        if round_ == "1":
            return junit(FAIL.format(c="core", n="websocket", m="HTTP 503 Service Unavailable"))
        return junit(PASS.format(c="core", n="websocket"))

    cluster.apply(sv("demo", ["critical", "core"], expectedTests=2, target=TARGET),
                  namespace=namespace)  # fmt: skip
    car = Sidecar(cluster, operator, answer, tmp_path)
    # Round 1: the 503 makes greenloop redeploy (its own change: no TargetChanged), and
    # the rerun's Job is created on the rolled-out Deployment.
    serve_until(operator, car, "demo", lambda _: held, what="the rerun of round 1")
    before = status_of(cluster, namespace, "demo")
    assert before["phase"] == "Testing" and before["iteration"] == 2
    assert image_of(before) == [
        ("Deployment/backend", "app", "localhost/demo-app:dev", "localhost/demo-app:dev")
    ]  # fmt: skip  (kwok: no imageID)
    assert "TargetChanged" not in [r for r, _ in events(cluster, namespace)]
    assert replicasets(cluster, namespace, "backend") == 2, "greenloop's one rollout"

    set_image(cluster, namespace, "localhost/demo-app:v2")

    def restarted(status: dict[str, Any]) -> bool:
        return condition(status, "Reconciling").get("reason") == "TargetChanged"

    # No sidecar: round 2 waits.
    changed = serve_until(operator, None, "demo", restarted, what="TargetChanged in status")
    message = condition(changed, "Reconciling")["message"]
    assert "target changed, not by greenloop: Deployment/backend:" in message, message
    assert "app=localhost/demo-app:dev" in message and "→ app=localhost/demo-app:v2" in message
    assert changed["iteration"] == 1 and changed["summary"]["total"] == 0, "stale results gone"
    assert [h["iteration"] for h in changed["history"]] == [1]
    target_changed = [m for r, m in events(cluster, namespace) if r == "TargetChanged"]
    assert len(target_changed) == 1 and "localhost/demo-app:v2" in target_changed[0]

    # Round 2 runs every suite again, on the new image, and passes.
    status = serve_until(
        operator, car, "demo", lambda s: s.get("phase") in ("Passed", "Stalled"),
        what="the verdict of round 2",
    )  # fmt: skip
    assert status["phase"] == "Passed", status
    ready = condition(status, "Ready")
    assert ready["status"] == "True"
    digest = status["fingerprint"]["digest"]
    assert f"on target fingerprint {digest}" in ready["message"], ready["message"]
    assert "localhost/demo-app:v2" in ready["message"]
    assert image_of(status) == [("Deployment/backend", "app", "localhost/demo-app:v2",
                                 "localhost/demo-app:v2")]  # fmt: skip
    assert all(h["fingerprint"] == digest for h in status["history"])
    round_two = sorted(labels(j)[1:] for j in car.jobs() if labels(j)[0] == "2")
    assert round_two == [("1", "core"), ("1", "critical")], "a fresh round runs everything"
    report = cluster.get_json("configmap", status["report"]["configMap"], "-n", namespace)
    text = report["data"]["report.md"]
    assert f"## Target fingerprint `{digest}`" in text
    assert "`localhost/demo-app:v2`" in text and "proven on" in text
    wide = cluster.kubectl("get", "sv", "demo", "-n", namespace, "-o", "wide").stdout
    assert digest in wide, wide


def test_a_passed_object_whose_target_changes_later_starts_a_new_round(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    roll_out(cluster, namespace, "backend")

    def answer(job: dict[str, Any]) -> bytes:
        return junit(PASS.format(c="core", n="websocket"))

    cluster.apply(sv("demo", ["core"], target=TARGET), namespace=namespace)
    car = Sidecar(cluster, operator, answer, tmp_path)

    def passed(status: dict[str, Any]) -> bool:
        return status.get("phase") == "Passed"

    first = serve_until(operator, car, "demo", passed, what="the first verdict")
    assert image_of(first)[0][2] == "localhost/demo-app:dev"
    assert replicasets(cluster, namespace, "backend") == 1, "nothing failed: no rollout"

    set_image(cluster, namespace, "localhost/demo-app:v3")
    # Woken by the Deployment's own events, not the 300 s idle tick of a finished object.
    second = serve_until(
        operator, car, "demo",
        lambda s: passed(s) and s["fingerprint"]["digest"] != first["fingerprint"]["digest"],
        what="a new round that passes on the new image", timeout=60,
    )  # fmt: skip
    assert image_of(second)[0][2] == "localhost/demo-app:v3"
    assert "localhost/demo-app:v3" in condition(second, "Ready")["message"]
    reasons = [r for r, _ in events(cluster, namespace)]
    assert reasons.count("TargetChanged") == 1 and reasons.count("Passed") == 2, reasons
    rounds = sorted(labels(j)[0] for j in car.jobs())
    assert rounds == ["1", "2"], "one Job per round, no rerun of a passing suite"
