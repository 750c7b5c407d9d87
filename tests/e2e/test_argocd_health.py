"""config/argocd/health.lua, run by gopher-lua as Argo CD's controller runs it
(tools/gitops/luahealth), over config/argocd/health_test.yaml - Argo CD's own layout
for a resource customization's tests - whose objects greenloop's operator wrote
(tests/integration/test_kstatus.py captured them; each file says how)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.gitops import HEALTH_LUA, GitOpsToolError, argocd_health, docs_objects

ARGOCD = Path(__file__).resolve().parents[2] / "config" / "argocd"
CASES: list[dict[str, Any]] = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


def captured(path: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((ARGOCD / path).read_text())
    return obj


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_health_of_an_object_greenloop_wrote(case: dict[str, Any]) -> None:
    assert argocd_health(captured(case["inputPath"])) == case["healthStatus"]


def test_every_testdata_object_is_a_case_and_says_how_it_was_captured() -> None:
    files = sorted(p.relative_to(ARGOCD).as_posix() for p in (ARGOCD / "testdata").glob("*.yaml"))
    assert files == sorted(c["inputPath"] for c in CASES)
    for name in files:
        assert (ARGOCD / name).read_text().startswith("# "), f"{name}: say how it was captured"
    statuses = {c["healthStatus"]["status"] for c in CASES}
    assert statuses == {"Healthy", "Progressing", "Suspended", "Degraded"}


# Phases and shapes no capture holds: derived from captured objects, one field changed.
def _phase(obj: dict[str, Any], phase: str) -> dict[str, Any]:
    obj["status"]["phase"] = phase
    return obj


def _unknown_phase(obj: dict[str, Any], ready: str, reconciling: str, stalled: str) -> None:
    obj["status"]["phase"] = "Verifying"  # a phase a newer greenloop might add
    for c in obj["status"]["conditions"]:
        c["status"] = {"Ready": ready, "Reconciling": reconciling, "Stalled": stalled}[c["type"]]


def _no_conditions(obj: dict[str, Any]) -> None:
    del obj["status"]["conditions"]


def _status_without_phase(obj: dict[str, Any]) -> None:
    obj["status"] = {"observedGeneration": 1}


DERIVED = [
    # (from, change, status, message starts with)
    ("testing", lambda o: _phase(o, "Pending"), "Progressing", "Pending: iteration 1: "),
    ("testing", lambda o: _unknown_phase(o, "False", "True", "False"), "Progressing", ""),
    ("passed", lambda o: _unknown_phase(o, "True", "False", "False"), "Healthy", ""),
    ("stalled", lambda o: _unknown_phase(o, "False", "False", "True"), "Degraded", ""),
    ("passed", lambda o: _unknown_phase(o, "False", "False", "False"), "Unknown", "Unknown phase"),
    ("stalled", _no_conditions, "Degraded", "Stalled"),
    ("testing", _status_without_phase, "Progressing", "Waiting for greenloop: no status yet"),
]


@pytest.mark.parametrize(
    "source, change, status, message", DERIVED, ids=[f"{d[0]}-{d[2]}" for d in DERIVED]
)
def test_health_of_shapes_no_capture_holds(
    source: str, change: Any, status: str, message: str
) -> None:
    obj = copy.deepcopy(captured(f"testdata/{source}.yaml"))
    change(obj)
    health = argocd_health(obj)
    assert health["status"] == status
    assert health["message"].startswith(message)


INVALID = "Lua returned an invalid health status"

# The runner itself: what Argo CD's controller does with a script, so a health.lua that
# would fail in Argo CD fails here too. Each row is a behaviour of argo-cd util/lua/lua.go.
RUNNER = [
    # the standard libraries are not opened (no useOpenLibs): string.* is nil
    ('return {status="Healthy", message=string.format("%d", 1)}', "attempt to index"),
    ('return {status="Healthy", message=("x"):upper()}', "attempt to"),
    ('return {status="Fine"}', {"status": "Unknown", "message": INVALID}),
    ("return {}", {}),
    ("return nil", {}),
    ("return 1", "expect table output from Lua script, not number"),
    ("while true do end", "context deadline exceeded"),
    ('return {status="Healthy", message=os.date("!%Y", 0) .. table.concat({"a", "b"})}',
     {"status": "Healthy", "message": "1970ab"}),
    ('return {status="Healthy", message=type(io) .. type(os.exit) .. type(require)}',
     {"status": "Healthy", "message": "nilnilfunction"}),
    ("return {status=obj.metadata.generation + 0.5 > 3 and 'Healthy' or 'Degraded'}",
     {"status": "Healthy"}),
]  # fmt: skip


@pytest.mark.parametrize("script, expected", RUNNER, ids=[r[0][:40] for r in RUNNER])
def test_the_runner_runs_a_script_as_argo_cd_does(
    tmp_path: Path, script: str, expected: dict[str, str] | str
) -> None:
    lua = tmp_path / "health.lua"
    lua.write_text(script)
    obj = {"apiVersion": "greenloop.dev/v1alpha1", "kind": "StagingValidation",
           "metadata": {"name": "x", "generation": 3}}  # fmt: skip
    if isinstance(expected, str):
        with pytest.raises(GitOpsToolError, match=expected.replace("(", r"\(")):
            argocd_health(obj, lua)
    else:
        assert argocd_health(obj, lua) == expected


def test_the_argocd_cm_in_the_docs_holds_this_script() -> None:
    cm = next(o for o in docs_objects() if o.get("kind") == "ConfigMap")
    assert (cm["metadata"]["name"], cm["metadata"]["namespace"]) == ("argocd-cm", "argocd")
    key = "resource.customizations.health.greenloop.dev_StagingValidation"
    assert cm["data"][key] == HEALTH_LUA.read_text()
