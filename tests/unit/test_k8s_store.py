"""The operator's watch-fed store (k8s/store.py, docs/design.md §8.1), rule by rule:
an object's version never goes back, a relist replaces (so what was deleted while no
watch ran is gone), a deleted uid stays gone, objects are trimmed to what greenloop
reads, and a list-watch loop that meets a 410 lists again and replaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import pytest

from greenloop.core import crd
from greenloop.k8s.gateway import ApiError, Gateway
from greenloop.k8s.operator import Units
from greenloop.k8s.reconcile import Reconciler
from greenloop.k8s.store import (
    SOURCES,
    Source,
    Store,
    is_newer,
    matches,
    matches_string,
    selector_string,
    trimmed,
)


def pod(name: str, rv: int, *, uid: str = "", ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": ns, "uid": uid or f"uid-{name}",
            "resourceVersion": str(rv), "labels": dict(labels),
        },
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip


class Changes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        self.seen.append((kind, meta["name"], meta["resourceVersion"]))


def store(namespaces: tuple[str, ...] = ("ns",)) -> tuple[Store, Changes]:
    changes = Changes()
    return Store(cast(Gateway, None), namespaces, on_change=changes), changes


def rv(s: Store, kind: str, name: str, ns: str = "ns") -> str | None:
    obj = s.get(kind, ns, name)
    return None if obj is None else str(obj["metadata"]["resourceVersion"])


# ---- never back ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "old", "newer"),
    [("10", "9", True), ("9", "10", False), ("10", "10", False), ("100", "99", True),
     ("b", "a", True), ("a", "a", False)],
)  # fmt: skip
def test_versions_compare_as_integers_and_opaque_ones_by_arrival(
    new: str, old: str, newer: bool
) -> None:
    assert is_newer(new, old) is newer


def test_an_older_version_never_replaces_a_newer_one() -> None:
    s, changes = store()
    assert s.seen("Pod", pod("a", 5))
    assert not s.seen("Pod", pod("a", 4))  # a late watch event after a write's answer
    assert not s.seen("Pod", pod("a", 5))  # the same version: nothing changed
    assert rv(s, "Pod", "a") == "5"
    assert s.seen("Pod", pod("a", 6))
    assert changes.seen == [("Pod", "a", "5"), ("Pod", "a", "6")]


def test_a_deleted_uid_is_not_brought_back_by_a_late_answer() -> None:
    s, _ = store()
    s.seen("Pod", pod("a", 5))
    assert s.deleted("Pod", pod("a", 7))
    assert not s.seen("Pod", pod("a", 6))  # an answer read before the deletion
    assert s.get("Pod", "ns", "a") is None
    assert s.seen("Pod", pod("a", 9, uid="recreated"))  # the name's next object is new


def test_a_late_deletion_of_the_old_uid_leaves_the_recreated_object() -> None:
    s, _ = store()
    s.seen("Pod", pod("a", 9, uid="new"))
    assert not s.deleted("Pod", pod("a", 7, uid="old"))
    assert rv(s, "Pod", "a") == "9"


# ---- relist replaces -------------------------------------------------------------------


def test_a_relist_replaces_and_what_was_deleted_in_the_gap_is_gone() -> None:
    s, changes = store()
    s.replace("Pod", "ns", [pod("a", 3), pod("b", 4), pod("gone", 2)], "10")
    changes.seen.clear()
    # The watch broke; meanwhile "gone" was deleted and "a" changed. The list at 20:
    n = s.replace("Pod", "ns", [pod("a", 15), pod("b", 4)], "20")
    assert s.get("Pod", "ns", "gone") is None
    assert rv(s, "Pod", "a") == "15"
    assert n == 2
    assert sorted(changes.seen) == [("Pod", "a", "15"), ("Pod", "gone", "2")]  # both wake


def test_a_relist_keeps_what_the_store_saw_after_the_list_was_served() -> None:
    s, _ = store()
    s.replace("Pod", "ns", [pod("a", 3)], "10")
    s.seen("Pod", pod("a", 25))  # a write's answer, newer than the coming list
    s.seen("Pod", pod("made", 22))  # created after the list below was served
    s.replace("Pod", "ns", [pod("a", 18)], "20")
    assert rv(s, "Pod", "a") == "25"
    assert rv(s, "Pod", "made") == "22"


def test_a_relist_of_one_namespace_leaves_the_others() -> None:
    s, _ = store(("ns", "other"))
    s.seen("Pod", pod("x", 3, ns="other"))
    s.replace("Pod", "ns", [], "10")
    assert rv(s, "Pod", "x", "other") == "3"


# ---- what the store holds ----------------------------------------------------------------


def test_only_what_a_source_selects_in_a_watched_namespace_is_held() -> None:
    s, _ = store()
    cm = pod("results", 3, **{"greenloop.dev/results": "junit"})
    report = pod("report", 3)
    assert s.seen("ConfigMap", cm)
    assert not s.seen("ConfigMap", report)  # the report is no results ConfigMap
    assert not s.seen("Pod", pod("elsewhere", 3, ns="kube-system"))
    assert not s.seen("Secret", pod("token", 3))  # a kind the store does not hold
    assert not s.seen("Job", pod("theirs", 3))  # not managed by greenloop
    assert s.seen("Job", pod("ours", 3, **{"app.kubernetes.io/managed-by": "greenloop"}))


def test_every_namespace_when_none_is_named() -> None:
    s, _ = store(())
    assert s.seen("Pod", pod("x", 3, ns="anywhere"))


def test_objects_are_trimmed_to_what_greenloop_reads() -> None:
    big = {
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "3",
            "labels": {"app": "x"}, "managedFields": [{"manager": "m" * 1000}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 10_000,
                            "batch.kubernetes.io/job-completion-index": "2"},
        },
        "spec": {
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A"}] * 50}],
            "volumes": [{"name": "v"}] * 20,
        },
        "status": {
            "phase": "Running",
            "startTime": "2026-12-07T05:00:00Z",
            "conditions": [{"type": "Ready"}] * 5,
            "containerStatuses": [
                {"name": "app", "imageID": "sha256:1", "restartCount": 0, "ready": True,
                 "state": {"running": {}}},
            ],
        },
    }  # fmt: skip
    assert trimmed("Pod", big) == {
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "3",
            "labels": {"app": "x"},
            # an Indexed Job's shard; and since when a waiting container has waited
            "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
        },
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {
            "phase": "Running",
            "startTime": "2026-12-07T05:00:00Z",
            "containerStatuses": [
                {"name": "app", "imageID": "sha256:1", "restartCount": 0, "state": {"running": {}}}
            ],
        },
    }  # fmt: skip
    rs = {**big, "metadata": {**big["metadata"], "annotations": {
        "deployment.kubernetes.io/revision": "4", "other": "x" * 1000}}}  # fmt: skip
    assert trimmed("ReplicaSet", rs)["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "4"
    }
    assert set(trimmed("ReplicaSet", rs)) == {"metadata"}
    cm = {"metadata": big["metadata"], "binaryData": {"junit.xml.gz": "x" * 100_000}}
    assert set(trimmed("ConfigMap", cm)) == {"metadata"}  # the body is read from the API
    cr = {"metadata": big["metadata"], "revision": 3, "data": {"spec": "x" * 10_000}}
    assert trimmed("ControllerRevision", cr)["revision"] == 3
    assert "data" not in trimmed("ControllerRevision", cr)
    job = {"metadata": {**big["metadata"], "annotations": {"greenloop.dev/runner-error": "e"}},
           "spec": {"suspend": True, "template": big}, "status": {"active": 1}}  # fmt: skip
    assert trimmed("Job", job)["spec"] == {"suspend": True}
    assert trimmed("Job", job)["metadata"]["annotations"] == {"greenloop.dev/runner-error": "e"}
    sv = {"metadata": big["metadata"], "spec": {"suites": []}, "status": {"engine": {"x": 1}}}
    kept = trimmed(crd.KIND, sv)
    assert kept["status"] == sv["status"] and "managedFields" not in kept["metadata"]


# ---- label selectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "match"),
    [
        ("", {}, True),
        ("app=x", {"app": "x"}, True),
        ("app=x", {"app": "y"}, False),
        ("app=x,tier=web", {"app": "x"}, False),
        ("app!=x", {}, True),
        ("env in (a,b),app=x", {"env": "b", "app": "x"}, True),
        ("env in (a,b)", {"env": "c"}, False),
        ("env notin (a,b)", {"env": "c"}, True),
        ("env", {"env": ""}, True),
        ("!env", {"env": ""}, False),
    ],
)
def test_label_selectors_match_as_the_api_server_does(
    selector: str, labels: dict[str, str], match: bool
) -> None:
    assert matches_string(selector, labels) is match


def test_a_workload_selector_with_expressions_matches_its_pods() -> None:
    sel = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(sel) == "app=x,tier in (web,api),!canary"
    assert matches(sel, {"app": "x", "tier": "api"})
    assert not matches(sel, {"app": "x", "tier": "api", "canary": "1"})


def test_a_bounded_read_takes_the_same_objects_as_the_api_name_order() -> None:
    s, _ = store()
    for name in ("c", "a", "b"):
        s.seen("Pod", pod(name, 3, app="x"))
    s._synced[("Pod", "ns")] = asyncio.Event()
    s._synced[("Pod", "ns")].set()
    found = asyncio.run(s.select("Pod", "ns", "app=x", limit=2))
    assert [p["metadata"]["name"] for p in found] == ["a", "b"]


# ---- the list-and-watch loop -------------------------------------------------------------


class ScriptedApi:
    """Answers a store's lists and watches from a script: each list returns the next
    (items, version); each watch yields the next batch of events, then raises what the
    script says (a 410, a broken connection) or ends."""

    def __init__(self, lists: list[tuple[list[Any], str]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.observers: list[Any] = []
        self.calls: list[str] = []
        self.finds: list[tuple[str, str]] = []

    async def list_page(self, kind: str, namespace: str | None, **_: Any) -> dict[str, Any]:
        self.calls.append("list")
        items, version = self.lists.pop(0) if self.lists else ([], "0")
        return {"items": items, "metadata": {"resourceVersion": version}}

    async def watch_kind(
        self, kind: str, namespace: str | None, *, resource_version: str, **_: Any
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.calls.append(f"watch@{resource_version}")
        if not self.watches:
            await asyncio.sleep(3600)
        step = self.watches.pop(0)
        events, end = step
        for event in events:
            yield event
        if end is not None:
            raise end

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.finds.append((kind, name))
        return None


def test_a_watch_error_lists_again_and_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("greenloop.k8s.store.random.uniform", lambda a, b: 0.0)
    api = ScriptedApi(
        lists=[([pod("a", 3), pod("b", 4)], "10"), ([pod("a", 12)], "20")],
        watches=[
            ([("MODIFIED", pod("a", 11)), ("BOOKMARK", {"metadata": {"resourceVersion": "13"}})],
             None),  # the API server ended the watch: re-open from the last version
            ([], ApiError(410, "Expired", "too old resource version")),
        ],
    )  # fmt: skip
    changes = Changes()
    s = Store(cast(Gateway, api), ("ns",), on_change=changes, sources=[Source("Pod")])

    async def scenario() -> None:
        await s.start(timeout=5)
        for _ in range(500):  # the re-opened watch waits 1 s: it ended at once
            if s.relists:
                break
            await asyncio.sleep(0.01)
        await s.stop()

    asyncio.run(scenario())
    assert api.calls[:4] == ["list", "watch@10", "watch@13", "list"]
    assert s.relists == 1
    assert rv(s, "Pod", "a") == "12"
    assert s.get("Pod", "ns", "b") is None  # deleted while no watch ran
    assert ("Pod", "b", "4") in changes.seen[-2:]  # and its owner was woken


def test_a_kind_not_yet_listed_is_read_from_the_api() -> None:
    api = ScriptedApi([], [])
    s = Store(cast(Gateway, api), ("ns",))
    assert asyncio.run(s.find("Pod", "ns", "a")) is None
    assert api.finds == [("Pod", "a")]
    s._synced[("Pod", "ns")] = asyncio.Event()
    s._synced[("Pod", "ns")].set()
    asyncio.run(s.find("Pod", "ns", "a"))
    assert api.finds == [("Pod", "a")]  # listed: from the store


def test_the_store_holds_every_kind_a_tick_reads() -> None:
    assert {s.kind for s in SOURCES} == {
        crd.KIND, "Job", "Pod", "ConfigMap", "Deployment", "StatefulSet", "DaemonSet",
        "ReplicaSet", "ControllerRevision",
    }  # fmt: skip


# ---- what a change wakes -------------------------------------------------------------------


def test_a_target_pod_wakes_the_objects_that_target_its_deployment() -> None:
    units = Units(cast(Reconciler, None))
    s = Store(cast(Gateway, None), ("ns",))
    woken: list[str] = []
    units.poke_uid = woken.append  # type: ignore[method-assign]
    units.watch_targets("ns", "sv-1", [{"kind": "Deployment", "name": "backend"}])
    on_change = units.woken_by(s)
    rs = pod("backend-abc", 3)
    rs["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "backend"}]
    s.seen("ReplicaSet", rs)
    target_pod = pod("backend-abc-1", 4)
    target_pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "backend-abc"}]
    on_change("Pod", target_pod)
    on_change("ReplicaSet", rs)
    on_change("Pod", pod("unrelated", 5))
    suite_pod = pod("suite", 6, **{"greenloop.dev/validation-uid": "sv-2"})
    on_change("Pod", suite_pod)
    sv = pod("demo", 7, uid="sv-3")
    on_change(crd.KIND, sv)
    assert woken == ["sv-1", "sv-1", "sv-2", "sv-3"]
