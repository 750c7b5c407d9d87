"""`greenloop operator`: kopf watches, one long-lived unit per object, the results
endpoint and the metrics port in one process (docs/design.md §8).

kopf is used for what it is good at — watching StagingValidations across namespaces,
peering, logging — through `on.event` handlers only. Each object gets one asyncio task
(its *unit*) that loops `Reconciler.tick`, reading from a watch-fed store
(greenloop.k8s.store, docs/design.md §8.1); kopf's events, a stored upload and any
change the store sees to what the object owns or targets only *wake* the unit. Why not
a kopf daemon or timer: both make kopf put a finalizer on every object, and a stopped
operator would then block every deletion until someone removed it by hand. Event
handlers need no finalizer: deleting an object is never blocked, and owner references
let the garbage collector remove its Jobs, pods, Secrets and ConfigMaps (docs/design.md
§8). The unit is still one per object, so no two steps for one object ever run at once
in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import kopf
from aiohttp import ClientError, web
from prometheus_client import Counter, Gauge, start_http_server

from greenloop.core import crd
from greenloop.core.exits import ExitCode
from greenloop.core.outbound import Policy
from greenloop.core.status import pending_status
from greenloop.k8s.gateway import ApiError, Conflict, Gateway, NotFound
from greenloop.k8s.jobs import LABEL_VALIDATION_UID
from greenloop.k8s.metrics import PHASES, measure_loop_lag
from greenloop.k8s.peering import Peers
from greenloop.k8s.reconcile import Reconciler, Settings
from greenloop.k8s.redeploy import OPERATOR_DEFAULT
from greenloop.k8s.results import BODY_SECONDS, Limits, ResultsServer, Stored, results_app
from greenloop.k8s.store import Store

__all__ = ["OperatorConfig", "run"]

log = logging.getLogger("greenloop.operator")
FINALIZER = "greenloop.dev/finalizer"
PREFIX = "greenloop.dev"  # of kopf's own annotations (the domain's, not the CRD group)
MAX_BACKOFF = 60.0
PAUSED_SECONDS = 2.0  # how often a paused unit looks whether it may act again
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
#: How long start-up waits for the store's first lists; kinds still missing then are
#: read from the API until they arrive.
SYNC_SECONDS = 60.0

TICKS = Counter("greenloop_ticks_total", "Reconcile ticks carried out", ["outcome"])
UNITS = Gauge("greenloop_objects", "StagingValidations this operator is reconciling")
UPLOADS = Counter("greenloop_results_stored_total", "Uploads stored by the results endpoint")


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    namespaces: Sequence[str] = ()  # empty: every namespace
    kubeconfig: str | None = None
    results_host: str = "0.0.0.0"  # pods must reach it
    results_port: int = 8081
    results_url: str = ""  # how Job pods reach the endpoint
    results_body_seconds: float = BODY_SECONDS  # an upload's body arrives within this
    metrics_port: int = 8080  # 0: no metrics endpoint
    reporter_image: str = "localhost/greenloop:dev"
    json_logs: bool = True
    verbose: bool = False
    peering: str | None = None  # a kopf peering name; None: standalone
    priority: int = 0
    peering_lifetime: int = 60  # seconds a silent peer counts as alive (kopf's default)
    outbound: Policy = OPERATOR_DEFAULT  # where webhook and health calls may go
    liveness: str | None = None  # kopf's liveness endpoint URL; None: not served
    default_service_account: str | None = None  # for objects naming none (None: they stall)


@dataclass(frozen=True, slots=True)
class Unit:
    """Which object a unit serves: its uid, and the name it reads it by."""

    namespace: str
    name: str
    uid: str


class Units:
    """One task per object, woken by events; it alone carries out that object's steps.

    Keyed by uid, as kopf keys its own per-object workers: a name deleted and recreated
    is two objects, and the old one's end (its last tick finding the name gone, or its
    DELETED event handled after the new object's ADDED - kopf keeps no order between
    two uids) must not stop the new one's unit (issue 19; docs/design.md §8)."""

    def __init__(self, reconciler: Reconciler, peers: Peers | None = None) -> None:
        self.reconciler = reconciler
        self.peers = peers  # with --peering: pause while a higher-priority peer lives
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.units: dict[str, Unit] = {}
        # (namespace, kind, name) of a target workload -> the uids of objects that target
        # it, and the other way round; (namespace, name) -> the uids of that name. Each an
        # event's work is a lookup, not a pass over every object (test_k8s_store_scale).
        self.targets: dict[tuple[str, str, str], set[str]] = {}
        self.targeting: dict[str, set[tuple[str, str, str]]] = {}
        self.named: dict[tuple[str, str], set[str]] = {}

    def ensure(self, namespace: str, name: str, uid: str) -> None:
        if uid not in self.tasks or self.tasks[uid].done():
            unit = Unit(namespace, name, uid)
            self.units[uid] = unit
            self.named.setdefault((namespace, name), set()).add(uid)
            self.wake[uid] = asyncio.Event()
            self.tasks[uid] = asyncio.create_task(self._loop(unit), name=f"sv/{namespace}/{name}")
            UNITS.set(len(self.tasks))
        self.wake[uid].set()

    def watch_targets(self, namespace: str, uid: str, workloads: Sequence[Any]) -> None:
        """Remember which workloads this object targets, so their changes wake it."""
        self._forget_targets(uid)
        for w in workloads:
            if isinstance(w, dict) and w.get("kind") and w.get("name"):
                target = (namespace, str(w["kind"]), str(w["name"]))
                self.targets.setdefault(target, set()).add(uid)
                self.targeting.setdefault(uid, set()).add(target)

    def targeted(self, namespace: str | None, kind: str, name: str) -> bool:
        return namespace is not None and (namespace, kind, name) in self.targets

    def poke_target(self, namespace: str, kind: str, name: str) -> None:
        for uid in self.targets.get((namespace, kind, name), ()):
            self.poke_uid(uid)

    def _forget_targets(self, uid: str) -> None:
        for target in self.targeting.pop(uid, ()):
            self.targets[target].discard(uid)
            if not self.targets[target]:
                del self.targets[target]

    def poke_uid(self, uid: str) -> None:
        if uid in self.wake:
            self.wake[uid].set()

    def woken_by(self, store: Store) -> Callable[[str, Mapping[str, Any]], None]:
        """What wakes a unit when the store sees a change (docs/design.md §8.1): the
        object itself; what greenloop made for it (its uid label: Jobs, their pods,
        results); a target workload, or its ReplicaSet, ControllerRevision or pod,
        traced up its owner references to the workload. Dict lookups only."""

        def on_change(kind: str, obj: Mapping[str, Any]) -> None:
            meta = obj.get("metadata") or {}
            uid = (meta.get("labels") or {}).get(LABEL_VALIDATION_UID)
            if uid:
                self.poke_uid(str(uid))
            elif kind == crd.KIND:
                self.poke_uid(str(meta.get("uid", "")))
            elif self.targets:
                ns = str(meta.get("namespace", ""))
                for owner_kind, owner in _owners(store, ns, kind, obj):
                    self.poke_target(ns, owner_kind, owner)

        return on_change

    def _forget(self, uid: str) -> None:
        self.tasks.pop(uid, None)
        self.wake.pop(uid, None)
        unit = self.units.pop(uid, None)
        self._forget_targets(uid)
        # The phase gauge is by name: leave it to a newer object of the same name.
        if unit is not None:
            same = self.named.get((unit.namespace, unit.name), set())
            same.discard(uid)
            if not same:
                self.named.pop((unit.namespace, unit.name), None)
                PHASES.forget(unit.namespace, unit.name)
        UNITS.set(len(self.tasks))

    async def stop(self, uid: str) -> None:
        task = self.tasks.get(uid)
        self._forget(uid)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop_all(self) -> None:
        for uid in list(self.tasks):
            await self.stop(uid)

    async def _loop(self, unit: Unit) -> None:
        uid, key = unit.uid, f"{unit.namespace}/{unit.name}"
        backoff = 1.0
        paused = False
        while True:
            wake = self.wake.get(uid)
            if wake is None:
                return
            wake.clear()
            try:
                if self.peers is not None and not await self.peers.may_act(unit.namespace):
                    if not paused:
                        log.info("%s paused: a peer of higher priority is active", key)
                    paused = True
                    await _sleep_or_wake(wake, PAUSED_SECONDS)
                    continue
                paused = False
                tick = await self.reconciler.tick(unit.namespace, unit.name, uid)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not a decision: an API outage or a bug. Retry later, bounded; the
                # status keeps what was last written.
                TICKS.labels("error").inc()
                log.exception("tick of %s failed; retrying in %.0f s", key, backoff)
                await _sleep_or_wake(wake, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            TICKS.labels("stop" if tick.stop else "ok").inc()
            log.info("%s: %s", key, tick.note)
            if tick.stop:
                self._forget(uid)
                return
            if tick.wait > 0:
                await _sleep_or_wake(wake, tick.wait)


def _owners(
    store: Store, namespace: str, kind: str, obj: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The workloads an object belongs to: itself, or up to two owner hops away (a pod's
    ReplicaSet's Deployment)."""
    if kind in WORKLOAD_KINDS:
        return [(kind, str(obj["metadata"].get("name", "")))]
    found: list[tuple[str, str]] = []
    for ref in obj["metadata"].get("ownerReferences") or ():
        ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        if ref_kind in WORKLOAD_KINDS:
            found.append((ref_kind, ref_name))
        elif ref_kind == "ReplicaSet" and kind == "Pod":
            rs = store.get("ReplicaSet", namespace, ref_name)
            if rs is not None:
                found.extend(_owners(store, namespace, "ReplicaSet", rs))
    return found


async def _sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


@dataclass
class Memo:
    """The operator's shared state, in one declared shape: kopf's memo (kopf docs,
    "In-memory containers"), passed to `kopf.operator(memo=...)` and handed to every
    handler. Filled by the startup handler; kopf gives each object a shallow copy made
    after startup, so every copy points at the same running parts."""

    units: Units | None = None
    gateway: Gateway | None = None
    results: web.AppRunner | None = None
    store: Store | None = None
    heartbeat: asyncio.Task[None] | None = None  # greenloop_event_loop_lag_seconds


def _register(registry: kopf.OperatorRegistry, config: OperatorConfig, identity: str) -> None:
    _register_lifecycle(registry, config, identity)
    _register_validations(registry)


def _configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # A standby takes over once the active's last keep-alive is this old.
    settings.peering.lifetime = config.peering_lifetime
    settings.posting.enabled = False  # greenloop posts its own Events, one per decision
    settings.watching.server_timeout = 300
    # With -n, kopf has the namespaces by name: it need not list and watch namespaces
    # (nor CRDs) to find them, and an operator bound per namespace (RoleBinding) may
    # not - kopf retried each 403 for about a minute before it started watching.
    # Cluster-wide, kopf still watches CRDs to notice one being (re)installed.
    settings.scanning.disabled = bool(config.namespaces)


async def _start(memo: Memo, config: OperatorConfig, identity: str) -> None:
    """Connect, start the units and the results endpoint (and metrics), into the memo."""
    gw = await Gateway.connect(config.kubeconfig)
    url = config.results_url or f"http://127.0.0.1:{config.results_port}"
    peers = None
    if config.peering is not None:
        peers = Peers(
            gw, config.peering, identity, config.priority, clusterwide=not config.namespaces
        )
    settings = Settings(
        reporter_image=config.reporter_image, results_url=url, outbound=config.outbound,
        default_service_account=config.default_service_account,
    )  # fmt: skip
    store = Store(gw, config.namespaces)
    units = Units(Reconciler(gw, settings, reader=store), peers)
    store.on_change = units.woken_by(store)
    # Before kopf starts its watches (startup handlers end first): no unit reads an
    # empty store. A kind not listed by then is read from the API until it is.
    await store.start(timeout=SYNC_SECONDS)
    memo.store = store

    async def on_stored(stored: Stored) -> None:
        UPLOADS.inc()
        units.poke_uid(stored.validation_uid)

    limits = Limits(body_seconds=config.results_body_seconds)
    runner = web.AppRunner(results_app(ResultsServer(gw, on_stored=on_stored, limits=limits)))
    await runner.setup()
    await web.TCPSite(runner, config.results_host, config.results_port).start()
    if config.metrics_port:
        start_http_server(config.metrics_port)
    memo.gateway, memo.units, memo.results = gw, units, runner
    memo.heartbeat = asyncio.create_task(measure_loop_lag(), name="event loop lag")
    # Everything loaded so far (kopf, the API client, aiohttp: most of the heap) lives as
    # long as the process: out of the collector's sight, a gen-2 collection - which
    # holds the GIL, the event loop's too, while a worker builds a 100k-test state -
    # scans only what came after. Measured on the 100k-test round of test_operator_loop
    # (2 shared cores, 5-7 runs each): /healthz p95 median 96 ms, against 166 ms without;
    # the worst answer (0.4-1.4 s) is noise-bound either way. Frozen objects are still
    # freed by refcount, and these are never garbage. What the offloaded work leaves
    # alive (the big states) is frozen in turn after it (k8s/offload.py's policy).
    gc.freeze()
    log.info(
        "greenloop operator: results endpoint on %s:%d (pods use %s), metrics on %s",
        config.results_host, config.results_port, url, config.metrics_port or "off",
    )  # fmt: skip


async def _stop(memo: Memo) -> None:
    if memo.units is not None:
        await memo.units.stop_all()
    if memo.store is not None:
        await memo.store.stop()
    if memo.results is not None:
        await memo.results.cleanup()
    if memo.gateway is not None:
        await memo.gateway.close()


def _register_lifecycle(
    registry: kopf.OperatorRegistry, config: OperatorConfig, identity: str
) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if config.kubeconfig or os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Memo, **_: Any) -> None:
        _configure(settings, config)
        await _start(memo, config, identity)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Memo, **_: Any) -> None:
        await _stop(memo)


def _register_validations(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.event(crd.GROUP, crd.VERSION, crd.PLURAL, registry=registry)
    async def on_validation(
        *, event: Any, name: str, namespace: str | None, meta: Any, spec: Any, status: Any,
        memo: Memo, **_: Any,
    ) -> None:  # fmt: skip
        units = memo.units
        if units is None or namespace is None:
            return
        uid = str(meta.get("uid"))
        if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
            await units.stop(uid)
            return
        if memo.store is not None and isinstance(event.get("object"), dict):
            # kopf's watch and the store's are not ordered: what kopf woke the unit for
            # is in the store before the tick reads it (never back: an older body is
            # ignored).
            memo.store.seen(crd.KIND, event["object"])
        if not status:
            await _write_pending(memo, namespace, name, meta)
        target = spec.get("target") if hasattr(spec, "get") else None
        workloads = target.get("workloads") if isinstance(target, dict) else None
        units.watch_targets(namespace, uid, workloads if isinstance(workloads, list) else ())
        units.ensure(namespace, name, uid)


async def _write_pending(memo: Memo, namespace: str, name: str, meta: Any) -> None:
    """A new object's first status, from the event's own body and before any read: the
    window in which it has none - kstatus's Current - lasts one PATCH, not the first
    tick's reads, report and render, which queue behind every other new object's in a
    burst (docs/gitops.md). Conflict-checked on the event's resourceVersion: a write by
    anyone else since (an earlier operator, the round itself) wins, and nothing is lost -
    the unit's ticks write the real status either way."""
    if memo.gateway is None:
        return
    pending = pending_status(int(meta.get("generation") or 0), time.time())
    try:
        await memo.gateway.patch_status(
            crd.KIND, namespace, name, pending, resource_version=str(meta.get("resourceVersion"))
        )
    except (Conflict, NotFound):
        return
    except (ApiError, ClientError, OSError, TimeoutError) as err:
        # No RBAC for status, an API outage: the unit starts regardless, and its tick
        # meets the same and says so.
        log.warning("%s/%s: first status not written: %s", namespace, name, err)


def run(config: OperatorConfig) -> int:
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.json_logs else kopf.LogFormat.FULL,
    )
    registry = kopf.OperatorRegistry()
    # Our own peering identity (kopf's shape), so the units can find this operator's
    # record among its peers'.
    identity = os.environ.get("POD_ID") or (
        f"greenloop@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    )
    _register(registry, config, identity)
    namespaces = list(config.namespaces)
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                memo=Memo(),
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=config.peering is None,
                peering_name=config.peering,
                priority=config.priority,
                identity=cast(Any, identity),  # kopf's Identity is a NewType of str
                # kopf's own endpoint: served from the event loop every unit runs in and
                # by a standby too, so a pod's livenessProbe restarts a wedged operator
                liveness_endpoint=config.liveness,
            )
        )
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)
