"""The gateway against the real API server: typed errors, adoption, conflict-checked status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from greenloop.core import crd
from greenloop.k8s.gateway import Conflict, Gateway, NotFound
from tools.cluster.binaries import REPO_ROOT
from tools.cluster.controlplane import ControlPlane

pytestmark = pytest.mark.integration
T = TypeVar("T")
CRD = REPO_ROOT / "crds" / "stagingvalidation.yaml"


def on(cp: ControlPlane, body: Callable[[Gateway], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await Gateway.connect(str(cp.kubeconfig)) as gw:
            return await body(gw)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def installed_crd(apiserver: ControlPlane) -> None:
    apiserver.kubectl("apply", "-f", str(CRD))
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{crd.NAME}")


def validation(name: str) -> dict[str, Any]:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": {"suites": [{"name": "all", "command": ["pytest"], "image": "e2e:1"}]},
    }


def test_status_write_with_a_stale_resource_version_is_refused_and_a_current_one_applied(
    apiserver: ControlPlane, installed_crd: None, namespace: str
) -> None:
    apiserver.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(validation("sv")))

    async def body(gw: Gateway) -> tuple[str, str]:
        first = await gw.get(crd.KIND, namespace, "sv")
        stale = first["metadata"]["resourceVersion"]
        # Someone else writes in between (a second operator, a person).
        await gw.patch_status(
            "StagingValidation", namespace, "sv", {"phase": "Testing"}, resource_version=stale
        )
        with pytest.raises(Conflict) as refused:
            await gw.patch_status(
                "StagingValidation", namespace, "sv", {"phase": "Passed"}, resource_version=stale
            )
        assert refused.value.status == 409
        current = (await gw.get(crd.KIND, namespace, "sv"))["metadata"]
        written = await gw.patch_status(
            crd.KIND,
            namespace,
            "sv",
            {"phase": "Redeploying"},
            resource_version=current["resourceVersion"],
        )
        return str(written["status"]["phase"]), refused.value.reason

    phase, reason = on(apiserver, body)
    assert (phase, reason) == ("Redeploying", "Conflict")
    stored = apiserver.get_json("sv", "sv", "-n", namespace)
    assert stored["status"]["phase"] == "Redeploying", "the stale write must not have landed"


def test_create_twice_adopts_the_existing_object_and_absence_is_typed(
    apiserver: ControlPlane, namespace: str
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "once", "namespace": namespace},
        "data": {"k": "v"},
    }

    async def body(gw: Gateway) -> tuple[bool, bool, str]:
        first, created = await gw.create_or_adopt(cm)
        second, created_again = await gw.create_or_adopt({**cm, "data": {"k": "other"}})
        assert first["metadata"]["uid"] == second["metadata"]["uid"]
        with pytest.raises(NotFound):
            await gw.get("Deployment", namespace, "missing")
        assert await gw.find("Secret", namespace, "missing") is None
        return created, created_again, str(second["data"]["k"])

    assert on(apiserver, body) == (True, False, "v")


def test_wait_for_returns_when_the_watched_object_reaches_the_condition(
    apiserver: ControlPlane, namespace: str
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "w", "namespace": namespace},
    }

    async def body(gw: Gateway) -> tuple[str | None, Any]:
        await gw.create(cm)

        async def later() -> None:
            await asyncio.sleep(0.3)
            await gw.patch("ConfigMap", namespace, "w", {"data": {"ready": "yes"}})

        task = asyncio.create_task(later())
        seen = await gw.wait_for(
            "ConfigMap", namespace, "w", lambda o: "ready" in (o.get("data") or {}), timeout=20
        )
        await task
        never = await gw.wait_for(
            "ConfigMap", namespace, "w", lambda o: "never" in (o.get("data") or {}), timeout=1
        )
        return (seen or {}).get("data", {}).get("ready"), never is not None

    assert on(apiserver, body) == ("yes", True)
