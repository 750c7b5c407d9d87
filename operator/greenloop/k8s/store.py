"""A local store of what greenloop reads each tick, fed by watches (docs/design.md §8.1).

The informer pattern, as controller-runtime's caches do it: for each kind and watched
namespace, list, REPLACE the store's objects of that kind and namespace with the list,
then watch from the list's resourceVersion; a watch the API server ends is re-opened
from the last version seen, and any watch error (410 Gone included) lists again and
replaces again, so an object deleted while no watch ran is gone from the store too.

Rules, each with a name a test holds (tests/unit/test_k8s_store.py):

- *never back*: an object's version in the store only moves forward. Besides the watch,
  the store takes every object the Gateway read or wrote (`Gateway.observers`): a status
  patch's answer is in the store before the next tick, and a watch event older than it
  is ignored. A deleted uid (a tombstone) is never brought back by a late answer.
- *relist replaces*: the list is the truth at its version; an object the list lacks is
  removed unless the store saw it at a newer version (made after the list was served).
- *trim*: only the fields greenloop reads are kept (`trimmed`), so memory grows with
  the number of objects, not with their size; a results ConfigMap is kept as metadata
  (its body is read from the API once, when it is there).
- *a kind not yet listed is read from the API*: until a kind's first list has arrived,
  reads of it go to the API, so a slow start never answers "absent".

Reads are by (kind, namespace, name) and by label selector (from an index of labels:
greenloop.k8s.selectors, so a select visits what could match); every change (and every
object a relist adds, changes or removes) is handed to `on_change`, which wakes the
object it belongs to (greenloop.k8s.operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from greenloop.core import crd
from greenloop.k8s.gateway import ApiError, Gateway
from greenloop.k8s.jobs import COMPLETION_INDEX_ANNOTATION, LABEL_MANAGED_BY
from greenloop.k8s.selectors import (
    LabelIndex,
    matcher,
    matches,
    matches_string,
    selector_string,
)

__all__ = [
    "SOURCES",
    "ApiReader",
    "Reader",
    "Source",
    "Store",
    "is_newer",
    "matches",
    "matches_string",
    "selector_string",
    "trimmed",
]

log = logging.getLogger("greenloop.store")

RESULTS_LABEL = "greenloop.dev/results"
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
#: How long the API server keeps one watch open (it ends it then; the store re-opens it
#: from the last version seen). Randomised a little, as client-go does, so the watches
#: of many kinds do not all re-open at once.
WATCH_SECONDS = 300.0
PAGE = 500
MAX_BACKOFF = 30.0
#: Deleted uids remembered per kind, so a late read or write answer cannot bring one
#: back; oldest out first.
MAX_TOMBSTONES = 4096
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

Key = tuple[str, str]  # (namespace, name)
OnChange = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Source:
    """One kind the store holds, and which of its objects (a label selector)."""

    kind: str
    label_selector: str = ""
    metadata_only: bool = False

    def admits(self, labels: Mapping[str, str]) -> bool:
        return matches_string(self.label_selector, labels)


#: What greenloop reads: its objects; its Jobs, their pods and results ConfigMaps
#: (label-selected to what greenloop made); and the target workloads with their
#: ReplicaSets / ControllerRevisions and pods (every one in a watched namespace: a
#: target's pods carry no greenloop label to select them by).
SOURCES = (
    Source(crd.KIND),
    Source("Job", f"{LABEL_MANAGED_BY}=greenloop"),
    Source("ConfigMap", f"{RESULTS_LABEL}=junit", metadata_only=True),
    Source("Pod"),
    *(Source(kind) for kind in WORKLOAD_KINDS),
    Source("ReplicaSet"),
    Source("ControllerRevision"),
)


# ---- the rules, pure -------------------------------------------------------------------


def is_newer(new: str, old: str) -> bool:
    """Whether resourceVersion `new` comes after `old`. The API calls versions opaque;
    every API server backed by etcd hands out integers that only grow, which is what
    lets an answer and a watch event be put in order. Anything else: the newest arrival
    wins (a watch delivers in order)."""
    if new.isdigit() and old.isdigit():
        return int(new) > int(old)
    return new != old


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


_META = (
    "name", "namespace", "uid", "resourceVersion", "generation", "labels", "ownerReferences",
    "creationTimestamp", "deletionTimestamp",
)  # fmt: skip


def _meta(obj: Mapping[str, Any], annotations: Callable[[str], bool] | None) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _META if k in meta}
    if annotations is not None and meta.get("annotations"):
        kept["annotations"] = {k: v for k, v in meta["annotations"].items() if annotations(k)}
    return kept


def _containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": c.get("name", ""), "image": c.get("image", "")}
        for c in spec.get("containers") or ()
    ]


def _greenloop(key: str) -> bool:
    return key.startswith("greenloop.dev/")


def _revision(key: str) -> bool:
    return key == DEPLOYMENT_REVISION


def _completion_index(key: str) -> bool:
    return key == COMPLETION_INDEX_ANNOTATION  # which shard of an Indexed Job a pod runs


def trimmed(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the store keeps of an object: the fields greenloop reads, nothing else
    (no managedFields, no last-applied annotation, no pod template beyond its images)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if kind == crd.KIND:  # the tick reads all of it: the spec, status.engine, annotations
        out = dict(obj)
        out["metadata"] = _meta(obj, lambda _: True)
        return out
    if kind == "Job":
        return {
            "metadata": _meta(obj, _greenloop),
            "spec": {"suspend": spec.get("suspend", False)},
            "status": dict(status),
        }
    if kind == "Pod":
        statuses = [
            {k: cs[k] for k in ("name", "imageID", "state", "lastState", "restartCount") if k in cs}
            for cs in status.get("containerStatuses") or ()
        ]
        # startTime: how long a waiting container has waited (the never-starts stop)
        kept = {k: status[k] for k in ("phase", "reason", "startTime") if k in status}
        return {
            "metadata": _meta(obj, _completion_index),
            "spec": {"containers": _containers(spec)},
            "status": {**kept, "containerStatuses": statuses},
        }
    if kind in WORKLOAD_KINDS:
        template = (spec.get("template") or {}).get("spec") or {}
        kept_spec = {k: spec[k] for k in ("selector", "replicas") if k in spec}
        return {
            "metadata": _meta(obj, _revision),
            "spec": {**kept_spec, "template": {"spec": {"containers": _containers(template)}}},
            "status": dict(status),
        }
    if kind == "ControllerRevision":
        return {"metadata": _meta(obj, None), "revision": obj.get("revision", 0)}
    # ReplicaSet (its revision annotation, labels, owner); a results ConfigMap (metadata)
    return {"metadata": _meta(obj, _revision)}


# ---- reading ---------------------------------------------------------------------------


class Reader(Protocol):
    """Where the shell reads objects from: the store, or the API itself."""

    #: True when answers may lag the API (a store): a verdict that rests on something
    #: being absent is confirmed with the API first.
    cached: bool

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def select(
        self, kind: str, namespace: str, selector: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]: ...


class ApiReader:
    """Reads straight from the API (the CLI's and the tests' reader; a fresh read)."""

    cached = False

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.gw.find(kind, namespace, name)

    async def select(
        self, kind: str, namespace: str, selector: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        found = await self.gw.list(kind, namespace, label_selector=selector or None, limit=limit)
        return list(found.get("items") or ())


def reader_of(source: Reader | Gateway) -> Reader:
    return ApiReader(source) if isinstance(source, Gateway) else source


# ---- the store -------------------------------------------------------------------------


class Store:
    """The objects of `SOURCES` in `namespaces` (every namespace when empty)."""

    cached = True

    def __init__(
        self,
        gw: Gateway,
        namespaces: Sequence[str] = (),
        *,
        on_change: OnChange | None = None,
        sources: Sequence[Source] = SOURCES,
    ) -> None:
        self.gw = gw
        self.namespaces: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self.on_change = on_change
        self.sources = {s.kind: s for s in sources}
        self.objects: dict[str, dict[Key, dict[str, Any]]] = {s.kind: {} for s in sources}
        self.index: dict[str, LabelIndex] = {s.kind: LabelIndex() for s in sources}
        self.tombstones: dict[str, OrderedDict[str, None]] = {
            s.kind: OrderedDict() for s in sources
        }
        self._synced: dict[tuple[str, str | None], asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.relists = 0  # lists after the first (a watch error, a 410): for tests and logs

    # ---- the rules, applied -------------------------------------------------------------

    def _watched(self, namespace: str) -> bool:
        return None in self.namespaces or namespace in self.namespaces

    def _changed(self, kind: str, obj: Mapping[str, Any]) -> None:
        if self.on_change is not None:
            try:
                self.on_change(kind, obj)
            except Exception:  # a waker's bug must not stop the watch that feeds everyone
                log.exception("waking for %s %s/%s failed", kind, *_key(obj))

    def _put(self, kind: str, key: Key, obj: Mapping[str, Any]) -> dict[str, Any]:
        self._drop(kind, key)
        kept = self.objects[kind][key] = trimmed(kind, obj)
        self.index[kind].add(key, _labels(kept))
        return kept

    def _drop(self, kind: str, key: Key) -> dict[str, Any] | None:
        have = self.objects[kind].pop(key, None)
        if have is not None:
            self.index[kind].remove(key, _labels(have))
        return have

    def _tomb(self, kind: str, uid: str) -> None:
        graves = self.tombstones[kind]
        graves[uid] = None
        while len(graves) > MAX_TOMBSTONES:
            graves.popitem(last=False)

    def seen(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Take an object the API answered or a watch delivered (ADDED/MODIFIED), if it
        is one the store holds and newer than the one it has (*never back*). True when
        the store changed."""
        source = self.sources.get(kind)
        if source is None or not isinstance(obj.get("metadata"), Mapping):
            return False
        key = _key(obj)
        if not self._watched(key[0]) or not source.admits(_labels(obj)):
            return False
        uid = _uid(obj)
        if uid in self.tombstones[kind]:
            return False  # deleted already: a late answer does not bring it back
        table = self.objects[kind]
        have = table.get(key)
        if have is not None and not is_newer(_rv(obj), _rv(have)):
            return False
        self._changed(kind, self._put(kind, key, obj))
        return True

    def deleted(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """A DELETED event: the object goes, and its uid is remembered as gone."""
        if kind not in self.sources:
            return False
        key, uid = _key(obj), _uid(obj)
        self._tomb(kind, uid)
        table = self.objects[kind]
        have = table.get(key)
        if have is None or (_uid(have) != uid and is_newer(_rv(have), _rv(obj))):
            return False  # gone already, or the name is a newer object's now
        self._drop(kind, key)
        self._changed(kind, have)
        return True

    def replace(
        self, kind: str, namespace: str | None, items: Iterable[Mapping[str, Any]], version: str
    ) -> int:
        """*relist replaces*: the store's objects of `kind` in `namespace` (all when
        None) become the list's, at the list's `version`. Kept: an object the store has
        at a newer version than the listed one, or one the list lacks that the store saw
        after `version` (made after the list was served). The number of changes."""
        table = self.objects[kind]
        source = self.sources[kind]
        listed: set[Key] = set()
        changes = 0
        for item in items:
            key = _key(item)
            if not source.admits(_labels(item)):
                continue
            listed.add(key)
            have = table.get(key)
            if have is not None and _uid(have) == _uid(item) and not is_newer(_rv(item), _rv(have)):
                continue
            kept = self._put(kind, key, item)
            self.tombstones[kind].pop(_uid(item), None)
            self._changed(kind, kept)
            changes += 1
        index = self.index[kind]
        for key in list(table) if namespace is None else index.in_namespace(namespace):
            if key in listed:
                continue
            have = table[key]
            if version.isdigit() and _rv(have).isdigit() and int(_rv(have)) > int(version):
                continue
            self._drop(kind, key)
            self._tomb(kind, _uid(have))
            self._changed(kind, have)
            changes += 1
        return changes

    # ---- reads --------------------------------------------------------------------------

    def synced(self, kind: str, namespace: str) -> bool:
        for ns in (namespace, None):
            event = self._synced.get((kind, ns))
            if event is not None and event.is_set():
                return True
        return False

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get((namespace, name))

    def matching(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """The objects of a kind in a namespace that match, in name order (as the API
        lists them, so a bounded read takes the same ones); only those the index says
        could match are visited."""
        if kind not in self.index:
            return []
        table, match = self.objects[kind], matcher(selector)
        found = [
            table[key]
            for key in self.index[kind].candidates(namespace, selector)
            if match(_labels(table[key]))
        ]
        found.sort(key=lambda o: str(o["metadata"].get("name", "")))
        return found

    async def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if not self.synced(kind, namespace):
            return await self.gw.find(kind, namespace, name)
        return self.get(kind, namespace, name)

    async def select(
        self, kind: str, namespace: str, selector: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        if not self.synced(kind, namespace):
            return await ApiReader(self.gw).select(kind, namespace, selector, limit=limit)
        found = self.matching(kind, namespace, selector)
        return found[:limit] if limit is not None else found

    # ---- feeding: list, replace, watch --------------------------------------------------

    async def start(self, *, timeout: float = 60.0) -> bool:
        """Start a list-and-watch for each kind and namespace; wait (up to `timeout`)
        for every first list. False if some had not arrived: those kinds are read from
        the API until they do."""
        self.gw.observers.append(self.seen)
        for source in self.sources.values():
            for ns in self.namespaces:
                self._synced[(source.kind, ns)] = asyncio.Event()
                task = asyncio.create_task(
                    self._feed(source, ns), name=f"store/{source.kind}/{ns or '*'}"
                )
                self._tasks.append(task)
        waits = [asyncio.ensure_future(e.wait()) for e in self._synced.values()]
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for w in pending:
            w.cancel()
        if pending:
            missing = [f"{k}/{ns or '*'}" for (k, ns), e in self._synced.items() if not e.is_set()]
            log.warning("store: not yet listed after %.0f s: %s", timeout, ", ".join(missing))
        return not pending

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.gw.observers.remove(self.seen)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _list(self, source: Source, namespace: str | None) -> tuple[list[Any], str]:
        items: list[Any] = []
        cont: str | None = None
        while True:
            page = await self.gw.list_page(
                source.kind, namespace, label_selector=source.label_selector or None,
                metadata_only=source.metadata_only, limit=PAGE, cont=cont,
            )  # fmt: skip
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, str(meta.get("resourceVersion") or "")

    async def _feed(self, source: Source, namespace: str | None) -> None:
        kind, where = source.kind, namespace or "every namespace"
        backoff = 1.0
        first = True
        while True:
            try:
                items, version = await self._list(source, namespace)
                changes = self.replace(kind, namespace, items, version)
                if not first:
                    self.relists += 1
                    log.info("store: %s in %s listed again (%d changed)", kind, where, changes)
                first = False
                self._synced[(kind, namespace)].set()
                backoff = 1.0
                while True:  # the API server ends each watch; re-open from the last version
                    opened = time.monotonic()
                    version = await self._watch(source, namespace, version)
                    if time.monotonic() - opened < 1.0:
                        await asyncio.sleep(1.0)  # a watch that ends at once: no busy loop
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                if err.status in (401, 403):
                    # Reads of this kind go to the API meanwhile; say what is missing.
                    log.warning(
                        "store: may not list and watch %s in %s (%s): the operator's role "
                        "needs list and watch on it (config/rbac/role.yaml)", kind, where, err,
                    )  # fmt: skip
                else:
                    # 410 Gone: the version is too old to watch from; anything else may
                    # have lost events. Either way: list again and replace.
                    log.info("store: the watch of %s in %s ended (%s); listing again",
                             kind, where, err)  # fmt: skip
            except Exception as err:  # the connection broke (an API server restart...)
                log.info("store: the watch of %s in %s broke (%s); listing again",
                         kind, where, type(err).__name__)  # fmt: skip
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _watch(self, source: Source, namespace: str | None, version: str) -> str:
        """One watch until the API server ends it; the last version seen."""
        seconds = WATCH_SECONDS * random.uniform(1.0, 1.2)
        async for kind_, obj in self.gw.watch_kind(
            source.kind, namespace, resource_version=version,
            label_selector=source.label_selector or None,
            metadata_only=source.metadata_only, timeout=seconds,
        ):  # fmt: skip
            version = _rv(obj) or version
            if kind_ in ("ADDED", "MODIFIED"):
                self.seen(source.kind, obj)
            elif kind_ == "DELETED":
                self.deleted(source.kind, obj)
            # BOOKMARK: only the version moves on
        return version
